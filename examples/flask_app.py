"""A Flask app protected by path rules: public, aal1, aal2 and fresh-aal2 pages.

KRATOS_PUBLIC_URL=http://127.0.0.1:4433 flask --app examples.flask_app run --port 8000
"""

from __future__ import annotations

import os

from flask import Flask, request

from kratos_aal import KratosClient, KratosConfig, Requirement
from kratos_aal.integrations.wsgi import ENVIRON_KEY, KratosAALWSGIMiddleware

RULES: dict[str, str | Requirement] = {
    "/account/*": "aal1",
    "/billing/transfer": Requirement("aal2", max_age=300),
    "/billing/*": "aal2",
    "/api/*": "aal2",
}


def create_app(*, config: KratosConfig | None = None, client: KratosClient | None = None) -> Flask:
    """Build the app; tests pass a client wired to FakeKratos."""
    if client is None and config is None:
        config = KratosConfig.from_env({"KRATOS_PUBLIC_URL": "http://127.0.0.1:4433", **os.environ})
    app = Flask(__name__)
    kratos = {"client": client} if client is not None else {"config": config}
    app.wsgi_app = KratosAALWSGIMiddleware(app.wsgi_app, rules=RULES, **kratos)  # type: ignore[method-assign]

    def session_aal() -> str:
        session = request.environ.get(ENVIRON_KEY)
        return session.aal.value if session else "none"

    @app.get("/")
    def home() -> dict[str, str]:
        return {"page": "home", "aal": session_aal()}

    @app.get("/account")
    def account() -> dict[str, str]:
        return {"page": "account", "aal": session_aal()}

    @app.route("/billing", methods=["GET", "POST"])
    def billing() -> dict[str, str]:
        return {"page": "billing", "aal": session_aal()}

    @app.route("/billing/transfer", methods=["GET", "POST"])
    def transfer() -> dict[str, str]:
        return {"page": "transfer", "aal": session_aal()}

    @app.get("/api/balance")
    def balance() -> dict[str, object]:
        return {"balance": 42, "aal": session_aal()}

    return app


app = create_app()
