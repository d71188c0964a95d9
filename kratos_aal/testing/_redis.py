"""A real redis-server for tests and benchmarks: a free loopback port, no persistence.

Private: ``tests/shared/conftest.py`` and ``benchmarks/_instances.py`` start theirs here.
Debian's ``redis-server`` must be installed; :func:`redis_binary` says where, if anywhere.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ._serve import free_port

__all__ = ["RedisProcess", "redis_binary", "running_redis"]

#: Loopback only, and no persistence (no RDB snapshots, no append-only file).
OPTIONS = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
#: Seconds redis-server may take to answer its first PING.
START_TIMEOUT = 10.0


def redis_binary() -> str | None:
    """Return the path of ``redis-server``, or ``None`` when it is not installed."""
    return shutil.which("redis-server")


def _pong(port: int) -> bool:
    """Return whether a redis-server on *port* answers PING now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as probe:
            probe.sendall(b"PING\r\n")
            return probe.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisProcess:
    """One redis-server process, that can be stopped, paused, resumed and started again.

    Args:
        directory: Its working directory (it persists nothing there).
        binary: The ``redis-server`` to run.
    """

    def __init__(self, directory: str, binary: str) -> None:
        self.directory = directory
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it on :attr:`port`; return once it answers PING.

        Raises:
            RuntimeError: it exited, or did not answer within ``START_TIMEOUT`` seconds.
        """
        self.process = subprocess.Popen(  # noqa: S603 - redis-server, with our arguments
            [self.binary, *OPTIONS, "--port", str(self.port), "--dir", self.directory],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not _pong(self.port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop it (paused or not) and wait for it to exit."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)  # a paused server cannot exit
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def pause(self) -> None:
        """Freeze it (SIGSTOP): connections stay open, nothing is answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run again."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@contextmanager
def running_redis(
    binary: str, kind: Callable[[str, str], RedisProcess] = RedisProcess
) -> Iterator[RedisProcess]:
    """Run *binary* (a redis-server) in a temporary directory; stop it on the way out.

    *kind* makes the :class:`RedisProcess` (a subclass, with helpers of its own).
    """
    with tempfile.TemporaryDirectory() as directory:
        server = kind(directory, binary)
        try:
            server.start()
            yield server
        finally:
            server.stop()
