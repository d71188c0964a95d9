"""``kratos-aal doctor``: check a Kratos set-up for the usual step-up traps, in plain words."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

import httpx

from ._cli_whoami import HIGHEST_AVAILABLE, _url_argument
from ._tiers import check_cache_tiers

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
