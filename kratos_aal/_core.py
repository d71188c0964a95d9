"""The sans-IO core: requests to Kratos, parsing its answers, and the AAL decision.

Nothing here sends anything. The clients in ``_client`` drive :func:`check_plan`,
a generator that yields :class:`Fetch` effects and receives their results, so the
blocking and the awaitable client share every line of logic.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Collection, Generator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Generic, NamedTuple, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx

from ._config import KratosConfig
from ._models import AAL, AALLike, Credentials, Session
from .exceptions import ConfigurationError, KratosUnavailable, MalformedResponse, StepUpRequired

__all__ = ["Decision", "Outcome", "Requirement", "decide"]

T = TypeVar("T")

#: Seconds a 503 asks clients to wait when Kratos gave no Retry-After of its own.
DEFAULT_RETRY_AFTER = 5
_MAX_RETRY_AFTER = 3600
# Second-factor answers are cached this long at most (and never longer than cache_ttl).
SECOND_FACTOR_TTL = 60.0
#: Seconds a whoami 401 for a credential is remembered at most (never longer than
#: cache_ttl, nor than Kratos's own Ory-Session-Cache-For on that 401): a client that
#: repeats a bogus cookie costs one Kratos call per cookie in that time, not one per request.
NO_SESSION_TTL = 5.0
_SECOND_FACTOR_GROUPS = frozenset({"totp", "webauthn", "lookup_secret"})


class Outcome(str, Enum):
    """What to do with a request; see :class:`Decision`."""

    ALLOW = "allow"
    LOGIN = "login"
    STEP_UP = "step_up"
    ENROLL = "enroll"
    REAUTHENTICATE = "reauthenticate"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Requirement:
    """What a route demands of a session.

    Args:
        aal: The least AAL, ``"aal1"`` or ``"aal2"``.
        max_age: Seconds (or a ``timedelta``) since the newest method of at least *aal*
            was completed (with *methods*, the newest of a listed method); older
            sessions must re-authenticate.
        methods: Method names of which at least one must be among the session's methods
            of at least *aal*, e.g. ``{"webauthn", "passkey"}``.

    Raises:
        ConfigurationError: a value is wrong.
    """

    aal: AAL = AAL.AAL2
    max_age: float | None = None
    methods: frozenset[str] | None = None
    #: The rank a cached session needs for the hit path; 99 (never met) with max_age or
    #: methods, which only the full decision can judge.
    hit_rank: int = field(default=99, init=False, repr=False, compare=False)

    def __init__(
        self,
        aal: AALLike = AAL.AAL2,
        max_age: float | timedelta | None = None,
        methods: Collection[str] | None = None,
    ) -> None:
        level = AAL.parse(aal, setting="Requirement.aal")
        if level not in (AAL.AAL1, AAL.AAL2):
            raise ConfigurationError(
                f"Requirement.aal must be 'aal1' or 'aal2' (Kratos issues no other), got {aal!r}"
            )
        if isinstance(max_age, timedelta):
            max_age = max_age.total_seconds()
        if max_age is not None and (
            isinstance(max_age, bool) or not isinstance(max_age, (int, float)) or not max_age > 0
        ):
            raise ConfigurationError(
                f"Requirement.max_age must be more than 0 seconds, got {max_age!r}"
            )
        if methods is not None:
            if isinstance(methods, str) or not all(isinstance(m, str) and m for m in methods):
                raise ConfigurationError(
                    f"Requirement.methods must be a set of method names, got {methods!r}"
                )
            if not methods:
                raise ConfigurationError("Requirement.methods must name at least one method")
        object.__setattr__(self, "aal", level)
        object.__setattr__(self, "max_age", None if max_age is None else float(max_age))
        object.__setattr__(self, "methods", None if methods is None else frozenset(methods))
        simple = max_age is None and methods is None
        object.__setattr__(self, "hit_rank", level.rank if simple else 99)

    @classmethod
    def parse(cls, value: RequirementLike, *, setting: str = "requirement") -> Requirement:
        """Return *value* as a Requirement (an AAL string is accepted).

        Raises:
            ConfigurationError: *value* is neither; the message names *setting*.
        """
        if isinstance(value, Requirement):
            return value
        if isinstance(value, (str, AAL)):
            try:
                return cls(value)
            except ConfigurationError as exc:
                raise ConfigurationError(f"{setting}: {exc}") from None
        raise ConfigurationError(
            f"{setting} must be 'aal1', 'aal2' or a Requirement(...), got {value!r}"
        )


RequirementLike = Requirement | AAL | str


class Decision(NamedTuple):
    """The verdict for one request (immutable).

    A named tuple, so that making one costs next to nothing on every request.

    Attributes:
        outcome: What to do.
        session: The session when Kratos showed one, else ``None``.
        redirect_to: Where to send the browser (under ``browser_url``), else ``None``.
        retry_after: Seconds for ``Retry-After`` when the outcome is ``UNAVAILABLE``.
        requirement: The requirement this decision was made for.
        cause: For ``UNAVAILABLE``: ``"connect"`` (Kratos could not be reached),
            ``"timeout"`` (it did not answer in time), ``"busy"`` (this process had
            ``max_concurrent_checks`` calls under way already) or ``None`` (it answered
            oddly).
    """

    outcome: Outcome
    session: Session | None = None
    redirect_to: str | None = None
    retry_after: int | None = None
    requirement: Requirement | None = None
    cause: str | None = None

    @property
    def allowed(self) -> bool:
        """Return whether the request may proceed."""
        return self.outcome is Outcome.ALLOW


# ---------------------------------------------------------------------------
# URLs


def browser_flow_url(config: KratosConfig, path: str, params: dict[str, str]) -> str:
    """Return *path* (starting ``/self-service/``) with *params* under ``browser_url``."""
    query = urlencode(params)
    return f"{config.browser_base}{path}" + (f"?{query}" if query else "")


def rebase(config: KratosConfig, url: object, return_to: str | None) -> str | None:
    """Move a URL Kratos handed out onto ``browser_url``, keeping path and query.

    Whatever origin Kratos wrote (its public URL, or an internal ``http://kratos:4433``)
    only the part from ``/self-service/`` on is kept. *return_to* replaces any
    ``return_to`` in the query; without one, Kratos's own stays. Returns ``None`` when
    *url* is no Kratos flow URL.
    """
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    index = parts.path.find("/self-service/")
    if index < 0:
        return None
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    if return_to:
        params["return_to"] = return_to
    return browser_flow_url(config, parts.path[index:], params)


def login_url(config: KratosConfig, return_to: str | None, **extra: str) -> str:
    """Return the browser login URL, with *extra* query parameters and *return_to*."""
    params = dict(extra)
    if return_to:
        params["return_to"] = return_to
    return browser_flow_url(config, "/self-service/login/browser", params)


def settings_url(config: KratosConfig, return_to: str | None) -> str:
    """Return the browser settings URL where a second factor is set up."""
    return browser_flow_url(
        config, "/self-service/settings/browser", {"return_to": return_to} if return_to else {}
    )


# ---------------------------------------------------------------------------
# Requests and answers


def _request(
    config: KratosConfig,
    base: str,
    path: str,
    credentials: Credentials | None,
    *,
    params: tuple[tuple[str, str], ...] = (),
    headers: dict[str, str] | None = None,
) -> httpx.Request:
    all_headers = {"Accept": "application/json", **(headers or {})}
    if credentials is not None:
        if credentials.token:
            all_headers["X-Session-Token"] = credentials.token
        elif credentials.cookie:
            # Only the Kratos cookie: the app's other cookies never leave the app.
            all_headers["Cookie"] = f"{config.cookie_name}={credentials.cookie}"
    return httpx.Request(
        "GET",
        f"{base}{path}",
        params=params,
        headers=all_headers,
        extensions={"timeout": httpx.Timeout(config.timeout).as_dict()},
    )


def whoami_request(config: KratosConfig, credentials: Credentials) -> httpx.Request:
    """Return the ``GET /sessions/whoami`` request for *credentials*."""
    return _request(config, config.public_url, "/sessions/whoami", credentials)


def ascii_digits(value: str) -> bool:
    """Return whether *value* is a run of ASCII digits (``str.isdigit`` also takes ``²``)."""
    return value.isascii() and value.isdigit()


def _retry_after(response: httpx.Response) -> int | None:
    value = response.headers.get("Retry-After", "").strip()
    if ascii_digits(value):
        return min(int(value), _MAX_RETRY_AFTER)
    return None


def _json(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: a body nested deeper than the parser's stack, which no Kratos
        # (or proxy error page) answer is; it is an odd answer like any other.
        raise MalformedResponse(
            f"Kratos answered {response.status_code} with a body that is not JSON"
        ) from None


def _error_id(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    value = error.get("id") if isinstance(error, dict) else None
    return value if isinstance(value, str) else None


def raise_for_unavailable(response: httpx.Response) -> None:
    """Raise :class:`KratosUnavailable` for 5xx and 429 answers."""
    status = response.status_code
    if status == 429 or status >= 500:
        raise KratosUnavailable(
            f"Kratos answered {status}",
            retry_after=_retry_after(response) if status == 429 else None,
            status_code=status,
        )


@dataclass(frozen=True, slots=True)
class WhoamiResult:
    """A parsed whoami answer: a session, no session, or a step-up demanded by Kratos."""

    session: Session | None
    step_up_to: str | None = None


def parse_whoami(
    config: KratosConfig, response: httpx.Response, now: float
) -> tuple[WhoamiResult, float]:
    """Read a whoami answer; return the result and how many seconds it may be cached.

    Raises:
        KratosUnavailable: the answer is not one Kratos gives for a working session check.
    """
    raise_for_unavailable(response)
    status = response.status_code
    if status == 401:
        # A new login always brings a new cookie string (Kratos's cookie carries a nonce)
        # or a new token, so remembering that this one has no session locks nobody out.
        return WhoamiResult(None), _cache_for(response, min(config.cache_ttl, NO_SESSION_TTL))
    body = _json(response)
    if status == 403:
        if _error_id(body) == "session_aal2_required":
            target = rebase(config, body.get("redirect_browser_to"), None)
            return WhoamiResult(None, target or login_url(config, None, aal="aal2")), 0.0
        raise KratosUnavailable(
            f"Kratos answered 403 {_error_id(body) or ''}".rstrip(), status_code=403
        )
    if status != 200:
        raise KratosUnavailable(f"Kratos answered {status} to whoami", status_code=status)
    session = Session.from_json(body)
    if not session.active:
        raise MalformedResponse("Kratos answered 200 with a session that is not active")
    ttl = config.cache_ttl
    if session.expires_at is not None:
        ttl = min(ttl, session.expires_at.timestamp() - now)
    return WhoamiResult(session), _cache_for(response, ttl)


def _cache_for(response: httpx.Response, ttl: float) -> float:
    """Return *ttl*, capped by Kratos's ``Ory-Session-Cache-For`` when it sent one."""
    cache_for = response.headers.get("Ory-Session-Cache-For", "").strip()
    if ascii_digits(cache_for):
        ttl = min(ttl, float(cache_for))
    return max(ttl, 0.0)


def second_factor_request(
    config: KratosConfig, credentials: Credentials, session: Session
) -> httpx.Request:
    """Return the request that tells whether the session's identity has a second factor.

    With ``admin_url`` it asks the admin identity API; otherwise it creates an ``aal=aal2``
    login flow for this very session, whose nodes list the second factors it has.
    """
    if config.admin_url and session.identity is not None:
        headers = {"Authorization": f"Bearer {config.admin_token}"} if config.admin_token else {}
        query = tuple(("include_credential", kind) for kind in sorted(_SECOND_FACTOR_GROUPS))
        path = f"/admin/identities/{quote(session.identity.id, safe='')}"
        return _request(config, config.admin_url, path, None, params=query, headers=headers)
    # The browser route (answered as JSON) for tokens too: Kratos adds WebAuthn nodes to
    # browser flows only (strategy/webauthn/login.go), so an API flow hides security keys.
    return _request(
        config,
        config.public_url,
        "/self-service/login/browser",
        credentials,
        params=(("aal", "aal2"),),
    )


def parse_second_factor(response: httpx.Response) -> bool:
    """Read the answer to :func:`second_factor_request`: does a second factor exist?

    Raises:
        KratosUnavailable: the answer does not say.
    """
    raise_for_unavailable(response)
    if response.status_code != 200:
        raise KratosUnavailable(
            f"Kratos answered {response.status_code} to the second-factor probe",
            status_code=response.status_code,
        )
    body = _json(response)
    if not isinstance(body, dict):
        raise MalformedResponse("the second-factor probe got a body that is not an object")
    if "credentials" in body or "schema_id" in body:
        return _identity_has_second_factor(body.get("credentials"))
    ui = body.get("ui")
    nodes = ui.get("nodes") if isinstance(ui, dict) else None
    if not isinstance(nodes, list):
        raise MalformedResponse("the login flow has no ui.nodes")
    return any(isinstance(n, dict) and n.get("group") in _SECOND_FACTOR_GROUPS for n in nodes)


def _identity_has_second_factor(credentials: Any) -> bool:
    if not isinstance(credentials, dict):
        return False
    for kind in ("totp", "lookup_secret"):
        if isinstance(credentials.get(kind), dict):
            return True
    webauthn = credentials.get("webauthn")
    if isinstance(webauthn, dict):
        config = webauthn.get("config")
        keys = config.get("credentials") if isinstance(config, dict) else None
        if not isinstance(keys, list):
            # Without the config we cannot tell passwordless keys apart: a step-up is the
            # safe guess, Kratos offers it only when it can succeed.
            return True
        return any(isinstance(k, dict) and not k.get("is_passwordless") for k in keys)
    return False


# ---------------------------------------------------------------------------
# The decision


def _newest_completion(
    session: Session, level: AAL, methods: frozenset[str] | None
) -> datetime | None:
    times = [
        m.completed_at
        for m in session.authentication_methods
        if m.aal >= level
        and m.completed_at is not None
        and (methods is None or m.method in methods)
    ]
    return max(times) if times else None


ReturnTo = str | Callable[[], str | None] | None


def _resolve(return_to: ReturnTo) -> str | None:
    return return_to() if callable(return_to) else return_to


def _once(return_to: ReturnTo) -> ReturnTo:
    """Compute a lazy *return_to* at most once: only denials need it."""
    if not callable(return_to):
        return return_to
    cell: list[str | None] = []

    def resolve() -> str | None:
        if not cell:
            cell.append(return_to())
        return cell[0]

    return resolve


def decide(
    session: Session | None,
    requirement: Requirement,
    *,
    now: datetime,
    return_to: ReturnTo,
    config: KratosConfig,
    has_second_factor: bool = True,
) -> Decision:
    """Decide one request from the session Kratos showed (SPEC §3); pure.

    *return_to* may be a callable: it is called only for a denial (allowing a request
    never builds URLs). *has_second_factor* matters only when the session's AAL is below
    the requirement.
    """
    if session is None or not session.is_active(now):
        target = login_url(config, _resolve(return_to))
        return Decision(Outcome.LOGIN, None, target, requirement=requirement)
    level = requirement.aal
    have = session.aal.rank
    if have < 1:
        # No first factor on record (e.g. identifier_first only): Kratos would call a plain
        # login "already logged in", so ask it to log in afresh.
        target = login_url(config, _resolve(return_to), refresh="true")
        return Decision(Outcome.LOGIN, session, target, requirement=requirement)
    if have < level.rank:
        if has_second_factor:
            target = login_url(config, _resolve(return_to), aal=level.value)
            return Decision(Outcome.STEP_UP, session, target, requirement=requirement)
        target = settings_url(config, _resolve(return_to))
        return Decision(Outcome.ENROLL, session, target, requirement=requirement)
    stale = False
    if requirement.max_age is not None:
        # With methods too, the clock runs from the newest use of a listed method: a TOTP
        # code a minute ago does not make a two-hour-old WebAuthn login fresh (SPEC §2).
        newest = _newest_completion(session, level, requirement.methods)
        stale = newest is None or (now - newest).total_seconds() > requirement.max_age
    if requirement.methods is not None and not stale:
        used = {m.method for m in session.authentication_methods if m.aal >= level}
        stale = used.isdisjoint(requirement.methods)
    if stale:
        target = login_url(config, _resolve(return_to), aal=level.value, refresh="true")
        return Decision(Outcome.REAUTHENTICATE, session, target, requirement=requirement)
    return Decision(Outcome.ALLOW, session, requirement=requirement)


def unavailable(error: KratosUnavailable, requirement: Requirement | None) -> Decision:
    """Return the 503 decision for *error*."""
    return Decision(
        Outcome.UNAVAILABLE,
        retry_after=error.retry_after or DEFAULT_RETRY_AFTER,
        requirement=requirement,
        cause=error.cause,
    )


# ---------------------------------------------------------------------------
# The plan the clients drive


@dataclass(frozen=True, slots=True)
class Fetch(Generic[T]):
    """An effect: send *request* (unless *key* is cached), parse, cache.

    The driver answers with ``(value, from_cache)``. Concurrent fetches of one *key*
    share one request. *refresh* skips the cached value.
    """

    key: bytes
    request: Callable[[], httpx.Request]
    parse: Callable[[httpx.Response, float], tuple[T, float]]
    refresh: bool = False
    #: What else the value teaches, as ``(key, value, ttl)`` entries to cache.
    learn: Callable[[T], tuple[tuple[bytes, Any, float], ...]] | None = None


Plan = Generator[Fetch[Any], tuple[Any, bool], T]


def session_key(credentials: Credentials) -> bytes:
    """Return the cache key of the whoami answer for *credentials*."""
    return b"s" + credentials.cache_key()


def allowed_from_cache(
    config: KratosConfig, cached: Any, requirement: Requirement, now: datetime
) -> Decision | None:
    """Return ``ALLOW`` when a cached whoami answer meets *requirement*, else ``None``.

    The short way for the common case: only an allowing decision is taken from the cache;
    anything else goes the whole way, which asks Kratos again before denying.
    """
    session = getattr(cached, "session", None)
    if session is None:
        return None
    decision = decide(session, requirement, now=now, return_to=None, config=config)
    return decision if decision.outcome is Outcome.ALLOW else None


class CachedSession:
    """What a cache hit needs of a cached whoami answer, worked out once when it is stored.

    ``rank`` is the session's AAL rank where :func:`decide` could allow it at all (active,
    identity active, a first factor on record), else -1; ``expires`` its ``expires_at`` as
    POSIX seconds. ``extra`` is for an integration's own per-session objects.
    """

    __slots__ = ("decision", "expires", "extra", "rank", "session")

    def __init__(self, session: Session) -> None:
        self.session = session
        usable = (
            session.active
            and (session.identity is None or session.identity.state in (None, "active"))
            and session.aal.rank >= 1
        )
        self.rank = session.aal.rank if usable else -1
        expires_at = session.expires_at
        self.expires = math.inf if expires_at is None else expires_at.timestamp()
        self.decision: Decision | None = None
        self.extra: Any = None

    def allowed(self, requirement: Requirement) -> Decision:
        """Return the ``ALLOW`` decision for *requirement* (the last one made is reused)."""
        decision = self.decision
        if decision is None or decision.requirement is not requirement:
            decision = self.decision = Decision(
                Outcome.ALLOW, self.session, None, None, requirement
            )
        return decision


def cached_session(value: Any) -> CachedSession | None:
    """Return the hit path's view of a cached whoami answer (``None``: not a session)."""
    session = getattr(value, "session", None)
    return CachedSession(session) if isinstance(session, Session) else None


def whoami_fetch(
    config: KratosConfig, credentials: Credentials, *, refresh: bool = False
) -> Fetch[WhoamiResult]:
    """Return the effect that looks up *credentials* with whoami."""
    return Fetch(
        key=session_key(credentials),
        request=lambda: whoami_request(config, credentials),
        parse=lambda response, now: parse_whoami(config, response, now),
        refresh=refresh,
        learn=lambda result: _learn_second_factor(config, result.session),
    )


def second_factor_key(session: Session) -> bytes:
    """Return the cache key of what is known about *session*'s identity's second factors."""
    return b"f" + (session.identity.id if session.identity is not None else session.id).encode()


class _Learned:
    """A "yes" learned from an aal2 session rather than asked of Kratos (true, like a "yes")."""

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return "LEARNED"


#: The second-factor answer an aal2 session teaches: the identity had a second factor when
#: it signed in, which it may have removed since. A logout forgets it; the answers of a
#: probe stay (forgetting them would make each logout cost a probe, a stored login flow).
LEARNED: Any = _Learned()


def _learn_second_factor(
    config: KratosConfig, session: Session | None
) -> tuple[tuple[bytes, Any, float], ...]:
    # A session that used a second factor proves the identity has one: a user who just
    # paired TOTP and logs in again is stepped up, not sent to enroll a second time.
    if session is None or session.identity is None or session.aal < AAL.AAL2:
        return ()
    return ((second_factor_key(session), LEARNED, min(config.cache_ttl, SECOND_FACTOR_TTL)),)


def parse_logout(
    config: KratosConfig, response: httpx.Response, return_to: str | None
) -> str | None:
    """Read ``/self-service/logout/browser``: the logout URL on ``browser_url``, or ``None``."""
    raise_for_unavailable(response)
    if response.status_code in (401, 403):
        return None  # no session to end
    if response.status_code != 200:
        raise KratosUnavailable(
            f"Kratos answered {response.status_code} to logout", status_code=response.status_code
        )
    body = _json(response)
    url = rebase(config, body.get("logout_url") if isinstance(body, dict) else None, return_to)
    if url is None:
        raise MalformedResponse("Kratos sent no logout_url")
    return url


def logout_key(credentials: Credentials, return_to: str | None, kind: bytes = b"l") -> bytes:
    """Return the cache key of the logout URL for *credentials* that returns to *return_to*.

    *kind* keeps apart what different users of the URL cache (the loop page, templates).
    """
    back = (return_to or "").encode("utf-8", "surrogateescape")
    return kind + credentials.cache_key() + b"\0" + hashlib.sha256(back).digest()


def logout_plan(
    config: KratosConfig,
    credentials: Credentials,
    return_to: str | None,
    keep_for: float = 0.0,
    *,
    kind: bytes = b"l",
) -> Plan[str | None]:
    """Create a browser logout flow for *credentials*; cached for *keep_for* seconds.

    Kratos's logout token belongs to the session (made with it, the same in every flow),
    so a cached logout URL stays good for as long as the session does. *kind*: see
    :func:`logout_key`.
    """
    if not credentials.cookie:
        return None
    url, _ = yield Fetch(
        key=logout_key(credentials, return_to, kind),
        request=lambda: _request(
            config, config.public_url, "/self-service/logout/browser", credentials
        ),
        parse=lambda response, now: (parse_logout(config, response, return_to), keep_for),
        refresh=keep_for <= 0,
    )
    return url  # type: ignore[no-any-return]


def whoami_plan(config: KratosConfig, credentials: Credentials) -> Plan[Session | None]:
    """Look up the session for *credentials*; ``None`` when there is none.

    Raises:
        StepUpRequired: Kratos withholds the session until a second factor is given.
        KratosUnavailable: Kratos could not answer.
    """
    if not credentials:
        return None
    result, _ = yield whoami_fetch(config, credentials)
    if result.step_up_to is not None:
        raise StepUpRequired(result.step_up_to)
    return result.session  # type: ignore[no-any-return]


def check_plan(
    config: KratosConfig,
    credentials: Credentials,
    requirement: Requirement,
    return_to: ReturnTo,
    now: Callable[[], datetime],
) -> Plan[Decision]:
    """Decide a request, asking Kratos again before any denial made from the cache."""
    if not credentials:
        target = login_url(config, _resolve(return_to))
        return Decision(Outcome.LOGIN, None, target, requirement=requirement)
    return_to = _once(return_to)
    try:
        result, cached = yield whoami_fetch(config, credentials)
        decision = _decide_result(config, result, requirement, return_to, now())
        if decision.outcome is not Outcome.ALLOW and cached and result.session is not None:
            # Kratos upgrades a session in place (same id, same token): a cached aal1
            # copy would send the user to step-up forever. Ask again before denying.
            # A remembered 401 is no such copy: a login brings a new cookie or token.
            result, _ = yield whoami_fetch(config, credentials, refresh=True)
            decision = _decide_result(config, result, requirement, return_to, now())
        if decision.outcome is Outcome.STEP_UP and result.step_up_to is None:
            assert decision.session is not None
            has_second_factor = yield from _second_factor_plan(
                config, credentials, decision.session
            )
            if not has_second_factor:
                decision = decide(
                    decision.session,
                    requirement,
                    now=now(),
                    return_to=return_to,
                    config=config,
                    has_second_factor=False,
                )
    except KratosUnavailable as error:
        return unavailable(error, requirement)
    return decision


def _decide_result(
    config: KratosConfig,
    result: WhoamiResult,
    requirement: Requirement,
    return_to: ReturnTo,
    now: datetime,
) -> Decision:
    if result.step_up_to is not None:
        target = rebase(config, result.step_up_to, _resolve(return_to))
        return Decision(Outcome.STEP_UP, None, target, requirement=requirement)
    return decide(result.session, requirement, now=now, return_to=return_to, config=config)


def _second_factor_plan(
    config: KratosConfig, credentials: Credentials, session: Session
) -> Generator[Fetch[Any], tuple[Any, bool], bool]:
    ttl = min(config.cache_ttl, SECOND_FACTOR_TTL)
    try:
        # Both answers are cached by identity: without admin_url each probe stores a
        # login flow at Kratos. A cached "no" traps nobody who pairs a device: pairing
        # upgrades the session in place to aal2, and whoami (asked before any denial)
        # then allows; what it teaches (_learn_second_factor) replaces the "no".
        value, _ = yield Fetch(
            key=second_factor_key(session),
            request=lambda: second_factor_request(config, credentials, session),
            parse=lambda response, now: (parse_second_factor(response), ttl),
        )
    except KratosUnavailable:
        # Kratos knows a session exists: step-up is the way forward that can still work.
        return True
    return bool(value)
