"""Typed, immutable views of what Kratos sends: sessions, identities, AALs and dates.

What a request presents to Kratos is ``_credentials``'s; the hit path's cache key
``_hit_key``'s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from types import MappingProxyType
from typing import Any

from .exceptions import ConfigurationError, MalformedResponse

__all__ = [
    "AAL",
    "AuthenticationMethod",
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


def _id_of(data: Any, not_an_object: str, no_id: str) -> str:
    """Return the ``id`` of the JSON object *data*: a string, not empty."""
    if not isinstance(data, Mapping):
        raise _malformed(not_an_object)
    value = data.get("id")
    if not isinstance(value, str) or not value:
        raise _malformed(no_id)
    return value


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
        identity_id = _id_of(data, "identity is not an object", "identity.id is missing")
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
        session_id = _id_of(data, "the body is not a JSON object", "id is missing")
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
