"""A clock that follows real time (TOTP apps need it) and that tests can move on."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone


class FakeClock:
    """Wall-clock time plus an offset you can move; optionally frozen.

    Call it (or :meth:`time`) for POSIX seconds: pass it as ``timer=`` to a client so
    that the client's cache and FakeKratos agree on what time it is.
    """

    def __init__(self, start: float | None = None, *, frozen: bool = False) -> None:
        self._lock = threading.Lock()
        self._frozen_at = (start if start is not None else time.time()) if frozen else None
        self._offset = 0.0 if frozen or start is None else start - time.time()

    def time(self) -> float:
        """Return the fake time in POSIX seconds."""
        with self._lock:
            base = self._frozen_at if self._frozen_at is not None else time.time()
            return base + self._offset

    __call__ = time

    def now(self) -> datetime:
        """Return the fake time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time(), timezone.utc)

    def advance(self, seconds: float) -> None:
        """Move the clock *seconds* forward (backward if negative)."""
        with self._lock:
            self._offset += seconds

    def freeze(self) -> None:
        """Stop the clock where it is."""
        now = self.time()
        with self._lock:
            self._frozen_at, self._offset = now, 0.0
