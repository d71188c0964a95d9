"""The Flask extension under gunicorn, which passes PATH_INFO as sent (``//billing``)."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kratos_aal.testing import FakeKratos, reserve_port, serve

pytest.importorskip("gunicorn")  # not on Windows

ROOT = Path(__file__).resolve().parents[2]
SPELLINGS = ["//billing/", "///billing/", "//billing/7", "/billing//7", "/./billing/", "//transfer"]


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[FakeKratos, int]]:
    """Serve FakeKratos (uvicorn) and the app (gunicorn) on loopback ports."""
    fake = FakeKratos(whoami_required_aal="aal1")
    with serve(fake) as kratos_url:
        sock = reserve_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"fd://{sock.fileno()}",
                "--workers",
                "1",
                "--log-level",
                "warning",
                "tests.flask.gunicorn_app:create()",
            ],
            cwd=ROOT,
            env={**os.environ, "KRATOS_PUBLIC_URL": kratos_url},
            pass_fds=[sock.fileno()],
        )
        port = sock.getsockname()[1]
        try:
            _wait_until_up(port, process)
            yield fake, port
        finally:
            process.terminate()
            process.wait(10)
            sock.close()


def _wait_until_up(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("gunicorn exited")
        try:
            get(port, "/nowhere", {})
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start")


def get(port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """Send *path* exactly as written (http.client does not normalise it)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Accept": "application/json", **headers})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("path", SPELLINGS)
def test_no_spelling_reaches_a_protected_view(servers: tuple[FakeKratos, int], path: str) -> None:
    fake, port = servers
    aal1 = fake.session("aal1", totp=True)
    for headers in ({}, {"Cookie": aal1.cookie_header}):
        status, body = get(port, path, headers)
        assert status in {401, 403, 308, 404}, (path, status, body)
        assert b'"session"' not in body


@pytest.mark.parametrize("path", ["//billing/", "//billing/7", "//transfer"])
def test_spellings_that_route_run_the_view_with_aal2(
    servers: tuple[FakeKratos, int], path: str
) -> None:
    fake, port = servers
    aal2 = fake.session("aal2")
    status, body = get(port, path, {"Cookie": aal2.cookie_header})
    assert status == 200, (path, status, body)
    assert aal2.id.encode() in body
