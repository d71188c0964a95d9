"""Flask: the KratosAAL extension, RULES on the routed view, decorators, blueprints."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Blueprint, Flask, g, jsonify

from kratos_aal import KratosClient, Session
from kratos_aal.exceptions import ConfigurationError
from kratos_aal.integrations.flask import (
    KratosAAL,
    current_session,
    get_session,
    require_aal,
    require_aal2,
)
from kratos_aal.testing import FakeKratos, FakeSession

KRATOS = "http://127.0.0.1:4433"
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
JSON = {"Accept": "application/json"}


@pytest.fixture
def fake_kratos_options() -> dict[str, Any]:
    return {"whoami_required_aal": "aal1"}


def whoami() -> dict[str, Any]:
    session = g.get("kratos_session")
    return {"session": session.id if session else None}


def make_app(client: KratosClient) -> Flask:
    app = Flask(__name__)
    app.config["KRATOS_AAL"] = {
        "PUBLIC_URL": KRATOS,
        "RULES": {"/billing/*": "aal2", "/account/*": "aal1"},
    }
    KratosAAL(app, client=client)

    @app.get("/")
    def home() -> Any:
        return jsonify(whoami())

    @app.get("/billing/")
    def billing() -> Any:
        return jsonify(whoami())

    @app.get("/billing/<int:number>")
    def invoice(number: int) -> Any:
        return jsonify({"number": number, **whoami()})

    @app.get("/billing/x")
    def billing_x() -> Any:
        return jsonify(whoami())

    @app.get("/account")
    def account() -> Any:
        return jsonify(whoami())

    @app.get("/transfer")
    @require_aal2
    def transfer() -> Any:
        return jsonify(whoami())

    @app.route("/pay", methods=["GET", "POST"])
    @require_aal("aal2", max_age=300)
    def pay() -> Any:
        return jsonify(whoami())

    @app.get("/keys")
    @require_aal2(methods={"webauthn"})
    def keys() -> Any:
        return jsonify(whoami())

    @app.get("/bare")
    @require_aal
    def bare() -> Any:
        return jsonify(whoami())

    @app.get("/profile")
    @require_aal("aal1")
    def profile() -> Any:
        return jsonify(whoami())

    @app.get("/async")
    @require_aal2
    async def async_view() -> Any:
        return jsonify(whoami())

    @app.get("/async-fresh")
    @require_aal("aal2", max_age=300)
    async def async_fresh() -> Any:
        return jsonify(whoami())

    @app.get("/me")
    def me() -> Any:
        session = current_session
        return jsonify({"session": session.id if session else None})

    admin = Blueprint("admin", __name__, url_prefix="/admin")

    @admin.get("/")
    def admin_home() -> Any:
        return jsonify(whoami())

    @admin.get("/users/<name>")
    def admin_user(name: str) -> Any:
        return jsonify({"name": name, **whoami()})

    app.register_blueprint(require_aal2(admin))
    return app


@pytest.fixture
def client(fake_kratos: FakeKratos) -> Iterator[KratosClient]:
    with fake_kratos.client() as kratos:
        yield kratos


@pytest.fixture
def app(client: KratosClient) -> Flask:
    return make_app(client)


def get(app: Flask, path: str, session: FakeSession | None = None, **headers: str) -> Any:
    test_client = app.test_client()
    if session is not None:
        test_client.set_cookie(session.cookie_name, session.cookie)
    return test_client.get(path, headers={**HTML, **headers})


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


# Every protected view, and how it is guarded.
AAL2_PATHS = [
    pytest.param("/billing/", id="rule"),
    pytest.param("/billing/42", id="rule-converter"),
    pytest.param("/transfer", id="decorator"),
    pytest.param("/bare", id="require_aal-bare"),
    pytest.param("/pay", id="require_aal"),
    pytest.param("/async", id="async-decorator"),
    pytest.param("/async-fresh", id="async-require_aal"),
    pytest.param("/admin/", id="blueprint"),
    pytest.param("/admin/users/ann", id="blueprint-view"),
]


@pytest.mark.parametrize("path", AAL2_PATHS)
def test_aal2_allowed_with_session_in_g(fake_kratos: FakeKratos, app: Flask, path: str) -> None:
    session = fake_kratos.session("aal2")
    reply = get(app, path, session)
    assert reply.status_code == 200
    assert reply.get_json()["session"] == session.id


@pytest.mark.parametrize("path", AAL2_PATHS)
def test_no_session_browser_303_to_login(fake_kratos: FakeKratos, app: Flask, path: str) -> None:
    reply = get(app, path)
    assert reply.status_code == 303
    assert reply.headers["Location"].startswith(f"{KRATOS}/self-service/login/browser?")
    assert query(reply.headers["Location"]) == {"return_to": [f"http://localhost{path}"]}
    assert fake_kratos.calls["/sessions/whoami"] == 0


@pytest.mark.parametrize("path", AAL2_PATHS)
def test_aal1_json_403_step_up(fake_kratos: FakeKratos, app: Flask, path: str) -> None:
    reply = get(app, path, fake_kratos.session("aal1", totp=True), **JSON)
    assert reply.status_code == 403
    body = reply.get_json()
    assert body["error"]["id"] == "session_aal2_required"
    assert query(body["redirect_browser_to"])["aal"] == ["aal2"]


@pytest.mark.parametrize("path", AAL2_PATHS)
def test_kratos_down_503(fake_kratos: FakeKratos, app: Flask, path: str) -> None:
    session = fake_kratos.session("aal2")
    fake_kratos.fail("http_500", times=10)
    reply = get(app, path, session, **JSON)
    assert reply.status_code == 503
    assert int(reply.headers["Retry-After"]) > 0
    assert reply.get_json()["error"]["id"] == "kratos_unavailable"


@pytest.mark.parametrize("header", ["X-Session-Token", "Authorization"])
def test_token_client(fake_kratos: FakeKratos, app: Flask, header: str) -> None:
    def token(session: FakeSession) -> str:
        return session.token if header == "X-Session-Token" else f"Bearer {session.token}"

    allowed = app.test_client().get(
        "/transfer", headers={header: token(fake_kratos.session("aal2"))}
    )
    assert allowed.status_code == 200
    aal1 = fake_kratos.session("aal1", totp=True)
    denied = app.test_client().get("/transfer", headers={header: token(aal1), **HTML})
    assert denied.status_code == 403
    assert denied.get_json()["error"]["id"] == "session_aal2_required"


def test_enrollment_and_refresh(fake_kratos: FakeKratos, app: Flask) -> None:
    enroll = get(app, "/transfer", fake_kratos.session("aal1", totp=False), **JSON)
    assert enroll.get_json()["error"]["id"] == "session_aal2_enrollment_required"
    stale = get(app, "/pay", fake_kratos.session("aal2", authenticated_at=301), **JSON)
    assert stale.get_json()["error"]["id"] == "session_refresh_required"
    assert get(app, "/pay", fake_kratos.session("aal2", authenticated_at=299)).status_code == 200
    old_async = get(app, "/async-fresh", fake_kratos.session("aal2", authenticated_at=301), **JSON)
    assert old_async.get_json()["error"]["id"] == "session_refresh_required"


def test_methods(fake_kratos: FakeKratos, app: Flask) -> None:
    assert get(app, "/keys", fake_kratos.session("aal2"), **JSON).status_code == 403
    webauthn = fake_kratos.session("aal2", methods=["password", "webauthn"])
    assert get(app, "/keys", webauthn).status_code == 200


def test_aal1_rule_and_decorator(fake_kratos: FakeKratos, app: Flask) -> None:
    aal1 = fake_kratos.session("aal1")
    for path in ("/account", "/profile"):
        assert get(app, path, aal1).status_code == 200
        assert get(app, path).status_code == 303


def test_unsafe_method_returns_to_referer(fake_kratos: FakeKratos, app: Flask) -> None:
    test_client = app.test_client()
    reply = test_client.post("/pay", headers={**HTML, "Referer": "http://localhost/form"})
    assert reply.status_code == 303
    assert query(reply.headers["Location"])["return_to"] == ["http://localhost/form"]


def test_public_view_costs_no_call(fake_kratos: FakeKratos, app: Flask) -> None:
    assert get(app, "/", fake_kratos.session("aal2")).get_json() == {"session": None}
    assert fake_kratos.calls["/sessions/whoami"] == 0


def test_current_session_proxy(fake_kratos: FakeKratos, app: Flask) -> None:
    session = fake_kratos.session("aal1")
    assert get(app, "/me", session).get_json() == {"session": session.id}
    assert get(app, "/me").get_json() == {"session": None}
    fake_kratos.revoke(session)
    fake_kratos.clock.advance(31)  # past cache_ttl
    assert get(app, "/me", session).get_json() == {"session": None}


def test_current_session_kratos_down_is_503(fake_kratos: FakeKratos, app: Flask) -> None:
    session = fake_kratos.session("aal1")
    fake_kratos.fail("http_500", times=10)
    reply = get(app, "/me", session)
    assert reply.status_code == 503
    assert "Retry-After" in reply.headers


def test_step_up_session_is_no_current_session(fake_kratos: FakeKratos) -> None:
    # A Kratos that requires aal2 for whoami withholds aal1 sessions (403).
    strict = FakeKratos(whoami_required_aal="highest_available")
    with strict.client() as kratos:
        app = make_app(kratos)
        reply = get(app, "/me", strict.session("aal1", totp=True))
    assert reply.get_json() == {"session": None}


def test_hop_cookie_cleared_after_success(fake_kratos: FakeKratos, app: Flask) -> None:
    test_client = app.test_client()
    test_client.set_cookie("kratos_aal_hops", "abc.1.1")
    test_client.set_cookie(fake_kratos.cookie_name, fake_kratos.session("aal2").cookie)
    reply = test_client.get("/transfer")
    assert reply.status_code == 200
    assert any("kratos_aal_hops=;" in c for c in reply.headers.getlist("Set-Cookie"))


def test_bad_host_is_400(fake_kratos: FakeKratos, app: Flask) -> None:
    reply = app.test_client().get("/transfer", headers={"Host": "bad host"})
    assert reply.status_code == 400


def test_init_app_later(fake_kratos: FakeKratos, client: KratosClient) -> None:
    app = Flask(__name__)
    app.config["KRATOS_AAL"] = {"PUBLIC_URL": KRATOS}
    extension = KratosAAL(client=client)
    extension.init_app(app)

    @app.get("/x")
    @require_aal2
    def x() -> Any:
        return "ok"

    assert get(app, "/x").status_code == 303
    assert get(app, "/x", fake_kratos.session("aal2")).status_code == 200


def test_settings_made_from_config() -> None:
    app = Flask(__name__)
    app.config["KRATOS_AAL"] = {
        "PUBLIC_URL": KRATOS,
        "COOKIE_NAME": "ory_session_x",
        "MAX_CONCURRENT_CHECKS": 6,
    }
    KratosAAL(app)
    state = app.extensions["kratos_aal"]
    assert state.config.cookie_name == "ory_session_x"
    assert state.config.max_concurrent_checks == 6
    state.client.close()


@pytest.mark.parametrize(
    ("config", "named"),
    [
        pytest.param(None, "app.config['KRATOS_AAL'] is not set: set it to a dict", id="missing"),
        pytest.param("http://kratos", "app.config['KRATOS_AAL'] must be a dict", id="not-a-dict"),
        pytest.param({}, "['PUBLIC_URL'] is not set", id="no-public-url"),
        pytest.param({"PUBLIC_URL": KRATOS, "RULEZ": {}}, "did you mean 'RULES'", id="typo"),
        pytest.param({"PUBLIC_URL": "kratos"}, "['PUBLIC_URL']", id="bad-url"),
        pytest.param(
            {"PUBLIC_URL": KRATOS, "MAX_CONCURRENT_CHECKS": 0},
            "['MAX_CONCURRENT_CHECKS']",
            id="bad-cap",
        ),
        pytest.param({"PUBLIC_URL": KRATOS, "RULES": {"billing": "aal2"}}, "RULES", id="bad-glob"),
        pytest.param(
            {"PUBLIC_URL": KRATOS, "USER_FIELDS": {}}, "'USER_FIELDS'] is not", id="django-only"
        ),
    ],
)
def test_bad_config_fails_at_start(config: Any, named: str) -> None:
    app = Flask(__name__)
    if config is not None:
        app.config["KRATOS_AAL"] = config
    with pytest.raises(ConfigurationError, match=None) as raised:
        KratosAAL(app)
    assert named in str(raised.value)


def test_decorator_without_extension_names_it() -> None:
    app = Flask(__name__)

    @app.get("/x")
    @require_aal2
    def x() -> Any:
        return "ok"

    app.testing = True
    with pytest.raises(RuntimeError, match="KratosAAL"):
        app.test_client().get("/x")


def test_get_session_outside_views(fake_kratos: FakeKratos, app: Flask) -> None:
    session = fake_kratos.session("aal2")
    with app.test_request_context("/", headers={"X-Session-Token": session.token}):
        found = get_session()
        assert isinstance(found, Session)
        assert found.id == session.id
        assert get_session() is found  # kept in g: one Kratos call
    assert fake_kratos.calls["/sessions/whoami"] == 1


# ------------------------------------------------------------- hidden path spellings

SPELLINGS = [
    "//billing/",
    "///billing/",
    "//billing/42",
    "/billing//x",
    "//billing//x",
    "/./billing/",
    "/billing/./x",
    "/billing/../billing/x",
    "/x/../billing/x",
    "/%2fbilling/",
    "/billing/%2e/x",
    "//admin/",
    "/admin//users/ann",
    "/./admin/users/ann",
    "//transfer",
    "/./transfer",
]


def raw_call(app: Flask, path: str, script_name: str = "") -> tuple[str, bytes]:
    """Call the app with a raw PATH_INFO, as gunicorn passes it."""
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": "localhost",
        "HTTP_ACCEPT": "application/json",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
        statuses.append(status)
        return None

    body = b"".join(app.wsgi_app(environ, start_response))
    return statuses[0], body


def raw_call_with(app: Flask, path: str, extra: dict[str, str]) -> tuple[str, bytes]:
    """:func:`raw_call` with more environ keys (e.g. the session cookie)."""
    original = app.wsgi_app

    def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
        environ.update(extra)
        return original(environ, start_response)

    app.wsgi_app = wrapped  # type: ignore[method-assign]
    try:
        return raw_call(app, path)
    finally:
        app.wsgi_app = original  # type: ignore[method-assign]


@pytest.mark.parametrize("script_name", ["", "/app"])
@pytest.mark.parametrize("path", SPELLINGS)
def test_no_spelling_reaches_a_protected_view(
    fake_kratos: FakeKratos, app: Flask, path: str, script_name: str
) -> None:
    status, body = raw_call(app, path, script_name)
    # A denial, Werkzeug's redirect to the canonical path (checked again there), or 404.
    assert status.split()[0] in {"401", "308", "404"}, (status, body)
    assert b'"session"' not in body


@pytest.mark.parametrize("path", SPELLINGS)
def test_no_spelling_lets_aal1_through(fake_kratos: FakeKratos, app: Flask, path: str) -> None:
    aal1 = fake_kratos.session("aal1", totp=True)
    status, body = raw_call_with(app, path, {"HTTP_COOKIE": aal1.cookie_header})
    assert status.split()[0] in {"403", "308", "404"}, (status, body)
    assert b'"session"' not in body


# Spellings Werkzeug routes to a protected view as they are: the battery is not vacuous.
ROUTED = ["//billing/", "///billing/", "//billing/42", "//admin/", "//transfer"]


@pytest.mark.parametrize("path", ROUTED)
def test_routed_spellings_run_the_view_with_aal2(
    fake_kratos: FakeKratos, app: Flask, path: str
) -> None:
    aal2 = fake_kratos.session("aal2")
    status, body = raw_call_with(app, path, {"HTTP_COOKIE": aal2.cookie_header})
    assert status.startswith("200")
    assert json.loads(body)["session"] == aal2.id
