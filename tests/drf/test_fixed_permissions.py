"""IsAAL1 and IsAAL2 run RequireAAL's check themselves: attacks on that, from outside.

They used to ask a ``RequireAAL(aal)`` made once per class; now the class holds a
``Requirement(aal)`` and its ``has_permission`` is RequireAAL's own. The answers must be
the ones the delegating classes gave: each case below runs against both, on DRF's
combinations, user subclasses, a miss then a cache hit, a cross-site POST on the cookie and
Kratos unreachable.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import path
from rest_framework.permissions import AllowAny, BasePermission, IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import APIView

from kratos_aal import AAL, AsyncKratosClient, KratosClient
from kratos_aal._decision import Requirement
from kratos_aal.exceptions import ConfigurationError
from kratos_aal.integrations.django.conf import override_clients
from kratos_aal.integrations.drf import IsAAL1, IsAAL2, KratosAuthentication, RequireAAL
from kratos_aal.integrations.drf import _FixedMeta as FixedMeta
from kratos_aal.testing import FakeKratos, FakeSession

JSON = {"HTTP_ACCEPT": "application/json"}
CROSS = {"HTTP_SEC_FETCH_SITE": "cross-site", "HTTP_ORIGIN": "https://attacker.example"}


# --- The classes as they were: a RequireAAL made once per class, asked on every request ---


class _Delegating(BasePermission, metaclass=FixedMeta):
    aal: AAL
    _permission: RequireAAL

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._permission = RequireAAL(cls.aal)

    def has_permission(self, request: Request, view: Any) -> bool:
        return self._permission.has_permission(request, view)


class OldAAL1(_Delegating):
    aal = AAL.AAL1


class OldAAL2(_Delegating):
    aal = AAL.AAL2


# --- What users write on top of them -------------------------------------------------------

CALLS: list[str] = []


class Audited(IsAAL2):
    """Overrides has_permission and asks the class it extends."""

    def has_permission(self, request: Request, view: Any) -> bool:
        CALLS.append("audited")
        return bool(super().has_permission(request, view))


class OldAudited(OldAAL2):
    def has_permission(self, request: Request, view: Any) -> bool:
        CALLS.append("audited")
        return bool(super().has_permission(request, view))


class StepUp(IsAAL1):
    """IsAAL1 raised to aal2 by its level alone."""

    aal = AAL.AAL2


class OldStepUp(OldAAL1):
    aal = AAL.AAL2


class Worded(IsAAL2):
    message = "Two factors, please."


class OldWorded(OldAAL2):
    message = "Two factors, please."


class Initialised(IsAAL2):
    def __init__(self) -> None:
        super().__init__()
        self.made = True


class OldInitialised(OldAAL2):
    def __init__(self) -> None:
        super().__init__()
        self.made = True


def combos(
    aal1: Any, aal2: Any, audited: Any, step_up: Any, worded: Any, initialised: Any
) -> dict[str, list[Any]]:
    """Every way a view may list them, from the classes given (new or old ones)."""
    return {
        "aal1": [aal1],
        "aal2": [aal2],
        "aal2-or-admin": [aal2 | IsAdminUser],
        "admin-or-aal2": [IsAdminUser | aal2],
        "aal2-and-authenticated": [aal2 & IsAuthenticated],
        "authenticated-and-aal2": [IsAuthenticated & aal2],
        "not-aal2": [~aal2],
        "aal1-and-aal2": [aal1 & aal2],
        "aal1-or-aal2": [aal1 | aal2],
        "aal2-or-allow-any": [aal2 | AllowAny],
        "two-lists": [aal1, aal2],
        "audited": [audited],
        "step-up": [step_up],
        "worded": [worded],
        "not-worded": [~worded],
        "initialised": [initialised],
        "step-up-or-admin": [step_up | IsAdminUser],
    }


NEW = combos(IsAAL1, IsAAL2, Audited, StepUp, Worded, Initialised)
OLD = combos(OldAAL1, OldAAL2, OldAudited, OldStepUp, OldWorded, OldInitialised)
#: Which of them demand aal2 of the Kratos session, whatever else they ask.
NEEDS_AAL2 = {
    name
    for name in NEW
    if name not in {"aal1", "aal2-or-allow-any", "not-aal2", "not-worded", "aal1-or-aal2"}
}
#: With KratosAuthentication (its cache hit, then the permission's), and without any (the
#: permission's own hit path and check).
AUTHENTICATION: dict[str, list[Any]] = {"kratos": [KratosAuthentication], "none": []}


def _view(permissions: list[Any], authentication: list[Any]) -> Any:
    class View(APIView):
        authentication_classes = authentication
        permission_classes = permissions

        def get(self, request: Request) -> Response:
            return Response({"ran": True})

        def post(self, request: Request) -> Response:
            return Response({"ran": True})

    return View.as_view()


urlpatterns = [
    path(f"{era}/{auth}/{name}/", _view(listed, AUTHENTICATION[auth]))
    for era, table in (("new", NEW), ("old", OLD))
    for auth in AUTHENTICATION
    for name, listed in table.items()
]
pytestmark = pytest.mark.urls(__name__)

Answer = tuple[int, str | None]


def answer(reply: Any) -> Answer:
    """The status and Kratos's error id (or DRF's detail): what a client can tell apart."""
    try:
        body = reply.json()
    except ValueError:
        return reply.status_code, None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return reply.status_code, str(body["error"]["id"])
    if isinstance(body, dict) and "detail" in body:
        return reply.status_code, str(body["detail"])
    return reply.status_code, None


def client_for(session: FakeSession | None, how: str = "cookie") -> APIClient:
    client = APIClient()
    if session is None:
        return client
    if how == "cookie":
        client.cookies.load(session.cookies)
    else:
        client.credentials(HTTP_X_SESSION_TOKEN=session.token)
    return client


def drf_first(auth: str, name: str) -> bool:
    """Whether DRF's IsAuthenticated answers first: on its left, with nobody authenticated."""
    return auth == "none" and name == "authenticated-and-aal2"


def twice(client: APIClient, url: str, method: str = "get", **extra: Any) -> list[Answer]:
    """A miss, then a hit (a GET's second ask is served from the cache)."""
    return [answer(getattr(client, method)(url, **{**JSON, **extra})) for _ in range(2)]


CASES = [pytest.param(auth, name, id=f"{auth}-{name}") for auth in AUTHENTICATION for name in NEW]


@pytest.fixture(autouse=True)
def _forget_calls() -> Iterator[None]:
    CALLS.clear()
    yield
    CALLS.clear()


# --- The same answers as the delegating classes --------------------------------------------


@pytest.mark.parametrize(("auth", "name"), CASES)
@pytest.mark.parametrize("level", ["aal1", "aal2"])
@pytest.mark.parametrize("how", ["cookie", "token"])
def test_sessions_get_the_answers_they_got_before(
    fake_kratos: FakeKratos, auth: str, name: str, level: str, how: str
) -> None:
    answers = {}
    for era in ("new", "old"):
        session = fake_kratos.session(level, totp=True)
        answers[era] = twice(client_for(session, how), f"/{era}/{auth}/{name}/")
    assert answers["new"] == answers["old"]
    if level == "aal1" and name in NEEDS_AAL2:
        # Never let through, on the miss or on the hit; the step-up is Kratos's answer.
        assert all(status == 403 for status, _ in answers["new"]), answers
        if name not in {"not-aal2", "not-worded"} and not drf_first(auth, name):
            assert {error for _, error in answers["new"]} == {"session_aal2_required"}


@pytest.mark.parametrize(("auth", "name"), CASES)
def test_no_session_gets_the_answer_it_got_before(
    fake_kratos: FakeKratos, auth: str, name: str
) -> None:
    new = twice(client_for(None), f"/new/{auth}/{name}/")
    assert new == twice(client_for(None), f"/old/{auth}/{name}/")
    if name in NEEDS_AAL2:
        assert all(status in {401, 403} for status, _ in new), new
    assert fake_kratos.calls["/sessions/whoami"] == 0


@pytest.mark.parametrize(("auth", "name"), CASES)
@pytest.mark.parametrize("level", ["aal1", "aal2"])
def test_a_cross_site_post_on_the_cookie_is_never_allowed(
    fake_kratos: FakeKratos, auth: str, name: str, level: str
) -> None:
    answers = {}
    for era in ("new", "old"):
        session = fake_kratos.session(level, totp=True)
        client = client_for(session)
        url = f"/{era}/{auth}/{name}/"
        assert client.get(url, **JSON).status_code in {200, 403}  # warm the cache
        answers[era] = twice(client, url, "post", **CROSS)
    assert answers["new"] == answers["old"]
    assert all(status == 403 for status, _ in answers["new"]), answers["new"]
    if not drf_first(auth, name):
        # A Kratos permission answers first: AllowAny on the right of | does not overrule it.
        assert {error for _, error in answers["new"]} == {"security_csrf_violation"}


def test_allow_any_on_the_right_cannot_overrule_a_cross_site_refusal(
    fake_kratos: FakeKratos,
) -> None:
    client = client_for(fake_kratos.session("aal2"))
    for era in ("new", "old"):
        replies = twice(client, f"/{era}/kratos/aal2-or-allow-any/", "post", **CROSS)
        assert {status for status, _ in replies} == {403}
        assert {error for _, error in replies} == {"security_csrf_violation"}


@pytest.fixture
def unreachable(fake_kratos: FakeKratos) -> Iterator[None]:
    """Kratos at a loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = fake_kratos.config(public_url=url, timeout=2)
    with KratosClient(config) as client:
        async_client = AsyncKratosClient(config)
        with override_clients(client, async_client):
            yield


@pytest.mark.usefixtures("unreachable")
@pytest.mark.parametrize(("auth", "name"), CASES)
@pytest.mark.parametrize("how", ["cookie", "token"])
def test_kratos_unreachable_is_503_never_allowed(
    fake_kratos: FakeKratos, auth: str, name: str, how: str
) -> None:
    session = fake_kratos.session("aal2")
    new = twice(client_for(session, how), f"/new/{auth}/{name}/")
    assert new == twice(client_for(session, how), f"/old/{auth}/{name}/")
    if drf_first(auth, name):
        assert all(status == 403 for status, _ in new), new
    elif name not in {"aal2-or-allow-any", "aal1-or-aal2"}:
        assert set(new) == {(503, "kratos_unavailable")}, new
    else:
        # The right side of | may still allow (as before): AllowAny, or a second Kratos
        # permission that is itself unavailable.
        assert all(status in {200, 503} for status, _ in new), new


# --- Subclasses -----------------------------------------------------------------------------


def test_a_subclass_calling_super_runs_the_check_on_miss_and_hit(fake_kratos: FakeKratos) -> None:
    aal1 = client_for(fake_kratos.session("aal1", totp=True))
    aal2 = client_for(fake_kratos.session("aal2"))
    for auth in AUTHENTICATION:
        CALLS.clear()
        assert [s for s, _ in twice(aal1, f"/new/{auth}/audited/")] == [403, 403]
        assert [s for s, _ in twice(aal2, f"/new/{auth}/audited/")] == [200, 200]
        assert CALLS == ["audited"] * 4


def test_a_subclass_of_is_aal1_at_aal2_asks_for_step_up(fake_kratos: FakeKratos) -> None:
    session = fake_kratos.session("aal1", totp=True)
    client = client_for(session)
    for auth in AUTHENTICATION:
        # The aal1 session is in the cache after IsAAL1's view: StepUp must not take it.
        assert [s for s, _ in twice(client, f"/new/{auth}/aal1/")] == [200, 200]
        assert twice(client, f"/new/{auth}/step-up/") == [(403, "session_aal2_required")] * 2
    assert (
        twice(client_for(fake_kratos.session("aal2")), "/new/kratos/step-up/") == [(200, None)] * 2
    )


def test_message_and_init_overrides_keep_the_check(fake_kratos: FakeKratos) -> None:
    aal1 = client_for(fake_kratos.session("aal1", totp=True))
    aal2 = client_for(fake_kratos.session("aal2"))
    for name in ("worded", "initialised"):
        assert twice(aal1, f"/new/kratos/{name}/") == [(403, "session_aal2_required")] * 2
        assert [s for s, _ in twice(aal2, f"/new/kratos/{name}/")] == [200, 200]
    # NOT's False for an aal2 session is DRF's own denial, as before.
    assert twice(aal2, "/new/kratos/not-worded/") == twice(aal2, "/old/kratos/not-worded/")
    assert {s for s, _ in twice(aal2, "/new/kratos/not-worded/")} == {403}
    assert Initialised().made


# --- The requirement each class holds ------------------------------------------------------
# Kept under a private name (``_kratos_aal_requirement``): ``requirement`` is free for apps.


def test_each_class_holds_its_own_requirement() -> None:
    assert IsAAL2._kratos_aal_requirement == Requirement(AAL.AAL2)
    assert IsAAL1._kratos_aal_requirement == Requirement(AAL.AAL1)
    assert StepUp._kratos_aal_requirement == Requirement(AAL.AAL2)
    for cls in (IsAAL1, IsAAL2, Audited, StepUp, Worded, Initialised):
        assert "_kratos_aal_requirement" in vars(cls), cls  # made per class, none inherited
        assert "requirement" not in vars(cls), cls
        made = cls._kratos_aal_requirement
        assert made.max_age is None and made.methods is None
    assert IsAAL1.has_permission is IsAAL2.has_permission
    with pytest.raises(AttributeError):
        IsAAL2._kratos_aal_requirement.aal = AAL.AAL1  # type: ignore[misc]  # frozen


def test_changing_one_class_changes_no_other(
    fake_kratos: FakeKratos, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(IsAAL1, "_kratos_aal_requirement", Requirement(AAL.AAL2))
    assert IsAAL2._kratos_aal_requirement == Requirement(AAL.AAL2)
    monkeypatch.setattr(IsAAL2, "_kratos_aal_requirement", Requirement(AAL.AAL1))
    assert IsAAL1._kratos_aal_requirement == Requirement(AAL.AAL2)
    # Subclasses made before keep theirs: StepUp is IsAAL1's, Audited is IsAAL2's.
    assert StepUp._kratos_aal_requirement == Requirement(AAL.AAL2)
    assert Audited._kratos_aal_requirement == Requirement(AAL.AAL2)
    client = client_for(fake_kratos.session("aal1", totp=True))
    assert twice(client, "/new/kratos/audited/") == [(403, "session_aal2_required")] * 2
    assert [s for s, _ in twice(client, "/new/kratos/aal2/")] == [200, 200]  # patched down
    monkeypatch.undo()
    assert twice(client, "/new/kratos/aal2/") == [(403, "session_aal2_required")] * 2


def test_an_instance_attribute_named_requirement_changes_no_check(
    fake_kratos: FakeKratos,
) -> None:
    from django.test import RequestFactory

    from kratos_aal.integrations.drf import KratosDenied

    one, two = IsAAL2(), IsAAL2()
    one.requirement = Requirement(AAL.AAL1)  # an app's own attribute: not a lower level
    assert "requirement" not in vars(two)
    session = fake_kratos.session("aal1", totp=True)
    for _ in range(2):  # a miss, then a hit
        request = RequestFactory().get("/", HTTP_COOKIE=session.cookie_header, **JSON)
        drf = Request(request, authenticators=[KratosAuthentication()])
        assert drf.auth is not None
        for permission in (one, two, IsAAL2()):
            with pytest.raises(KratosDenied):
                permission.has_permission(drf, None)


def test_a_requirement_on_a_subclass_fails_when_the_class_is_made() -> None:
    # It was silently ignored: a max_age there was never asked, and a stale session passed.
    with pytest.raises(ConfigurationError, match=r"Fresh\.requirement.*RequireAAL\('aal2'"):

        class Fresh(IsAAL2):
            requirement = Requirement(AAL.AAL2, max_age=300)

    with pytest.raises(ConfigurationError, match=r"RequireAAL\('aal1'"):

        class Methods(IsAAL1):
            requirement = Requirement(AAL.AAL1, methods={"webauthn"})


def test_a_requirement_on_a_mixin_fails_too() -> None:
    class FreshMixin:
        requirement = Requirement(AAL.AAL2, max_age=300)

    with pytest.raises(ConfigurationError, match=r"Fresh\.requirement"):

        class Fresh(FreshMixin, IsAAL2):
            pass


def test_require_aal_checks_the_requirement_it_shows(fake_kratos: FakeKratos) -> None:
    # RequireAAL's ``requirement`` is a plain attribute, read by every check: what repr
    # shows is what is asked, and a subclass that sets it in __init__ is enforced.
    from django.test import RequestFactory

    from kratos_aal.integrations.drf import KratosDenied

    class Lowered(RequireAAL):
        def __init__(self) -> None:
            self.requirement = Requirement(AAL.AAL1)  # no super().__init__()

    permission = RequireAAL("aal2", max_age=300)
    assert permission.requirement == Requirement(AAL.AAL2, max_age=300)
    assert repr(permission) == f"RequireAAL({permission.requirement!r})"
    session = fake_kratos.session("aal1", totp=True)
    for _ in range(2):  # a miss, then a hit
        request = RequestFactory().get("/", HTTP_COOKIE=session.cookie_header, **JSON)
        drf = Request(request, authenticators=[KratosAuthentication()])
        with pytest.raises(KratosDenied):
            permission.has_permission(drf, None)
        assert Lowered().has_permission(drf, None)


# --- An app's own ``requirement`` on a subclass stays the app's -------------------------------


class Kyc(IsAAL2):
    """An app's own attribute that happens to be called ``requirement``."""

    requirement = "kyc-verified"

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(super().has_permission(request, view)) and self.requirement == "kyc-verified"


class OldKyc(OldAAL2):
    requirement = "kyc-verified"

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(super().has_permission(request, view)) and self.requirement == "kyc-verified"


class KycPerInstance(IsAAL2):
    def __init__(self) -> None:
        super().__init__()
        self.requirement = "kyc-verified"


class OldKycPerInstance(OldAAL2):
    def __init__(self) -> None:
        super().__init__()
        self.requirement = "kyc-verified"


def test_a_subclass_attribute_named_requirement_is_the_apps(fake_kratos: FakeKratos) -> None:
    # Before, the check lived in ``_permission``; an app's ``requirement`` was its own.
    assert OldKyc.requirement == "kyc-verified"
    assert Kyc.requirement == "kyc-verified"


@pytest.mark.parametrize(
    ("new", "old"), [(Kyc, OldKyc), (KycPerInstance, OldKycPerInstance)], ids=["class", "instance"]
)
def test_a_subclass_attribute_named_requirement_keeps_the_check(
    fake_kratos: FakeKratos, new: type[BasePermission], old: type[BasePermission]
) -> None:
    from django.test import RequestFactory

    from kratos_aal.integrations.drf import KratosDenied

    aal2 = fake_kratos.session("aal2")
    aal1 = fake_kratos.session("aal1", totp=True)
    for _ in range(2):  # a miss, then a hit
        results: dict[Any, Any] = {}
        stepped: dict[Any, Any] = {}
        for permission in (new, old):
            request = RequestFactory().get("/", HTTP_COOKIE=aal2.cookie_header, **JSON)
            drf = Request(request, authenticators=[KratosAuthentication()])
            try:
                results[permission] = permission().has_permission(drf, None)
            except Exception as error:
                results[permission] = type(error).__name__
            request = RequestFactory().get("/", HTTP_COOKIE=aal1.cookie_header, **JSON)
            drf = Request(request, authenticators=[KratosAuthentication()])
            try:
                permission().has_permission(drf, None)
            except KratosDenied as denied:
                stepped[permission] = denied.decision.outcome.name
            except Exception as error:
                stepped[permission] = type(error).__name__
        assert results[new] == results[old] is True, results
        assert stepped[new] == stepped[old], stepped
