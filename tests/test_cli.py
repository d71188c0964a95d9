"""The command line: whoami, doctor (with the http://kratos:4433 trap) and demo."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from kratos_aal.cli import EXPLANATIONS, main
from kratos_aal.testing import FakeKratos, reserve_port, serve


@pytest.fixture
def kratos() -> Iterator[tuple[FakeKratos, str]]:
    sock = reserve_port()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    fake = FakeKratos(public_url=url, whoami_required_aal="aal1")
    with serve(fake, sock=sock):
        yield fake, url


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main(list(argv), out=out)
    return status, out.getvalue()


def test_whoami_prints_session_and_decision(kratos: tuple[FakeKratos, str]) -> None:
    fake, url = kratos
    session = fake.session("aal1", totp=True)
    status, text = run(
        "whoami",
        "--url",
        url,
        "--cookie",
        session.cookie,
        "--require",
        "aal2",
        "--return-to",
        "http://127.0.0.1:8000/billing",
    )
    assert status == 0
    assert f"Session     {session.id} (active)" in text
    assert "AAL         aal1" in text
    assert re.search(r"password\s+aal1\s+\d{4}-\d\d-\d\dT", text)
    assert "Decision for aal2: STEP_UP" in text
    assert (
        "/self-service/login/browser?aal=aal2&return_to=http%3A%2F%2F127.0.0.1%3A8000%2Fbilling"
        in text
    )
    assert session.cookie not in text and session.token not in text


def test_whoami_max_age_and_token(kratos: tuple[FakeKratos, str]) -> None:
    fake, url = kratos
    session = fake.session("aal2", authenticated_at=900)
    status, text = run("whoami", "--url", url, "--token", session.token, "--max-age", "300")
    assert status == 0
    assert "Decision for aal2, max_age 300 s: REAUTHENTICATE" in text
    assert "refresh=true" in text
    assert session.token not in text


def test_whoami_without_session_and_when_down(kratos: tuple[FakeKratos, str]) -> None:
    _, url = kratos
    status, text = run("whoami", "--url", url, "--cookie", "unknown-cookie")
    assert (status, "Session     none" in text, "Decision for aal2: LOGIN" in text) == (
        0,
        True,
        True,
    )
    status, text = run("whoami", "--url", "http://127.0.0.1:9", "--cookie", "abc", "--timeout", "1")
    assert status == 2 and "Kratos did not answer" in text and "Retry-After" in text


def test_whoami_bad_url_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["whoami", "--url", "kratos:4433", "--cookie", "x"]) == 2
    assert "public_url must be an absolute http(s) URL" in capsys.readouterr().err


def test_doctor_healthy(kratos: tuple[FakeKratos, str]) -> None:
    _, url = kratos
    status, text = run("doctor", "--url", url)
    assert status == 0, text
    assert "✓ Kratos answers" in text
    assert "use the browser URL" in text
    assert "session_aal1_required:" in text
    assert "no problems found" in text


def test_doctor_finds_the_internal_url_trap() -> None:
    sock = reserve_port()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    fake = FakeKratos(
        public_url="http://kratos:4433"
    )  # serve.public.base_url set to the internal name
    with serve(fake, sock=sock):
        status, text = run("doctor", "--url", url)
    assert status == 1
    assert "Kratos hands browsers URLs on http://kratos:4433" in text
    assert "Set serve.public.base_url" in text


def test_doctor_browser_url_behind_a_proxy(kratos: tuple[FakeKratos, str]) -> None:
    _, url = kratos
    status, text = run("doctor", "--url", url, "--browser-url", "https://example.com/kratos")
    assert status == 1 and "not on https://example.com/kratos" in text


def test_doctor_unreachable() -> None:
    status, text = run("doctor", "--url", "http://127.0.0.1:9", "--timeout", "1")
    assert status == 2 and "did not answer" in text


@pytest.mark.parametrize("error_id", sorted(EXPLANATIONS))
def test_doctor_explains(error_id: str) -> None:
    status, text = run("doctor", "--explain", error_id)
    assert status == 0 and text.startswith(f"{error_id}: ") and len(text) > 60


def test_doctor_explain_unknown_and_no_url() -> None:
    assert run("doctor", "--explain", "nope")[0] == 1
    assert run("doctor")[0] == 2


@pytest.mark.parametrize(
    "required",
    [
        "session_aal1_required",
        "session_aal2_required",
        "session_refresh_required",
        "browser_location_change_required",
        "4000011",
    ],
)
def test_the_issue_errors_are_explained(required: str) -> None:
    assert required in EXPLANATIONS


def test_help_texts(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("demo", "whoami", "doctor"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "usage: kratos-aal " + command in capsys.readouterr().out


def test_demo_command_serves_the_story() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kratos_aal",
            "demo",
            "--port",
            "0",
            "--kratos-port",
            "0",
            "--no-qr",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Press Ctrl+C" in line:
                break
        text = "".join(lines)
        app = re.search(r"App\s+(http://127\.0\.0\.1:\d+)/", text)
        kratos_url = re.search(r"Kratos\s+(http://127\.0\.0\.1:\d+)", text)
        assert app and kratos_url, text
        assert "ada@example.com" in text and "bob@example.com" in text and "TOTP secret" in text
        with httpx.Client(follow_redirects=False, timeout=10) as browser:
            assert browser.get(f"{app[1]}/").status_code == 200
            redirect = browser.get(f"{app[1]}/billing", headers={"Accept": "text/html"})
            assert redirect.status_code == 303
            assert redirect.headers["location"].startswith(
                f"{kratos_url[1]}/self-service/login/browser"
            )
            login = browser.get(redirect.headers["location"])
            assert login.headers["location"].startswith(f"{kratos_url[1]}/ui/login?flow=")
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=20)
    assert process.returncode == 0, out
    assert "Stopped." in out


@pytest.mark.parametrize("framework", ["starlette", "fastapi", "flask", "django"])
def test_demo_runs_every_framework(framework: str) -> None:
    from kratos_aal._demo import banner, run_demo

    with run_demo(framework, port=0, kratos_port=0) as demo, httpx.Client(timeout=10) as browser:
        assert f"a {framework.capitalize()} app" in banner(demo, qr=False)
        assert browser.get(f"{demo.app_url}/").status_code == 200
        redirect = browser.get(
            f"{demo.app_url}/billing{'/' if framework == 'django' else ''}",
            headers={"Accept": "text/html"},
            follow_redirects=False,
        )
        assert redirect.status_code == 303
        assert redirect.headers["location"].startswith(
            f"{demo.kratos_url}/self-service/login/browser?"
        )


def test_demo_rejects_unknown_framework() -> None:
    from kratos_aal._demo import run_demo

    with pytest.raises(ValueError, match="framework"), run_demo("bottle", port=0, kratos_port=0):
        pass
