"""The ``kratos-aal`` command: ``demo``, ``fake``, ``whoami`` and ``doctor``."""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import os
import signal
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, TextIO

import httpx

from ._client import KratosClient
from ._config import KratosConfig
from ._credentials import Credentials
from ._decision import Requirement
from ._demo import FRAMEWORKS
from ._models import Session
from ._tiers import check_cache_tiers
from .exceptions import ConfigurationError, KratosAALError

#: Kratos's error ids and UI message ids, in plain words.
EXPLANATIONS: dict[str, str] = {
    "session_aal1_required": (
        "A login flow was started with aal=aal2 for a browser that has no session at all. Kratos "
        "only steps up a session that exists, so send users without a session to plain login "
        "(/self-service/login/browser?return_to=...) first; kratos-aal does so (outcome LOGIN)."
    ),
    "session_aal2_required": (
        "The session exists but has only one factor, while the identity has a second one. Whoami "
        "answers so when Kratos runs with session.whoami.required_aal: highest_available (its "
        "default): every aal1 session of a user with 2FA looks like this, even on routes that "
        "need no more. For per-route step-up set session.whoami.required_aal: aal1 and let "
        "kratos-aal decide per route; send the user to /self-service/login/browser?aal=aal2."
    ),
    "session_refresh_required": (
        "The session is older than the action allows (Kratos's privileged_session_max_age for "
        "settings, or a route's max_age in kratos-aal). The user must confirm who they are: "
        "/self-service/login/browser?refresh=true (with aal=aal2 for a second factor)."
    ),
    "browser_location_change_required": (
        "A browser flow was submitted with a JSON request (an SPA) and Kratos needs the browser "
        "itself to go on elsewhere, for example to aal2 after a password login. This is a 422 "
        "with redirect_browser_to: set window.location to it; do not treat it as an error."
    ),
    "4000011": (
        "'You have no TOTP device set up.' The login flow asked for a second factor the identity "
        "does not have: a step-up page that can only fail. Users without a second factor must "
        "set one up first (/self-service/settings/browser); kratos-aal sends them there "
        "(outcome ENROLL) instead of to step-up."
    ),
    "session_already_available": (
        "A login flow was started for a browser that already has a session meeting the requested "
        "AAL. Add refresh=true to re-authenticate, or aal=aal2 to step up an aal1 session."
    ),
    "self_service_flow_return_to_forbidden": (
        "return_to is not in selfservice.allowed_return_urls. Add your app's origin (for example "
        "https://app.example.com/) to that list in kratos.yml."
    ),
    "security_csrf_violation": (
        "The flow's CSRF cookie did not come back with the form. Usually the Kratos cookies are "
        "set for another domain than the one the browser uses (serve.public.base_url vs. the "
        "browser URL), or a proxy drops cookies."
    ),
    "session_inactive": "There is no active session: the user must log in.",
}


def _age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "unknown"
    seconds = int((moment - now).total_seconds())
    span = abs(seconds)
    text = (
        f"{span // 3600} h {span % 3600 // 60} min"
        if span >= 3600
        else f"{span // 60} min {span % 60} s"
    )
    stamp = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{stamp} (in {text})" if seconds >= 0 else f"{stamp} ({text} ago)"


def describe_session(session: Session, now: datetime) -> list[str]:
    """Return the lines ``whoami`` prints for *session* (no secret in them)."""
    identity = session.identity
    email = identity.traits.get("email") if identity else None
    lines = [
        f"Session     {session.id} ({'active' if session.active else 'inactive'})",
        f"Identity    {identity.id if identity else '(not shown)'}"
        + (f" <{email}>" if email else ""),
        f"AAL         {session.aal.value}",
        f"Expires     {_age(session.expires_at, now)}",
        "Methods",
    ]
    for method in session.authentication_methods:
        provider = f" via {method.provider}" if method.provider else ""
        lines.append(
            f"  {method.method:<14} {method.aal.value}  {_age(method.completed_at, now)}{provider}"
        )
    if not session.authentication_methods:
        lines.append("  (none)")
    return lines


#: What to say when whoami withholds an aal1 session: the Kratos setting behind it.
HIGHEST_AVAILABLE = (
    "Kratos's session.whoami.required_aal is highest_available; set it to aal1 "
    "(docs/kratos.md), so that aal1 routes accept a password session and kratos-aal asks for "
    "the second factor per route"
)


def _url_argument(url: str | None, option: str = "--url") -> str:
    """Check *url* before any request, naming what is wrong with it."""
    if not url:
        raise ConfigurationError(
            f"{option} is needed: Kratos's public URL (or set KRATOS_PUBLIC_URL)"
        )
    if "://" not in url:
        raise ConfigurationError(
            f"{option} {url!r} has no scheme: add http:// (http://{url}) or https://"
        )
    return url


def cmd_whoami(args: argparse.Namespace, out: TextIO) -> int:
    _url_argument(args.url)
    config = KratosConfig(
        public_url=args.url,
        browser_url=args.browser_url,
        cookie_name=args.cookie_name,
        timeout=args.timeout,
        cache_ttl=0,
        admin_url=args.admin_url,
    )
    credentials = Credentials(cookie=args.cookie, token=args.token)
    requirement = Requirement(args.require, max_age=args.max_age)
    with KratosClient(config) as client:
        decision = client.check(credentials, requirement, args.return_to)
    now = datetime.now(timezone.utc)
    if decision.session is not None:
        for line in describe_session(decision.session, now):
            print(line, file=out)
    elif decision.outcome.value == "unavailable":
        print("Session     unknown: Kratos did not answer (or answered oddly)", file=out)
    else:
        print(
            "Session     none: Kratos knows no active session for this credential"
            if decision.outcome.value == "login"
            else "Session     withheld: Kratos wants a second factor first (session_aal2_required)",
            file=out,
        )
        if decision.outcome.value == "step_up" and requirement.aal.value == "aal1":
            print(f"Cause       {HIGHEST_AVAILABLE}", file=out)
    rule = f"{requirement.aal.value}" + (
        f", max_age {int(requirement.max_age)} s" if requirement.max_age else ""
    )
    print(f"\nDecision for {rule}: {decision.outcome.name}", file=out)
    if decision.redirect_to:
        print(f"Redirect    {decision.redirect_to}", file=out)
    if decision.retry_after:
        print(f"Retry-After {decision.retry_after} s (the middleware answers 503)", file=out)
    return 0 if decision.outcome.value != "unavailable" else 2


class _Doctor:
    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.args = args
        self.url = args.url.rstrip("/")
        self.browser_url = (args.browser_url or args.url).rstrip("/")
        self.out = out
        self.problems = 0
        self.seen: set[str] = set()
        self.timeout = args.timeout
        self.http = httpx.Client(timeout=args.timeout, follow_redirects=False)

    def say(self, mark: str, text: str) -> None:
        print(f"{mark} {text}", file=self.out)

    def problem(self, text: str) -> None:
        self.problems += 1
        self.say("✗", text)

    def explain(self, error_id: str | None) -> None:
        if error_id and error_id in EXPLANATIONS and error_id not in self.seen:
            self.seen.add(error_id)
            print(f"    {error_id}: {EXPLANATIONS[error_id]}", file=self.out)

    def get(self, path: str, **kwargs: Any) -> httpx.Response | None:
        try:
            return self.http.get(f"{self.url}{path}", **kwargs)
        except httpx.HTTPError as error:
            self.problem(
                f"GET {path}: Kratos did not answer ({type(error).__name__}) at {self.url}"
            )
            return None

    def run(self) -> int:
        alive = self.get("/health/alive")
        if alive is None:
            self.say(" ", "Is Kratos running, and is --url its public API (port 4433 by default)?")
            return 2
        if alive.status_code == 200:
            self.say("✓", f"Kratos answers at {self.url}")
        else:
            self.problem(
                f"/health/alive answered {alive.status_code}: is {self.url} Kratos's public API?"
            )
        self.check_whoami()
        self.check_required_aal()
        self.check_browser_urls()
        self.check_aal2_without_session()
        check_cache_tiers(self, self.url, self.timeout)
        verdict = "no problems found" if not self.problems else f"{self.problems} problem(s) found"
        self.say("", f"\n{verdict}")
        return 0 if not self.problems else 1

    def check_whoami(self) -> None:
        response = self.get("/sessions/whoami", headers={"Accept": "application/json"})
        if response is None:
            return
        body = _body(response)
        if response.status_code == 401 and isinstance(body, dict) and "error" in body:
            self.say("✓", "whoami without a session answers 401, as Kratos does")
        else:
            self.problem(
                f"whoami without a session answered {response.status_code}, not 401: "
                "is a proxy in front of Kratos rewriting answers?"
            )

    def check_required_aal(self) -> None:
        """With an aal1 session of a user who has a second factor, spot highest_available."""
        if not (self.args.cookie or self.args.token):
            return
        headers = {"Accept": "application/json"}
        if self.args.token:
            headers["X-Session-Token"] = self.args.token
        else:
            headers["Cookie"] = f"{self.args.cookie_name}={self.args.cookie}"
        response = self.get("/sessions/whoami", headers=headers)
        if response is None:
            return
        body = _body(response)
        error_id = _error_id(body)
        if response.status_code == 403 and error_id == "session_aal2_required":
            self.problem(HIGHEST_AVAILABLE)
            self.explain(error_id)
        elif response.status_code == 200 and isinstance(body, dict):
            self.say(
                "✓",
                f"whoami hands out the session at {body.get('authenticator_assurance_level')}: required_aal is aal1",
            )
        elif response.status_code == 401:
            self.problem("the --cookie or --token given is no active session (whoami answered 401)")
        else:
            self.problem(f"whoami with the session answered {response.status_code}")
            self.explain(error_id)

    def check_browser_urls(self) -> None:
        response = self.get("/self-service/login/browser", headers={"Accept": "application/json"})
        if response is None:
            return
        body = _body(response)
        action = body.get("ui", {}).get("action") if isinstance(body, dict) else None
        if response.status_code != 200 or not isinstance(action, str):
            self.problem(f"could not create a login flow (answered {response.status_code})")
            self.explain(_error_id(body))
            return
        if action.startswith(f"{self.browser_url}/self-service/"):
            self.say("✓", f"URLs Kratos hands to browsers use the browser URL ({self.browser_url})")
            return
        base = action.split("/self-service/")[0]
        self.problem(
            f"Kratos hands browsers URLs on {base}, not on {self.browser_url}: "
            "browsers cannot follow them (the http://kratos:4433 trap)."
        )
        print(
            f"    Set serve.public.base_url in kratos.yml to {self.browser_url}/, "
            "or pass the URL browsers use as --browser-url if this one is internal.",
            file=self.out,
        )

    def check_aal2_without_session(self) -> None:
        response = self.get(
            "/self-service/login/browser",
            params={"aal": "aal2"},
            headers={"Accept": "application/json"},
        )
        if response is None:
            return
        error_id = _error_id(_body(response))
        if response.status_code == 401 and error_id == "session_aal1_required":
            self.say(
                "✓",
                "aal=aal2 without a session is refused with session_aal1_required, as expected:",
            )
            self.explain(error_id)
        else:
            self.say(
                "?", f"aal=aal2 without a session answered {response.status_code} {error_id or ''}"
            )


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_id(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("id") if isinstance(error, dict) else None


def cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    if args.explain:
        key = args.explain.strip()
        if key not in EXPLANATIONS:
            print(f"No explanation for {key!r}; known: {', '.join(sorted(EXPLANATIONS))}", file=out)
            return 1
        print(f"{key}: {EXPLANATIONS[key]}", file=out)
        return 0
    if not args.url:
        print(
            "doctor needs --url (Kratos's public URL; or set KRATOS_PUBLIC_URL), or --explain ID",
            file=out,
        )
        return 2
    _url_argument(args.url)
    if args.browser_url:
        _url_argument(args.browser_url, "--browser-url")
    doctor = _Doctor(args, out)
    try:
        return doctor.run()
    finally:
        doctor.http.close()


#: The module each extra brings that a command imports, in the order to name them.
EXTRA_OF_MODULE = {
    "starlette": "starlette",
    "fastapi": "fastapi",
    "flask": "flask",
    "jinja2": "jinja2",
    "django": "django",
    "asgiref": "django",
    "rest_framework": "drf",
    "pyotp": "testing",
    "segno": "testing",
    "uvicorn": "testing",
    "redis": "redis",
    "opentelemetry": "otel",
}
#: What ``kratos-aal fake`` runs on (FakeKratos, its QR codes, the server).
FAKE_NEEDS = ("pyotp", "segno", "uvicorn")
#: What ``kratos-aal demo --framework X`` runs on, beyond FAKE_NEEDS: the Django example
#: has a Django REST framework API beside its pages; the Starlette and FastAPI examples
#: render their bank details with Jinja2 (Flask brings it).
DEMO_NEEDS = {
    "starlette": ("starlette", "jinja2"),
    "fastapi": ("fastapi", "starlette", "jinja2"),
    "flask": ("flask",),
    "django": ("django", "asgiref", "rest_framework"),
}


def missing_extras(modules: Sequence[str]) -> list[str]:
    """Name the extras that would bring the *modules* that cannot be imported."""
    extras: list[str] = []
    for module in modules:
        extra = EXTRA_OF_MODULE[module]
        if extra not in extras and importlib.util.find_spec(module) is None:
            extras.append(extra)
    return extras


def _install_line(command: str, extras: Sequence[str]) -> str:
    names = ",".join(extras)
    return f'kratos-aal: {command} needs the extra{"s" if len(extras) > 1 else ""} {names}: pip install "kratos-aal[{names}]"'


def exposure_warning(host: str, command: str) -> str | None:
    """Return the warning for serving *command*'s FakeKratos on *host*, ``None`` on loopback.

    Only loopback is private: ``0.0.0.0``, ``::``, a LAN address or a host name (it may
    resolve anywhere) is reachable by others, who meet the fake's open doors.
    """
    if _is_loopback(host):
        return None
    admin = (
        ", and an admin API with no token that lists every identity and session"
        if command == "fake"
        else ", and a button that moves the fake's clock"
    )
    return (
        f"WARNING: kratos-aal {command} listens on {host!r}, not on loopback: anyone who can "
        f"reach this address gets FakeKratos's demo users and their printed passwords, a "
        f"TOTP secret that is the same on every run, open registration{admin}. It is for "
        f"development only; use --host 127.0.0.1 unless you mean that."
    )


def _is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False  # a name other than localhost, or "" (every interface)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _warn_if_exposed(host: str, command: str) -> None:
    warning = exposure_warning(host, command)
    if warning is not None:
        print(warning, file=sys.stderr, flush=True)


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    extras = missing_extras((*DEMO_NEEDS[args.framework], *FAKE_NEEDS))
    if extras:
        print(_install_line(f"demo --framework {args.framework}", extras), file=sys.stderr)
        return 2
    from ._demo import banner, run_demo

    _warn_if_exposed(args.host, "demo")

    with run_demo(
        args.framework, host=args.host, port=args.port, kratos_port=args.kratos_port
    ) as demo:
        _serve_until_stopped(banner(demo, qr=not args.no_qr), out)
    return 0


def cmd_fake(args: argparse.Namespace, out: TextIO) -> int:
    extras = missing_extras(FAKE_NEEDS)
    if extras:
        print(_install_line("fake", extras), file=sys.stderr)
        return 2
    from ._demo import demo_fake, reserve, user_lines
    from .testing import serve
    from .testing._serve import url_of

    _warn_if_exposed(args.host, "fake")

    sock = reserve(args.host, args.port, "--port")
    try:
        admin_sock = reserve(args.host, args.admin_port, "--admin-port")
    except ConfigurationError:
        sock.close()
        raise
    kratos_url, admin_url = url_of(sock), url_of(admin_sock)
    fake, users = demo_fake(kratos_url, args.app_url, args.allow_return_url, admin_url)
    allowed = [fake.app_url.rstrip("/"), *args.allow_return_url]
    lines = [
        "kratos-aal fake: FakeKratos with its login and settings pages, for developing an app",
        "",
        f"  Kratos   {kratos_url}   (run your app with KRATOS_PUBLIC_URL={kratos_url})",
        f"  Admin    {admin_url}   (Kratos's admin API: KRATOS_ADMIN_URL={admin_url})",
        f'  App      {fake.app_url}   (where "Back to the app" and sign-out lead)',
        f"  Allowed return URLs   {', '.join(allowed)}",
        "",
        *user_lines(users, qr=not args.no_qr),
        "",
        "  Sessions, identities and TOTP pairings live in memory: they end with this process.",
        "  Press Ctrl+C to stop.",
    ]
    with serve(fake, sock=sock), serve(fake.admin_app, sock=admin_sock):
        _serve_until_stopped("\n".join(lines), out)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _serve_until_stopped(banner: str, out: TextIO) -> None:
    """Print *banner*, then wait until Ctrl+C or SIGTERM (``docker stop``), and say so.

    Both are set here, before the banner invites them: a process started in the
    background by a shell without job control inherits SIGINT ignored, and Python then
    never turns it into KeyboardInterrupt.
    """
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(banner, file=out, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nStopped.", file=out)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="kratos-aal",
        description="Per-route Ory Kratos AAL for Python web apps: a demo, and tools to check a session and a Kratos set-up.",
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run an example app with an embedded FakeKratos and watch step-up work",
        description="Serve an example app protected by kratos-aal on --port and a FakeKratos with its "
        "login and settings pages on --kratos-port, both on loopback. Open the app URL it prints.",
    )
    demo.add_argument(
        "--framework",
        choices=FRAMEWORKS,
        default="starlette",
        help="which example app to serve (default: starlette)",
    )
    demo.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    demo.add_argument(
        "--port", type=int, default=8000, help="app port (default: 8000; 0 picks a free one)"
    )
    demo.add_argument(
        "--kratos-port", type=int, default=4433, help="FakeKratos port (default: 4433)"
    )
    demo.add_argument(
        "--no-qr", action="store_true", help="do not print the QR code of the demo user's TOTP"
    )
    demo.set_defaults(run=cmd_demo)

    fake = commands.add_parser(
        "fake",
        help="run FakeKratos alone, with its UI and the demo users, beside your own app",
        description="Serve FakeKratos (login, second factor, TOTP pairing, logout, whoami) with the "
        "demo users on --host:--port, for developing an app before a real Kratos exists. Point "
        "the app's KRATOS_PUBLIC_URL at it. Everything lives in memory.",
    )
    fake.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    fake.add_argument(
        "--port", type=int, default=4433, help="port (default: 4433, Kratos's public port)"
    )
    fake.add_argument(
        "--admin-port",
        type=int,
        default=4434,
        help="port of the admin API (default: 4434, Kratos's admin port; 0 picks a free one)",
    )
    fake.add_argument(
        "--app-url",
        default="http://127.0.0.1:8000",
        help="your app's URL: where people go back to after login or sign-out, and an "
        "allowed return URL (default: http://127.0.0.1:8000)",
    )
    fake.add_argument(
        "--allow-return-url",
        action="append",
        default=[],
        metavar="URL",
        help="another URL (a prefix) that return_to may point at; repeat for several",
    )
    fake.add_argument(
        "--no-qr", action="store_true", help="do not print the QR code of the demo user's TOTP"
    )
    fake.set_defaults(run=cmd_fake)

    whoami = commands.add_parser(
        "whoami",
        help="show a session and the decision the middleware would take",
        description="Ask Kratos's /sessions/whoami about one session cookie or token, print the session "
        "(AAL, methods and when they were completed, expiry), and the decision kratos-aal would take for "
        "--require (and --max-age), with the URL the browser would be sent to. Never prints the credential.",
    )
    whoami.add_argument(
        "--url",
        default=os.environ.get("KRATOS_PUBLIC_URL"),
        help="Kratos's public URL, e.g. http://127.0.0.1:4433 (default: $KRATOS_PUBLIC_URL)",
    )
    credential = whoami.add_mutually_exclusive_group(required=True)
    credential.add_argument("--cookie", help="the value of the Kratos session cookie")
    credential.add_argument("--token", help="a session token (ory_st_...)")
    whoami.add_argument(
        "--require", default="aal2", help="the route's AAL: aal1 or aal2 (default: aal2)"
    )
    whoami.add_argument("--max-age", type=float, help="the route's max_age in seconds")
    whoami.add_argument(
        "--browser-url",
        default=os.environ.get("KRATOS_BROWSER_URL"),
        help="Kratos's URL as browsers reach it (default: $KRATOS_BROWSER_URL, else --url)",
    )
    whoami.add_argument(
        "--cookie-name",
        default=os.environ.get("KRATOS_COOKIE_NAME", "ory_kratos_session"),
        help="the session cookie's name (default: $KRATOS_COOKIE_NAME, else ory_kratos_session)",
    )
    whoami.add_argument(
        "--admin-url",
        default=os.environ.get("KRATOS_ADMIN_URL"),
        help="Kratos's admin URL, to tell whether the identity has a second factor "
        "(default: $KRATOS_ADMIN_URL)",
    )
    whoami.add_argument("--return-to", default=None, help="where the browser should come back to")
    whoami.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for Kratos (default: 5)"
    )
    whoami.set_defaults(run=cmd_whoami)

    doctor = commands.add_parser(
        "doctor",
        help="check a Kratos set-up for the usual step-up traps",
        description="Check that Kratos answers, that the URLs it hands to browsers use the browser URL "
        "(the http://kratos:4433 trap), and explain the Kratos errors it meets in plain words.",
    )
    doctor.add_argument(
        "--url",
        default=os.environ.get("KRATOS_PUBLIC_URL"),
        help="Kratos's public URL as this machine reaches it (default: $KRATOS_PUBLIC_URL)",
    )
    doctor.add_argument(
        "--browser-url",
        default=os.environ.get("KRATOS_BROWSER_URL"),
        help="Kratos's URL as browsers reach it (default: $KRATOS_BROWSER_URL, else --url)",
    )
    doctor_credential = doctor.add_mutually_exclusive_group()
    doctor_credential.add_argument(
        "--cookie",
        help="the session cookie of a user with a second factor, signed in with one factor: "
        "tells whether Kratos withholds aal1 sessions (required_aal: highest_available)",
    )
    doctor_credential.add_argument("--token", help="the same, as a session token (ory_st_...)")
    doctor.add_argument(
        "--cookie-name",
        default=os.environ.get("KRATOS_COOKIE_NAME", "ory_kratos_session"),
        help="the session cookie's name (default: $KRATOS_COOKIE_NAME, else ory_kratos_session)",
    )
    doctor.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for Kratos (default: 5)"
    )
    doctor.add_argument(
        "--explain", metavar="ID", help=f"explain one error id: {', '.join(EXPLANATIONS)}"
    )
    doctor.set_defaults(run=cmd_doctor)
    return root


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; return the exit status."""
    args = parser().parse_args(argv)
    stream = out or sys.stdout
    try:
        return int(args.run(args, stream))
    except (ConfigurationError, ValueError) as error:
        print(f"kratos-aal: {error}", file=sys.stderr)
        return 2
    except KratosAALError as error:
        print(f"kratos-aal: {error}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:
        # An optional dependency the command needs: one line naming the extra, never a
        # traceback (the commands check theirs first; this catches the rest).
        top = (error.name or "").partition(".")[0]
        if top not in EXTRA_OF_MODULE:
            raise
        print(_install_line(args.command, [EXTRA_OF_MODULE[top]]), file=sys.stderr)
        return 2
