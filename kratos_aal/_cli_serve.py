"""``kratos-aal demo`` and ``kratos-aal fake``: serve the demo or FakeKratos until stopped."""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import signal
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from .exceptions import ConfigurationError

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
