"""The ``kratos-aal`` command: ``demo``, ``fake``, ``whoami`` and ``doctor``.

The commands themselves are in ``_cli_serve`` (demo, fake), ``_cli_whoami`` and
``_cli_doctor``; here are the arguments and the dispatch.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from ._cli_doctor import EXPLANATIONS, cmd_doctor
from ._cli_serve import EXTRA_OF_MODULE, _install_line, cmd_demo, cmd_fake
from ._cli_whoami import cmd_whoami
from ._demo import FRAMEWORKS
from .exceptions import ConfigurationError, KratosAALError


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
    _host_argument(demo)
    demo.add_argument(
        "--port", type=int, default=8000, help="app port (default: 8000; 0 picks a free one)"
    )
    demo.add_argument(
        "--kratos-port", type=int, default=4433, help="FakeKratos port (default: 4433)"
    )
    _no_qr_argument(demo)
    demo.set_defaults(run=cmd_demo)

    fake = commands.add_parser(
        "fake",
        help="run FakeKratos alone, with its UI and the demo users, beside your own app",
        description="Serve FakeKratos (login, second factor, TOTP pairing, logout, whoami) with the "
        "demo users on --host:--port, for developing an app before a real Kratos exists. Point "
        "the app's KRATOS_PUBLIC_URL at it. Everything lives in memory.",
    )
    _host_argument(fake)
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
    _no_qr_argument(fake)
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
    _browser_url_argument(whoami)
    _cookie_name_argument(whoami)
    whoami.add_argument(
        "--admin-url",
        default=os.environ.get("KRATOS_ADMIN_URL"),
        help="Kratos's admin URL, to tell whether the identity has a second factor "
        "(default: $KRATOS_ADMIN_URL)",
    )
    whoami.add_argument("--return-to", default=None, help="where the browser should come back to")
    _timeout_argument(whoami)
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
    _browser_url_argument(doctor)
    doctor_credential = doctor.add_mutually_exclusive_group()
    doctor_credential.add_argument(
        "--cookie",
        help="the session cookie of a user with a second factor, signed in with one factor: "
        "tells whether Kratos withholds aal1 sessions (required_aal: highest_available)",
    )
    doctor_credential.add_argument("--token", help="the same, as a session token (ory_st_...)")
    _cookie_name_argument(doctor)
    _timeout_argument(doctor)
    doctor.add_argument(
        "--explain", metavar="ID", help=f"explain one error id: {', '.join(EXPLANATIONS)}"
    )
    doctor.set_defaults(run=cmd_doctor)
    return root


def _host_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )


def _no_qr_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--no-qr", action="store_true", help="do not print the QR code of the demo user's TOTP"
    )


def _browser_url_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--browser-url",
        default=os.environ.get("KRATOS_BROWSER_URL"),
        help="Kratos's URL as browsers reach it (default: $KRATOS_BROWSER_URL, else --url)",
    )


def _cookie_name_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--cookie-name",
        default=os.environ.get("KRATOS_COOKIE_NAME", "ory_kratos_session"),
        help="the session cookie's name (default: $KRATOS_COOKIE_NAME, else ory_kratos_session)",
    )


def _timeout_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for Kratos (default: 5)"
    )


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
