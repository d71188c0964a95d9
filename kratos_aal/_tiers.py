"""What ``kratos-aal doctor`` says about the cache tiers of a configuration.

The local tier is the in-process cache every client has; the shared tier is a Redis that
several instances share (``KratosConfig.cache_url``), asked here with a plain ``PING``
so that the doctor needs no Redis client library.
"""

from __future__ import annotations

import os
import socket
import ssl
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from ._config import KratosConfig
from .exceptions import ConfigurationError

__all__ = ["check_cache_tiers", "describe_tiers", "ping_redis", "redacted"]


class _Reporter(Protocol):
    def say(self, mark: str, text: str) -> None: ...
    def problem(self, text: str) -> None: ...


def redacted(url: str) -> str:
    """Return *url* without its user info (a Redis URL may hold a password)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _command(*words: str) -> bytes:
    encoded = [w.encode() for w in words]
    return f"*{len(encoded)}\r\n".encode() + b"".join(
        b"$%d\r\n%s\r\n" % (len(w), w) for w in encoded
    )


def ping_redis(url: str, timeout: float) -> str | None:
    """Send ``PING`` (after ``AUTH`` when *url* has a password); ``None`` when it answers.

    Returns the reason otherwise, never quoting the password.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        return "not a redis:// or rediss:// URL"
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout) as raw:
            sock: socket.socket = raw
            if parts.scheme == "rediss":
                sock = ssl.create_default_context().wrap_socket(raw, server_hostname=parts.hostname)
            reader = sock.makefile("rb")
            if parts.password:
                auth = [unquote(parts.username)] if parts.username else []
                sock.sendall(_command("AUTH", *auth, unquote(parts.password)))
                reply = reader.readline().strip()
                if reply != b"+OK":
                    return f"AUTH refused ({_first_word(reply)})"
            sock.sendall(_command("PING"))
            reply = reader.readline().strip()
    except (OSError, ssl.SSLError) as error:
        return f"no answer ({type(error).__name__})"
    if reply != b"+PONG":
        return f"PING answered {_first_word(reply)}"
    return None


def _first_word(reply: bytes) -> str:
    # Only Redis's error code (NOAUTH, WRONGPASS, ...): the rest may echo what we sent.
    return reply.split(b" ", 1)[0].decode("ascii", "replace")[:40] or "nothing"


def describe_tiers(config: Any, timeout: float) -> list[tuple[bool, str]]:
    """Return ``(ok, text)`` lines: the local tier, and the shared one when configured."""
    lines: list[tuple[bool, str]] = []
    if config.cache_ttl > 0:
        lines.append(
            (
                True,
                f"local cache: up to {config.cache_maxsize:,} sessions per process, "
                f"each for at most {config.cache_ttl:g} s",
            )
        )
    else:
        lines.append((True, "local cache: off (cache_ttl is 0): every request asks Kratos"))
    url = getattr(config, "cache_url", None)
    if not url:
        lines.append((True, "shared cache: none (cache_url is not set)"))
        return lines
    reason = ping_redis(url, timeout)
    if reason is None:
        lines.append((True, f"shared cache: {redacted(url)} answers"))
    else:
        lines.append((False, f"shared cache: {redacted(url)}: {reason}"))
    return lines


def check_cache_tiers(doctor: _Reporter, url: str, timeout: float, config: Any = None) -> None:
    """Report the cache tiers of *config* (default: the ``KRATOS_*`` environment's) to *doctor*."""
    if config is None:
        try:
            config = KratosConfig.from_env(os.environ, public_url=url)
        except ConfigurationError as error:
            doctor.problem(f"the KRATOS_* environment is not a valid configuration: {error}")
            return
    for ok, text in describe_tiers(config, timeout):
        if ok:
            doctor.say("✓", text)
        else:
            doctor.problem(text)
