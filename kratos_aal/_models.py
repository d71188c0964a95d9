"""Typed, immutable views of what Kratos sends, and what a request presents to it."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from types import MappingProxyType
from typing import Any

from .exceptions import ConfigurationError, MalformedResponse

__all__ = [
    "AAL",
    "AuthenticationMethod",
    "Credentials",
    "Identity",
    "Session",
    "parse_datetime",
]

_RANK = {"aal0": 0, "aal1": 1, "aal2": 2, "aal3": 3}


class AAL(str, Enum):
    """An Authenticator Assurance Level, ordered: ``AAL.AAL2 > AAL.AAL1``.

    Comparisons also accept the strings ``"aal1"``, ``"aal2"``, ...
    """

    AAL0 = "aal0"
    AAL1 = "aal1"
    AAL2 = "aal2"
    AAL3 = "aal3"

    @classmethod
    def parse(cls, value: AALLike, *, setting: str = "aal") -> AAL:
        """Return the AAL for *value* (an ``AAL`` or a string such as ``"aal2"``).

        Raises:
            ConfigurationError: *value* is not an AAL; the message names *setting*.
        """
        if isinstance(value, AAL):
            return value
        if isinstance(value, str) and value.strip().lower() in _RANK:
            return cls(value.strip().lower())
        raise ConfigurationError(
            f"{setting} must be one of 'aal0', 'aal1', 'aal2', 'aal3', got {value!r}"
        )

    def __init__(self, value: str) -> None:
        # A plain attribute: comparisons sit on every request's path.
        self._rank = _RANK[value]

    @property
    def rank(self) -> int:
        """Return the level as a number, 0 to 3."""
        return self._rank

    @staticmethod
    def _other_rank(other: object) -> int | None:
        if isinstance(other, AAL):
            return other._rank
        if isinstance(other, str):
            return _RANK.get(other.lower())
        return None

    def __lt__(self, other: object) -> bool:
        rank = self._other_rank(other)
        return NotImplemented if rank is None else self._rank < rank

    def __le__(self, other: object) -> bool:
        rank = self._other_rank(other)
        return NotImplemented if rank is None else self._rank <= rank

    def __gt__(self, other: object) -> bool:
        rank = self._other_rank(other)
        return NotImplemented if rank is None else self._rank > rank

    def __ge__(self, other: object) -> bool:
        rank = self._other_rank(other)
        return NotImplemented if rank is None else self._rank >= rank

    # str's own __eq__ and __hash__ stay, so AAL.AAL2 == "aal2" and both hash alike.
    __hash__ = str.__hash__

    def __str__(self) -> str:
        return self.value


AALLike = AAL | str

# Kratos writes RFC 3339 with "Z" and up to nine fractional digits
# (2025-05-27T07:04:13.918276388Z); Python 3.10's fromisoformat rejects both.
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


def parse_datetime(value: str) -> datetime:
    """Parse an RFC 3339 timestamp as Kratos writes it into an aware datetime.

    Fractions beyond microseconds are truncated.

    Raises:
        ValueError: *value* is not an RFC 3339 date-time with an offset.
    """
    match = _DATETIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"not an RFC 3339 date-time: {value!r:.64}")
    year, month, day, hour, minute, second, frac, zulu, sign, off_h, off_m = match.groups()
    if zulu:
        tz = timezone.utc
    else:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        if offset >= timedelta(hours=24):
            raise ValueError(f"not an RFC 3339 date-time: {value!r:.64}")
        tz = timezone(-offset if sign == "-" else offset)
    micro = int((frac or "0")[:6].ljust(6, "0"))
    # Kratos never writes a leap second; clamp one rather than refuse it.
    return datetime(
        int(year), int(month), int(day), int(hour), int(minute), min(int(second), 59), micro, tz
    )


def _malformed(what: str) -> MalformedResponse:
    return MalformedResponse(f"Kratos sent a session that is not well-formed: {what}")


def _opt_datetime(data: Mapping[str, Any], key: str) -> datetime | None:
    value = data.get(key)
    if value is None:
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        raise _malformed(f"{key} is not a date-time") from None


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _malformed(f"{key} is not a string")


def _aal(data: Mapping[str, Any], key: str) -> AAL:
    value = data.get(key)
    if value is None:
        # Missing means Kratos vouched for no level at all: the safe reading.
        return AAL.AAL0
    if isinstance(value, str) and value in _RANK:
        return AAL(value)
    raise _malformed(f"{key} is not an AAL")


def _frozen_mapping(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        return MappingProxyType({})
    if isinstance(value, Mapping):
        return MappingProxyType(dict(value))
    raise _malformed(f"{key} is not an object")


@dataclass(frozen=True, slots=True)
class AuthenticationMethod:
    """One completed authentication step of a session (``authentication_methods[]``)."""

    method: str
    aal: AAL
    completed_at: datetime | None = None
    provider: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> AuthenticationMethod:
        """Build from one entry of ``authentication_methods``.

        Raises:
            MalformedResponse: *data* is not such an entry.
        """
        if not isinstance(data, Mapping):
            raise _malformed("an authentication method is not an object")
        return cls(
            method=_opt_str(data, "method") or "",
            aal=_aal(data, "aal"),
            completed_at=_opt_datetime(data, "completed_at"),
            provider=_opt_str(data, "provider"),
        )


@dataclass(frozen=True, slots=True, repr=False)
class Identity:
    """The identity a session belongs to, as whoami shows it (no credentials)."""

    id: str
    schema_id: str | None = None
    state: str | None = None
    traits: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    metadata_public: Mapping[str, Any] | None = None

    def __repr__(self) -> str:
        return f"Identity(id={self.id!r}, schema_id={self.schema_id!r}, state={self.state!r})"

    @classmethod
    def from_json(cls, data: Any) -> Identity:
        """Build from the ``identity`` object of a session.

        Raises:
            MalformedResponse: *data* is not an identity.
        """
        if not isinstance(data, Mapping):
            raise _malformed("identity is not an object")
        identity_id = data.get("id")
        if not isinstance(identity_id, str) or not identity_id:
            raise _malformed("identity.id is missing")
        metadata = data.get("metadata_public")
        return cls(
            id=identity_id,
            schema_id=_opt_str(data, "schema_id"),
            state=_opt_str(data, "state"),
            traits=_frozen_mapping(data, "traits"),
            metadata_public=None if metadata is None else _frozen_mapping(data, "metadata_public"),
        )


@dataclass(frozen=True, slots=True, repr=False)
class Session:
    """A Kratos session as ``/sessions/whoami`` returns it.

    ``raw`` keeps the whole JSON object, unknown fields included.
    """

    id: str
    active: bool
    aal: AAL
    identity: Identity | None
    authentication_methods: tuple[AuthenticationMethod, ...]
    authenticated_at: datetime | None
    expires_at: datetime | None
    issued_at: datetime | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Any) -> Session:
        """Build a session from whoami's JSON body (already decoded).

        Unknown fields are kept in ``raw``; missing optional fields become ``None``.

        Raises:
            MalformedResponse: *data* is not a session.
        """
        if not isinstance(data, Mapping):
            raise _malformed("the body is not a JSON object")
        session_id = data.get("id")
        if not isinstance(session_id, str) or not session_id:
            raise _malformed("id is missing")
        active = data.get("active", False)
        if not isinstance(active, bool):
            raise _malformed("active is not a boolean")
        methods = data.get("authentication_methods")
        methods = [] if methods is None else methods
        if not isinstance(methods, list):
            raise _malformed("authentication_methods is not a list")
        identity = data.get("identity")
        return cls(
            id=session_id,
            active=active,
            aal=_aal(data, "authenticator_assurance_level"),
            identity=None if identity is None else Identity.from_json(identity),
            authentication_methods=tuple(AuthenticationMethod.from_json(m) for m in methods),
            authenticated_at=_opt_datetime(data, "authenticated_at"),
            expires_at=_opt_datetime(data, "expires_at"),
            issued_at=_opt_datetime(data, "issued_at"),
            raw=MappingProxyType(dict(data)),
        )

    def __repr__(self) -> str:
        # Short, and without traits: a repr ends up in logs, traits hold personal data.
        identity = self.identity.id if self.identity else None
        return (
            f"Session(id={self.id!r}, aal={self.aal.value!r}, methods={self.method_names!r}, "
            f"identity={identity!r}, expires_at={self.expires_at!r})"
        )

    def is_active(self, now: datetime) -> bool:
        """Return whether Kratos would still call this session active at *now*."""
        if not self.active:
            return False
        if self.expires_at is not None and self.expires_at <= now:
            return False
        return self.identity is None or self.identity.state in (None, "active")

    @property
    def method_names(self) -> tuple[str, ...]:
        """Return the names of the completed methods, oldest first."""
        return tuple(m.method for m in self.authentication_methods)


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


# ---------------------------------------------------------------------------------------
# The hit path: the cache key a request's credential would be cached under, unvalidated.
#
# Only values that passed validation (``Credentials``) were ever hashed into the cache, so
# a key computed here from a malformed value can only miss, and a miss takes the full
# path, which validates. What keeps that true: (1) the value hashed is the very one the
# full path would pick (``from_headers``; under ASGI ``asgi_credentials``, which reads
# lower-case names only, as ASGI servers send them) whenever that one is well-formed (any
# doubt, such as a cookie name seen where it is not a pair's name, gives ``None``, the
# full path); (2) only ASCII is hashed, as the bytes ``cache_key`` hashes
# for it (UTF-8 of ASCII is itself), so no other spelling can collide.
#
# In a Cookie header, the first mention of the name must be a pair's name: at the start
# or after ";" or "; ", with "=" right after it. Elsewhere (inside a value, a longer name,
# a space before "=") the first pair ``cookie_from_header`` matches may be another one:
# ``None``. An empty value too: ``cookie_from_header`` goes on to the next pair of the
# header, which this reading does not.


def _hit_key(token: bytes | None, cookie: bytes | None) -> bytes | None:
    if token:
        hasher, value = _TOKEN_HASH.copy(), token
    elif cookie:
        hasher, value = _COOKIE_HASH.copy(), cookie
    else:
        return None
    if not value.isascii():
        return None  # never well-formed; and only ASCII hashes as cache_key hashes it
    hasher.update(value)
    return b"s" + hasher.digest()


def asgi_hit_key(
    headers: Iterable[tuple[bytes, bytes]], cookie_name: bytes, hop: bytes
) -> tuple[bytes | None, bool]:
    """Return the session cache key of raw ASGI *headers*, and whether cookie *hop* came.

    *cookie_name* is the Kratos cookie's name, encoded. The key is ``None`` when the
    request has no token or cookie the hit path can read (the full path decides then); see
    the comment above.
    """
    token: bytes | None = None
    cookie: bytes | None = None
    hops = False
    for header, value in headers:
        # Plain comparisons first: ASGI names are lower-case, and most are neither.
        if header == b"cookie":
            if value.find(hop) >= 0:  # find, not "in": "in" takes the slower buffer path
                hops = True
            if cookie is not None:
                continue
            start = value.find(cookie_name)
            if start < 0:
                continue  # no pair so named in this header
            stop = start + len(cookie_name)
            if value[stop : stop + 1] != b"=" or (
                start and value[start - 1] != 59 and value[start - 2 : start] != b"; "
            ):
                return None, False
            end = value.find(b";", stop)
            cookie = (value[stop + 1 :] if end < 0 else value[stop + 1 : end]).strip()
            if not cookie:
                return None, False
            if cookie[0] == 34 and cookie[-1] == 34 and len(cookie) >= 2:
                cookie = cookie[1:-1]
                if not cookie:
                    return None, False
        elif header == b"x-session-token" and token is None:
            token = value.strip() or None
    # _hit_key, inlined: this runs on every request.
    if token:
        hasher, value = _TOKEN_HASH.copy(), token
    elif cookie:
        hasher, value = _COOKIE_HASH.copy(), cookie
    else:
        return None, hops
    if not value.isascii():
        return None, hops
    hasher.update(value)
    return b"s" + hasher.digest(), hops


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


def environ_hit_key(token: str | None, cookie: str | None, cookie_name: str) -> bytes | None:
    """Return the session cache key of a WSGI environ's (or Django META's) credentials.

    *token* and *cookie* are ``HTTP_X_SESSION_TOKEN`` and ``HTTP_COOKIE``; ``None`` when
    the hit path cannot read them (the full path decides). The cookie is read as
    :func:`asgi_hit_key` reads one, on text: PEP 3333's strings are bytes decoded as
    latin-1, and only ASCII ones are read here.
    """
    if token is not None:
        if not token.isascii():
            return None
        stripped = token.strip()  # as from_headers strips it
        if stripped:
            return _hit_key(stripped.encode(), None)
    if not cookie or not cookie.isascii():
        return None
    start = cookie.find(cookie_name)
    if start < 0:
        return None
    stop = start + len(cookie_name)
    if cookie[stop : stop + 1] != "=" or (
        start and cookie[start - 1] != ";" and cookie[start - 2 : start] != "; "
    ):
        return None
    end = cookie.find(";", stop)
    value = (cookie[stop + 1 :] if end < 0 else cookie[stop + 1 : end]).strip(_ASCII_SPACE)
    if value[:1] == '"' and len(value) >= 2 and value[-1] == '"':
        value = value[1:-1]
    if not value:
        return None
    hasher = _COOKIE_HASH.copy()  # ASCII already
    hasher.update(value.encode())
    return b"s" + hasher.digest()


#: What bytes.strip() strips (the cookie as asgi_hit_key reads it); str.strip() strips
#: "\x1c" to "\x1f" too.
_ASCII_SPACE = " \t\n\r\x0b\x0c"
