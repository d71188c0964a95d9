"""Django: decisions counted and audited with framework "django", sync and async views."""

from __future__ import annotations

import asyncio
import logging

import pytest
from django.test import AsyncClient, Client

from kratos_aal.testing import FakeKratos
from tests.test_observe import Audit, Otel, audit, key, otel

__all__ = ["audit", "otel"]  # fixtures, imported so pytest finds them here

BROWSER = {"Accept": "text/html"}


@pytest.fixture(params=["/billing/", "/billing/async/"])
def page(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_django_decisions_and_audit(
    fake_kratos: FakeKratos, page: str, otel: Otel, audit: Audit
) -> None:
    aal1 = fake_kratos.session("aal1", totp=True)
    aal2 = fake_kratos.session("aal2")

    def fetch(cookies: str, extra: str = "") -> int:
        client = Client()
        client.cookies.load(cookies)
        if extra:
            client.cookies.load(extra)
        return int(client.get(page + "?q=QUERYSECRET", headers=BROWSER).status_code)

    async def afetch(cookies: str) -> int:
        client = AsyncClient()
        client.cookies.load(cookies)
        return int((await client.get(page, headers=BROWSER)).status_code)

    statuses = [
        await asyncio.to_thread(fetch, ""),
        await asyncio.to_thread(fetch, aal1.cookie_header),
        await afetch(aal2.cookie_header),
        await asyncio.to_thread(fetch, aal2.cookie_header, "kratos_aal_hops=abc.1.2"),
    ]
    assert statuses == [303, 303, 200, 200]
    assert otel.points("kratos_aal.decisions") == {
        key(outcome="login", required_aal="aal2", framework="django"): 1,
        key(outcome="step_up", required_aal="aal2", framework="django"): 1,
        key(outcome="allow", required_aal="aal2", framework="django"): 2,
    }
    records = [(r.outcome, r.path, r.framework) for r in audit.records]  # type: ignore[attr-defined]
    assert records == [
        ("login", page, "django"),
        ("step_up", page, "django"),
        ("allow", page, "django"),
    ]
    assert audit.records[1].session_id == aal1.id  # type: ignore[attr-defined]
    for record in audit.records:
        text = record.getMessage() + str(record.__dict__)
        assert "QUERYSECRET" not in text and aal1.cookie not in text and aal2.cookie not in text
    assert all(r.levelno == logging.INFO for r in audit.records)
