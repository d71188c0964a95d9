"""The pages every example shows: one look and one story, whatever the framework.

Only presentation lives here; each example still decides, in its own framework's words,
which route needs which AAL and how a page reads the session.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from urllib.parse import urlencode

from kratos_aal import Session

FRAMEWORK_NAMES = {
    "starlette": "Starlette",
    "fastapi": "FastAPI",
    "flask": "Flask",
    "django": "Django",
}

#: What the clock button moves Kratos's clock by, in seconds (past the 5 minutes of Transfer).
CLOCK_STEP = 600

STYLE = """
body { font: 16px/1.55 system-ui, sans-serif; max-width: 44rem; margin: 0 auto; padding: 1.5rem;
       color: #1d1d27; }
nav { display: flex; gap: 1rem; flex-wrap: wrap; padding: .75rem 0; border-bottom: 1px solid #ddd; }
.who { background: #f1f1f6; border-radius: 8px; padding: .6rem .9rem; font-size: .95rem; }
.note { background: #e7f4ea; border-radius: 8px; padding: .6rem .9rem; }
li { margin: .4rem 0; } code, pre { background: #f1f1f6; padding: 0 .25rem; border-radius: 4px; }
pre { padding: .5rem; white-space: pre-wrap; overflow-wrap: anywhere; }
button { padding: .45rem .9rem; border-radius: 6px; border: 1px solid #888; cursor: pointer; }
.ok { color: #1d6b3a; font-weight: 600; }
.bank { border: 1px solid #ddd; border-radius: 8px; padding: 0 .9rem; margin: 1rem 0; }
"""


def story(base_url: str, slash: str = "", *, live: bool = False) -> str:
    """Return the home page's list of what to try (*slash* ends Django's paths; *live*:
    the app has the live page)."""
    curl = f"curl -H 'Accept: application/json' {base_url}/api/balance{slash}"
    live_item = LIVE_ITEM if live else ""
    return f"""
<ol>
<li><a href="/account{slash}">Account</a> needs a password (<code>aal1</code>). Its bank details
ask for more, inside the page: the IBAN shows only after a second factor used in the last 5
minutes. Until then it is masked, beside a link to the step-up (or, for a user without an
authenticator app, to setting one up) that comes back to the same page.</li>
<li><a href="/billing{slash}">Billing</a> needs a second factor (<code>aal2</code>): users with an
authenticator app are asked for a code (step-up); users without one are sent to set one up
(enrollment), and land back here either way.</li>
<li><a href="/billing/transfer{slash}">Transfer</a> needs a second factor used in the last 5
minutes (<code>max_age</code>): after that, Kratos asks again (re-authentication).</li>
<li><a href="/api/balance{slash}">/api/balance</a> is an API: a browser following the link is
sent to Kratos like any page, while a JSON client gets Kratos's own error body instead of a
redirect. Try it from a terminal:
<pre>{html.escape(curl)}</pre></li>{live_item}
</ol>
"""


LIVE_ITEM = """
<li><a href="/account/live">Live</a> is a count the server pushes (server-sent events) for as
long as the session allows the page. Signing out in another tab stops the count within a
second or two, with a link to sign in again that comes back to it.</li>"""
LIVE_TEXT = "A count the server pushes while your session allows this page (<code>aal1</code>)."


def live(feed_path: str) -> str:
    """Return the live page's counter, and the script that follows the event stream.

    kratos-aal ends a watched stream with one ``kratos-aal`` event (the outcome and where
    the browser goes next) when the session no longer allows it.
    """
    return f"""
<p class=live>Count: <output id=count>0</output> · <span id=live-state>connecting</span></p>
<p id=live-ended hidden></p>
<script>
(() => {{
  const count = document.getElementById("count");
  const state = document.getElementById("live-state");
  const ended = document.getElementById("live-ended");
  const events = new EventSource({json.dumps(feed_path)});
  events.onopen = () => {{ state.textContent = "live"; }};
  events.onmessage = (event) => {{ count.textContent = event.data; }};
  events.addEventListener("kratos-aal", (event) => {{
    events.close();  // else EventSource opens it again on its own
    const {{ outcome, redirect_browser_to: next }} = JSON.parse(event.data);
    state.textContent = "stopped";
    ended.hidden = false;
    ended.append(outcome === "unavailable"
      ? "Stopped: the sign-in service is not answering. "
      : "Stopped: your session no longer allows this page. ");
    if (typeof next === "string" && /^https?:[/][/]/.test(next)) {{
      const link = document.createElement("a");
      link.id = "live-again";
      link.href = next;
      link.textContent = outcome === "login" ? "Sign in again" : "Verify again";
      ended.append(link);
    }}
  }});
}})();
</script>"""


async def feed(interval: float = 0.5) -> AsyncIterator[bytes]:
    """Yield an event stream of a count, one a *interval*, for as long as it is read."""
    count = 0
    while True:
        count += 1
        yield f"data: {count}\n\n".encode()
        await asyncio.sleep(interval)


#: The demo's bank details: Germany's example IBAN, in full and masked.
IBAN = "DE89 3704 0044 0532 0130 00"
MASKED_IBAN = "DE89 •••• •••• •••• •••• 00"


def bank() -> dict[str, str]:
    """Return what the Bank details templates (Jinja2 and Django) are given.

    A new dict each time: Starlette's ``TemplateResponse`` adds the request and the
    template globals to the dict it is given, which must not outlive the request.
    """
    return {"iban": IBAN, "masked_iban": MASKED_IBAN}


#: Returns Kratos's current POSIX time. The demo moves Kratos's clock, and the app's
#: clients read the same clock: sign-in times are told against it (see use_clock).
_kratos_time: Callable[[], float] = time.time


def use_clock(timer: Callable[[], float]) -> Callable[[], None]:
    """Tell sign-in times against *timer* (the demo's fake clock); return what restores it."""
    global _kratos_time
    before, _kratos_time = _kratos_time, timer

    def restore() -> None:
        global _kratos_time
        _kratos_time = before

    return restore


def _when(moment: datetime | None) -> str:
    # How long ago by Kratos's clock, not the time of day: after the demo moves Kratos's
    # clock on, a new sign-in's time of day lies ahead of the user's own clock.
    if moment is None:
        return "time unknown"
    minutes = int((_kratos_time() - moment.timestamp()) // 60)
    if minutes < 1:
        return "just now"
    if minutes < 120:
        return f"{minutes} min ago"
    return f"{minutes // 60} h ago"


#: The "signed in as" line of a public page that could not ask Kratos: it still renders.
UNCHECKED = (
    "Could not check who is signed in: Kratos did not answer. This page works; pages that "
    "need a sign-in answer 503 until Kratos is back."
)


def who(session: Session | None, *, slash: str = "", checked: bool = True) -> str:
    """Return the "signed in as" line: who, at which AAL, each method once with its time."""
    if not checked:
        return UNCHECKED
    if session is None:
        return "Not signed in."
    latest: dict[str, datetime | None] = {}
    for method in session.authentication_methods:  # a re-authentication repeats a method
        seen = latest.get(method.method)
        if method.method not in latest or (
            method.completed_at is not None and (seen is None or method.completed_at > seen)
        ):
            latest[method.method] = method.completed_at
    methods = ", ".join(f"{name} ({_when(at)})" for name, at in latest.items()) or "no method"
    email = session.identity.traits.get("email") if session.identity else None
    name = html.escape(str(email)) if email else "Someone"
    return (
        f"{name} · Signed in at <b>{session.aal.value}</b> with {html.escape(methods)}"
        f' · <a href="/settings{slash}">Account settings</a>'
        f' · <a href="/logout{slash}">Sign out</a>'
    )


def settings_url(browser_url: str | None, home_url: str) -> str:
    """Return Kratos's settings page, coming back home with a note (``?settings=saved``).

    *browser_url* is ``KratosConfig.browser_url``, always set once the config is built.
    """
    back = f"{home_url.rstrip('/')}/?settings=saved"
    return f"{browser_url}/self-service/settings/browser?{urlencode({'return_to': back})}"


def settings_note(query_value: str | None) -> str:
    """Return what the home page says after Kratos's settings page brought the browser back."""
    if query_value != "saved":
        return ""
    return (
        "<p class=note>Back from Kratos's account settings. If you removed your authenticator "
        "app, your session still says <b>aal2</b> and Billing still opens: as in Kratos, a "
        "session keeps the level it was signed in at until it is renewed. Sign out and in "
        "again to see the difference: Billing then offers to set up an authenticator.</p>"
    )


def clock_form(clock_url: str, return_to: str) -> str:
    """Return the demo's button that moves Kratos's clock on and comes back with a note."""
    return (
        f'<form method="post" action="{html.escape(clock_url)}">'
        f'<input type="hidden" name="seconds" value="{CLOCK_STEP}">'
        f'<input type="hidden" name="return_to" value="{html.escape(return_to)}">'
        f"<button>Demo: move Kratos's clock {CLOCK_STEP // 60} minutes on</button></form>"
    )


def clock_note(query_value: str | None) -> str:
    """Return the feedback shown after the clock button brought the browser back."""
    if query_value != "moved":
        return ""
    return (
        f"<p class=note>Kratos's clock moved {CLOCK_STEP // 60} minutes on: every sign-in is now "
        "that much older, so Transfer will ask you to confirm it's you, and Account masks the "
        "bank details again.</p>"
    )


def render(
    title: str,
    text: str,
    session: Session | None,
    *,
    extra: str = "",
    slash: str = "",
    checked: bool = True,
) -> str:
    """Return a whole page: the navigation, *text*, who is signed in, and *extra*.

    *checked* is false when Kratos could not say who is signed in.
    """
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<link rel=icon href='data:,'><style>{STYLE}</style>"
        f"<nav><a href='/'>Home</a><a href='/account{slash}'>Account (aal1)</a>"
        f"<a href='/billing{slash}'>Billing (aal2)</a>"
        f"<a href='/billing/transfer{slash}'>Transfer (aal2, 5 min)</a>"
        f"<a href='/api/balance{slash}'>API</a></nav>"
        f"<h1>{html.escape(title)}</h1><p>{text}</p>"
        f"<p class=who>{who(session, slash=slash, checked=checked)}</p>{extra}"
    )


def home_text(framework: str) -> str:
    """Return the home page's first line, naming the framework truly."""
    return f"A {FRAMEWORK_NAMES[framework]} app protected by kratos-aal. Anyone may see this page."


def wants_json(accept: str, *, default: bool = False) -> bool:
    """Tell whether a client wants JSON rather than a page.

    Browsers ask for ``text/html`` by name; a client that names JSON gets JSON; one that
    takes anything (``*/*``, or no Accept at all) gets *default*.
    """
    accept = accept.lower()
    if "text/html" in accept:
        return False
    return True if "json" in accept else default


def as_json(page: str, session: Session | None, **extra: object) -> dict[str, object]:
    """Return a page's content for JSON clients."""
    return {"page": page, "aal": session.aal.value if session else None, **extra}
