"""What only the FastAPI adapter does: dependencies, OpenAPI security, overrides."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from examples.fastapi_app import create_app
from kratos_aal import Session
from kratos_aal.integrations.fastapi import (
    KratosAALMiddleware,
    RequireAAL,
    require_aal1,
    require_aal2,
)
from kratos_aal.testing import FakeKratos


async def call(app: FastAPI, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        return await http.request(method, path, **kwargs)


async def test_dependency_returns_the_session(fake: FakeKratos) -> None:
    session = fake.session("aal2")
    reply = await call(
        create_app(client=fake.async_client()),
        "GET",
        "/billing",
        headers={"Cookie": session.cookie_header},
    )
    assert reply.json() == {"page": "billing", "aal": "aal2"}


def test_openapi_declares_the_kratos_credentials(fake: FakeKratos) -> None:
    schema = create_app(client=fake.async_client()).openapi()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["KratosSessionCookie"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": "ory_kratos_session",
        "description": (
            "The Ory Kratos session cookie (its name is set by KratosConfig.cookie_name). "
            "Token clients send `X-Session-Token` or `Authorization: Bearer` instead."
        ),
    }
    billing = schema["paths"]["/billing"]["get"]
    assert billing["security"] == [{"KratosSessionCookie": []}]
    api = schema["paths"]["/api/balance"]["get"]["security"]
    assert {"KratosSessionCookie": []} in api and {"KratosSessionToken": []} in api
    assert schemes["KratosSessionToken"]["in"] == "header"
    assert "security" not in schema["paths"]["/"]["get"]


async def test_dependency_overrides_work(fake: FakeKratos) -> None:
    app = create_app(client=fake.async_client())
    stand_in = Session.from_json(
        {"id": "override", "active": True, "authenticator_assurance_level": "aal2"}
    )
    app.dependency_overrides[require_aal2] = lambda: stand_in
    reply = await call(app, "GET", "/billing")
    assert reply.json() == {"page": "billing", "aal": "aal2"}
    assert fake.calls["/sessions/whoami"] == 0


async def test_post_is_never_run(fake: FakeKratos) -> None:
    ran: list[str] = []
    app = FastAPI()
    app.add_middleware(KratosAALMiddleware, client=fake.async_client())

    @app.post("/pay")
    async def pay(session: Annotated[Session, Depends(RequireAAL("aal2"))]) -> dict[str, str]:
        ran.append(session.id)
        return {"paid": "yes"}

    aal1 = fake.session("aal1", totp=True)
    reply = await call(
        app, "POST", "/pay", headers={"Cookie": aal1.cookie_header}, json={"amount": 5}
    )
    assert reply.status_code == 403 and reply.json()["error"]["id"] == "session_aal2_required"
    assert ran == []
    aal2 = fake.session("aal2")
    assert (await call(app, "POST", "/pay", headers={"Cookie": aal2.cookie_header})).json() == {
        "paid": "yes"
    }
    assert ran == [aal2.id]


async def test_dependency_without_middleware_names_it() -> None:
    app = FastAPI()

    @app.get("/x")
    async def x(session: Annotated[Session, Depends(require_aal1)]) -> str:
        return session.id

    with pytest.raises(RuntimeError, match="RequireAAL needs KratosAALMiddleware"):
        await call(app, "GET", "/x")


def test_repr() -> None:
    assert repr(RequireAAL("aal1", max_age=60)) == "RequireAAL('aal1')"
