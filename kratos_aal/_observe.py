"""Metrics, traces and the audit trail: OpenTelemetry through its API only, and a logger.

Framework-free. ``opentelemetry`` is imported lazily and only when installed (extra
``otel``); with no SDK configured every hook returns after one attribute read, so the hot
path costs what it cost before. Whether an SDK is configured, and whether the audit
logger takes INFO records, is looked up again on every call to Kratos and every denial
(both cost far more than the look-up), never on an allow from the cache: that one always
follows a call to Kratos.

The hooks the rest of the package calls:

* :func:`send` / :func:`asend` around each request to Kratos (span and duration);
* :func:`cache_lookup` and :func:`fast_hit` where a cache tier is read;
* :func:`decided` / :func:`decided_asgi` where an integration concludes a decision
  (the decision counter and the audit record).

Nothing recorded here holds a cookie, a token, a ``return_to`` or a query string.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from ._decision import Decision, Outcome, Requirement
from ._models import AAL
from ._version import __version__

if TYPE_CHECKING:
    from ._web import WebRequest

__all__ = [
    "AUDIT_LOGGER",
    "asend",
    "cache_lookup",
    "decided",
    "decided_asgi",
    "fast_hit",
    "refresh",
    "refused",
    "send",
]

#: The logger of the audit trail: one INFO record per denial and per allow after step-up.
AUDIT_LOGGER = "kratos_aal.audit"
audit_logger = logging.getLogger(AUDIT_LOGGER)
_HOP_MARK = "kratos_aal_hops="  # _web.HOP_COOKIE; not imported: _web imports nothing of ours
_HOP_MARK_BYTES = _HOP_MARK.encode()
# Seconds: Kratos answers in milliseconds, a timeout takes seconds.
_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
T = TypeVar("T")


class _State:
    """The instruments of the configured SDK, or ``None`` while there is none."""

    metrics: Any = None  # a _Meters, or None
    tracer: Any = None  # an opentelemetry Tracer, or None
    meter_provider: Any = None
    tracer_provider: Any = None
    api: Any = None  # (metrics module, trace module), False when not installed
    audit = False  # whether kratos_aal.audit takes INFO records
    quiet = True  # neither metrics nor audit: an allow needs nothing at all


STATE = _State()


class _Meters:
    def __init__(self, provider: Any) -> None:
        meter = provider.get_meter("kratos_aal", __version__)
        self.decisions = meter.create_counter(
            "kratos_aal.decisions",
            unit="{decision}",
            description="Decisions by outcome, required AAL and framework",
        )
        self.cache = meter.create_counter(
            "kratos_aal.cache",
            unit="{lookup}",
            description="Cache lookups by tier (local, shared) and result (hit, miss)",
        )
        duration = {
            "name": "kratos_aal.kratos.duration",
            "unit": "s",
            "description": "Duration of calls to Kratos by endpoint and status class",
        }
        try:
            self.duration = meter.create_histogram(
                **duration, explicit_bucket_boundaries_advisory=_DURATION_BUCKETS
            )
        except TypeError:
            # SDKs before 1.30 take no bucket advice: their default buckets, not a crash.
            self.duration = meter.create_histogram(**duration)


def _api() -> Any:
    if STATE.api is None:
        try:
            from opentelemetry import metrics, trace
        except ImportError:
            STATE.api = False
        else:
            STATE.api = (metrics, trace)
    return STATE.api


def refresh() -> None:
    """Look up the configured OpenTelemetry SDK (none: record nothing) and audit level."""
    STATE.audit = audit_logger.isEnabledFor(logging.INFO)
    api = _api()
    if api:
        _refresh_otel(*api)
    STATE.quiet = STATE.metrics is None and not STATE.audit


def _refresh_otel(metrics: Any, trace: Any) -> None:
    meter_provider = metrics.get_meter_provider()
    if meter_provider is not STATE.meter_provider:
        STATE.meter_provider = meter_provider
        # The API's own placeholders: no SDK, nothing to record.
        idle = type(meter_provider).__name__ in ("_ProxyMeterProvider", "NoOpMeterProvider")
        STATE.metrics = None if idle else _Meters(meter_provider)
    tracer_provider = trace.get_tracer_provider()
    if tracer_provider is not STATE.tracer_provider:
        STATE.tracer_provider = tracer_provider
        idle = isinstance(tracer_provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))
        STATE.tracer = None if idle else tracer_provider.get_tracer("kratos_aal")


# ------------------------------------------------------------------ calls to Kratos


def endpoint_of(request: httpx.Request) -> str:
    """Return the endpoint label of a request to Kratos: whoami, second_factor or logout."""
    path = request.url.path
    if path.endswith("/sessions/whoami"):
        return "whoami"
    if "/self-service/logout/" in path:
        return "logout"
    return "second_factor"


def _route(request: httpx.Request, endpoint: str) -> str:
    path = request.url.path
    if endpoint == "second_factor" and "/admin/identities/" in path:
        # The identity id makes every path unique: name the template instead.
        return path[: path.index("/admin/identities/")] + "/admin/identities/{id}"
    return path


def _status_class(status: int | None) -> str:
    return "error" if status is None else f"{status // 100}xx"


def _span_attributes(request: httpx.Request, endpoint: str) -> dict[str, Any]:
    url = request.url
    port = url.port or (443 if url.scheme == "https" else 80)
    route = _route(request, endpoint)
    # Scheme, host, port and the path's template only: no user info, no query (Kratos's
    # own parameters are harmless, but a query is where secrets hide), no identity id
    # (an admin call's path names one: the template names the endpoint instead), and no
    # header at all.
    return {
        "http.request.method": request.method,
        "url.full": f"{url.scheme}://{url.host}:{port}{route}",
        "url.template": route,
        "server.address": url.host,
        "server.port": port,
        "kratos_aal.endpoint": endpoint,
    }


class _Call:
    """Measure one call to Kratos, a span (when tracing) and its duration: ``with`` around
    the call, which sets ``response``; an exception is recorded and goes on."""

    def __init__(self, request: httpx.Request) -> None:
        self.response: httpx.Response | None = None
        self.endpoint = endpoint_of(request)
        self.span: Any = None
        self.scope: Any = None
        if STATE.tracer is not None:
            from opentelemetry import propagate, trace

            self.scope = STATE.tracer.start_as_current_span(
                f"{request.method} {_route(request, self.endpoint)}",
                kind=trace.SpanKind.CLIENT,
                attributes=_span_attributes(request, self.endpoint),
                # An exception's message may quote the request: its type name only.
                record_exception=False,
                set_status_on_exception=False,
            )
            self.span = self.scope.__enter__()
            # Kratos traces too: its spans become children of ours.
            propagate.inject(request.headers)
        self.started = time.perf_counter()

    def __enter__(self) -> _Call:
        return self

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        response = self.response  # None when the call raised
        elapsed = time.perf_counter() - self.started
        status = response.status_code if response is not None else None
        if STATE.metrics is not None:
            STATE.metrics.duration.record(
                elapsed, {"endpoint": self.endpoint, "status_class": _status_class(status)}
            )
        if self.span is not None:
            from opentelemetry.trace import Status, StatusCode

            if status is not None:
                self.span.set_attribute("http.response.status_code", status)
            if error is not None or (status is not None and status >= 500):
                error_type = type(error).__name__ if error is not None else str(status)
                self.span.set_attribute("error.type", error_type)
                self.span.set_status(Status(StatusCode.ERROR))
            self.scope.__exit__(None, None, None)


def send(
    send_request: Callable[[httpx.Request], httpx.Response], request: httpx.Request
) -> httpx.Response:
    """Send *request* with *send_request*, in a client span and measured when an SDK is set."""
    refresh()
    if STATE.metrics is None and STATE.tracer is None:
        return send_request(request)
    with _Call(request) as call:
        call.response = response = send_request(request)
    return response


async def asend(
    send_request: Callable[[httpx.Request], Awaitable[httpx.Response]], request: httpx.Request
) -> httpx.Response:
    """Await *send_request*; see :func:`send`."""
    refresh()
    if STATE.metrics is None and STATE.tracer is None:
        return await send_request(request)
    with _Call(request) as call:
        call.response = response = await send_request(request)
    return response


# ------------------------------------------------------------------ caches

_CACHE_ATTRIBUTES = {
    (tier, hit): {"tier": tier, "result": "hit" if hit else "miss"}
    for tier in ("local", "shared")
    for hit in (True, False)
}


def cache_lookup(tier: str, hit: bool) -> None:
    """Count one lookup in the cache *tier* (``local`` or ``shared``)."""
    if STATE.metrics is not None:
        STATE.metrics.cache.add(1, _CACHE_ATTRIBUTES[tier, hit])


def fast_hit(decision: T) -> T:
    """Count a local hit when the cache alone allowed (*decision* is not ``None``).

    The short way counts only what it serves: when it cannot allow, the full path looks
    the entry up again and counts that lookup.
    """
    if decision is not None and STATE.metrics is not None:
        STATE.metrics.cache.add(1, _CACHE_ATTRIBUTES["local", True])
    return decision


# ------------------------------------------------------------------ decisions

_decision_attributes: dict[tuple[Outcome, Requirement | None, str], dict[str, str]] = {}


def _counted(decision: Decision, framework: str) -> None:
    key = (decision.outcome, decision.requirement, framework)
    attributes = _decision_attributes.get(key)
    if attributes is None:
        required = decision.requirement.aal.value if decision.requirement else "none"
        attributes = {
            "outcome": decision.outcome.value,
            "required_aal": required,
            "framework": framework,
        }
        if len(_decision_attributes) < 1024:
            _decision_attributes[key] = attributes
    STATE.metrics.decisions.add(1, attributes)


def _above_first_factor(requirement: Requirement | None) -> bool:
    # Only such a route can send a browser to a second factor or a re-authentication.
    return requirement is not None and (
        requirement.aal is AAL.AAL2  # a Requirement holds aal1 or aal2, nothing else
        or requirement.max_age is not None
        or requirement.methods is not None
    )


def _audits_allows(decision: Decision) -> bool:
    return STATE.audit and _above_first_factor(decision.requirement)


def audit_fields(decision: Decision, request: WebRequest, framework: str) -> dict[str, Any]:
    """Return the ``extra`` fields of an audit record: JSON values, never a credential."""
    requirement = decision.requirement
    session = decision.session
    identity = session.identity if session is not None else None
    return {
        "outcome": decision.outcome.value,
        "required_aal": requirement.aal.value if requirement else None,
        "max_age": requirement.max_age if requirement else None,
        "methods": sorted(requirement.methods) if requirement and requirement.methods else None,
        "session_id": session.id if session is not None else None,
        "identity_id": identity.id if identity is not None else None,
        "method": request.method,
        "path": request.path,  # WebRequest.path never holds the query
        "framework": framework,
    }


def _audit(decision: Decision, request: WebRequest, framework: str) -> None:
    fields = audit_fields(decision, request, framework)
    what = "allowed after step-up" if decision.outcome is Outcome.ALLOW else "denied"
    audit_logger.info(
        "kratos-aal %s: %s %s %s (requires %s)",
        what,
        fields["outcome"],
        fields["method"],
        fields["path"],
        fields["required_aal"] or "a session",
        extra=fields,
    )


def decided(
    decision: Decision,
    framework: str,
    source: Any,
    build: Callable[[Any], WebRequest] | None = None,
    hop_cookie: Callable[[], bool] | None = None,
) -> None:
    """Count a decision an integration concluded, and audit it when it is one to audit.

    Audited: every denial, and every allow on a route above a plain first factor for a
    browser that carries the loop breaker's hop cookie, which kratos-aal sets on each
    redirect to Kratos (for a minute) and clears on the first allowed answer: the allow
    that ends a step-up. *source* is the request, or what *build* turns into one (only
    when a record is written); *hop_cookie* tells cheaply whether the cookie came along.
    Never raises: observing must not break a request.
    """
    if STATE.quiet and decision.outcome is Outcome.ALLOW:
        return  # the hot path with nothing configured
    try:
        if decision.outcome is not Outcome.ALLOW:
            # A denial may come before any call to Kratos (no credentials at all).
            refresh()
        if STATE.metrics is not None:
            _counted(decision, framework)
        if decision.outcome is Outcome.ALLOW:
            if not _audits_allows(decision):
                return
            if hop_cookie is not None:  # asked first: no request is built without it
                if not hop_cookie():
                    return
                request = source if build is None else build(source)
            else:
                request = source if build is None else build(source)
                if _HOP_MARK not in request.header("cookie"):
                    return
        elif audit_logger.isEnabledFor(logging.INFO):
            request = source if build is None else build(source)
        else:
            return
        _audit(decision, request, framework)
    except Exception:  # pragma: no cover - defensive: a broken exporter or handler
        logging.getLogger("kratos_aal").debug("kratos-aal could not record a decision")


#: The outcome a cross-origin refusal is counted and audited under (no Outcome of the core:
#: it is decided before Kratos is asked).
CROSS_ORIGIN = "cross_origin"


def refused(
    request: WebRequest, framework: str, requirement: Requirement | None, reason: str
) -> None:
    """Count and audit a cross-origin request refused on the cookie (SPEC §4a).

    *reason* says which header gave it away (values a client chose, shortened); the
    cookie is never part of the record. Never raises.
    """
    try:
        refresh()
        if STATE.metrics is not None:
            STATE.metrics.decisions.add(
                1,
                {
                    "outcome": CROSS_ORIGIN,
                    "required_aal": requirement.aal.value if requirement else "none",
                    "framework": framework,
                },
            )
        if not audit_logger.isEnabledFor(logging.INFO):
            return
        fields = audit_fields(Decision(Outcome.LOGIN, requirement=requirement), request, framework)
        fields["outcome"] = CROSS_ORIGIN
        fields["reason"] = reason
        audit_logger.info(
            "kratos-aal denied: %s %s %s (requires %s): %s",
            CROSS_ORIGIN,
            fields["method"],
            fields["path"],
            fields["required_aal"] or "a session",
            reason,
            extra=fields,
        )
    except Exception:  # pragma: no cover - defensive: a broken exporter or handler
        logging.getLogger("kratos_aal").debug("kratos-aal could not record a refusal")


_asgi_frameworks: dict[type, str] = {}


def asgi_framework(scope: Mapping[str, Any]) -> str:
    """Return ``fastapi`` for a FastAPI app's scope, else ``starlette``."""
    kind = type(scope.get("app"))
    name = _asgi_frameworks.get(kind)
    if name is None:
        is_fastapi = any(c.__module__.split(".")[0] == "fastapi" for c in kind.__mro__)
        name = _asgi_frameworks[kind] = "fastapi" if is_fastapi else "starlette"
    return name


def _scope_has_hops(scope: Mapping[str, Any]) -> bool:
    return any(k == b"cookie" and _HOP_MARK_BYTES in v for k, v in scope.get("headers", ()))


def decided_asgi(
    decision: Decision, scope: Mapping[str, Any], build: Callable[[Any], WebRequest]
) -> None:
    """:func:`decided` for an ASGI *scope*; the framework is read from ``scope["app"]``."""
    if STATE.quiet and decision.outcome is Outcome.ALLOW:
        return  # the hot path with nothing configured
    decided(decision, asgi_framework(scope), scope, build, lambda: _scope_has_hops(scope))
