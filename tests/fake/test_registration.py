"""Registration and ``GET /sessions`` on FakeKratos (issue 11, item 12).

Kratos's reference: ``selfservice/flow/registration/handler.go`` (init, fetch, submit),
``selfservice/strategy/password/registration.go`` (the password method, with the
``session`` hook that logs the new identity in) and ``session/handler.go``
``listMySessions``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kratos_aal.testing import FakeClock, FakeKratos

from ..openapi import assert_valid

JSON = {"Accept": "application/json"}
APP = "http://127.0.0.1:8000/welcome"


@pytest.fixture
def fake() -> FakeKratos:
    return FakeKratos(clock=FakeClock(frozen=True))


@pytest.fixture
def client(fake: FakeKratos) -> Iterator[httpx.Client]:
    with httpx.Client(transport=fake.transport(), base_url=fake.public_url) as client:
        yield client


def api_flow(client: httpx.Client) -> dict[str, Any]:
    answer = client.get("/self-service/registration/api")
    assert answer.status_code == 200
    flow: dict[str, Any] = answer.json()
    assert_valid("registrationFlow", flow)
    return flow


def node(flow: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in flow["ui"]["nodes"] if n["attributes"].get("name") == name)


def test_api_registration_logs_the_new_identity_in(fake: FakeKratos, client: httpx.Client) -> None:
    """password/registration.go with the session hook: 200 identity, session, token."""
    flow = api_flow(client)
    assert {n["attributes"]["name"] for n in flow["ui"]["nodes"]} == {
        "traits.email",
        "password",
        "method",
    }
    done = client.post(
        f"/self-service/registration?flow={flow['id']}",
        json={
            "method": "password",
            "traits": {"email": "new@example.com"},
            "password": "long enough",
        },
    )
    assert done.status_code == 200
    body = done.json()
    assert_valid("successfulNativeRegistration", body)
    assert body["identity"]["traits"] == {"email": "new@example.com"}
    whoami = client.get("/sessions/whoami", headers={"X-Session-Token": body["session_token"]})
    assert whoami.json()["identity"]["id"] == body["identity"]["id"]
    assert [i.email for i in fake.identities.values()] == ["new@example.com"]


def test_browser_registration_sets_the_cookie_and_returns(
    fake: FakeKratos, client: httpx.Client
) -> None:
    """registration/handler.go: 303 to the UI with the CSRF cookie; submit 303 to return_to."""
    start = client.get("/self-service/registration/browser", params={"return_to": APP})
    assert start.status_code == 303
    flow_id = start.headers["Location"].split("flow=")[1]
    assert start.headers["Location"] == f"{fake.ui_url}/registration?flow={flow_id}"
    flow = client.get("/self-service/registration/flows", params={"id": flow_id}).json()
    assert_valid("registrationFlow", flow)
    csrf = node(flow, "csrf_token")["attributes"]["value"]
    done = client.post(
        f"/self-service/registration?flow={flow_id}",
        data={
            "method": "password",
            "traits.email": "b@example.com",
            "password": "long enough",
            "csrf_token": csrf,
        },
    )
    assert (done.status_code, done.headers["Location"]) == (303, APP)
    assert fake.cookie_name in done.headers["Set-Cookie"]


def test_spa_registration_answers_json_with_continue_with(client: httpx.Client) -> None:
    """registration/hook.go: a browser flow asked for JSON gets identity, session, continue_with."""
    start = client.get("/self-service/registration/browser", headers=JSON)
    flow = start.json()
    csrf = node(flow, "csrf_token")["attributes"]["value"]
    done = client.post(
        f"/self-service/registration?flow={flow['id']}",
        json={
            "method": "password",
            "traits": {"email": "c@example.com"},
            "password": "long enough",
            "csrf_token": csrf,
        },
        headers=JSON,
    )
    assert done.status_code == 200
    assert done.json()["continue_with"][0]["action"] == "redirect_browser_to"
    assert "session_token" not in done.json()


@pytest.mark.parametrize(
    ("body", "where", "message_id"),
    [
        pytest.param(
            {"traits": {"email": ""}, "password": "long enough"},
            "traits.email",
            4000002,
            id="no-email",
        ),
        pytest.param(
            {"traits": {"email": "d@example.com"}, "password": "short"},
            "password",
            4000032,
            id="short-password",
        ),
        pytest.param(
            {"traits": {"email": "taken@example.com"}, "password": "long enough"},
            None,
            4000007,
            id="duplicate",
        ),
        pytest.param(
            {"traits": "x", "password": "long enough"},
            "traits.email",
            4000002,
            id="traits-not-object",
        ),
    ],
)
def test_registration_errors_come_back_on_the_flow(
    fake: FakeKratos, client: httpx.Client, body: dict[str, Any], where: str | None, message_id: int
) -> None:
    """password/registration.go: 400 with the flow, the message on its node or the flow."""
    fake.create_identity("taken@example.com")
    flow = api_flow(client)
    answer = client.post(
        f"/self-service/registration?flow={flow['id']}", json={"method": "password", **body}
    )
    assert answer.status_code == 400
    again = answer.json()
    assert_valid("registrationFlow", again)
    messages = node(again, where)["messages"] if where else again["ui"]["messages"]
    assert [m["id"] for m in messages] == [message_id]
    assert len(fake.identities) == 1


def test_registration_with_an_unknown_method_is_4010002(client: httpx.Client) -> None:
    """registration/handler.go: no strategy takes the submit."""
    flow = api_flow(client)
    answer = client.post(f"/self-service/registration?flow={flow['id']}", json={"method": "oidc"})
    assert answer.status_code == 400
    assert answer.json()["ui"]["messages"][0]["id"] == 4010002


def test_registration_while_signed_in(fake: FakeKratos, client: httpx.Client) -> None:
    """registration/handler.go: a session means session_already_available (browser: 303 home)."""
    session = fake.session("aal1")
    api = client.get("/self-service/registration/api", headers=session.headers)
    assert (api.status_code, api.json()["error"]["id"]) == (400, "session_already_available")
    browser = client.get(
        "/self-service/registration/browser",
        params={"return_to": APP},
        headers={"Cookie": session.cookie_header},
    )
    assert (browser.status_code, browser.headers["Location"]) == (303, APP)


def test_registration_form_in_the_ui(fake: FakeKratos, client: httpx.Client) -> None:
    """The UI page renders the flow's form (Kratos leaves the page to a UI app)."""
    start = client.get("/self-service/registration/browser")
    page = client.get(start.headers["Location"])
    assert page.status_code == 200
    assert 'name="traits.email"' in page.text and "Sign up" in page.text


def test_my_sessions_lists_the_other_sessions(fake: FakeKratos, client: httpx.Client) -> None:
    """session/handler.go listMySessions: the identity's other active sessions only."""
    mine = fake.session("aal1")
    other = fake.session("aal1", identity=mine.identity)
    revoked = fake.session("aal1", identity=mine.identity)
    fake.revoke(revoked)
    fake.session("aal1")  # someone else's
    answer = client.get("/sessions", headers=mine.headers)
    assert answer.status_code == 200
    assert [s["id"] for s in answer.json()] == [other.id]
    for session in answer.json():
        assert_valid("session", session)
    assert client.get("/sessions").status_code == 401
