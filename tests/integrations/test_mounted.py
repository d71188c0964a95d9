"""Issue 9 item 4: FastAPI mounted inside another app denies as it does at the top."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.testclient import TestClient

from kratos_aal import Session
from kratos_aal.integrations.fastapi import KratosAALMiddleware, require_aal2
from kratos_aal.testing import FakeKratos
from kratos_aal.testing._serve import serve

JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html"}


def inner_api() -> FastAPI:
    api = FastAPI()

    @api.get("/billing")
    async def billing(session: Annotated[Session, Depends(require_aal2)]) -> dict[str, str]:
        return {"page": "billing", "aal": session.aal.value}

    router = APIRouter(prefix="/r")

    @router.get("/billing")
    def routed(session: Annotated[Session, Depends(require_aal2)]) -> dict[str, str]:
        return {"page": "routed", "aal": session.aal.value}

    api.include_router(router)
    return api


def starlette_outside(fake: FakeKratos) -> Any:
    middleware = [Middleware(KratosAALMiddleware, client=fake.async_client())]
    return Starlette(routes=[Mount("/api", app=inner_api())], middleware=middleware)


def fastapi_outside(fake: FakeKratos) -> Any:
    app = FastAPI()
    app.add_middleware(KratosAALMiddleware, client=fake.async_client())
    app.mount("/api", inner_api())
    return app


def twice_mounted(fake: FakeKratos) -> Any:
    middle = FastAPI()
    middle.mount("/v1", inner_api())
    app = Starlette(routes=[Mount("/outer", app=middle)])
    return KratosAALMiddleware(app, client=fake.async_client())


OUTER: dict[str, tuple[Callable[[FakeKratos], Any], str]] = {
    "starlette-mount": (starlette_outside, "/api"),
    "fastapi-mount": (fastapi_outside, "/api"),
    "nested-twice": (twice_mounted, "/outer/v1"),
}
PATHS = ["/billing", "/r/billing"]


def expectations(fake: FakeKratos) -> list[tuple[dict[str, str], int, str | None]]:
    """Return (headers, status, error id) for every denial and the allowed case."""
    totp = fake.session("aal1", totp=True).cookie_header
    bare = fake.session("aal1").cookie_header
    return [
        (HTML, 303, None),
        (JSON, 401, "session_inactive"),
        ({**JSON, "Cookie": totp}, 403, "session_aal2_required"),
        ({**JSON, "Cookie": bare}, 403, "session_aal2_enrollment_required"),
        ({**JSON, "Cookie": fake.session("aal2").cookie_header}, 200, None),
    ]


def check(reply: Any, status: int, error_id: str | None) -> None:
    # Any: TestClient answers with httpx2's Response where Starlette uses httpx2.
    assert reply.status_code == status, reply.text
    if status == 303:
        assert "/self-service/login/browser" in reply.headers["location"]
    elif error_id is not None:
        assert reply.json()["error"]["id"] == error_id
        assert "redirect_browser_to" in reply.json()
        assert reply.headers["cache-control"] == "no-store"
    else:
        assert reply.json()["aal"] == "aal2"


@pytest.mark.parametrize("outer", sorted(OUTER))
@pytest.mark.parametrize("path", PATHS)
def test_mounted_denials_with_test_client(outer: str, path: str) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    build, prefix = OUTER[outer]
    # raise_server_exceptions stays on: a denial that escaped as an error would raise here.
    with TestClient(build(fake), follow_redirects=False) as client:
        for headers, status, error_id in expectations(fake):
            check(client.get(prefix + path, headers=headers), status, error_id)


@pytest.mark.parametrize("outer", sorted(OUTER))
def test_mounted_denials_under_uvicorn(outer: str) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    build, prefix = OUTER[outer]
    with serve(build(fake)) as url, httpx.Client(base_url=url, timeout=10) as client:
        for path in PATHS:
            for headers, status, error_id in expectations(fake):
                check(client.get(prefix + path, headers=headers), status, error_id)
            # The connection stays usable after a denial: the next answer is whole.
            assert client.get("/nowhere").status_code == 404


def test_top_level_fastapi_still_denies() -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    app = inner_api()
    app.add_middleware(KratosAALMiddleware, client=fake.async_client())
    with TestClient(app, follow_redirects=False) as client:
        for headers, status, error_id in expectations(fake):
            check(client.get("/r/billing", headers=headers), status, error_id)


# A rule above allows from the cache (no relay), and a stricter dependency below denies:
# the mounted app answers the denial itself (deny_in_scope makes it its handler).
RULED: dict[str, tuple[Callable[[FakeKratos], Any], str]] = {
    "starlette-mount": (
        lambda fake: Starlette(
            routes=[Mount("/api", app=inner_api())],
            middleware=[ruled(fake, "/api/*")],
        ),
        "/api",
    ),
    "fastapi-mount": (lambda fake: fastapi_ruled(fake), "/api"),
    "nested-twice": (
        lambda fake: KratosAALMiddleware(
            Starlette(routes=[Mount("/outer", app=middle_app())]),
            client=fake.async_client(),
            rules={"/outer/*": "aal1"},
        ),
        "/outer/v1",
    ),
}


def ruled(fake: FakeKratos, glob: str) -> Middleware:
    return Middleware(KratosAALMiddleware, client=fake.async_client(), rules={glob: "aal1"})


def fastapi_ruled(fake: FakeKratos) -> FastAPI:
    app = FastAPI()
    app.add_middleware(KratosAALMiddleware, client=fake.async_client(), rules={"/api/*": "aal1"})
    app.mount("/api", inner_api())
    return app


def middle_app() -> FastAPI:
    middle = FastAPI()
    middle.mount("/v1", inner_api())
    return middle


@pytest.mark.parametrize("outer", sorted(RULED))
@pytest.mark.parametrize("path", PATHS)
def test_a_hit_above_a_stricter_dependency_still_denies(outer: str, path: str) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    build, prefix = RULED[outer]
    totp = {**JSON, "Cookie": fake.session("aal1", totp=True).cookie_header}
    with TestClient(build(fake), follow_redirects=False) as client:
        # The whole way first (cached for the aal1 rule), then the rule's cache hit.
        for _ in range(3):
            check(client.get(prefix + path, headers=totp), 403, "session_aal2_required")
        aal2 = {**JSON, "Cookie": fake.session("aal2").cookie_header}
        for _ in range(2):
            check(client.get(prefix + path, headers=aal2), 200, None)


@pytest.mark.parametrize("outer", sorted(RULED))
def test_a_hit_above_a_stricter_dependency_under_uvicorn(outer: str) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    build, prefix = RULED[outer]
    totp = {**JSON, "Cookie": fake.session("aal1", totp=True).cookie_header}
    with serve(build(fake)) as url, httpx.Client(base_url=url, timeout=10) as client:
        for path in PATHS:
            for _ in range(3):
                check(client.get(prefix + path, headers=totp), 403, "session_aal2_required")
            page = client.get(prefix + path, headers={**HTML, "Cookie": totp["Cookie"]})
            check(page, 303, None)


def test_the_denial_goes_through_the_mounted_apps_own_middleware() -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    inner = inner_api()

    @inner.middleware("http")
    async def mark(request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["x-inner"] = "seen"
        return response

    app = Starlette(routes=[Mount("/api", app=inner)], middleware=[ruled(fake, "/api/*")])
    totp = {**JSON, "Cookie": fake.session("aal1", totp=True).cookie_header}
    with TestClient(app, follow_redirects=False) as client:
        for _ in range(2):  # the whole way, then a hit
            reply = client.get("/api/billing", headers=totp)
            check(reply, 403, "session_aal2_required")
            assert reply.headers["x-inner"] == "seen"


def test_an_apps_own_denial_handler_is_kept() -> None:
    from starlette.responses import PlainTextResponse

    from kratos_aal.integrations.fastapi import KratosDenied

    fake = FakeKratos(whoami_required_aal="aal1")
    inner = inner_api()

    @inner.exception_handler(KratosDenied)
    async def own(request: Any, error: KratosDenied) -> PlainTextResponse:
        return PlainTextResponse(f"own {error.response.status}", status_code=error.response.status)

    app = Starlette(routes=[Mount("/api", app=inner)], middleware=[ruled(fake, "/api/*")])
    totp = {**JSON, "Cookie": fake.session("aal1", totp=True).cookie_header}
    with TestClient(app, follow_redirects=False) as client:
        for _ in range(2):
            reply = client.get("/api/billing", headers=totp)
            assert (reply.status_code, reply.text) == (403, "own 403")


@pytest.mark.parametrize("inner_status", [500, 418])
def test_an_answer_of_an_app_without_exception_handling_passes(inner_status: int) -> None:
    # An app below with no Starlette exception handling that answers a denial it caught
    # itself: whatever it answers is its own answer (no FastAPI dependency runs outside a
    # Starlette app's exception handling, so the relay replaces nothing).
    from kratos_aal._web import WebResponse
    from kratos_aal.integrations._starlette_denial import deny_in_scope

    async def raw_app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        try:
            raise deny_in_scope(scope, WebResponse(403, [("content-type", "text/plain")], b"no"))
        except Exception:
            await send({"type": "http.response.start", "status": inner_status, "headers": []})
            await send({"type": "http.response.body", "body": b"inner"})

    fake = FakeKratos(whoami_required_aal="aal1")
    app = KratosAALMiddleware(raw_app, client=fake.async_client())
    reply = TestClient(app, follow_redirects=False).get("/anything")  # no lifespan
    assert (reply.status_code, reply.text) == (inner_status, "inner")


@pytest.mark.parametrize("rules", [None, {"/b": "aal1"}], ids=["no-rule", "rule-hit"])
def test_an_apps_own_denial_handler_wins_whatever_it_answers(rules: Any) -> None:
    # Even a 500 of its own: the answer must not depend on the cache.
    from starlette.responses import PlainTextResponse

    from kratos_aal.integrations.fastapi import KratosDenied

    fake = FakeKratos(whoami_required_aal="aal1")
    app = FastAPI()
    app.add_middleware(KratosAALMiddleware, client=fake.async_client(), rules=rules)

    @app.exception_handler(KratosDenied)
    async def own(request: Any, error: KratosDenied) -> PlainTextResponse:
        return PlainTextResponse("own page", status_code=500)

    @app.get("/b")
    async def b(session: Annotated[Session, Depends(require_aal2)]) -> str:
        return "paid"

    totp = {**JSON, "Cookie": fake.session("aal1", totp=True).cookie_header}
    with TestClient(app, follow_redirects=False) as client:
        for _ in range(3):  # the whole way, then hits (with a rule)
            reply = client.get("/b", headers=totp)
            assert (reply.status_code, reply.text) == (500, "own page")


# ------------------------------------------- the relay, and denials answered by their app


def denying_app(*before: dict[str, Any]) -> Any:
    """Return a raw ASGI app that sends *before*, then raises a denial from a dependency."""
    from kratos_aal._web import WebResponse
    from kratos_aal.integrations._starlette_denial import deny_in_scope

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        for message in before:
            await send(message)
        raise deny_in_scope(scope, WebResponse(403, [("content-type", "text/plain")], b"no"))

    return app


def test_a_message_before_the_start_does_not_start_the_answer() -> None:
    # Starlette's templates send http.response.debug first (TestClient asks for it): the
    # denial raised after it still has to be answered.
    fake = FakeKratos(whoami_required_aal="aal1")
    debug = {"type": "http.response.debug", "info": {"template": None, "context": {}}}
    app = KratosAALMiddleware(denying_app(debug), client=fake.async_client())
    reply = TestClient(app, follow_redirects=False).get("/anything")
    assert (reply.status_code, reply.text) == (403, "no")


def test_a_denial_raised_after_the_app_started_its_answer_adds_nothing() -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"7")]}
    body = {"type": "http.response.body", "body": b"partial"}
    app = KratosAALMiddleware(denying_app(start, body), client=fake.async_client())
    reply = TestClient(app, follow_redirects=False).get("/anything")
    assert (reply.status_code, reply.text) == (200, "partial")


def test_a_denial_raised_directly_is_answered_by_the_app_once_it_has_the_handler() -> None:
    from kratos_aal._web import WebResponse
    from kratos_aal.integrations.fastapi import KratosDenied

    fake = FakeKratos(whoami_required_aal="aal1")
    api = inner_api()

    @api.get("/raw")
    async def raw() -> None:
        raise KratosDenied(WebResponse(403, [("content-type", "text/plain")], b"no"))

    app = Starlette(routes=[Mount("/api", app=api)], middleware=[ruled(fake, "/none")])
    with TestClient(app, follow_redirects=False) as client:
        check(client.get("/api/billing", headers=JSON), 401, "session_inactive")
        reply = client.get("/api/raw")  # the app has its handler of KratosDenied now
        assert (reply.status_code, reply.text) == (403, "no")


# The app's own BaseHTTPMiddleware raising after call_next: older Starlette releases (the
# lowest ones pyproject.toml allows) leave that middleware's receive stream unclosed, and
# anyio warns when it is collected (Kludex/starlette#2813). The stream is Starlette's, not ours.
@pytest.mark.filterwarnings("ignore:Unclosed <MemoryObjectReceiveStream:ResourceWarning")
def test_a_failure_after_the_app_answered_the_denial_stays_a_500() -> None:
    # The app answered the denial itself: a 500 its own middleware then makes is not the
    # relay's to replace.
    fake = FakeKratos(whoami_required_aal="aal1")
    inner = inner_api()

    @inner.middleware("http")
    async def fail(request: Any, call_next: Any) -> Any:
        await call_next(request)
        raise RuntimeError("the app's middleware fails")

    app = Starlette(routes=[Mount("/api", app=inner)], middleware=[ruled(fake, "/none")])
    with TestClient(app, follow_redirects=False, raise_server_exceptions=False) as client:
        assert client.get("/api/billing", headers=JSON).status_code == 500


async def test_a_denial_the_app_answers_is_sent_as_the_middleware_sends_one() -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    sent: list[dict[str, Any]] = []

    def recorded(app: Any) -> Any:
        async def recorder(scope: Any, receive: Any, send: Any) -> None:
            async def keep(message: Any) -> None:
                sent.append(message)
                await send(message)

            await app(scope, receive, keep)

        return recorder

    # No rule: the dependency's app answers. A rule: the middleware does.
    for app in (fastapi_outside(fake), fastapi_ruled(fake)):
        sent.clear()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=recorded(app)), base_url="http://testserver"
        ) as http:
            reply = await http.get("/api/billing", headers=JSON)
        assert reply.json()["error"]["id"] == "session_inactive"
        start, *bodies = sent
        names = [name for name, _ in start["headers"]]
        assert names == [name.lower() for name in names]
        length = len(b"".join(b["body"] for b in bodies))
        assert dict(start["headers"])[b"content-length"] == str(length).encode()
