"""A Flask app on the extension, for gunicorn: ``tests.flask.gunicorn_app:create()``."""

from __future__ import annotations

import os

from flask import Flask, g, jsonify
from flask.typing import ResponseReturnValue

from kratos_aal.integrations.flask import KratosAAL, require_aal2


def create() -> Flask:
    """Return the app; Kratos is at ``$KRATOS_PUBLIC_URL``."""
    app = Flask(__name__)
    app.config["KRATOS_AAL"] = {
        "PUBLIC_URL": os.environ["KRATOS_PUBLIC_URL"],
        "RULES": {"/billing/*": "aal2"},
    }
    KratosAAL(app)

    @app.get("/billing/")
    def billing() -> ResponseReturnValue:
        return jsonify(session=g.kratos_session.id)

    @app.get("/billing/<int:number>")
    def invoice(number: int) -> ResponseReturnValue:
        return jsonify(session=g.kratos_session.id, number=number)

    @app.get("/transfer")
    @require_aal2
    def transfer() -> ResponseReturnValue:
        return jsonify(session=g.kratos_session.id)

    return app
