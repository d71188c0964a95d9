"""End to end: a Starlette app under uvicorn, Kratos on a socket, Prometheus scraping."""

from __future__ import annotations

from collections.abc import Iterator
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx
import pytest
from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from kratos_aal import KratosConfig, _observe
from kratos_aal.integrations.starlette import KratosAALMiddleware
from kratos_aal.testing import FakeKratos, reserve_port, serve, serve_wsgi
from tests.test_observe import _reset_globals


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    _reset_globals()
    registry = CollectorRegistry()
    metrics.set_meter_provider(
        MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    )
    yield registry
    _reset_globals()
    _observe.refresh()


def _billing(request: Request) -> PlainTextResponse:
    return PlainTextResponse("paid")


def test_prometheus_scrape_counts_the_requests_sent(registry: CollectorRegistry) -> None:
    sock = reserve_port()
    fake = FakeKratos(
        public_url=f"http://127.0.0.1:{sock.getsockname()[1]}", whoami_required_aal="aal1"
    )
    aal2, aal1 = fake.session("aal2"), fake.session("aal1", totp=True)
    app = Starlette(
        routes=[Route("/billing", _billing)],
        middleware=[
            Middleware(
                KratosAALMiddleware,
                config=KratosConfig(public_url=fake.public_url),
                rules={"/billing": "aal2"},
            )
        ],
    )
    with (
        serve(fake, sock=sock),
        serve(app) as base,
        serve_wsgi(make_wsgi_app(registry)) as scrape_url,
        httpx.Client(
            base_url=base,
            headers={"accept": "text/html"},
            # Keep no hop cookie: each request stands alone, no loop page.
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        ) as http,
    ):
        sent = [http.get("/billing").status_code for _ in range(5)]
        sent += [
            http.get("/billing", headers={"cookie": aal2.cookie_header}).status_code
            for _ in range(10)
        ]
        sent += [
            http.get("/billing", headers={"cookie": aal1.cookie_header}).status_code
            for _ in range(3)
        ]
        assert sent == [303] * 5 + [200] * 10 + [303] * 3
        text = httpx.get(f"{scrape_url}/metrics").text

    samples = {
        # The exporter adds otel_scope_* labels; the ones of kratos-aal are what counts here.
        (sample.name, tuple(sorted(i for i in sample.labels.items() if "otel" not in i[0]))): (
            sample.value
        )
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }

    def decisions(outcome: str) -> float:
        labels = (("framework", "starlette"), ("outcome", outcome), ("required_aal", "aal2"))
        return samples[("kratos_aal_decisions_total", labels)]

    assert (decisions("login"), decisions("allow"), decisions("step_up")) == (5, 10, 3)
    cache = {
        result: samples[("kratos_aal_cache_total", (("result", result), ("tier", "local")))]
        for result in ("hit", "miss")
    }
    # Allows: 1 miss then 9 hits. Step-ups: whoami and probe miss once, then both hit.
    assert cache == {"hit": 13, "miss": 3}
    count = samples[
        (
            "kratos_aal_kratos_duration_seconds_count",
            (("endpoint", "whoami"), ("status_class", "2xx")),
        )
    ]
    assert count == 1 + 3  # the first allow, the first step-up and two refreshes before denying
