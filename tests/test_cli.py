"""The command line: whoami, doctor (with the http://kratos:4433 trap), demo and fake."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from kratos_aal import _cli_serve, cli
from kratos_aal._cli_doctor import EXPLANATIONS
from kratos_aal._demo import ADA_TOTP_SECRET
from kratos_aal.cli import main
from kratos_aal.exceptions import ConfigurationError
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
    assert (
        "--url 'kratos:4433' has no scheme: add http:// (http://kratos:4433)"
        in capsys.readouterr().err
    )
    assert main(["whoami", "--url", "ftp://kratos:4433", "--cookie", "x"]) == 2
    assert "public_url must be an absolute http(s) URL" in capsys.readouterr().err


def test_doctor_names_a_missing_scheme(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--url", "kratos:4433"]) == 2
    err = capsys.readouterr().err
    assert "has no scheme: add http:// (http://kratos:4433)" in err
    assert "Is Kratos running" not in err
    assert main(["doctor", "--url", "http://127.0.0.1:9", "--browser-url", "example.com"]) == 2
    assert "--browser-url 'example.com' has no scheme" in capsys.readouterr().err


def test_doctor_and_whoami_read_the_apps_environment(
    kratos: tuple[FakeKratos, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, url = kratos
    monkeypatch.setenv("KRATOS_PUBLIC_URL", url)
    status, text = run("doctor")
    assert status == 0, text
    assert f"✓ Kratos answers at {url}" in text
    session = fake.session("aal2")
    status, text = run("whoami", "--cookie", session.cookie)
    assert (status, "Decision for aal2: ALLOW" in text) == (0, True), text


@pytest.fixture
def highest_available() -> Iterator[tuple[FakeKratos, str]]:
    sock = reserve_port()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    fake = FakeKratos(public_url=url, whoami_required_aal="highest_available")
    with serve(fake, sock=sock):
        yield fake, url


def test_doctor_finds_highest_available_with_an_aal1_session(
    highest_available: tuple[FakeKratos, str], kratos: tuple[FakeKratos, str]
) -> None:
    fake, url = highest_available
    session = fake.session("aal1", totp=True)
    status, text = run("doctor", "--url", url, "--cookie", session.cookie)
    assert status == 1, text
    assert "✗ Kratos's session.whoami.required_aal is highest_available; set it to aal1" in text
    assert session.cookie not in text
    status, text = run("doctor", "--url", url, "--token", session.token)
    assert "required_aal is highest_available" in text
    # Without a session to try, doctor cannot tell, and says nothing of it.
    status, text = run("doctor", "--url", url)
    assert "highest_available; set it" not in text
    # The same check on a Kratos that hands out aal1 sessions passes.
    fine, fine_url = kratos
    status, text = run(
        "doctor", "--url", fine_url, "--cookie", fine.session("aal1", totp=True).cookie
    )
    assert status == 0, text
    assert "required_aal is aal1" in text


def test_whoami_names_highest_available_on_its_symptom(
    highest_available: tuple[FakeKratos, str],
) -> None:
    fake, url = highest_available
    session = fake.session("aal1", totp=True)
    status, text = run("whoami", "--url", url, "--cookie", session.cookie, "--require", "aal1")
    assert status == 0
    assert "Decision for aal1: STEP_UP" in text
    assert "Cause       Kratos's session.whoami.required_aal is highest_available" in text
    # For an aal2 route a step-up is what the route asks: no cause to name.
    status, text = run("whoami", "--url", url, "--cookie", session.cookie, "--require", "aal2")
    assert "Cause" not in text


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
    for command in ("demo", "fake", "whoami", "doctor"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "usage: kratos-aal " + command in capsys.readouterr().out


def start_command(*args: str, ignore_sigint: bool = False) -> tuple[subprocess.Popen[str], str]:
    """Run ``kratos-aal ARGS`` and return the process and its banner (up to "Press Ctrl+C").

    *ignore_sigint* starts it as a shell without job control starts a background job:
    with SIGINT ignored, which Python inherits.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "kratos_aal", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        if ignore_sigint
        else None,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "Press Ctrl+C" in line:
            break
    return process, "".join(lines)


def stop(process: subprocess.Popen[str], sig: int = signal.SIGINT) -> str:
    process.send_signal(sig)
    try:
        out, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()  # never leave a server behind for the next test's ports
            process.communicate()
    assert process.returncode == 0, out
    return out


@pytest.mark.parametrize(
    ("command", "sig", "ignore_sigint"),
    [
        ("fake", signal.SIGINT, True),
        ("fake", signal.SIGTERM, False),
        ("demo", signal.SIGINT, True),
        ("demo", signal.SIGTERM, False),
    ],
)
def test_servers_stop_on_ctrl_c_and_sigterm(command: str, sig: int, ignore_sigint: bool) -> None:
    # Ctrl+C even when started in the background with SIGINT ignored; SIGTERM as
    # `docker stop` or a process manager sends it: either way a clean stop, exit 0.
    ports = ["--port", "0", "--admin-port", "0"] if command == "fake" else ["--port", "0"]
    if command == "demo":
        ports += ["--kratos-port", "0"]
    process, _ = start_command(command, *ports, "--no-qr", ignore_sigint=ignore_sigint)
    assert "Stopped." in stop(process, sig)


def test_demo_command_serves_the_story() -> None:
    process, text = start_command("demo", "--port", "0", "--kratos-port", "0", "--no-qr")
    try:
        app = re.search(r"App\s+(http://127\.0\.0\.1:\d+)/", text)
        kratos_url = re.search(r"Kratos\s+(http://127\.0\.0\.1:\d+)", text)
        assert app and kratos_url, text
        assert "ada@example.com" in text and "bob@example.com" in text
        assert f"TOTP secret {ADA_TOTP_SECRET}" in text  # fixed: a scanned phone keeps working
        assert f"curl -H 'Accept: application/json' {app[1]}/api/balance" in text
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
        out = stop(process)
    assert "Stopped." in out


def test_fake_command_serves_fakekratos_for_an_app() -> None:
    process, text = start_command(
        "fake",
        "--port",
        "0",
        "--admin-port",
        "0",
        "--app-url",
        "http://127.0.0.1:8123",
        "--allow-return-url",
        "http://localhost:3000",
        "--allow-return-url",
        "https://staging.example",
        "--no-qr",
    )
    try:
        found = re.search(r"Kratos\s+(http://127\.0\.0\.1:\d+)", text)
        assert found, text
        kratos_url = found[1]
        assert f"KRATOS_PUBLIC_URL={kratos_url}" in text
        assert "ada@example.com" in text and f"TOTP secret {ADA_TOTP_SECRET}" in text
        assert "Scan for" not in text
        with httpx.Client(follow_redirects=False, timeout=10) as http:
            for allowed in (
                "http://127.0.0.1:8123/billing",
                "http://localhost:3000/x",
                "https://staging.example/",
            ):
                reply = http.get(
                    f"{kratos_url}/self-service/login/browser", params={"return_to": allowed}
                )
                assert reply.headers["location"].startswith(f"{kratos_url}/ui/login?flow="), allowed
            refused = http.get(
                f"{kratos_url}/self-service/login/browser",
                params={"return_to": "http://127.0.0.1:9999/"},
                headers={"Accept": "application/json"},
            )
            assert refused.status_code == 400
            assert refused.json()["error"]["id"] == "self_service_flow_return_to_forbidden"
            # The demo users can sign in (the fake's login API flow). An API flow refuses
            # requests that carry cookies, as Kratos does: drop the browser flows' ones.
            http.cookies.clear()
            flow = http.get(f"{kratos_url}/self-service/login/api").json()
            done = http.post(
                flow["ui"]["action"],
                json={
                    "method": "password",
                    "identifier": "bob@example.com",
                    "password": "bob-demo-password",
                },
            )
            assert done.status_code == 200 and done.json()["session_token"]
            # The admin API answers on its own port, as Kratos's does, and not on the public one.
            admin = re.search(r"Admin\s+(http://127\.0\.0\.1:\d+)", text)
            assert admin, text
            assert f"KRATOS_ADMIN_URL={admin[1]}" in text
            identities = http.get(f"{admin[1]}/admin/identities")
            assert identities.status_code == 200
            emails = sorted(i["traits"]["email"] for i in identities.json())
            assert emails == ["ada@example.com", "bob@example.com"]
            # The public port sends the admin routes there (x/redir/port_redirect.go).
            moved = http.get(f"{kratos_url}/admin/identities")
            assert moved.status_code == 307
            assert moved.headers["location"] == f"{admin[1]}/admin/identities"
            # A Docker-style health check (curl -f on the admin /health/ready) passes.
            for path in ("/health/ready", "/health/alive"):
                health = http.get(f"{admin[1]}{path}")
                health.raise_for_status()
                assert health.json() == {"status": "ok"}
            # Only the demo moves the clock: FakeKratos alone has no such control.
            clock = http.post(f"{kratos_url}/ui/clock", data={"seconds": "600"})
            assert clock.status_code == 404
    finally:
        out = stop(process)
    assert "Stopped." in out


def test_fake_command_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # While the command waits, look at what it serves, then stop it as Ctrl+C would.
    out = io.StringIO()
    seen: list[int] = []
    real_sleep = time.sleep

    def visit(seconds: float) -> None:
        if "Press Ctrl+C" not in out.getvalue():  # uvicorn is still starting
            real_sleep(seconds)
            return
        url = re.search(r"Kratos\s+(http://127\.0\.0\.1:\d+)", out.getvalue())
        assert url, out.getvalue()
        seen.append(httpx.get(f"{url[1]}/health/alive", timeout=10).status_code)
        raise KeyboardInterrupt

    monkeypatch.setattr("kratos_aal._cli_serve.time.sleep", visit)
    command = ["fake", "--port", "0", "--admin-port", "0", "--app-url", "http://127.0.0.1:8123/"]
    assert main(command, out=out) == 0
    assert seen == [200]
    text = out.getvalue()
    assert "App      http://127.0.0.1:8123/ " in text
    assert "Scan for ada's codes:" in text  # the QR code, unless --no-qr
    assert text.rstrip().endswith("Stopped.")


@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("fake", "--port"),
        ("fake", "--admin-port"),
        ("demo", "--port"),
        ("demo", "--kratos-port"),
    ],
)
def test_a_taken_port_is_a_message_naming_the_option(command: str, option: str) -> None:
    """A port in use (a demo still running elsewhere) says which option to change."""
    taken = reserve_port()
    free = {"fake": ["--port", "--admin-port"], "demo": ["--port", "--kratos-port"]}[command]
    try:
        port = str(taken.getsockname()[1])
        ports = {**dict.fromkeys(free, "0"), option: port}
        result = subprocess.run(
            [sys.executable, "-m", "kratos_aal", command, *ports_args(ports), "--no-qr"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        taken.close()
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"kratos-aal: cannot listen on 127.0.0.1:{port} ("), result
    assert f"Choose another port with {option} (0 picks a free one)" in result.stderr
    assert "Press Ctrl+C" not in result.stdout  # nothing was served


NAMES = {"starlette": "Starlette", "fastapi": "FastAPI", "flask": "Flask", "django": "Django"}


# The Django demo keeps its linked users (request.user) in the test database.
DJANGO_DB = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "framework", ["starlette", "fastapi", "flask", pytest.param("django", marks=DJANGO_DB)]
)
def test_demo_runs_every_framework(framework: str) -> None:
    from kratos_aal._demo import banner, run_demo

    slash = "/" if framework == "django" else ""
    html = {"Accept": "text/html"}
    with run_demo(framework, port=0, kratos_port=0) as demo, httpx.Client(timeout=10) as browser:
        assert f"per-route AAL on a {NAMES[framework]} app" in banner(demo, qr=False)
        # Every path the banner names is the app's own spelling (Django's end with a slash).
        paths = re.findall(r"/(?:account|billing|api)[\w/]*", banner(demo, qr=False))
        assert len(paths) == 6 and {p.endswith("/") for p in paths} == {framework == "django"}
        home = browser.get(f"{demo.app_url}/", headers=html)
        assert home.status_code == 200
        assert f"A {NAMES[framework]} app protected by kratos-aal" in home.text
        assert "Not signed in." in home.text
        assert f"{demo.kratos_url}/ui/clock" in home.text  # the clock button
        for path in ("/billing", "/billing/transfer", "/account", "/api/balance"):
            redirect = browser.get(
                f"{demo.app_url}{path}{slash}", headers=html, follow_redirects=False
            )
            assert redirect.status_code == 303, path
            assert redirect.headers["location"].startswith(
                f"{demo.kratos_url}/self-service/login/browser?"
            ), path
        # DRF's pages name no icon, so browsers ask for one: no 404 (Django printed
        # "Not Found: /favicon.ico" into the story). The other pages name a data: icon.
        if framework == "django":
            assert browser.get(f"{demo.app_url}/favicon.ico").status_code == 204
        # The README's curl, as written, on every framework: Kratos's JSON 401, no redirect.
        api = browser.get(
            f"{demo.app_url}/api/balance",
            headers={"Accept": "application/json"},
            follow_redirects=False,
        )
        assert api.status_code == 401, api
        assert api.json()["error"]["id"] == "session_inactive"
        # Signed in at aal2: the home page says who, how, and offers Sign out.
        ada = next(i for i in demo.fake.identities.values() if i.email == "ada@example.com")
        session = demo.fake.session("aal2", identity=ada)
        cookie = {"Cookie": session.cookie_header, **html}
        home = browser.get(f"{demo.app_url}/", headers=cookie)
        assert "ada@example.com · Signed in at <b>aal2</b>" in home.text
        assert f'href="/logout{slash}">Sign out' in home.text
        # Account settings: Kratos's settings page, coming back home with a note that says
        # why a removed authenticator leaves the session at aal2 (as Kratos does).
        assert f'href="/settings{slash}">Account settings' in home.text
        to_settings = browser.get(
            f"{demo.app_url}/settings{slash}", headers=cookie, follow_redirects=False
        )
        assert to_settings.status_code == 303
        back = quote(f"{demo.app_url}/?settings=saved", safe="")
        assert to_settings.headers["location"] == (
            f"{demo.kratos_url}/self-service/settings/browser?return_to={back}"
        )
        noted = browser.get(f"{demo.app_url}/?settings=saved", headers=cookie).text
        assert "a session keeps the level it was signed in at until it is renewed" in noted
        assert "Sign out and in again to see the difference" in noted
        assert "keeps the level" not in home.text
        transfer = browser.get(f"{demo.app_url}/billing/transfer{slash}", headers=cookie)
        assert "Second factor used in the last 5 minutes." in transfer.text
        balance = browser.get(
            f"{demo.app_url}/api/balance{slash}",
            headers={"Cookie": session.cookie_header, "Accept": "application/json"},
        )
        assert balance.json()["balance"] == 42
        logout = browser.get(
            f"{demo.app_url}/logout{slash}", headers=cookie, follow_redirects=False
        )
        assert logout.status_code == 303
        assert logout.headers["location"].startswith(f"{demo.kratos_url}/self-service/logout?")


@DJANGO_DB
def test_django_login_url_leads_to_kratos_login() -> None:
    from kratos_aal._demo import run_demo

    with run_demo("django", port=0, kratos_port=0) as demo, httpx.Client(timeout=10) as browser:
        html = {"Accept": "text/html"}
        wall = browser.get(f"{demo.app_url}/django-only/", headers=html)
        assert wall.status_code == 302  # Django's own login wall, to LOGIN_URL
        assert wall.headers["location"] == "/login/?next=/django-only/"
        login = browser.get(f"{demo.app_url}{wall.headers['location']}", headers=html)
        assert login.status_code == 303
        assert login.headers["location"].startswith(
            f"{demo.kratos_url}/self-service/login/browser?return_to="
        )
        ada = next(i for i in demo.fake.identities.values() if i.email == "ada@example.com")
        signed_in = {"Cookie": demo.fake.session("aal1", identity=ada).cookie_header, **html}
        # Signed in to Kratos, the Django user is there: Django's wall lets the person by.
        user_area = browser.get(f"{demo.app_url}/django-only/", headers=signed_in)
        assert user_area.status_code == 200
        assert f"Django user area, for {ada.id}" in user_area.text


@DJANGO_DB
def test_django_demo_serves_the_browsable_apis_styles() -> None:
    """DRF's browsable API is styled: its stylesheets answer, to anyone, as under runserver."""
    from kratos_aal._demo import run_demo

    with run_demo("django", port=0, kratos_port=0) as demo, httpx.Client(timeout=10) as browser:
        index = browser.get(f"{demo.app_url}/api/", headers={"Accept": "text/html"})
        assert index.status_code == 200
        sheets = re.findall(r'<link rel="stylesheet" type="text/css" href="([^"]+)"', index.text)
        assert "/static/rest_framework/css/bootstrap.min.css" in sheets
        for sheet in sheets:
            answer = browser.get(f"{demo.app_url}{sheet}")
            assert (answer.status_code, answer.headers["content-type"]) == (200, "text/css")


def test_demo_rejects_unknown_framework() -> None:
    from kratos_aal._demo import run_demo

    with pytest.raises(ValueError, match="framework"), run_demo("bottle", port=0, kratos_port=0):
        pass


def ports_args(ports: dict[str, str]) -> list[str]:
    return [part for option, port in ports.items() for part in (option, port)]


@pytest.mark.parametrize(
    ("argv", "absent", "line"),
    [
        pytest.param(
            ["fake"],
            {"pyotp"},
            'needs the extra testing: pip install "kratos-aal[testing]"',
            id="fake-no-pyotp",
        ),
        pytest.param(
            ["fake"],
            {"pyotp", "uvicorn"},
            'pip install "kratos-aal[testing]"',
            id="fake-no-testing",
        ),
        pytest.param(
            ["demo", "--framework", "django"],
            {"rest_framework"},
            'demo --framework django needs the extra drf: pip install "kratos-aal[drf]"',
            id="django-demo-no-drf",
        ),
        pytest.param(
            ["demo", "--framework", "fastapi"],
            {"fastapi", "segno"},
            'needs the extras fastapi,testing: pip install "kratos-aal[fastapi,testing]"',
            id="fastapi-demo-bare",
        ),
        pytest.param(
            ["demo"], {"starlette"}, 'pip install "kratos-aal[starlette]"', id="starlette-demo"
        ),
    ],
)
def test_a_missing_extra_is_one_line_naming_the_install(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    absent: set[str],
    line: str,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in absent else real(name, *a)
    )
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert line in err
    assert "Traceback" not in err


def test_an_import_error_past_the_checks_is_one_line_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:

    def broken(args: object, out: object) -> int:
        raise ModuleNotFoundError("No module named 'segno'", name="segno")

    parser = cli.parser()
    monkeypatch.setattr(cli, "parser", lambda: parser)
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        action.choices["fake"].set_defaults(run=broken)  # type: ignore[index]
    assert cli.main(["fake"]) == 2
    err = capsys.readouterr().err
    assert err == 'kratos-aal: fake needs the extra testing: pip install "kratos-aal[testing]"\n'

    def other(args: object, out: object) -> int:
        raise ModuleNotFoundError("No module named 'nothing_of_ours'", name="nothing_of_ours")

    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        action.choices["fake"].set_defaults(run=other)  # type: ignore[index]
    with pytest.raises(ModuleNotFoundError):
        cli.main(["fake"])


# ---------------------------------------------------------------------------- exposure


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST.", "::ffff:127.0.0.1"],
)
def test_loopback_needs_no_warning(host: str) -> None:
    assert _cli_serve.exposure_warning(host, "fake") is None
    assert _cli_serve.exposure_warning(host, "demo") is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.20", "10.0.0.1", "myhost"])
def test_any_other_address_gets_a_warning_naming_what_it_exposes(host: str) -> None:
    warning = _cli_serve.exposure_warning(host, "fake")
    assert warning is not None
    assert warning.startswith(f"WARNING: kratos-aal fake listens on {host!r}, not on loopback")
    for exposed in ("passwords", "TOTP secret", "open registration", "admin API with no token"):
        assert exposed in warning
    demo = _cli_serve.exposure_warning(host, "demo")
    assert demo is not None
    assert "passwords" in demo
    assert "admin API" not in demo  # the demo serves none


@pytest.mark.parametrize("command", ["fake", "demo"])
def test_the_command_prints_the_warning_before_it_listens(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing is bound: the first reserve() stops the command once the warning is out.
    def refuse(host: str, port: int, option: str) -> Any:
        assert "WARNING" in capsys.readouterr().err  # already printed
        raise ConfigurationError(f"cannot listen on {host}:{port} (in this test)")

    monkeypatch.setattr("kratos_aal._demo.reserve", refuse)
    assert main([command, "--host", "0.0.0.0", "--no-qr"], out=io.StringIO()) == 2
    assert "cannot listen on 0.0.0.0" in capsys.readouterr().err


def test_loopback_commands_print_no_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(host: str, port: int, option: str) -> Any:
        raise ConfigurationError("stop here")

    monkeypatch.setattr("kratos_aal._demo.reserve", refuse)
    assert main(["fake", "--no-qr"], out=io.StringIO()) == 2
    assert "WARNING" not in capsys.readouterr().err
