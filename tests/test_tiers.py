"""``kratos-aal doctor`` on cache tiers: the local one, and whether the shared one answers."""

from __future__ import annotations

import io
import shutil
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from kratos_aal._tiers import describe_tiers, ping_redis, redacted
from kratos_aal.cli import main
from kratos_aal.testing import FakeKratos, reserve_port, serve

PASSWORD = "s3cret-pass"


class _Resp(socketserver.StreamRequestHandler):
    """Just enough of Redis: AUTH and PING, with a password required."""

    def handle(self) -> None:
        authed = False
        while True:
            header = self.rfile.readline()
            if not header.startswith(b"*"):
                return
            words = []
            for _ in range(int(header[1:])):
                self.rfile.readline()
                words.append(self.rfile.readline().strip().decode())
            if words[0] == "AUTH":
                authed = words[-1] == PASSWORD
                self.wfile.write(
                    b"+OK\r\n" if authed else b"-WRONGPASS invalid " + words[-1].encode() + b"\r\n"
                )
            elif words[0] == "PING":
                self.wfile.write(
                    b"+PONG\r\n" if authed else b"-NOAUTH Authentication required.\r\n"
                )


@pytest.fixture
def resp_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Resp)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


def tiers(cache_url: str | None, ttl: float = 30) -> list[tuple[bool, str]]:
    config = SimpleNamespace(cache_ttl=ttl, cache_maxsize=10_000, cache_url=cache_url)
    return describe_tiers(config, 2.0)


def test_shared_tier_answers_with_the_right_password(resp_port: int) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{resp_port}/0"
    assert tiers(url)[1] == (True, f"shared cache: redis://127.0.0.1:{resp_port}/0 answers")


@pytest.mark.parametrize(
    ("userinfo", "reason"),
    [
        pytest.param("", "PING answered -NOAUTH", id="no-password"),
        pytest.param("default:wrong-pass@", "AUTH refused (-WRONGPASS)", id="wrong-password"),
    ],
)
def test_shared_tier_refusals_are_problems_without_the_password(
    resp_port: int, userinfo: str, reason: str
) -> None:
    url = f"redis://{userinfo}127.0.0.1:{resp_port}"
    ok, text = tiers(url)[1]
    assert not ok
    assert text == f"shared cache: redis://127.0.0.1:{resp_port}: {reason}"
    assert "wrong-pass" not in text


def test_shared_tier_that_does_not_answer() -> None:
    sock = reserve_port()
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    ok, text = tiers(f"redis://127.0.0.1:{port}")[1]
    assert (ok, text) == (
        False,
        f"shared cache: redis://127.0.0.1:{port}: no answer (ConnectionRefusedError)",
    )
    assert ping_redis("memcached://127.0.0.1:1", 1.0) == "not a redis:// or rediss:// URL"


def test_local_tier_and_no_shared_tier() -> None:
    assert tiers(None) == [
        (True, "local cache: up to 10,000 sessions per process, each for at most 30 s"),
        (True, "shared cache: none (cache_url is not set)"),
    ]
    assert tiers(None, ttl=0)[0] == (
        True,
        "local cache: off (cache_ttl is 0): every request asks Kratos",
    )


def test_redacted_drops_user_info() -> None:
    assert (
        redacted(f"rediss://user:{PASSWORD}@cache.example:6380/2")
        == "rediss://cache.example:6380/2"
    )


@pytest.fixture
def kratos_url() -> Iterator[str]:
    sock = reserve_port()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with serve(FakeKratos(public_url=url, whoami_required_aal="aal1"), sock=sock):
        yield url


def test_doctor_reports_the_tiers_of_the_environment(
    kratos_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KRATOS_AAL_CACHE_TTL", "12")
    out = io.StringIO()
    assert main(["doctor", "--url", kratos_url], out=out) == 0
    assert (
        "✓ local cache: up to 10,000 sessions per process, each for at most 12 s" in out.getvalue()
    )
    assert "✓ shared cache: none" in out.getvalue()


def test_doctor_names_a_bad_environment_variable(
    kratos_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KRATOS_AAL_CACHE_TTL", "-1")
    out = io.StringIO()
    assert main(["doctor", "--url", kratos_url], out=out) == 1
    assert "✗ the KRATOS_* environment is not a valid configuration: KRATOS_AAL_CACHE_TTL" in (
        out.getvalue()
    )


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_a_real_redis_answers() -> None:
    sock = reserve_port()
    port = sock.getsockname()[1]
    sock.close()
    server = shutil.which("redis-server")
    assert server is not None
    process = subprocess.Popen(
        [
            server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            PASSWORD,
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"redis://:{PASSWORD}@127.0.0.1:{port}"
        for _ in range(100):
            if ping_redis(url, 1.0) is None:
                break
            time.sleep(0.05)
        assert ping_redis(url, 1.0) is None
        assert ping_redis(f"redis://127.0.0.1:{port}", 1.0) == "PING answered -NOAUTH"
    finally:
        process.terminate()
        process.wait(10)


def test_rediss_to_a_plain_server_is_no_answer(resp_port: int) -> None:
    reason = ping_redis(f"rediss://127.0.0.1:{resp_port}", 2.0)
    assert reason is not None and reason.startswith("no answer (SSL")


def test_doctor_counts_a_silent_shared_tier_as_a_problem(resp_port: int) -> None:
    from kratos_aal._tiers import check_cache_tiers

    class Doctor:
        def __init__(self) -> None:
            self.lines: list[tuple[str, str]] = []

        def say(self, mark: str, text: str) -> None:
            self.lines.append((mark, text))

        def problem(self, text: str) -> None:
            self.lines.append(("✗", text))

    doctor = Doctor()
    config = SimpleNamespace(
        cache_ttl=30, cache_maxsize=5, cache_url=f"redis://u:not-{PASSWORD}@127.0.0.1:{resp_port}"
    )
    check_cache_tiers(doctor, "http://127.0.0.1:4433", 2.0, config)
    assert [mark for mark, _ in doctor.lines] == ["✓", "✗"]
    assert PASSWORD not in str(doctor.lines)
    config.cache_url = f"redis://:{PASSWORD}@127.0.0.1:{resp_port}"
    doctor.lines.clear()
    check_cache_tiers(doctor, "http://127.0.0.1:4433", 2.0, config)
    assert [mark for mark, _ in doctor.lines] == ["✓", "✓"]
