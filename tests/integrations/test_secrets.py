"""Across every integration, at DEBUG: no cookie value or token in logs, bodies or errors."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import Client

from kratos_aal.testing import FakeKratos

from .conftest import Harness


async def _exercise(app: Harness, fake: FakeKratos, secrets: list[str]) -> list[str]:
    seen: list[str] = []
    sessions = [
        fake.session("aal2"),
        fake.session("aal1", totp=True),
        fake.session("aal1"),
        fake.session("aal2", authenticated_at=900),
    ]
    for session in sessions:
        secrets += [session.cookie, session.token]
        for headers in (
            {"Cookie": session.cookie_header},
            {"X-Session-Token": session.token},
            {"Authorization": f"Bearer {session.token}", "Accept": "application/json"},
            {"Cookie": session.cookie_header, "HX-Request": "true"},
        ):
            for path in ("/billing", "/billing/transfer", "/api/balance", "/account"):
                reply = await app.get(path, headers)
                seen += [reply.body.decode("latin-1"), str(reply.headers)]
    for fault in ("timeout", "reset", "garbage", "not_a_session"):
        fresh = fake.session("aal2")  # not cached yet: its check meets the fault
        secrets += [fresh.cookie, fresh.token]
        fake.fail(fault, times=None)
        reply = await app.get(
            "/billing", {"Cookie": fresh.cookie_header, "Accept": "application/json"}
        )
        assert reply.status == 503
        seen += [reply.body.decode("latin-1"), str(reply.headers)]
        fake.heal()
    return seen


async def test_no_secret_anywhere(
    app: Harness, fake: FakeKratos, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = []
    seen = await _exercise(app, fake, secrets)
    assert "kratos_aal decision" in caplog.text  # the DEBUG log did run
    for secret in secrets:
        assert secret not in caplog.text
        for text in seen:
            assert secret not in text


def test_no_secret_anywhere_django(
    fake_kratos: FakeKratos, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = []
    seen: list[Any] = []
    for session in (
        fake_kratos.session("aal2"),
        fake_kratos.session("aal1", totp=True),
        fake_kratos.session("aal1"),
    ):
        secrets += [session.cookie, session.token]
        for path in ("/", "/billing/", "/transfer/", "/api/balance/", "/account/", "/me/"):
            client = Client()
            client.cookies.load(session.cookies)
            reply = client.get(path, headers={"Accept": "application/json"})
            seen += [reply.content.decode("latin-1"), str(reply.headers)]
            reply = Client().get(path, HTTP_X_SESSION_TOKEN=session.token)
            seen += [reply.content.decode("latin-1"), str(reply.headers)]
    fresh = fake_kratos.session("aal2")
    secrets += [fresh.cookie, fresh.token]
    fake_kratos.fail("reset", times=None)
    client = Client()
    client.cookies.load(fresh.cookies)
    reply = client.get("/me/")  # a public view that leaves Kratos trouble to the middleware
    assert reply.status_code == 503
    seen.append(reply.content.decode())
    assert "kratos_aal decision" in caplog.text
    for secret in secrets:
        assert secret not in caplog.text
        for text in seen:
            assert secret not in text
