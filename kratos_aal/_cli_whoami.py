"""``kratos-aal whoami``: show one session and the decision kratos-aal would take for it."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import TextIO

from ._client import KratosClient
from ._config import KratosConfig
from ._credentials import Credentials
from ._decision import Requirement
from ._models import Session
from .exceptions import ConfigurationError


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
