"""Over real sockets: the Starlette example on uvicorn, FakeKratos on its own port."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from examples.starlette_app import create_app
from kratos_aal import KratosConfig
from kratos_aal.testing import FakeKratos, reserve_port, serve


@pytest.fixture
def stack() -> Iterator[tuple[FakeKratos, str, str]]:
    kratos_socket = reserve_port()
    host, port = kratos_socket.getsockname()
    fake = FakeKratos(public_url=f"http://{host}:{port}", whoami_required_aal="aal1")
    with serve(fake, sock=kratos_socket) as kratos_url:
        app = create_app(config=KratosConfig(public_url=kratos_url))
        with serve(app) as app_url:
            yield fake, kratos_url, app_url


def form(flow: dict[str, Any]) -> dict[str, str]:
    return {
        n["attributes"]["name"]: n["attributes"].get("value") or ""
        for n in flow["ui"]["nodes"]
        if n["type"] == "input"
    }


def test_step_up_end_to_end(stack: tuple[FakeKratos, str, str]) -> None:
    fake, kratos_url, app_url = stack
    identity = fake.create_identity("ada@example.com", "pw", totp=True)
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        # Log in with a password at Kratos: an aal1 session cookie.
        flow = browser.get(
            f"{kratos_url}/self-service/login/browser", headers={"Accept": "application/json"}
        ).json()
        done = browser.post(
            flow["ui"]["action"],
            data={**form(flow), "identifier": "ada@example.com", "password": "pw"},
        )
        assert done.status_code == 303
        aal1_cookie = browser.cookies[fake.cookie_name]

        # The aal2 page sends the browser to step-up, with its own URL to come back to.
        denied = browser.get(f"{app_url}/billing")
        assert denied.status_code == 303
        location = denied.headers["location"]
        assert location.startswith(f"{kratos_url}/self-service/login/browser?aal=aal2&")
        assert parse_qs(urlsplit(location).query)["return_to"] == [f"{app_url}/billing"]

        # Step up at Kratos: same session, upgraded in place, new cookie string.
        flow = browser.get(location, headers={"Accept": "application/json"}).json()
        done = browser.post(
            flow["ui"]["action"], data={**form(flow), "totp_code": fake.totp_code(identity)}
        )
        assert (done.status_code, done.headers["location"]) == (303, f"{app_url}/billing")
        assert browser.cookies[fake.cookie_name] != aal1_cookie

        allowed = browser.get(done.headers["location"])
        assert allowed.status_code == 200
        assert "Signed in at <b>aal2</b>" in allowed.text

    # The old cookie string names the same, now aal2, session. The app cached it as
    # aal1 a moment ago; it asks Kratos again instead of looping back to step-up.
    with httpx.Client(follow_redirects=False, timeout=10) as stale:
        again = stale.get(
            f"{app_url}/billing", headers={"Cookie": f"{fake.cookie_name}={aal1_cookie}"}
        )
        assert again.status_code == 200


def test_kratos_gone_is_503_end_to_end() -> None:
    dead = reserve_port()
    dead_url = f"http://127.0.0.1:{dead.getsockname()[1]}"
    dead.close()  # nothing listens there any more
    app = create_app(config=KratosConfig(public_url=dead_url, timeout=1))
    with serve(app) as app_url, httpx.Client(timeout=10) as browser:
        reply = browser.get(f"{app_url}/billing", headers={"Cookie": "ory_kratos_session=abc"})
        assert reply.status_code == 503
        assert reply.headers["retry-after"] == "5"
