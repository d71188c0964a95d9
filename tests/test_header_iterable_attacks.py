"""An app's ``http.response.start`` headers as any iterable (ASGI), and the event-stream watch.

Attacks on the reading of an app's response headers by the Starlette middleware (the
whole way's relay, the hit path's watch) and the Channels one: one-shot iterables, byte
types, spellings of the content type, the loop counter's clear, nesting, failures. A
stream a browser's EventSource reads as one must be watched (SPEC §5c): else a user who
signed out keeps receiving its events. Watching what is not a stream only costs a watch.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

import pytest

from kratos_aal._web.hops import HOP_MARK
from kratos_aal.integrations._asgi_live import GUARD_KEY, Guard
from kratos_aal.integrations.channels import KratosAuthMiddleware
from kratos_aal.integrations.channels import require_aal as channels_aal
from kratos_aal.integrations.starlette import KratosAALMiddleware
from kratos_aal.testing import FakeKratos

Pairs = list[tuple[bytes, bytes]]
SSE = b"text/event-stream"

# -- Fetch's "extract a MIME type" (https://fetch.spec.whatwg.org/#concept-header-extract-mime-type),
# the essence only: what an EventSource compares with `text/event-stream`.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HTTP_WHITESPACE = "\t\n\r "


def _split(value: str) -> list[str]:
    """Fetch's "get, decode, and split": commas outside quoted strings; tab/space trimmed."""
    values, current, quoted, escaped = [], "", False, False
    for char in value:
        if quoted:
            current += char
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
            current += char
        elif char == ",":
            values.append(current.strip("\t "))
            current = ""
        else:
            current += char
    values.append(current.strip("\t "))
    return values


def _essence(value: str) -> str | None:
    """Fetch's "parse a MIME type", its essence only; ``None`` for failure."""
    value = value.strip(_HTTP_WHITESPACE)
    kind, slash, rest = value.partition("/")
    subtype = rest.partition(";")[0].rstrip(_HTTP_WHITESPACE)
    if not slash or not _TOKEN.fullmatch(kind) or not _TOKEN.fullmatch(subtype):
        return None
    return f"{kind}/{subtype}".lower()


def browser_reads_an_event_stream(content_types: list[bytes]) -> bool:
    """Whether an EventSource opens on a response with these ``Content-Type`` lines."""
    if not content_types:
        return False
    essence = None
    for value in _split(", ".join(v.decode("latin-1") for v in content_types)):
        found = _essence(value)
        if found is not None and found != "*/*":
            essence = found  # the last one wins
    return essence == "text/event-stream"


def test_the_fetch_oracle_reads_as_browsers_do() -> None:
    assert browser_reads_an_event_stream([b"text/event-stream"])
    assert browser_reads_an_event_stream([b" TEXT/Event-Stream ;charset=utf-8"])
    assert browser_reads_an_event_stream([b"text/plain", b"text/event-stream"])
    assert browser_reads_an_event_stream([b"text/plain, text/event-stream"])
    assert browser_reads_an_event_stream([b"text/event-stream, */*"])
    assert not browser_reads_an_event_stream([b"text/event-stream, text/plain"])
    assert not browser_reads_an_event_stream([b"text/event-streamx"])
    assert not browser_reads_an_event_stream([b'text/plain;a=", text/event-stream"'])
    assert not browser_reads_an_event_stream([b"\xa0text/event-stream"])
    assert not browser_reads_an_event_stream([])


# -- Starlette: the relay (the whole way, or a hit with the hop cookie) and the hit's watch.


@pytest.fixture
def aal2_session(fake: FakeKratos) -> Any:
    return fake.session("aal2")


def _get(path: str, session: Any, *, hops: bool = False) -> dict[str, Any]:
    cookie = session.cookie_header
    if hops:
        cookie += f"; {HOP_MARK}x.1.1"
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [(b"cookie", cookie.encode())],
    }


async def _request() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


async def _serve(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    """Run *app* as a server would: each start's headers read once, as uvicorn reads them."""
    sent: list[dict[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        message = dict(message)
        if message["type"] == "http.response.start":
            message["headers"] = [tuple(pair) for pair in message.get("headers", [])]
        sent.append(message)

    await asyncio.wait_for(app(dict(scope), _request, send), 10)
    return sent


def _starts(sent: list[dict[str, Any]]) -> list[Pairs]:
    return [m["headers"] for m in sent if m["type"] == "http.response.start"]


def _streaming_app(headers: Any, watched: list[int]) -> Any:
    """An app that answers with *headers* (called for a fresh iterable) and notes the watch."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers()})
        guard = scope.get(GUARD_KEY)
        watched.append(len(guard.connections) if type(guard) is Guard else 0)
        await send({"type": "http.response.body", "body": b"data: x\n\n", "more_body": False})

    return app


# Three runs: the whole way, then hits (with the hop cookie a hit goes through the relay).
WAYS = pytest.mark.parametrize("hops", [False, True], ids=["no-hops", "hops"])


@WAYS
@pytest.mark.parametrize(
    "content_types",
    [
        [b"text/event-stream"],
        [b"Text/Event-Stream; charset=utf-8"],
        [b" text/event-stream"],
        [b"\ttext/event-stream"],
        [b"text/plain", b"text/event-stream"],
        [b"text/plain, text/event-stream"],
        [b", text/event-stream"],
        [b"*/*, text/event-stream"],
    ],
    ids=[
        "plain",
        "case-params",
        "space",
        "tab",
        "two-lines",
        "comma-list",
        "comma-first",
        "any-first",
    ],
)
async def test_every_spelling_a_browser_reads_as_an_event_stream_is_watched(
    fake: FakeKratos, aal2_session: Any, hops: bool, content_types: list[bytes]
) -> None:
    assert browser_reads_an_event_stream(content_types)
    pairs = [(b"content-type", value) for value in content_types]
    watched: list[int] = []
    app = _streaming_app(lambda: iter(pairs), watched)
    guarded = KratosAALMiddleware(app, client=fake.async_client(), rules={"/events": "aal2"})
    for _ in range(3):
        [headers] = _starts(await _serve(guarded, _get("/events", aal2_session, hops=hops)))
        assert [pair for pair in headers if pair[0] != b"set-cookie"] == pairs
    assert watched == [1, 1, 1]  # else the stream outlives a logout


@WAYS
async def test_a_generator_keeps_the_apps_headers_in_order_and_clears_hops_once(
    fake: FakeKratos, aal2_session: Any, hops: bool
) -> None:
    pairs = [(b"x-a", b"1"), (b"content-type", SSE), (b"set-cookie", b"a=1"), (b"x-a", b"2")]
    watched: list[int] = []
    app = _streaming_app(lambda: (pair for pair in pairs), watched)
    guarded = KratosAALMiddleware(app, client=fake.async_client(), rules={"/events": "aal2"})
    for _ in range(3):
        [headers] = _starts(await _serve(guarded, _get("/events", aal2_session, hops=hops)))
        if hops:
            *kept, (name, value) = headers
            assert name == b"set-cookie" and value.startswith(HOP_MARK.encode() + b";")
        else:
            kept = headers
        assert kept == pairs
    assert watched == [1, 1, 1]


@pytest.mark.parametrize("hit", [False, True], ids=["whole-way", "hit"])
async def test_an_apps_own_hop_cookie_in_a_generator_is_kept_and_not_cleared(
    fake: FakeKratos, aal2_session: Any, hit: bool
) -> None:
    # A denial from below counted a hop: its Set-Cookie stands, and every header after it.
    pairs = [
        (b"x-a", b"1"),
        (b"set-cookie", f"{HOP_MARK}r.2.9; Path=/".encode()),
        (b"content-type", SSE),
        (b"x-a", b"2"),
    ]
    watched: list[int] = []
    app = _streaming_app(lambda: (pair for pair in pairs), watched)
    guarded = KratosAALMiddleware(app, client=fake.async_client(), rules={"/events": "aal2"})
    if hit:
        await _serve(guarded, _get("/events", aal2_session))  # cached now
    [headers] = _starts(await _serve(guarded, _get("/events", aal2_session, hops=True)))
    assert headers == pairs
    assert watched[-1] == 1


@WAYS
async def test_bytes_like_and_tuple_headers_reach_the_server_and_are_watched(
    fake: FakeKratos, aal2_session: Any, hops: bool
) -> None:
    pairs: Any = (
        (bytearray(b"X-A"), bytearray(b"1")),
        [bytearray(b"Content-Type"), bytearray(b" text/event-stream")],
    )
    watched: list[int] = []
    app = _streaming_app(lambda: pairs, watched)
    guarded = KratosAALMiddleware(app, client=fake.async_client(), rules={"/events": "aal2"})
    for _ in range(3):
        [headers] = _starts(await _serve(guarded, _get("/events", aal2_session, hops=hops)))
        assert [p for p in headers if p[0] != b"set-cookie"] == [tuple(p) for p in pairs]
    assert watched == [1, 1, 1]


@WAYS
async def test_a_long_generator_arrives_whole_and_its_last_header_is_watched(
    fake: FakeKratos, aal2_session: Any, hops: bool
) -> None:
    pairs = [(b"x-%d" % i, b"v") for i in range(5000)] + [(b"content-type", SSE)]
    watched: list[int] = []
    app = _streaming_app(lambda: iter(pairs), watched)
    guarded = KratosAALMiddleware(app, client=fake.async_client(), rules={"/events": "aal2"})
    for _ in range(2):
        [headers] = _starts(await _serve(guarded, _get("/events", aal2_session, hops=hops)))
        assert [p for p in headers if p[0] != b"set-cookie"] == pairs
    assert watched == [1, 1]


@WAYS
@pytest.mark.parametrize("how", ["empty-generator", "missing"])
async def test_no_headers_at_all_still_get_the_hop_clear_alone(
    fake: FakeKratos, aal2_session: Any, hops: bool, how: str
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        start: dict[str, Any] = {"type": "http.response.start", "status": 200}
        if how == "empty-generator":
            start["headers"] = iter(())
        await send(start)
        await send({"type": "http.response.body", "body": b"ok"})

    guarded = KratosAALMiddleware(app, client=fake.async_client(), rules={"/p": "aal2"})
    for _ in range(2):
        sent = await _serve(guarded, _get("/p", aal2_session, hops=hops))
        [headers] = _starts(sent)
        assert [name for name, _ in headers] == ([b"set-cookie"] if hops else [])
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


@WAYS
async def test_nested_middlewares_send_everything_once_and_watch_once(
    fake: FakeKratos, aal2_session: Any, hops: bool
) -> None:
    # An app's middleware over a mounted app's own: the inner one reads the generator;
    # the outer one gets a list; one clear of the hop cookie, one watch, nothing twice.
    pairs = [(b"x-a", b"1"), (b"content-type", b"\ttext/event-stream"), (b"x-a", b"2")]
    watched: list[int] = []
    app = _streaming_app(lambda: (pair for pair in pairs), watched)
    client = fake.async_client()
    inner = KratosAALMiddleware(app, client=client, rules={"/events": "aal1"})
    outer = KratosAALMiddleware(inner, client=client, rules={"/events": "aal2"})
    for _ in range(3):
        sent = await _serve(outer, _get("/events", aal2_session, hops=hops))
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
        [headers] = _starts(sent)
        assert [p for p in headers if p[0] != b"set-cookie"] == pairs
        assert sum(name == b"set-cookie" for name, _ in headers) == hops
    assert all(count >= 1 for count in watched) and len(watched) == 3


class Broken(Exception):
    pass


def _raising() -> Iterator[tuple[bytes, bytes]]:
    yield (b"x-a", b"1")
    raise Broken


@pytest.mark.parametrize("path", ["/events", "/public"])
@WAYS
async def test_a_generator_that_raises_reaches_the_app_and_nothing_is_sent(
    fake: FakeKratos, aal2_session: Any, hops: bool, path: str
) -> None:
    # As under a server that reads the headers itself: the app's send raises, nothing goes
    # out (the server answers 500 when the app fails), and the error is not swallowed.
    raised: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _raising()})
        except Broken as error:
            raised.append(error)
            raise

    guarded = KratosAALMiddleware(app, client=fake.async_client(), rules={"/events": "aal2"})
    for run in range(2):
        sent: list[Any] = []

        async def send(message: Any, sent: list[Any] = sent) -> None:
            sent.append((message["type"], list(message.get("headers", []))))

        with pytest.raises(Broken):
            await guarded(_get(path, aal2_session, hops=hops), _request, send)
        assert sent == []
        assert len(raised) == run + 1


@WAYS
async def test_a_stream_started_after_a_start_whose_headers_raised_is_watched(
    fake: FakeKratos, aal2_session: Any, hops: bool
) -> None:
    # The first start never reached the server (its headers raised while read): a second
    # one, an event stream, is the response the client gets, so it must be watched.
    watched: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        with pytest.raises(Broken):
            await send({"type": "http.response.start", "status": 200, "headers": _raising()})
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", SSE)]}
        )
        guard = scope.get(GUARD_KEY)
        watched.append(len(guard.connections) if type(guard) is Guard else 0)
        await send({"type": "http.response.body", "body": b"data: x\n\n", "more_body": False})

    guarded = KratosAALMiddleware(app, client=fake.async_client(), rules={"/events": "aal2"})
    for _ in range(2):
        [headers] = _starts(await _serve(guarded, _get("/events", aal2_session, hops=hops)))
        assert (b"content-type", SSE) in headers
    assert watched == [1, 1]


@WAYS
async def test_str_headers_of_a_buggy_app_pass_through_unchanged(
    fake: FakeKratos, aal2_session: Any, hops: bool
) -> None:
    # ASGI says bytes; an app that sends text is not stopped here (no TypeError of ours).
    pairs: Any = [("x-a", "1"), ("content-type", "text/plain")]
    watched: list[int] = []
    app = _streaming_app(lambda: iter(pairs), watched)
    guarded = KratosAALMiddleware(app, client=fake.async_client(), rules={"/events": "aal2"})
    for _ in range(2):
        [headers] = _starts(await _serve(guarded, _get("/events", aal2_session, hops=hops)))
        assert [p for p in headers if p[0] != b"set-cookie"] == pairs


# -- Channels: KratosAuthMiddleware with require_aal.


def _channels_run(
    fake_kratos: FakeKratos, headers: Any, sent: list[Any] | None = None
) -> tuple[list[Pairs], list[int]]:
    """Serve one event-stream GET under KratosAuthMiddleware: the starts and the watch."""
    watched: list[int] = []
    sent = [] if sent is None else sent

    async def stream(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers()})
        # Not guard.started: an HTTP guard starts True whether or not the response streams.
        watched.append(len(scope[GUARD_KEY].connections))
        await send({"type": "http.response.body", "body": b"data: x\n\n", "more_body": False})

    app = KratosAuthMiddleware(channels_aal("aal1")(stream))
    session = fake_kratos.session("aal1")
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/live/sse",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "headers": [(b"host", b"127.0.0.1"), (b"cookie", session.cookie_header.encode())],
    }

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(asyncio.wait_for(app(scope, _request, send), 10))
    starts = [
        [tuple(p) for p in m.get("headers", [])] for m in sent if m["type"] == "http.response.start"
    ]
    return starts, watched


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "content_types",
    [
        [b"text/event-stream"],
        [b" text/event-stream"],
        [b"\ttext/event-stream"],
        [b"text/plain", b"text/event-stream"],
        [b"text/plain, text/event-stream"],
        [b", text/event-stream"],
    ],
    ids=["plain", "space", "tab", "two-lines", "comma-list", "comma-first"],
)
def test_channels_every_spelling_a_browser_reads_as_an_event_stream_is_watched(
    fake_kratos: FakeKratos, content_types: list[bytes]
) -> None:
    assert browser_reads_an_event_stream(content_types)
    pairs = [(b"content-type", value) for value in content_types]
    starts, watched = _channels_run(fake_kratos, lambda: (pair for pair in pairs))
    assert starts == [pairs]
    assert watched == [1]


@pytest.mark.django_db(transaction=True)
def test_channels_a_plain_response_is_not_watched(fake_kratos: FakeKratos) -> None:
    # The watch check the commit's Channels test lacks: guard.started says nothing for HTTP.
    pairs: Iterable[tuple[bytes, bytes]] = ((b"content-type", b"text/plain"),)
    starts, watched = _channels_run(fake_kratos, lambda: iter(pairs))
    assert starts == [list(pairs)]
    assert watched == [0]


@pytest.mark.django_db(transaction=True)
def test_channels_a_generator_that_raises_reaches_the_app_and_nothing_is_sent(
    fake_kratos: FakeKratos,
) -> None:
    sent: list[Any] = []
    with pytest.raises(Broken):
        _channels_run(fake_kratos, _raising, sent)
    assert sent == []
