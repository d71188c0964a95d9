"""Lookup secrets and WebAuthn keys on FakeKratos identities, and the core reading them.

Kratos's reference: BEHAVIOR.md §2 (method names and the AAL each records) and §3
("aal=aal2 when the identity has no second factor": each AAL2 strategy adds nodes only
for credentials the identity has).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from kratos_aal import Credentials, Outcome
from kratos_aal.testing import FakeIdentity, FakeKratos

from ..conftest import APP
from ..openapi import assert_valid

JSON = {"Accept": "application/json"}

Make = Callable[[FakeKratos], FakeIdentity]

KINDS: list[Any] = [
    pytest.param(lambda f: f.create_identity(lookup_secrets=True), True, id="lookup-only"),
    pytest.param(lambda f: f.create_identity(security_keys=1), True, id="security-key"),
    pytest.param(lambda f: f.create_identity(password=None, passkeys=1), False, id="passkey-only"),
    pytest.param(
        lambda f: f.create_identity(password=None, passkeys=1, security_keys=1),
        True,
        id="passkey-and-security-key",
    ),
    pytest.param(lambda f: f.create_identity(totp=True), True, id="totp"),
    pytest.param(lambda f: f.create_identity(), False, id="password-only"),
]


def first_factor(identity: FakeIdentity) -> list[str]:
    return ["password"] if identity.password else ["passkey"]


@pytest.mark.parametrize(("make", "has_second"), KINDS)
@pytest.mark.parametrize("probe", ["login-flow", "admin"])
async def test_core_detects_the_second_factor(
    make_driver: Any, make: Make, has_second: bool, probe: str
) -> None:
    """BEHAVIOR.md §3: the aal2 flow's nodes (or the admin credentials) say it."""
    fake = FakeKratos(whoami_required_aal="aal1")
    extra = {"admin_url": fake.admin_url} if probe == "admin" else {}
    driver = make_driver(fake, **extra)
    identity = make(fake)
    session = fake.session(methods=first_factor(identity), identity=identity)
    decision = await driver.check(Credentials(cookie=session.cookie), "aal2", APP)
    assert decision.outcome is (Outcome.STEP_UP if has_second else Outcome.ENROLL)
    probed = "/admin/identities/" if probe == "admin" else "/self-service/login/browser"
    assert any(r.url.path.startswith(probed) for r in fake.requests)


@pytest.mark.parametrize(("make", "has_second"), KINDS)
async def test_core_detects_it_for_token_sessions(
    make_driver: Any, make: Make, has_second: bool
) -> None:
    """BEHAVIOR.md §3: a token session's probe reads the browser flow's nodes (answered as
    JSON), which list security keys; an API flow would not (strategy/webauthn/login.go)."""
    fake = FakeKratos(whoami_required_aal="aal1")
    driver = make_driver(fake)
    identity = make(fake)
    session = fake.session(methods=first_factor(identity), identity=identity)
    decision = await driver.check(Credentials(token=session.token), "aal2", APP)
    assert decision.outcome is (Outcome.STEP_UP if has_second else Outcome.ENROLL)


def aal2_flow(fake: FakeKratos, identity: FakeIdentity) -> dict[str, Any]:
    session = fake.session(methods=first_factor(identity), identity=identity)
    with httpx.Client(transport=fake.transport(), base_url=fake.public_url) as client:
        answer = client.get(
            "/self-service/login/api", params={"aal": "aal2"}, headers=session.headers
        )
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    assert_valid("loginFlow", body)
    return body


@pytest.mark.parametrize(
    ("options", "groups"),
    [
        pytest.param({"lookup_secrets": True}, {"lookup_secret"}, id="lookup"),
        # strategy/webauthn/login.go: WebAuthn nodes in browser flows only, never API ones.
        pytest.param({"security_keys": 2}, set(), id="security-keys"),
        pytest.param({"passkeys": 1}, set(), id="passkey"),
        pytest.param(
            {"totp": True, "lookup_secrets": ["abcd1234"]}, {"totp", "lookup_secret"}, id="both"
        ),
    ],
)
def test_aal2_login_flow_lists_each_second_factor(
    options: dict[str, Any], groups: set[str]
) -> None:
    """BEHAVIOR.md §3: strategy/{totp,lookup,webauthn}/login.go PopulateLoginMethod."""
    fake = FakeKratos()
    flow = aal2_flow(fake, fake.create_identity(**options))
    found = {n["group"] for n in flow["ui"]["nodes"]} - {"default"}
    assert found == groups


def test_admin_identity_shows_lookup_and_webauthn_credentials() -> None:
    """identity/handler.go get with include_credential: config only for those asked."""
    fake = FakeKratos()
    identity = fake.create_identity(lookup_secrets=["c0de"], security_keys=1, passkeys=1)
    with httpx.Client(transport=fake.transport(), base_url=fake.admin_url) as admin:
        plain = admin.get(f"/admin/identities/{identity.id}").json()
        full = admin.get(
            f"/admin/identities/{identity.id}",
            params=[("include_credential", "webauthn"), ("include_credential", "lookup_secret")],
        ).json()
    assert_valid("identity", full)
    assert set(plain["credentials"]) == {"password", "lookup_secret", "webauthn"}
    assert all("config" not in c for c in plain["credentials"].values())
    keys = full["credentials"]["webauthn"]["config"]["credentials"]
    assert sorted(k["is_passwordless"] for k in keys) == [False, True]
    codes = full["credentials"]["lookup_secret"]["config"]["recovery_codes"]
    assert codes == [{"code": "c0de", "used_at": None}]


@pytest.mark.parametrize(
    ("options", "available"),
    [
        pytest.param({"password": None}, "aal0", id="nothing"),
        pytest.param({"password": None, "passkeys": 1}, "aal1", id="passkey"),
        pytest.param({}, "aal1", id="password"),
        pytest.param({"lookup_secrets": True}, "aal2", id="lookup"),
        pytest.param({"password": None, "security_keys": 1}, "aal2", id="security-key"),
    ],
)
def test_available_aal_counts_each_credential(options: dict[str, Any], available: str) -> None:
    """BEHAVIOR.md §1: any active 2FA credential → aal2; any first factor → aal1."""
    fake = FakeKratos()
    assert fake.create_identity(**options).available_aal == available


def test_lookup_code_steps_up_once() -> None:
    """strategy/lookup/login.go: a code completes aal2 and is then used up."""
    fake = FakeKratos()
    identity = fake.create_identity(lookup_secrets=["first111", "second22"])
    session = fake.session(identity=identity)
    with httpx.Client(transport=fake.transport(), base_url=fake.public_url) as client:

        def submit(code: str) -> httpx.Response:
            flow = client.get(
                "/self-service/login/api", params={"aal": "aal2"}, headers=session.headers
            ).json()
            return client.post(
                f"/self-service/login?flow={flow['id']}",
                json={"method": "lookup_secret", "lookup_secret": code},
                headers=session.headers,
            )

        wrong = submit("nope")
        assert wrong.status_code == 400
        assert wrong.json()["ui"]["messages"][0]["id"] == 4000016
        done = submit("first111")
        assert done.status_code == 200
        assert done.json()["session"]["authenticator_assurance_level"] == "aal2"
        methods = [m["method"] for m in done.json()["session"]["authentication_methods"]]
        assert methods == ["password", "lookup_secret"]
    assert identity.lookup_codes == ["second22"]
