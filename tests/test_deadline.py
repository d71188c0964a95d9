"""The network backend that ends a blocking exchange's reads and writes by its deadline."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx
import pytest

from kratos_aal._deadline import DEADLINE, _Backend, _left, bound_by_deadline


class Recorder(httpcore.NetworkBackend, httpcore.NetworkStream):
    """A backend that is its own stream, and records the timeouts it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float | None]] = []

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        self.calls.append(("connect_tcp", timeout))
        return self

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        self.calls.append(("connect_unix_socket", timeout))
        return self

    def sleep(self, seconds: float) -> None:
        self.calls.append(("sleep", seconds))

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.calls.append(("read", timeout))
        return b"x"

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.calls.append(("write", timeout))

    def close(self) -> None:
        self.calls.append(("close", None))

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        self.calls.append(("start_tls", timeout))
        return self

    def get_extra_info(self, info: str) -> Any:
        return f"info:{info}"


def test_without_a_deadline_every_timeout_is_as_given() -> None:
    recorder = Recorder()
    stream = _Backend(recorder).connect_tcp("127.0.0.1", 1, timeout=3.0)
    stream.read(10, 3.0)
    stream.write(b"x", None)
    assert recorder.calls == [("connect_tcp", 3.0), ("read", 3.0), ("write", None)]
    assert _left(None, httpcore.ReadTimeout) is None


def test_each_operation_gets_what_is_left_of_the_deadline() -> None:
    recorder = Recorder()
    context = ssl.create_default_context()  # loads CA files: not inside the deadline
    token = DEADLINE.set(time.monotonic() + 1.0)
    try:
        backend = _Backend(recorder)
        stream = backend.connect_unix_socket("/nowhere", timeout=3.0)
        tls = stream.start_tls(context, "kratos", timeout=None)
        tls.read(10, 3.0)
        tls.write(b"x", 0.5)
        tls.close()
        backend.sleep(0.25)
        assert tls.get_extra_info("socket") == "info:socket"
    finally:
        DEADLINE.reset(token)
    names = [name for name, _ in recorder.calls]
    assert names == ["connect_unix_socket", "start_tls", "read", "write", "close", "sleep"]
    timeouts = dict(recorder.calls)
    for name in ("connect_unix_socket", "start_tls", "read"):
        assert 0 < timeouts[name] <= 1.0  # type: ignore[operator]
    assert timeouts["write"] == 0.5  # less than what is left: as given
    assert timeouts["sleep"] == 0.25


@pytest.mark.parametrize(
    ("operation", "error"),
    [
        ("connect", httpcore.ConnectTimeout),
        ("read", httpcore.ReadTimeout),
        ("write", httpcore.WriteTimeout),
    ],
)
def test_past_the_deadline_nothing_waits(operation: str, error: type[Exception]) -> None:
    recorder = Recorder()
    stream = _Backend(recorder).connect_tcp("127.0.0.1", 1)
    calls: dict[str, Callable[[], object]] = {
        "connect": lambda: _Backend(recorder).connect_tcp("127.0.0.1", 1, timeout=3.0),
        "read": lambda: stream.read(10, 3.0),
        "write": lambda: stream.write(b"x", 3.0),
    }
    token = DEADLINE.set(time.monotonic() - 0.001)
    try:
        with pytest.raises(error):
            calls[operation]()
    finally:
        DEADLINE.reset(token)
    assert recorder.calls == [("connect_tcp", None)]  # only the connection made before


def test_every_pool_of_the_client_is_bound_once() -> None:
    mock = httpx.MockTransport(lambda request: httpx.Response(200))
    http = httpx.Client(
        proxy="http://127.0.0.1:9",
        mounts={"http://mock.example": mock, "http://none.example": None},
    )
    try:
        assert bound_by_deadline(bound_by_deadline(http)) is http
        transports = [http._transport, *http._mounts.values()]
        backends = [
            t._pool._network_backend for t in transports if isinstance(t, httpx.HTTPTransport)
        ]
        assert len(backends) == 2  # the direct one and the proxy's
        for backend in backends:
            assert isinstance(backend, _Backend)
            assert not isinstance(backend._backend, _Backend)  # not wrapped twice
        assert http.get("http://mock.example/").status_code == 200  # left as it was
    finally:
        http.close()
