"""Ory's own Python SDK (``ory-kratos-client``), unpatched, against FakeKratos on real ports.

Apps and mobile clients talk to Kratos through this SDK; whatever it can parse from
Kratos it must parse from the fake (issue 11). The fake's public API and admin API are
served by uvicorn on two loopback ports, as Kratos serves them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyotp
import pytest
from ory_kratos_client.api.frontend_api import FrontendApi
from ory_kratos_client.api.identity_api import IdentityApi
from ory_kratos_client.api_client import ApiClient
from ory_kratos_client.configuration import Configuration
from ory_kratos_client.exceptions import ApiException
from ory_kratos_client.models.create_identity_body import CreateIdentityBody
from ory_kratos_client.models.identity_with_credentials import IdentityWithCredentials
from ory_kratos_client.models.identity_with_credentials_password import (
    IdentityWithCredentialsPassword,
)
from ory_kratos_client.models.identity_with_credentials_password_config import (
    IdentityWithCredentialsPasswordConfig,
)
from ory_kratos_client.models.login_flow import LoginFlow
from ory_kratos_client.models.perform_native_logout_body import PerformNativeLogoutBody
from ory_kratos_client.models.ui_node_input_attributes import UiNodeInputAttributes
from ory_kratos_client.models.update_login_flow_body import UpdateLoginFlowBody
from ory_kratos_client.models.update_login_flow_with_password_method import (
    UpdateLoginFlowWithPasswordMethod,
)
from ory_kratos_client.models.update_login_flow_with_totp_method import (
    UpdateLoginFlowWithTotpMethod,
)
from ory_kratos_client.models.update_registration_flow_body import UpdateRegistrationFlowBody
from ory_kratos_client.models.update_registration_flow_with_password_method import (
    UpdateRegistrationFlowWithPasswordMethod,
)
from ory_kratos_client.models.update_settings_flow_body import UpdateSettingsFlowBody
from ory_kratos_client.models.update_settings_flow_with_totp_method import (
    UpdateSettingsFlowWithTotpMethod,
)

from kratos_aal.testing import FakeKratos, reserve_port, serve
from kratos_aal.testing._serve import url_of

PASSWORD = "correct horse battery staple"


@dataclass
class Served:
    fake: FakeKratos
    frontend: FrontendApi
    admin: IdentityApi


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    public_sock, admin_sock = reserve_port(), reserve_port()
    fake = FakeKratos(
        public_url=url_of(public_sock),
        admin_url=url_of(admin_sock),
        whoami_required_aal="aal1",
    )
    with (
        serve(fake, sock=public_sock) as public,
        serve(fake.admin_app, sock=admin_sock) as admin,
        ApiClient(Configuration(host=public)) as public_client,
        ApiClient(Configuration(host=admin)) as admin_client,
    ):
        yield Served(fake, FrontendApi(public_client), IdentityApi(admin_client))


def password_login(frontend: FrontendApi, email: str, password: str = PASSWORD) -> str:
    flow = frontend.create_native_login_flow()
    body = UpdateLoginFlowWithPasswordMethod(method="password", identifier=email, password=password)
    done = frontend.update_login_flow(flow.id, UpdateLoginFlowBody(body))
    assert done.session_token
    return done.session_token


def test_native_login_and_whoami(served: Served) -> None:
    identity = served.fake.create_identity()
    token = password_login(served.frontend, identity.email)
    session = served.frontend.to_session(x_session_token=token)
    assert session.identity is not None and session.identity.id == identity.id
    assert session.authenticator_assurance_level == "aal1"


def test_whoami_headers_have_canonical_names(served: Served) -> None:
    token = password_login(served.frontend, served.fake.create_identity().email)
    answer = served.frontend.to_session_with_http_info(x_session_token=token)
    assert answer.headers is not None
    assert "X-Kratos-Authenticated-Identity-Id" in answer.headers


def test_step_up_with_totp(served: Served) -> None:
    identity = served.fake.create_identity(totp=True)
    token = password_login(served.frontend, identity.email)
    flow = served.frontend.create_native_login_flow(aal="aal2", x_session_token=token)
    assert flow.requested_aal == "aal2"
    assert {n.group for n in flow.ui.nodes} >= {"totp"}
    code = pyotp.TOTP(identity.totp_secret or "").now()
    body = UpdateLoginFlowWithTotpMethod(method="totp", totp_code=code)
    done = served.frontend.update_login_flow(
        flow.id, UpdateLoginFlowBody(body), x_session_token=token
    )
    assert done.session.authenticator_assurance_level == "aal2"
    again = served.frontend.to_session(x_session_token=token)
    assert again.authenticator_assurance_level == "aal2"


def test_wrong_totp_code_is_a_400_with_the_flow(served: Served) -> None:
    identity = served.fake.create_identity(totp=True)
    token = password_login(served.frontend, identity.email)
    flow = served.frontend.create_native_login_flow(aal="aal2", x_session_token=token)
    body = UpdateLoginFlowWithTotpMethod(method="totp", totp_code="000000")
    with pytest.raises(ApiException) as caught:
        served.frontend.update_login_flow(flow.id, UpdateLoginFlowBody(body), x_session_token=token)
    assert caught.value.status == 400
    assert "4000008" in str(caught.value.body)


def test_settings_pairs_and_unlinks_totp(served: Served) -> None:
    identity = served.fake.create_identity()
    token = password_login(served.frontend, identity.email)
    flow = served.frontend.create_native_settings_flow(x_session_token=token)
    secret = served.fake.pending_totp_secret(flow.id)
    assert secret is not None
    body = UpdateSettingsFlowWithTotpMethod(method="totp", totp_code=pyotp.TOTP(secret).now())
    done = served.frontend.update_settings_flow(
        flow.id, UpdateSettingsFlowBody(body), x_session_token=token
    )
    assert done.state == "success"
    assert identity.totp_secret == secret
    flow = served.frontend.create_native_settings_flow(x_session_token=token)
    unlink = UpdateSettingsFlowWithTotpMethod(method="totp", totp_unlink=True)
    served.frontend.update_settings_flow(
        flow.id, UpdateSettingsFlowBody(unlink), x_session_token=token
    )
    assert identity.totp_secret is None


def test_refresh_adds_a_method(served: Served) -> None:
    identity = served.fake.create_identity()
    token = password_login(served.frontend, identity.email)
    flow = served.frontend.create_native_login_flow(refresh=True, x_session_token=token)
    assert flow.refresh is True
    body = UpdateLoginFlowWithPasswordMethod(
        method="password", identifier=identity.email, password=PASSWORD
    )
    done = served.frontend.update_login_flow(
        flow.id, UpdateLoginFlowBody(body), x_session_token=token
    )
    assert [m.method for m in done.session.authentication_methods or []] == ["password", "password"]


def test_native_logout_ends_the_session(served: Served) -> None:
    token = password_login(served.frontend, served.fake.create_identity().email)
    served.frontend.perform_native_logout(PerformNativeLogoutBody(session_token=token))
    with pytest.raises(ApiException) as caught:
        served.frontend.to_session(x_session_token=token)
    assert caught.value.status == 401


def test_browser_login_with_cookies(served: Served) -> None:
    identity = served.fake.create_identity()
    answer = served.frontend.create_browser_login_flow_with_http_info()
    assert answer.headers is not None
    csrf_cookie = answer.headers["Set-Cookie"].split(";")[0]
    flow = answer.data
    csrf = next(
        n.attributes.actual_instance.value
        for n in flow.ui.nodes
        if isinstance(n.attributes.actual_instance, UiNodeInputAttributes)
        and n.attributes.actual_instance.name == "csrf_token"
    )
    body = UpdateLoginFlowWithPasswordMethod(
        method="password", identifier=identity.email, password=PASSWORD, csrf_token=csrf
    )
    done = served.frontend.update_login_flow_with_http_info(
        flow.id, UpdateLoginFlowBody(body), cookie=csrf_cookie
    )
    assert done.headers is not None
    session_cookie = done.headers["Set-Cookie"].split(";")[0]
    assert session_cookie.startswith(served.fake.cookie_name + "=")
    session = served.frontend.to_session(cookie=session_cookie)
    assert session.identity is not None and session.identity.id == identity.id
    logout = served.frontend.create_browser_logout_flow(cookie=session_cookie)
    served.frontend.update_logout_flow(token=logout.logout_token, cookie=session_cookie)
    with pytest.raises(ApiException) as caught:
        served.frontend.to_session(cookie=session_cookie)
    assert caught.value.status == 401


def test_registration_native(served: Served) -> None:
    flow = served.frontend.create_native_registration_flow()
    body = UpdateRegistrationFlowWithPasswordMethod(
        method="password", password=PASSWORD, traits={"email": "sdk-new@example.com"}
    )
    done = served.frontend.update_registration_flow(flow.id, UpdateRegistrationFlowBody(body))
    assert done.identity.traits == {"email": "sdk-new@example.com"}
    assert done.session_token
    assert served.frontend.to_session(x_session_token=done.session_token).active


def test_my_sessions(served: Served) -> None:
    identity = served.fake.create_identity()
    first = password_login(served.frontend, identity.email)
    password_login(served.frontend, identity.email)
    others = served.frontend.list_my_sessions(x_session_token=first)
    assert len(others) == 1


def test_admin_identity_calls(served: Served) -> None:
    credentials = IdentityWithCredentials(
        password=IdentityWithCredentialsPassword(
            config=IdentityWithCredentialsPasswordConfig(password=PASSWORD)
        )
    )
    created = served.admin.create_identity(
        CreateIdentityBody(
            schema_id="default", traits={"email": "sdk-admin@example.com"}, credentials=credentials
        )
    )
    got = served.admin.get_identity(created.id, include_credential=["totp", "lookup_secret"])
    assert got.traits == {"email": "sdk-admin@example.com"}
    assert created.id in [i.id for i in served.admin.list_identities()]
    token = password_login(served.frontend, "sdk-admin@example.com")
    session_id = served.frontend.to_session(x_session_token=token).id
    assert session_id in [s.id for s in served.admin.list_identity_sessions(created.id)]
    assert session_id in [s.id for s in served.admin.list_sessions()]
    assert served.admin.get_session(session_id).id == session_id
    served.admin.extend_session(session_id)
    served.admin.disable_session(session_id)
    with pytest.raises(ApiException) as caught:
        served.frontend.to_session(x_session_token=token)
    assert caught.value.status == 401
    served.admin.delete_identity(created.id)
    with pytest.raises(ApiException) as missing:
        served.admin.get_identity(created.id)
    assert missing.value.status == 404


@pytest.mark.parametrize(
    ("identifier", "password"),
    [
        pytest.param("nobody@example.com", PASSWORD, id="unknown-user"),
        pytest.param("known", "wrong password", id="wrong-password"),
    ],
)
def test_bad_credentials_are_400(served: Served, identifier: str, password: str) -> None:
    identity = served.fake.create_identity()
    flow = served.frontend.create_native_login_flow()
    body = UpdateLoginFlowWithPasswordMethod(
        method="password",
        identifier=identity.email if identifier == "known" else identifier,
        password=password,
    )
    with pytest.raises(ApiException) as caught:
        served.frontend.update_login_flow(flow.id, UpdateLoginFlowBody(body))
    assert caught.value.status == 400
    assert "4000006" in str(caught.value.body)


def test_aal2_flow_without_a_session_is_401(served: Served) -> None:
    with pytest.raises(ApiException) as caught:
        served.frontend.create_native_login_flow(aal="aal2")
    assert caught.value.status == 401
    assert "session_aal1_required" in str(caught.value.body)


def test_api_flow_with_a_cookie_is_a_flow_in_the_exception(served: Served) -> None:
    """selfservice/flow/request.go EnsureCSRF (issue 24 item 5): the SDK parses the 400
    as a LoginFlow in ``ApiException.data``, its message 4000001."""
    identity = served.fake.create_identity()
    flow = served.frontend.create_native_login_flow()
    body = UpdateLoginFlowWithPasswordMethod(
        method="password", identifier=identity.email, password=PASSWORD
    )
    with pytest.raises(ApiException) as caught:
        served.frontend.update_login_flow(
            flow.id, UpdateLoginFlowBody(body), _headers={"Cookie": "app_session=1"}
        )
    assert caught.value.status == 400
    parsed = caught.value.data
    assert isinstance(parsed, LoginFlow)
    assert parsed.id == flow.id
    assert [m.id for m in parsed.ui.messages or []] == [4000001]


def test_my_sessions_are_paged(served: Served) -> None:
    """session/handler.go listMySessions (issue 24 item 9): X-Total-Count and Link."""
    identity = served.fake.create_identity()
    mine = password_login(served.frontend, identity.email)
    for _ in range(3):
        password_login(served.frontend, identity.email)
    page = served.frontend.list_my_sessions_with_http_info(page_size=2, x_session_token=mine)
    assert page.headers is not None
    assert page.headers["X-Total-Count"] == "3"
    assert 'rel="next"' in page.headers["Link"]
    assert len(page.data) == 2
    rest = served.frontend.list_my_sessions(page_size=2, page_token="2", x_session_token=mine)
    assert len(rest) == 1


def test_admin_sessions_with_and_without_expand(served: Served) -> None:
    """session/handler.go adminListSessions and getSession (issue 24 item 7): the
    identity only with ``expand=identity``."""
    identity = served.fake.create_identity()
    token = password_login(served.frontend, identity.email)
    session_id = served.frontend.to_session(x_session_token=token).id
    plain = next(s for s in served.admin.list_sessions() if s.id == session_id)
    assert plain.identity is None
    expanded = next(
        s for s in served.admin.list_sessions(expand=["identity"]) if s.id == session_id
    )
    assert expanded.identity is not None and expanded.identity.id == identity.id
    assert served.admin.get_session(session_id).identity is None
    one = served.admin.get_session(session_id, expand=["identity", "devices"])
    assert one.identity is not None and one.devices
