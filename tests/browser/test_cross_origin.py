"""Cross-origin requests on the cookie (SPEC §4a), with a real browser's headers.

Debian's Chromium, driven by Playwright, against a Starlette app under uvicorn on a real
port, its ``/transfer`` guarded by a rule (and a Flask WebSocket route under a WSGI server). The Kratos cookie is ``SameSite=Lax``, as
Kratos sets it. Pages on other origins post a form and ``fetch`` with credentials:

* ``http://127.0.0.1:<other port>`` is same-site but cross-origin: Chromium sends the Lax
  cookie, with ``Sec-Fetch-Site: same-site``. That is the request the protection catches.
* ``http://localhost:<port>`` is cross-site: Chromium sends no Lax cookie on a POST at all.
* The app's own page, and a page on a trusted origin (an SPA, with CORS), run.

What is asserted is the server's side: how often the view ran, and what each request
carried and got.
"""

from __future__ import annotations

import html
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route

from kratos_aal import AsyncKratosClient, KratosClient
from kratos_aal.integrations import flask as kflask
from kratos_aal.integrations.starlette import KratosAALMiddleware
from kratos_aal.testing import FakeKratos, reserve_port, serve, serve_wsgi

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
]


def _page(app: str, *, cors: bool) -> str:
    """A page that posts to the app's /transfer: a form, and a fetch with credentials."""
    mode = "cors" if cors else "no-cors"
    return f"""<!doctype html><meta charset=utf-8><title>poster</title>
<form id=form method=post action="{html.escape(app)}/transfer">
<input type=hidden name=amount value=100></form>
<script>
async function post() {{
  const reply = await fetch({app!r} + "/transfer", {{
    method: "POST", credentials: "include", mode: {mode!r},
    headers: {{"Content-Type": "application/x-www-form-urlencoded"}}, body: "amount=100",
  }});
  return reply.type === "opaque" ? "opaque" : reply.status + " " + await reply.text();
}}
</script>"""


class Recorder:
    """Outermost ASGI layer: what each POST to /transfer carried, and its status."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/transfer":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        seen = {
            "site": headers.get("sec-fetch-site"),
            "origin": headers.get("origin"),
            "cookie": "ory_kratos_session=" in headers.get("cookie", ""),
        }
        self.seen.append(seen)

        async def record(message: Any) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            await send(message)

        await self.app(scope, receive, record)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium is missing at {CHROMIUM}: .ci/run installs Debian's chromium")
        pytest.skip("Chromium is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


def test_cross_origin_posts_in_chromium(browser: Any) -> None:
    app_sock, other_sock, spa_sock = (reserve_port() for _ in range(3))
    app_url, other_port = _url(app_sock), other_sock.getsockname()[1]
    spa_url = _url(spa_sock)
    # Whoami goes through the transport; a browser sent to sign in lands on a 404 there.
    fake = FakeKratos(whoami_required_aal="aal1", public_url=_url(other_sock))
    session = fake.session("aal2")
    ran: list[str] = []

    async def transfer(request: Request) -> PlainTextResponse:
        ran.append("ran")
        return PlainTextResponse("done")

    async def home(request: Request) -> HTMLResponse:
        return HTMLResponse(_page(app_url, cors=True))

    client = AsyncKratosClient(
        fake.config(trusted_origins=[spa_url]),
        http_client=httpx.AsyncClient(transport=fake.transport()),
    )
    recorder = Recorder(
        Starlette(
            routes=[Route("/", home), Route("/transfer", transfer, methods=["POST"])],
            middleware=[
                # CORS outside kratos-aal, as the docs say: the SPA may read the answer.
                Middleware(
                    CORSMiddleware,
                    allow_origins=[spa_url],
                    allow_methods=["*"],
                    allow_headers=["*"],
                    allow_credentials=True,
                ),
                Middleware(KratosAALMiddleware, client=client, rules={"/transfer": "aal2"}),
            ],
        )
    )

    async def attacker(request: Request) -> HTMLResponse:
        return HTMLResponse(_page(app_url, cors=False))

    async def spa(request: Request) -> HTMLResponse:
        return HTMLResponse(_page(app_url, cors=True))

    context = browser.new_context()
    context.add_cookies(
        [
            {
                "name": session.cookie_name,
                "value": session.cookie,
                "domain": "127.0.0.1",
                "path": "/",
                "httpOnly": True,
                "sameSite": "Lax",
            }
        ]
    )
    page = context.new_page()
    page.set_default_timeout(15_000)

    def post_both(url: str) -> tuple[str, int]:
        """Open *url*, fetch with credentials, then submit the form; return both answers."""
        page.goto(url)
        fetched = str(page.evaluate("post()"))
        with page.expect_response(lambda r: r.url == f"{app_url}/transfer") as answer:
            page.evaluate("document.getElementById('form').submit()")
        # Wait for the page the form leads to (after any redirect), before the next goto.
        page.wait_for_url(lambda landed: landed != url)
        return fetched, int(answer.value.status)

    with (
        serve(recorder, sock=app_sock),
        serve(Starlette(routes=[Route("/", attacker)]), sock=other_sock),
        serve(Starlette(routes=[Route("/", spa)]), sock=spa_sock),
    ):
        try:
            # Same site, another origin: the Lax cookie rides along. Refused, never run.
            assert post_both(f"http://127.0.0.1:{other_port}/") == ("opaque", 403)
            assert ran == []
            assert (
                recorder.seen
                == [
                    {
                        "site": "same-site",
                        "origin": f"http://127.0.0.1:{other_port}",
                        "cookie": True,
                    }
                    | {"status": 403}
                ]
                * 2
            )
            page.wait_for_function("document.title === 'Request refused'")

            # Another site: no Lax cookie on a POST; it is answered as having no session.
            recorder.seen.clear()
            assert post_both(f"http://localhost:{other_port}/") == ("opaque", 303)
            assert ran == []
            assert [(s["site"], s["cookie"]) for s in recorder.seen] == [("cross-site", False)] * 2

            # The app's own page: it runs.
            recorder.seen.clear()
            assert post_both(f"{app_url}/") == ("200 done", 200)
            assert ran == ["ran"] * 2
            assert {s["site"] for s in recorder.seen} == {"same-origin"}

            # An SPA on a trusted origin (CORS lets it read the answer): it runs.
            recorder.seen.clear()
            assert post_both(f"{spa_url}/") == ("200 done", 200)
            assert ran == ["ran"] * 4
            assert {(s["site"], s["origin"]) for s in recorder.seen} == {("same-site", spa_url)}
        finally:
            context.close()


def test_a_cross_origin_websocket_to_flask_in_chromium(browser: Any) -> None:
    """A page on another port of the same host opens a WebSocket to a Flask route.

    The route is what flask-sock registers (``websocket=True``), guarded by the decorator,
    under a WSGI server that hands the handshake to the app as a GET: Chromium sends the
    Lax cookie and its ``Origin``. The view must not run for the other origin.
    """
    from flask import Flask
    from flask import request as flask_request

    app_sock, other_sock = reserve_port(), reserve_port()
    app_url, other_url = _url(app_sock), _url(other_sock)
    fake = FakeKratos(whoami_required_aal="aal1", public_url=other_url)
    session = fake.session("aal1")
    seen: list[tuple[str | None, bool]] = []
    app = Flask(__name__)
    app.config["KRATOS_AAL"] = {"PUBLIC_URL": fake.public_url}
    kratos = KratosClient(fake.config(), http_client=httpx.Client(transport=fake.transport()))
    kflask.KratosAAL(app, client=kratos)

    @app.route("/ws", websocket=True)
    @kflask.require_aal("aal1")
    def ws() -> str:
        cookie = flask_request.headers.get("Cookie", "")
        seen.append((flask_request.headers.get("Origin"), session.cookie_name in cookie))
        return "no upgrade here: the browser fails the handshake either way"

    @app.route("/")
    def home() -> str:
        return "<!doctype html><title>app</title>"

    async def other(request: Request) -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>other</title>")

    context = browser.new_context()
    context.add_cookies(
        [
            {
                "name": session.cookie_name,
                "value": session.cookie,
                "domain": "127.0.0.1",
                "path": "/",
                "httpOnly": True,
                "sameSite": "Lax",
            }
        ]
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    opener = """url => new Promise(done => {
        const ws = new WebSocket(url);
        ws.onopen = () => done("open");
        ws.onerror = () => done("error");
    })"""
    ws_url = app_url.replace("http://", "ws://") + "/ws"
    with (
        serve_wsgi(app, sock=app_sock),
        serve(Starlette(routes=[Route("/", other)]), sock=other_sock),
    ):
        try:
            page.goto(f"{other_url}/")
            assert page.evaluate(opener, ws_url) == "error"
            assert seen == []  # refused before the view: it never saw the cookie
            page.goto(f"{app_url}/")
            assert page.evaluate(opener, ws_url) == "error"  # no 101 from this view
            assert seen == [(app_url, True)]  # the app's own page: the view ran
        finally:
            context.close()


def _url(sock: Any) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"
