"""The shared cache's entries: their names, and their signed values (JSON, never pickle).

Keys are keyed hashes of the credential (``cache_key_secret``); values are signed with a
key derived from the same secret, name the key they were written under, and carry their
own wall-clock expiry, so an entry that is forged, stale, or read in reply to another key
is never an allow.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._config import KratosConfig
from ._kratos_api import WhoamiResult
from ._models import Session

__all__ = ["Entries", "SharedAnswer", "from_cache"]

#: The layout of a stored value; another number is a miss (written by another version).
FORMAT = 1
_WHOAMI_PATH = "/sessions/whoami"
#: Hex digits of a shared name's hash; the bytes they are written with.
_NAME_DIGITS = 40
_HEX = frozenset(b"0123456789abcdef")


@dataclass(frozen=True, slots=True)
class SharedAnswer(WhoamiResult):
    """A whoami answer read from the shared tier: as cached as a local one.

    The plan asks Kratos again before denying from a cached answer; an answer another
    instance stored a while ago is no fresher than one of our own.
    """


def from_cache(value: object) -> bool:
    """Return whether *value* came from the shared tier."""
    return type(value) is SharedAnswer


def _derive(secret: str, purpose: bytes) -> bytes:
    return hmac.new(secret.encode(), b"kratos-aal shared cache " + purpose, hashlib.sha256).digest()


class Entries:
    """Names and values of a tier's entries, for *config*'s ``cache_key_secret``."""

    config: KratosConfig
    _timer: Callable[[], float]

    def _init_entries(self, config: KratosConfig, secret: str) -> None:
        self._name_key = _derive(secret, b"key")
        self._sign_key = _derive(secret, b"value")
        self._prefix = config.cache_key_prefix
        self._name_head = f"{self._prefix}s:".encode()

    def name_of(self, request: Any) -> str | None:
        """Return the shared key for a whoami *request*, ``None`` for any other request."""
        if not request.url.path.endswith(_WHOAMI_PATH):
            return None
        token = request.headers.get("x-session-token")
        if token:
            material = "t" + token
        else:
            # whoami_request sends exactly "<cookie_name>=<value>".
            material = "c" + request.headers.get("cookie", "").partition("=")[2]
        digest = hmac.new(
            self._name_key,
            f"{self.config.public_url}\0{material}".encode(),
            hashlib.sha256,
        ).hexdigest()
        return f"{self._prefix}s:{digest[:_NAME_DIGITS]}"

    def encode(self, name: str, session: Session, ttl: float, now: float) -> bytes:
        """Return the signed value that keeps *session* under *name* until ``now + ttl``."""
        body = json.dumps(
            {"v": FORMAT, "k": name, "exp": now + ttl, "session": dict(session.raw)},
            separators=(",", ":"),
        ).encode()
        signature = hmac.new(self._sign_key, body, hashlib.sha256).hexdigest().encode()
        return signature + b"." + body

    def decode(self, name: str, value: object, now: float) -> tuple[WhoamiResult, float] | None:
        """Return the session kept in *value* and its seconds left, or ``None`` (a miss)."""
        try:
            if not isinstance(value, bytes):
                return None
            signature, _, body = value.partition(b".")
            expected = hmac.new(self._sign_key, body, hashlib.sha256).hexdigest().encode()
            if not hmac.compare_digest(signature, expected):
                return None
            data = json.loads(body)
            left = float(data["exp"]) - now
            if data["v"] != FORMAT or data["k"] != name or not left > 0:
                return None
            session = Session.from_json(data["session"])
            if not session.active:
                return None
            if session.expires_at is not None:
                left = min(left, session.expires_at.timestamp() - now)
            return (SharedAnswer(session), left) if left > 0 else None
        except Exception:
            # Whatever a value holds, it is an accelerator's miss, never an error.
            return None

    def _lock_of(self, name: str) -> str:
        # "<prefix>s:<hash>" is locked by "<prefix>l:<hash>" while one instance asks Kratos.
        return f"{self._prefix}l:{name[len(self._prefix) + 2 :]}"

    def _tomb_of(self, name: str) -> str:
        # "<prefix>t:<hash>" is set by a logout of "<prefix>s:<hash>".
        return f"{self._prefix}t:{name[len(self._prefix) + 2 :]}"

    def _is_name(self, data: bytes) -> bool:
        """Return whether *data* is a shared name, as :meth:`name_of` makes them."""
        head = self._name_head
        return (
            len(data) == len(head) + _NAME_DIGITS
            and data.startswith(head)
            and all(byte in _HEX for byte in data[len(head) :])
        )
