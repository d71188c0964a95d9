"""An attacker's pass on FakeKratos (issue 24): hostile input a user's app or tests may send.

Each docstring names the Kratos source at v26.2.0 or the ``BEHAVIOR.md`` section.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import httpx
import pytest

from kratos_aal.testing import FakeClock, FakeKratos, FakeSession, serve

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def fake() -> FakeKratos:
    return FakeKratos(clock=FakeClock(frozen=True))


@pytest.fixture
def public(fake: FakeKratos) -> Iterator[httpx.Client]:
    with httpx.Client(transport=fake.transport(), base_url=fake.public_url) as client:
        yield client


@pytest.fixture
def logged_in(fake: FakeKratos) -> FakeSession:
    return fake.session(identity=fake.create_identity(email="a@x.test"))


def _cookie(session: FakeSession) -> dict[str, str]:
    return {**BROWSER, "Cookie": f"{session.cookie_name}={session.cookie}"}


@pytest.mark.parametrize(
    "path", ["/self-service/login/browser", "/self-service/registration/browser"]
)
def test_relative_return_to_is_redirected_to_as_an_absolute_url(
    public: httpx.Client, logged_in: FakeSession, fake: FakeKratos, path: str
) -> None:
    """``x/redir/secure_redirect.go``: a relative return_to takes the default return URL's
    scheme and host, and the redirect goes to that absolute URL (BEHAVIOR.md "return_to
    validation"). Sent back as is, ``/\\evil.example`` is read by browsers as
    ``//evil.example``: an open redirect."""
    response = public.get(path, params={"return_to": "/\\evil.example"}, headers=_cookie(logged_in))
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("http://127.0.0.1:4433/"), location


def test_return_to_after_logout_is_absolute(public: httpx.Client, logged_in: FakeSession) -> None:
    """``selfservice/flow/logout/handler.go`` completes through ``SecureRedirectTo``: the
    relative return_to comes back absolute, on the default return URL's host."""
    headers = _cookie(logged_in)
    url = public.get(
        "/self-service/logout/browser",
        params={"return_to": "/\\evil.example"},
        headers={**headers, "Accept": "application/json"},
    ).json()["logout_url"]
    response = public.get(url, headers=headers)
    assert response.status_code == 303
    assert response.headers["location"].startswith("http://127.0.0.1:4433/")


@pytest.mark.parametrize("value", ["\x00", "/ok\x7f", "/a\x01b"])
def test_control_characters_in_return_to_are_refused(
    public: httpx.Client, logged_in: FakeSession, value: str
) -> None:
    """Go's ``url.Parse`` refuses control characters ("invalid control character in
    URL"), so ``SecureRedirectTo`` answers 400. The fake used to put the raw byte in a
    Location header, which httpx (and uvicorn) cannot send: the user's test crashed."""
    for path in ("/self-service/login/browser", "/self-service/registration/browser"):
        escaped = "".join(f"%{byte:02X}" for byte in value.encode())
        response = public.get(f"{path}?return_to={escaped}", headers=_cookie(logged_in))
        assert response.status_code == 303
        assert "/ui/error?id=" in response.headers["location"]


def test_logout_completion_checks_return_to(public: httpx.Client, logged_in: FakeSession) -> None:
    """``selfservice/flow/logout/handler.go`` completeLogout redirects through
    ``SecureRedirectTo``: a return_to added to the logout URL afterwards is checked
    against the allow-list, not followed."""
    headers = _cookie(logged_in)
    url = public.get(
        "/self-service/logout/browser", headers={**headers, "Accept": "application/json"}
    ).json()["logout_url"]
    response = public.get(url + "&return_to=https%3A%2F%2Fevil.example%2F", headers=headers)
    assert response.status_code == 303
    assert "/ui/error?id=" in response.headers["location"]
    # As in Kratos, the session was revoked before the return_to was checked.
    assert response.headers["set-cookie"].startswith(f"{logged_in.cookie_name}=;")
    assert public.get("/sessions/whoami", headers=headers).status_code == 401


def test_stored_errors_are_bounded(monkeypatch: pytest.MonkeyPatch, public: httpx.Client) -> None:
    """Kratos keeps errors in its database and ``kratos cleanup sql`` removes them; the
    fake keeps them in memory, so a long-running ``kratos-aal fake`` keeps only the
    newest: every refused browser request used to add one for good."""
    monkeypatch.setattr("kratos_aal.testing._errors._MAX_ERRORS", 3, raising=False)
    bad = {"return_to": "https://evil.example/"}
    ids = [
        public.get("/self-service/login/browser", params=bad, headers=BROWSER)
        .headers["location"]
        .rsplit("=", 1)[1]
        for _ in range(5)
    ]
    answers = [public.get("/self-service/errors", params={"id": i}).status_code for i in ids]
    assert answers == [404, 404, 200, 200, 200]


def test_long_expired_flows_are_dropped(
    monkeypatch: pytest.MonkeyPatch, fake: FakeKratos, public: httpx.Client
) -> None:
    """Kratos answers an expired flow with 410 (``selfservice/flow/login/handler.go``) until
    ``kratos cleanup sql`` deletes it. The fake keeps flows in memory: every GET of
    ``/self-service/login/browser`` used to add one for good. It now drops flows an hour
    after they expired, so a long-running fake's memory stays bounded."""
    monkeypatch.setattr("kratos_aal.testing._flow._SWEEP_EVERY", 2, raising=False)
    json_headers = {"Accept": "application/json"}
    old = public.get("/self-service/login/browser", headers=json_headers).json()["id"]
    fake.clock.advance(fake.login_lifespan + 1)
    gone_410 = public.get("/self-service/login/flows", params={"id": old})
    assert gone_410.status_code == 410
    fake.clock.advance(3600)
    for _ in range(2):
        public.get("/self-service/login/browser", headers=json_headers)
    assert public.get("/self-service/login/flows", params={"id": old}).status_code == 404
    assert len(fake._flows) == 2


@pytest.mark.parametrize(
    ("allowed", "return_to"),
    [
        (None, "http://evil.example\\@127.0.0.1:4433/"),
        (None, "http://evil.example\\@localhost:8000/"),
        (["https://*.example.com/"], "https://evil.com\\.example.com/"),
        (["https://app.test/"], "https://evil.com\\@app.test/"),
        (["https://*.example.com/"], "https://evil.com%5C.example.com/"),
    ],
)
def test_backslash_in_return_to_host_is_refused(allowed: list[str] | None, return_to: str) -> None:
    """Go's ``url.Parse`` (``x/redir/secure_redirect.go``) refuses a backslash in the
    userinfo or host ("invalid userinfo", "invalid character in host name") and ASCII
    %-escapes in the host, so Kratos answers 400. Browsers read the backslash as ``/``:
    ``http://evil.example\\@127.0.0.1:4433/`` opens evil.example. The fake matched on
    what follows the ``@`` or on the host's suffix, and allowed it."""
    fake = FakeKratos() if allowed is None else FakeKratos(allowed_return_urls=allowed)
    with httpx.Client(transport=fake.transport(), base_url=fake.public_url) as client:
        response = client.get("/self-service/login/api", params={"return_to": return_to})
    assert response.status_code == 400
    assert response.json()["error"]["id"] == "self_service_flow_return_to_forbidden"


def _raw_status(url: str, request: bytes) -> bytes:
    host, port = url.split("//", 1)[1].rstrip("/").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


@pytest.mark.parametrize(
    ("target", "host", "status"),
    [
        (b"/a%00b", b"127.0.0.1", b"404"),
        (b"/health/alive", b"[::1", b"400"),
        (b"/health/alive", b"evil/x", b"400"),
        (b"/health/alive", b"127.0.0.1#x", b"400"),
        (b"/health/a%6Cive", b"127.0.0.1", b"200"),
    ],
)
def test_served_fake_answers_odd_request_lines_without_a_500(
    target: bytes, host: bytes, status: bytes
) -> None:
    """Go's ``net/http`` routes on the request line's path and answers a malformed Host
    header with "400 Bad Request: malformed Host header"; Kratos never 500s on either.
    Served on a real port, the fake rebuilt a URL from the decoded path and the Host
    header: a ``%00`` in the path or a ``[`` in the Host was a 500, and a ``/`` or ``#``
    in the Host moved the path it routed on."""
    with serve(FakeKratos()) as url:
        line = _raw_status(
            url, b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
        )
    assert line.split(b" ")[1] == status, line


def test_served_fake_keeps_no_more_than_the_body_limit() -> None:
    """``cmd/daemon/serve.go`` wraps both ports in ``http.MaxBytesHandler`` (5 MB): Kratos
    stops reading there. Served as an ASGI app, the fake read and kept the whole body (and
    ``fake.requests`` held it), so one large upload grew a long-running fake without
    bound. It still refuses the request as too large."""
    fake = FakeKratos()
    with httpx.Client(transport=fake.transport(), base_url=fake.public_url) as client:
        flow_id = client.get("/self-service/login/api").json()["id"]
    chunk = b"x" * (1024 * 1024)
    chunks = 12
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        nonlocal chunks
        chunks -= 1
        return {"type": "http.request", "body": chunk, "more_body": chunks > 0}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/self-service/login",
        "query_string": f"flow={flow_id}".encode(),
        "headers": [(b"host", b"127.0.0.1:4433"), (b"content-type", b"application/json")],
    }
    asyncio.run(fake(scope, receive, send))
    assert chunks == 0  # the whole body was drained
    kept = len(fake.requests[-1].content)
    assert kept <= 5 * 1024 * 1024 + 1, kept
    assert sent[0]["status"] == 400


def test_demo_clock_page_redirects_to_an_absolute_return_to(
    fake: FakeKratos, public: httpx.Client
) -> None:
    """The demo's clock control (not Kratos) sends the browser back to ``return_to``
    after the allow-list check; like Kratos's redirects, a relative one goes out absolute,
    so ``/\\evil.example`` does not leave the default return host."""
    fake.demo_controls = True
    response = public.post(
        f"{fake.ui_url}/clock", data={"seconds": "1", "return_to": "/\\evil.example"}
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("http://127.0.0.1:4433/")
