"""What a request presents to Kratos: the session cookie or token, read as Kratos reads it."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping

__all__ = ["Credentials", "asgi_credentials", "cookie_from_header", "valid_cookie_name"]

# RFC 6265 cookie-octet; a Kratos cookie is base64url, an Ory Network one too.
_COOKIE_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+")
_TOKEN_VALUE = re.compile(r"[\x21-\x7e]+")
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Longer credentials are not Kratos's (its cookies stay under 4 KiB): treated as absent.
MAX_CREDENTIAL_LENGTH = 4096
# Keyed so that a cache key says nothing about a credential outside this process.
_KEYED_HASH = hashlib.blake2b(key=secrets.token_bytes(16), digest_size=16)
# The same hash with the kind already fed: the hit path copies these, never re-feeds.
_COOKIE_HASH = _KEYED_HASH.copy()
_COOKIE_HASH.update(b"c")
_TOKEN_HASH = _KEYED_HASH.copy()
_TOKEN_HASH.update(b"t")

HeaderPairs = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]


_HEADER_KINDS: dict[str | bytes, int] = {}
for _kind, _name in enumerate(("x-session-token", "cookie", "authorization"), start=1):
    _HEADER_KINDS[_name] = _HEADER_KINDS[_name.encode()] = _kind
_HEADER_LENGTHS = frozenset(len(name) for name in _HEADER_KINDS)


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def cookie_from_header(header: str, name: str) -> str | None:
    """Return the first well-formed value of cookie *name* in a ``Cookie`` header, as Go does.

    Go's ``net/http`` (which Kratos reads cookies with) skips a pair whose value it cannot
    parse and goes on, so ``name=bad\\value; name=GOOD`` is ``GOOD`` to Kratos, and to us.
    """
    for part in header.split(";"):
        key, sep, value = part.partition("=")
        if not sep or key.strip() != name:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if _valid(value, _COOKIE_VALUE):
            return value
    return None


def _valid(value: str, pattern: re.Pattern[str]) -> bool:
    return 0 < len(value) <= MAX_CREDENTIAL_LENGTH and pattern.fullmatch(value) is not None


def valid_cookie_name(name: object) -> bool:
    """Return whether *name* can be a cookie name."""
    return isinstance(name, str) and _COOKIE_NAME.fullmatch(name) is not None


class Credentials:
    """What one request presents to Kratos: a session cookie value or a session token.

    Falsy when it presents nothing. When both are given, the token wins, as in Kratos
    (``X-Session-Token`` first), and only the winner is kept and sent. Immutable; the repr
    never shows a value.

    Args:
        cookie: The value of the Kratos session cookie.
        token: A session token (``ory_st_...``).
        bearer: Whether the token came as ``Authorization: Bearer``.

    Raises:
        ValueError: a value has characters or a length Kratos never issues.
    """

    __slots__ = ("_key", "bearer", "cookie", "token")
    cookie: str | None
    token: str | None
    bearer: bool
    _key: bytes | None

    def __init__(
        self, cookie: str | None = None, token: str | None = None, bearer: bool = False
    ) -> None:
        if token and not _valid(token, _TOKEN_VALUE):
            raise ValueError("the session token is not a well-formed Kratos token")
        if cookie and not _valid(cookie, _COOKIE_VALUE):
            raise ValueError("the session cookie is not a well-formed cookie value")
        if token:
            self._set(None, token, bearer)
        else:
            self._set(cookie or None, None, False)

    def _set(self, cookie: str | None, token: str | None, bearer: bool) -> None:
        object.__setattr__(self, "cookie", cookie)
        object.__setattr__(self, "token", token)
        object.__setattr__(self, "bearer", bearer)
        object.__setattr__(self, "_key", None)

    @classmethod
    def _checked(
        cls, cookie: str | None = None, token: str | None = None, bearer: bool = False
    ) -> Credentials:
        # For values from_headers has validated already: no second pass on the hot path.
        made = cls.__new__(cls)
        made._set(cookie, token, bearer)
        return made

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Credentials are immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credentials):
            return NotImplemented
        return (self.cookie, self.token, self.bearer) == (other.cookie, other.token, other.bearer)

    def __hash__(self) -> int:
        return hash((self.cookie, self.token, self.bearer))

    @classmethod
    def from_headers(
        cls, headers: HeaderPairs, *, cookie_name: str = "ory_kratos_session"
    ) -> Credentials:
        """Pick the credential Kratos itself would use from request headers.

        *headers* is a mapping or an iterable of ``(name, value)`` pairs (str or
        bytes, as in an ASGI scope); every ``Cookie`` header is read. Malformed or
        oversized values count as absent.
        """
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        session_token = cookie = bearer = None
        for raw_name, raw_value in pairs:
            kind = _HEADER_KINDS.get(raw_name)
            if kind is None:
                if len(raw_name) not in _HEADER_LENGTHS:
                    continue  # most headers: not even worth lower-casing
                kind = _HEADER_KINDS.get(raw_name.lower())
            if kind is None:
                continue
            if kind == 1:
                session_token = session_token or _text(raw_value).strip()
            elif kind == 2 and cookie is None:
                cookie = cookie_from_header(_text(raw_value), cookie_name)
            elif kind == 3 and bearer is None:
                scheme, _, value = _text(raw_value).strip().partition(" ")
                if scheme.lower() == "bearer" and value and " " not in value:
                    bearer = value
        # Kratos reads X-Session-Token first and does not fall back when it is invalid.
        if session_token:
            return (
                cls._checked(token=session_token) if _valid(session_token, _TOKEN_VALUE) else cls()
            )
        if cookie:
            return cls._checked(cookie=cookie)
        if bearer and _valid(bearer, _TOKEN_VALUE):
            return cls._checked(token=bearer, bearer=True)
        return cls()

    def __bool__(self) -> bool:
        return bool(self.cookie or self.token)

    def __repr__(self) -> str:
        if self.token:
            return "Credentials(token=<redacted>)"
        if self.cookie:
            return "Credentials(cookie=<redacted>)"
        return "Credentials()"

    @property
    def is_token(self) -> bool:
        """Return whether the request authenticated with a session token."""
        return self.token is not None

    def cache_key(self) -> bytes:
        """Return a keyed hash of the credential: safe to keep in memory, never reversible."""
        key = self._key
        if key is None:
            hasher = (_TOKEN_HASH if self.token else _COOKIE_HASH).copy()
            hasher.update((self.token or self.cookie or "").encode())
            key = hasher.digest()
            object.__setattr__(self, "_key", key)
        return key


def asgi_credentials(headers: Iterable[tuple[bytes, bytes]], cookie_name: str) -> Credentials:
    """Return the credentials of raw ASGI *headers*, read by their lower-case names only.

    ASGI servers lower-case header names, and Starlette reads them so: ``Cookie`` from a
    server that breaks the rule is no cookie to ``request.cookies`` either. The hit path
    (:func:`asgi_hit_key`) reads them so too, which keeps it to what this reads.
    """
    return Credentials.from_headers(
        [(name, value) for name, value in headers if name == name.lower()],
        cookie_name=cookie_name,
    )
