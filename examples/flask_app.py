"""A Flask app with the kratos-aal extension: public, aal1, aal2 and fresh-aal2 pages.

The aal1 page's bank details need more, inside the page: a Jinja2 template asks what the
session allows (``kratos_aal.integrations.jinja.install_flask``).

Run it against ``kratos-aal fake`` (FakeKratos with its demo users), in two terminals:

    kratos-aal fake --port 4433 --app-url http://127.0.0.1:8000
    KRATOS_PUBLIC_URL=http://127.0.0.1:4433 flask --app examples.flask_app run --port 8000

or against your own Kratos, with KRATOS_PUBLIC_URL pointing at its public API.
Browsers get pages; JSON clients (``Accept: application/json``) get the same content as JSON.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from kratos_aal import Credentials, KratosClient, KratosConfig, Requirement
from kratos_aal.exceptions import KratosUnavailable
from kratos_aal.integrations.flask import KratosAAL, current_session, require_aal, require_aal2
from kratos_aal.integrations.jinja import install_flask

from . import _pages

#: Path rules guard whole areas, whatever view (or 404) a path routes to; the views below
#: also carry their decorator, so that each reads as what it needs.
RULES: dict[str, str | Requirement] = {
    "/account/*": "aal1",
    "/billing/transfer": Requirement("aal2", max_age=300),
    "/billing/*": "aal2",
    "/api/*": "aal2",
}


def create_app(
    *,
    config: KratosConfig | None = None,
    client: KratosClient | None = None,
    demo_clock_url: str | None = None,
) -> Flask:
    """Build the app; tests and the demo pass a client wired to FakeKratos."""
    if client is None:
        config = config or KratosConfig.from_env(
            {"KRATOS_PUBLIC_URL": "http://127.0.0.1:4433", **os.environ}
        )
        client = KratosClient(config)
    kratos = client
    app = Flask(__name__)
    app.config["KRATOS_AAL"] = {"PUBLIC_URL": kratos.config.public_url, "RULES": RULES}
    KratosAAL(app, client=kratos)
    install_flask(app)  # every template gets allows(), step_up_url(), ...

    def credentials() -> Credentials:
        return Credentials.from_headers(
            request.headers.items(), cookie_name=kratos.config.cookie_name
        )

    def page(name: str, title: str, text: str, extra: str = "") -> Any:
        # The session a decorator or rule checked, or, on a public page, whoever is signed in.
        checked = True
        try:
            session = current_session or None
        except KratosUnavailable:
            # Still a public page: it renders, and says it could not check.
            session, checked = None, False
        if _pages.wants_json(request.headers.get("Accept", "")):
            return jsonify(_pages.as_json(name, session, checked=checked))
        return _pages.render(title, text, session, extra=extra, checked=checked)

    @app.get("/")
    def home() -> Any:
        extra = _pages.story(request.host_url.rstrip("/"))
        if demo_clock_url:  # only the demo can move Kratos's clock
            extra += _pages.clock_form(
                demo_clock_url, url_for("home", clock="moved", _external=True)
            )
        extra = _pages.clock_note(request.args.get("clock")) + extra
        extra = _pages.settings_note(request.args.get("settings")) + extra
        return page("home", "kratos-aal example", _pages.home_text("flask"), extra)

    @app.get("/account")
    @require_aal("aal1")
    def account() -> Any:
        text = "A password is enough here (<code>aal1</code>)."
        html = not _pages.wants_json(request.headers.get("Accept", ""))
        extra = render_template("bank_details.html", **_pages.bank()) if html else ""
        return page("account", "Account", text, extra)

    @app.route("/billing", methods=["GET", "POST"])
    @require_aal2
    def billing() -> Any:
        return page("billing", "Billing", "<span class=ok>You used a second factor (aal2).</span>")

    @app.route("/billing/transfer", methods=["GET", "POST"])
    @require_aal("aal2", max_age=300)
    def transfer() -> Any:
        text = "<span class=ok>Second factor used in the last 5 minutes.</span>"
        return page("transfer", "Transfer", text)

    @app.get("/api/balance")
    def balance() -> Any:
        session = current_session or None
        return jsonify(balance=42, aal=session.aal.value if session else None)

    @app.get("/settings")
    def settings() -> Response:
        home_url = url_for("home", _external=True)
        return redirect(_pages.settings_url(kratos.config.browser_url, home_url), 303)

    @app.get("/logout")
    def logout() -> Response:
        home_url = url_for("home", _external=True)
        return redirect(kratos.logout_url(credentials(), return_to=home_url) or home_url, 303)

    return app


app = create_app()
