"""Metrics, spans and the audit trail, read back through the real OpenTelemetry SDK."""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from opentelemetry import metrics, trace
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once
from pythonjsonlogger.json import JsonFormatter
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from kratos_aal import Credentials, Requirement, _observe
from kratos_aal.integrations.starlette import KratosAALMiddleware
from kratos_aal.integrations.wsgi import KratosAALWSGIMiddleware
from kratos_aal.testing import FakeKratos

RULES: dict[str, Any] = {
    "/account/*": "aal1",
    "/admin/*": Requirement("aal2", max_age=60),
    "/billing/*": "aal2",
}
AUDIT_FIELDS = (
    "outcome",
    "required_aal",
    "max_age",
    "methods",
    "session_id",
    "identity_id",
    "method",
    "path",
    "framework",
)


def _reset_globals() -> None:
    # The API lets a process set its providers once; tests need a fresh pair each.
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._METER_PROVIDER = None


@dataclass
class Otel:
    reader: InMemoryMetricReader
    spans: InMemorySpanExporter

    def points(self, name: str) -> Counter[frozenset[tuple[str, Any]]]:
        """Return the value (sum or count) of each attribute set of metric *name*."""
        found: Counter[frozenset[tuple[str, Any]]] = Counter()
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        value = getattr(point, "value", None)
                        if value is None:
                            value = point.count  # type: ignore[union-attr]
                        found[frozenset(point.attributes.items())] += value  # type: ignore[union-attr]
        return found


@pytest.fixture
def otel() -> Iterator[Otel]:
    _reset_globals()
    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    trace.set_tracer_provider(tracer_provider)
    _observe.refresh()
    yield Otel(reader, exporter)
    _reset_globals()
    _observe.refresh()
    assert _observe.STATE.metrics is None and _observe.STATE.tracer is None


@dataclass
class Audit:
    records: list[logging.LogRecord]
    stream: io.StringIO

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


@pytest.fixture
def audit() -> Iterator[Audit]:
    """Capture the audit logger, and format it as python-json-logger does."""
    records: list[logging.LogRecord] = []
    stream = io.StringIO()
    json_handler = logging.StreamHandler(stream)
    json_handler.setFormatter(JsonFormatter("%(levelname)s %(name)s %(message)s"))

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger(_observe.AUDIT_LOGGER)
    keep = Keep()
    logger.addHandler(keep)
    logger.addHandler(json_handler)
    logger.setLevel(logging.INFO)
    yield Audit(records, stream)
    logger.removeHandler(keep)
    logger.removeHandler(json_handler)
    logger.setLevel(logging.NOTSET)


# ----------------------------------------------------------------------- the scripted run


def _endpoint(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def _wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


Send = Callable[[str, dict[str, str]], int]


@dataclass
class Script:
    fake: FakeKratos
    secrets: list[str]


def run_script(send: Send) -> Script:
    """Send one request of each outcome; the expected counts are in :func:`check_counts`."""
    fake = FakeKratos(whoami_required_aal="aal1")
    a = fake.session("aal1", totp=True)
    b = fake.session("aal1", totp=False)
    c = fake.session("aal2")
    d = fake.session("aal2")
    e = fake.session("aal2", authenticated_at=600)
    f = fake.session("aal2")
    html = {"accept": "text/html"}

    def cookie(session: Any, extra: str = "") -> dict[str, str]:
        return {**html, "cookie": session.cookie_header + extra}

    statuses = [
        send("/account?next=QUERYSECRET", html),  # login, no call
        send("/account", cookie(a)),  # whoami miss, allow
        send("/account", cookie(a)),  # hit, allow
        send("/billing?return_to=QUERYSECRET", cookie(a)),  # hit, refresh, probe miss: step-up
        send("/billing", cookie(b)),  # whoami miss, probe miss: enroll
        send("/billing", cookie(c)),  # whoami miss, allow
        send("/billing", cookie(c)),  # hit, allow
        send("/billing", {**cookie(c, "; kratos_aal_hops=abc.1.2"), "x-session-token": ""}),
        send("/admin/x", cookie(e)),  # whoami miss: reauthenticate
    ]
    fake.fail("status", status=500)
    statuses.append(send("/billing", cookie(d)))  # whoami miss, 500: unavailable
    fake.fail("reset")
    statuses.append(send("/billing", {"x-session-token": f.token}))  # miss, error: unavailable
    assert statuses == [303, 200, 200, 303, 303, 200, 200, 200, 303, 503, 503]
    secrets = [s.cookie for s in (a, b, c, d, e, f)] + [s.token for s in (a, b, c, d, e, f)]
    return Script(fake, secrets)


def starlette_send(client: Any) -> Send:
    app = Starlette(
        routes=[Route(p, _endpoint) for p in ("/account", "/billing", "/admin/x")],
        middleware=[Middleware(KratosAALMiddleware, client=client, rules=RULES)],
    )
    http = httpx.Client(transport=_SyncASGI(app), base_url="http://testserver")
    return lambda path, headers: http.get(path, headers=headers).status_code


class _SyncASGI(httpx.BaseTransport):
    """Drive an ASGI app from a blocking test, one event loop per request."""

    def __init__(self, app: Any) -> None:
        self.transport = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        import asyncio

        async def go() -> httpx.Response:
            response = await self.transport.handle_async_request(request)
            body = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=body)

        return asyncio.run(go())


def wsgi_send(client: Any) -> Send:
    app = KratosAALWSGIMiddleware(_wsgi_app, client=client, rules=RULES)
    http = httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://testserver")
    return lambda path, headers: http.get(path, headers=headers).status_code


def scripted(framework: str) -> Script:
    holder: list[Send] = []

    def send(path: str, headers: dict[str, str]) -> int:
        return holder[0](path, headers)

    original = FakeKratos.__init__

    def init(self: FakeKratos, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        make = starlette_send if framework == "starlette" else wsgi_send
        holder.append(make(self.async_client() if framework == "starlette" else self.client()))

    FakeKratos.__init__ = init  # type: ignore[assignment]
    try:
        return run_script(send)
    finally:
        FakeKratos.__init__ = original  # type: ignore[method-assign]


def key(**attributes: Any) -> frozenset[tuple[str, Any]]:
    return frozenset(attributes.items())


@pytest.mark.parametrize("framework", ["starlette", "wsgi"])
def test_counts_match_a_scripted_run(framework: str, otel: Otel, audit: Audit) -> None:
    scripted(framework)

    def decision(outcome: str, aal: str) -> frozenset[tuple[str, Any]]:
        return key(outcome=outcome, required_aal=aal, framework=framework)

    assert otel.points("kratos_aal.decisions") == {
        decision("login", "aal1"): 1,
        decision("allow", "aal1"): 2,
        decision("step_up", "aal2"): 1,
        decision("enroll", "aal2"): 1,
        decision("allow", "aal2"): 3,
        decision("reauthenticate", "aal2"): 1,
        decision("unavailable", "aal2"): 2,
    }
    assert otel.points("kratos_aal.cache") == {
        key(tier="local", result="hit"): 4,
        key(tier="local", result="miss"): 8,
    }
    assert otel.points("kratos_aal.kratos.duration") == {
        key(endpoint="whoami", status_class="2xx"): 5,
        key(endpoint="whoami", status_class="5xx"): 1,
        key(endpoint="whoami", status_class="error"): 1,
        key(endpoint="second_factor", status_class="2xx"): 2,
    }
    spans = otel.spans.get_finished_spans()
    assert [s.name for s in spans].count("GET /sessions/whoami") == 7
    assert [s.name for s in spans].count("GET /self-service/login/browser") == 2
    assert {s.kind for s in spans} == {trace.SpanKind.CLIENT}
    failed = [s for s in spans if s.status.status_code is trace.StatusCode.ERROR]
    assert sorted(str((s.attributes or {}).get("error.type")) for s in failed) == [
        "500",
        "RemoteProtocolError",
    ]
    # One record per denial, one for the allow that came back with the hop cookie.
    assert [r.outcome for r in audit.records] == [  # type: ignore[attr-defined]
        "login",
        "step_up",
        "enroll",
        "allow",
        "reauthenticate",
        "unavailable",
        "unavailable",
    ]


@pytest.mark.parametrize("framework", ["starlette", "wsgi"])
def test_audit_records_carry_the_fields_as_json(framework: str, audit: Audit) -> None:
    scripted(framework)
    lines = audit.lines()
    assert len(lines) == 7
    for line in lines:
        assert set(AUDIT_FIELDS) <= set(line)
        assert line["name"] == "kratos_aal.audit" and line["levelname"] == "INFO"
        assert line["framework"] == framework and line["method"] == "GET"
    login, step_up, enroll, allow, reauth, down, _ = lines
    assert login | {"message": ""} == login | {
        "outcome": "login",
        "required_aal": "aal1",
        "path": "/account",
        "session_id": None,
        "identity_id": None,
        "max_age": None,
        "methods": None,
        "message": "",
    }
    assert (step_up["outcome"], step_up["path"], step_up["required_aal"]) == (
        "step_up",
        "/billing",
        "aal2",
    )
    assert step_up["session_id"] and step_up["identity_id"]
    assert enroll["session_id"] != step_up["session_id"]
    assert allow["outcome"] == "allow" and "allowed after step-up" in allow["message"]
    assert (reauth["outcome"], reauth["max_age"], reauth["path"]) == (
        "reauthenticate",
        60.0,
        "/admin/x",
    )
    assert down["outcome"] == "unavailable" and down["session_id"] is None


@pytest.mark.parametrize("framework", ["starlette", "wsgi"])
def test_no_credential_in_any_attribute_or_record(framework: str, otel: Otel, audit: Audit) -> None:
    script = scripted(framework)
    seen: list[str] = []
    data = otel.reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    seen += [f"{k}={v}" for k, v in point.attributes.items()]  # type: ignore[union-attr]
    for span in otel.spans.get_finished_spans():
        seen.append(span.name)
        seen += [f"{k}={v!s}" for k, v in (span.attributes or {}).items()]
        seen += [event.name for event in span.events]
    assert any(s.startswith("url.full=http://127.0.0.1:4433/") for s in seen)
    for record in audit.records:
        seen.append(record.getMessage())
        seen += [f"{k}={getattr(record, k)}" for k in AUDIT_FIELDS]
    assert len(seen) > 50
    forbidden = [
        *script.secrets,
        "QUERYSECRET",
        "return_to",
        "?",
        "cookie",
        "token",
        "ory_kratos_session",
        "kratos_aal_hops",
    ]
    leaks = [(s, bad) for s in seen for bad in forbidden if bad.lower() in s.lower()]
    assert leaks == []


def test_nothing_is_recorded_without_an_sdk(audit: Audit) -> None:
    _observe.refresh()
    assert _observe.STATE.metrics is None and _observe.STATE.tracer is None
    scripted("wsgi")
    # The audit trail is plain logging: it needs no SDK.
    assert len(audit.records) == 7


def test_nothing_is_audited_when_the_logger_is_quiet(otel: Otel) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger(_observe.AUDIT_LOGGER)
    keep = Keep()
    logger.addHandler(keep)
    logger.setLevel(logging.WARNING)
    try:
        scripted("starlette")
    finally:
        logger.removeHandler(keep)
        logger.setLevel(logging.NOTSET)
    assert records == []
    assert sum(otel.points("kratos_aal.decisions").values()) == 11


def test_fastapi_apps_are_named_fastapi() -> None:
    from fastapi import FastAPI

    class Mine(FastAPI):
        pass

    assert _observe.asgi_framework({"app": FastAPI()}) == "fastapi"
    assert _observe.asgi_framework({"app": Mine()}) == "fastapi"
    assert _observe.asgi_framework({"app": Starlette()}) == "starlette"
    assert _observe.asgi_framework({}) == "starlette"


def test_endpoint_labels_and_admin_template(otel: Otel) -> None:
    request = httpx.Request("GET", "http://k:4434/admin/identities/abc?include_credential=totp")
    assert _observe.endpoint_of(request) == "second_factor"
    attributes = _observe._span_attributes(request, "second_factor")
    assert attributes["url.full"] == "http://k:4434/admin/identities/{id}"
    assert attributes["url.template"] == "/admin/identities/{id}"
    logout = httpx.Request("GET", "https://k/self-service/logout/browser")
    assert _observe.endpoint_of(logout) == "logout"
    assert _observe._span_attributes(logout, "logout")["server.port"] == 443


async def test_async_logout_call_is_measured(otel: Otel) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    session = fake.session("aal1")
    async with fake.async_client() as client:
        from kratos_aal import Credentials

        url = await client.logout_url(Credentials(cookie=session.cookie))
    assert url is not None
    assert otel.points("kratos_aal.kratos.duration") == {
        key(endpoint="logout", status_class="2xx"): 1
    }
    (span,) = otel.spans.get_finished_spans()
    assert span.name == "GET /self-service/logout/browser"
    assert span.attributes is not None and span.attributes["http.response.status_code"] == 200


def test_spans_are_children_of_the_current_span(otel: Otel) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    session = fake.session("aal2")
    tracer = trace.get_tracer("test")
    from kratos_aal import Credentials

    with fake.client() as client, tracer.start_as_current_span("request") as parent:
        assert client.check(Credentials(cookie=session.cookie)).allowed
    child = next(s for s in otel.spans.get_finished_spans() if s.name != "request")
    assert child.parent is not None
    assert child.parent.span_id == parent.get_span_context().span_id


def test_without_opentelemetry_installed_nothing_is_recorded(
    monkeypatch: pytest.MonkeyPatch, audit: Audit
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # import fails
    monkeypatch.setattr(_observe.STATE, "api", None)
    monkeypatch.setattr(_observe.STATE, "meter_provider", None)
    _observe.refresh()
    assert _observe.STATE.api is False and _observe.STATE.metrics is None
    scripted("starlette")
    assert len(audit.records) == 7  # the audit trail is plain logging


def test_spans_without_metrics() -> None:
    _reset_globals()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    try:
        scripted("wsgi")
        assert _observe.STATE.metrics is None
        assert len(exporter.get_finished_spans()) == 9
    finally:
        _reset_globals()
        _observe.refresh()


def test_a_cross_origin_refusal_is_counted_and_audited(otel: Otel, audit: Audit) -> None:
    from kratos_aal import KratosConfig
    from kratos_aal._web import WebRequest, refuse_cross_origin

    fake = FakeKratos(whoami_required_aal="aal1")
    session = fake.session("aal2")
    app = Starlette(
        routes=[Route("/billing", _endpoint, methods=["POST"])],
        middleware=[
            Middleware(KratosAALMiddleware, client=fake.async_client(), rules={"/billing": "aal2"})
        ],
    )
    with TestClient(app) as client:
        headers = {"Cookie": session.cookie_header, "Sec-Fetch-Site": "cross-site"}
        assert client.post("/billing", headers=headers).status_code == 403
    points = otel.points("kratos_aal.decisions")
    wanted = {("outcome", "cross_origin"), ("required_aal", "aal2"), ("framework", "starlette")}
    assert points[frozenset(wanted)] == 1
    [line] = audit.lines()
    assert line["outcome"] == "cross_origin" and line["reason"] == "Sec-Fetch-Site is 'cross-site'"
    assert line["message"] == (
        "kratos-aal denied: cross_origin POST /billing (requires aal2): "
        "Sec-Fetch-Site is 'cross-site'"
    )
    assert session.cookie not in audit.stream.getvalue()
    # The refusal itself needs no SDK: it is made before anything is recorded.
    request = WebRequest("POST", "http", "x", "/", headers={"sec-fetch-site": "same-site"})
    config = KratosConfig("http://kratos:4433")
    assert refuse_cross_origin(request, Credentials(cookie="abc"), config) is not None


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_admin_calls_name_no_identity_in_any_span_attribute(otel: Otel, mode: str) -> None:
    from kratos_aal import Credentials

    fake = FakeKratos(whoami_required_aal="aal1")
    session = fake.session("aal1", totp=True)  # aal1 with a second factor: the admin probe
    identity_id = session.identity.id
    credentials = Credentials(cookie=session.cookie)
    if mode == "sync":
        with fake.client(admin_url=fake.admin_url) as client:
            decision = client.check(credentials, "aal2")
    else:
        async with fake.async_client(admin_url=fake.admin_url) as client:
            decision = await client.check(credentials, "aal2")
    assert decision.outcome.value == "step_up"
    spans = otel.spans.get_finished_spans()
    admin = [s for s in spans if (s.attributes or {}).get("kratos_aal.endpoint") == "second_factor"]
    assert len(admin) == 1
    assert admin[0].attributes is not None
    assert admin[0].attributes["url.full"] == f"{fake.admin_url}/admin/identities/{{id}}"
    for span in spans:
        texts = [span.name, *(f"{k}={v!s}" for k, v in (span.attributes or {}).items())]
        assert [t for t in texts if identity_id in t or session.cookie in t] == []


def test_an_audited_wsgi_hit_builds_no_request(
    monkeypatch: pytest.MonkeyPatch, audit: Audit
) -> None:
    # The WSGI hit path runs only without the hop cookie, so the allow it audits ends no
    # step-up: nothing is recorded, and no WebRequest is built to find that out.
    from kratos_aal.integrations import wsgi

    built: list[object] = []
    real = wsgi._web_request_only

    def counted(environ: Any) -> Any:
        built.append(environ)
        return real(environ)

    monkeypatch.setattr(wsgi, "_web_request_only", counted)
    fake = FakeKratos()
    session = fake.session("aal2")
    send = wsgi_send(fake.client())
    headers = {"accept": "text/html", "cookie": session.cookie_header}
    assert send("/billing", headers) == 200  # a miss: the full path
    assert send("/billing", headers) == 200  # a hit
    assert built == []
    assert audit.records == []
    # A stepped-up browser's allow (the hop cookie came) takes the full path and is audited.
    stepped = {**headers, "cookie": session.cookie_header + "; kratos_aal_hops=abc.1.2"}
    assert send("/billing", stepped) == 200
    assert len(audit.records) == 1
