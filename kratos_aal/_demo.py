"""``kratos-aal demo``: an example app and an embedded FakeKratos with its UI, on loopback."""

from __future__ import annotations

import importlib
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import httpx

from ._client import AsyncKratosClient, KratosClient
from ._config import KratosConfig
from .exceptions import ConfigurationError

FRAMEWORKS = ("starlette", "fastapi", "flask", "django")
FRAMEWORK_NAMES = {
    "starlette": "Starlette",
    "fastapi": "FastAPI",
    "flask": "Flask",
    "django": "Django",
}

#: The demo users' TOTP secret is fixed, so that a phone that scanned it keeps working.
ADA_TOTP_SECRET = "KRATOSAALDEMOADATOTPSECRETKEYXYZ"  # noqa: S105 - public on purpose


@dataclass(frozen=True)
class DemoUser:
    email: str
    password: str
    totp_secret: str | None


@dataclass(frozen=True)
class Demo:
    """A running demo: URLs, users, and the fake (tests move its clock)."""

    framework: str
    app_url: str
    kratos_url: str
    users: tuple[DemoUser, ...]
    fake: Any


def _example(name: str) -> ModuleType:
    """Import an example app: from a checkout (``examples``) or the installed wheel."""
    try:
        return importlib.import_module(f"examples.{name}")
    except ModuleNotFoundError as error:
        if error.name not in ("examples", f"examples.{name}"):
            raise
        return importlib.import_module(f"kratos_aal._examples.{name}")


def _build_app(
    framework: str, config: KratosConfig, timer: Any, clock_url: str, stack: ExitStack
) -> Any:
    # The app's clients use the fake's clock, so that moving it ages sessions for both.
    # No kept-alive connections: the servers' event loops end with the demo, and a pooled
    # connection of a loop that is gone could never be closed.
    no_pool = httpx.Limits(max_keepalive_connections=0)
    async_client = AsyncKratosClient(
        config, timer=timer, http_client=httpx.AsyncClient(limits=no_pool)
    )
    if framework in ("starlette", "fastapi"):
        module = _example(f"{framework}_app")
        return module.create_app(client=async_client, demo_clock_url=clock_url)
    sync_client = KratosClient(config, timer=timer, http_client=httpx.Client(limits=no_pool))
    if framework == "flask":
        return _example("flask_app").create_app(client=sync_client, demo_clock_url=clock_url)
    os.environ["KRATOS_PUBLIC_URL"] = config.public_url
    settings_module = _example("django_project.demo.settings").__name__
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    import django
    from django.core.asgi import get_asgi_application

    django.setup()
    from django.test.utils import override_settings

    from .integrations.django.conf import override_clients

    # The example's own middleware and backends (whatever settings module is loaded, e.g.
    # the test suite's), the fake's URL (for views that read the settings, such as the
    # login view) and the home page's clock button; restored after, for a process that
    # goes on (tests).
    example = _example("django_project.demo.settings")
    stack.enter_context(
        override_settings(
            MIDDLEWARE=example.MIDDLEWARE,
            AUTHENTICATION_BACKENDS=example.AUTHENTICATION_BACKENDS,
            TEMPLATES=example.TEMPLATES,
            KRATOS_AAL={
                **example.KRATOS_AAL,
                "PUBLIC_URL": config.public_url,
                "BROWSER_URL": config.browser_url,
            },
            KRATOS_DEMO_CLOCK_URL=clock_url,
        )
    )

    stack.enter_context(override_clients(sync_client, async_client))
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    # Static files (the browsable API's styles) are served in front of the middleware, as
    # runserver serves them: a stylesheet needs no sign-in.
    application = ASGIStaticFilesHandler(get_asgi_application())
    # The linked Django users (request.user) live in sqlite: create its tables now.
    _example("django_project.demo.startup").migrate()
    return application


def demo_fake(
    kratos_url: str,
    app_url: str,
    allowed_return_urls: Sequence[str] = (),
    admin_url: str | None = None,
) -> tuple[Any, tuple[DemoUser, ...]]:
    """Build the FakeKratos of the demo and of ``kratos-aal fake``, with its two users."""
    from .testing import FakeKratos

    app_url = app_url.rstrip("/")
    fake: Any = FakeKratos(  # Any: app_url is set below, whatever the FakeKratos version
        public_url=kratos_url,
        whoami_required_aal="aal1",  # what per-route step-up wants (see docs/kratos.md)
        default_return_url=f"{app_url}/",
        allowed_return_urls=[app_url, *allowed_return_urls],
        admin_url=admin_url,
    )
    # "Back to the app" on the fake's pages leads here; set as a plain attribute so that
    # this works with FakeKratos versions whose constructor does not take it.
    fake.app_url = f"{app_url}/"
    ada = fake.create_identity("ada@example.com", "ada-demo-password", totp_secret=ADA_TOTP_SECRET)
    bob = fake.create_identity("bob@example.com", "bob-demo-password")
    users = (
        DemoUser(ada.email, "ada-demo-password", ada.totp_secret),
        DemoUser(bob.email, "bob-demo-password", None),
    )
    fake.ui_hint = (
        "Demo users: ada@example.com / ada-demo-password (authenticator app paired), "
        "bob@example.com / bob-demo-password (no second factor yet)."
    )
    fake.ui_code_hints = {
        ada.email: (
            "For ada, that is the TOTP secret that kratos-aal demo (or kratos-aal fake) "
            "printed when it started: add it to any authenticator app."
        )
    }
    return fake, users


def reserve(host: str, port: int, option: str) -> socket.socket:
    """Bind *port* now, or fail with a message that names the *option* choosing another.

    A port already taken (often by a demo still running in another terminal) is a setting
    to change, not a crash: no traceback.
    """
    from .testing import reserve_port

    try:
        return reserve_port(host, port)
    except OSError as error:
        raise ConfigurationError(
            f"cannot listen on {host}:{port} ({error.strerror or error}); is another demo, "
            f"FakeKratos or Kratos running there? Choose another port with {option} "
            "(0 picks a free one)"
        ) from None


@contextmanager
def run_demo(
    framework: str = "starlette",
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    kratos_port: int = 4433,
    internal_kratos_host: str | None = None,
) -> Iterator[Demo]:
    """Serve the example app and FakeKratos until the block ends.

    *internal_kratos_host*: the host name the app reaches Kratos by, as an app inside a
    network does (``kratos``), while browsers keep using Kratos's own URL; tests check that
    no URL on it reaches a browser.
    """
    from .testing import serve
    from .testing._serve import serve_wsgi, url_of

    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {', '.join(FRAMEWORKS)}, got {framework!r}")
    kratos_socket = reserve(host, kratos_port, "--kratos-port")
    try:
        app_socket = reserve(host, port, "--port")
    except ConfigurationError:
        kratos_socket.close()
        raise
    kratos_url, app_url = url_of(kratos_socket), url_of(app_socket)
    fake, users = demo_fake(kratos_url, app_url)
    fake.demo_controls = True  # the home page's button moves the clock the app also reads
    config = KratosConfig(public_url=kratos_url)
    if internal_kratos_host:
        port_part = kratos_url.rsplit(":", 1)[1]
        internal = f"http://{internal_kratos_host}:{port_part}"
        config = KratosConfig(public_url=internal, browser_url=kratos_url)
    with ExitStack() as stack:
        app = _build_app(framework, config, fake.clock, f"{kratos_url}/ui/clock", stack)
        # The pages tell sign-in times by the clock the button moves.
        stack.callback(_example("_pages").use_clock(fake.clock))
        stack.enter_context(serve(fake, sock=kratos_socket))
        if framework == "flask":
            stack.enter_context(serve_wsgi(app, sock=app_socket))
        else:
            stack.enter_context(serve(app, sock=app_socket))
        yield Demo(framework, app_url, kratos_url, users, fake)


def user_lines(users: Sequence[DemoUser], *, qr: bool) -> list[str]:
    """Return the banner's list of demo users (and the QR code of ada's TOTP secret)."""
    lines = ["  Demo users"]
    for user in users:
        state = "authenticator app paired" if user.totp_secret else "no second factor yet"
        lines.append(f"    {user.email:<18} password {user.password:<19} {state}")
        if user.totp_secret:
            lines.append(
                f"    {'':<18} TOTP secret {user.totp_secret} (the same on every run: add it "
                "to an authenticator app once)"
            )
    if qr and users[0].totp_secret:
        import io

        import segno

        uri = f"otpauth://totp/kratos-aal%20demo:{users[0].email}?secret={users[0].totp_secret}&issuer=kratos-aal%20demo"
        buffer = io.StringIO()
        segno.make(uri, error="l").terminal(out=buffer, compact=True)
        lines += [
            "",
            "  Scan for ada's codes:",
            *("    " + row for row in buffer.getvalue().splitlines()),
        ]
    return lines


def banner(demo: Demo, *, qr: bool = True) -> str:
    """Return what ``kratos-aal demo`` prints: the URLs, the users, the story."""
    name = FRAMEWORK_NAMES[demo.framework]
    article = "an" if name[0] in "AEIOU" else "a"
    slash = "/" if demo.framework == "django" else ""
    lines = [
        f"kratos-aal demo: per-route AAL on {article} {name} app, with an embedded FakeKratos",
        "",
        f"  App      {demo.app_url}/",
        f"  Kratos   {demo.kratos_url}   (FakeKratos: login, second factor, TOTP pairing)",
        "",
        *user_lines(demo.users, qr=qr),
    ]
    lines += [
        "",
        "  The story",
        f"    1. {demo.app_url}/account{slash} needs a password (aal1): sign in as bob.",
        f"    2. {demo.app_url}/billing{slash} needs aal2: bob has no second factor, so Kratos's",
        "       settings page pairs an authenticator app, and the session becomes aal2 in place.",
        f"    3. Sign out, sign in as ada: /billing{slash} asks for her TOTP code (step-up).",
        f"       On /account{slash}, Bank details masks her IBAN until she reveals it, inside the",
        "       page: a template asks what the session allows (bob is offered enrollment).",
        f"    4. {demo.app_url}/billing/transfer{slash} wants a code from the last 5 minutes: move",
        "       the clock on (button on the home page) and it asks again (re-authentication).",
        f"    5. curl -H 'Accept: application/json' {demo.app_url}/api/balance{slash}",
        "       An API answers JSON clients with Kratos's own error body, not a redirect.",
        "",
        "  Press Ctrl+C to stop.",
    ]
    return "\n".join(lines)
