"""Django REST framework: ``KratosAuthentication`` and the AAL permission classes.

.. code-block:: python

    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": ["kratos_aal.integrations.drf.KratosAuthentication"],
    }

    class Transfer(APIView):
        permission_classes = [RequireAAL("aal2", max_age=300)]

Settings and clients are the Django integration's (``KRATOS_AAL``, the
``kratos_aal.integrations.django`` app). Denials are the answers every other adapter
gives: Kratos's JSON envelope with ``redirect_browser_to`` for API clients, a 303 to
Kratos for browsers (the browsable API), 503 with ``Retry-After`` when Kratos is in trouble.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import timedelta
from functools import cached_property
from types import MappingProxyType
from typing import Any

from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.permissions import OR, BasePermission, OperandHolder, OperationHolderMixin
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from .. import _observe
from .._credentials import Credentials
from .._decision import Decision, Outcome, Requirement, unavailable
from .._models import AAL, AALLike, Session
from .._web import (
    SAFE_METHODS,
    BadRequest,
    CrossOriginRefusal,
    WebResponse,
    bad_request,
    conclude,
    csrf_error_body,
    error_body,
)
from ..exceptions import ConfigurationError, KratosUnavailable, StepUpRequired
from .django import conf
from .django._glue import (
    _return_to,
    cached_hit,
    credentials_of,
    hit,
    hop_secret,
    refusal_of,
    web_request,
)
from .django._links import links_users

__all__ = [
    "CrossOriginDenied",
    "IsAAL1",
    "IsAAL2",
    "KratosAuthentication",
    "KratosDenied",
    "KratosUser",
    "RequireAAL",
]

_REFUSED = "This identity has no active user here."
CHALLENGE = 'Bearer realm="kratos"'
# Headers the renderer writes itself; the rest of a core response goes on the view's headers.
_RENDERER_HEADERS = frozenset({"content-type", "content-length"})
#: What KratosAuthentication's cache hit asks of a session: that it could allow anything.
_SIGNED_IN = Requirement(AAL.AAL1)
#: Where KratosAuthentication leaves its cache hit for the permissions of the same request.
_HIT = "_kratos_aal_authenticated"


class KratosUser:
    """An authenticated user made from a Kratos identity, for apps without linked Django users.

    ``id`` and ``pk`` are the identity id; it is never staff nor a superuser and holds no
    Django permission.
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, session: Session) -> None:
        self.session = session
        self.identity = session.identity
        self.id = self.pk = self.identity.id if self.identity else session.id

    @cached_property
    def username(self) -> str:
        """The identity's email trait, else its id (worked out when first read)."""
        traits = self.identity.traits if self.identity else {}
        # What Identity holds first (checked in order): Mapping's own check runs Python.
        readable = isinstance(traits, (MappingProxyType, dict, Mapping))
        email = traits.get("email") if readable else None
        return email if isinstance(email, str) else self.id

    def get_username(self) -> str:
        """Return the identity's email trait, else its id."""
        return self.username

    def has_perm(self, perm: str, obj: object = None) -> bool:
        """Return ``False``: Django permissions need linked Django users."""
        return False

    def __str__(self) -> str:
        return self.username


class KratosDenied(exceptions.APIException):
    """A request that does not meet a Kratos requirement, answered as Kratos would.

    Raised by the permissions and by :class:`KratosAuthentication`; DRF's default exception
    handler turns it into the response. The status is the core's (303, 401, 403, 409, 503).
    """

    def __init__(self, decision: Decision, response: WebResponse) -> None:
        super().__init__()
        self.status_code = response.status
        self.decision = decision
        self.response = response
        # Set after the base class, which would turn every value into a string.
        self.detail: Any = error_body(decision)
        self.headers = [
            (name, value)
            for name, value in response.headers
            if name.lower() not in _RENDERER_HEADERS
        ]


def _credentials(request: HttpRequest) -> Credentials:
    """Return the request's credentials, read once for authentication and permissions."""
    found = request.__dict__.get("_kratos_aal_credentials")
    if found is None:
        found = request._kratos_aal_credentials = credentials_of(request)
    return found  # type: ignore[no-any-return]


def _denied(request: Request, decision: Decision) -> KratosDenied:
    credentials = _credentials(request._request)
    response = conclude(decision, web_request(request._request), credentials, secret=hop_secret())
    assert response is not None
    denied = KratosDenied(decision, response)
    if denied.status_code == 401:
        # HTTP wants a challenge on every 401; DRF adds one only to its own exceptions.
        denied.headers.append(("WWW-Authenticate", CHALLENGE))
    if any(value == "application/json" for name, value in response.headers):
        # Token clients and JSON requests get Kratos's JSON whatever DRF negotiated.
        request.accepted_renderer = JSONRenderer()
        request.accepted_media_type = "application/json"
    # DRF's exception handler sets only WWW-Authenticate and Retry-After; the view's
    # ``headers`` go on every response it finalizes, the error response included.
    view = (getattr(request, "parser_context", None) or {}).get("view")
    getattr(view, "headers", {}).update(denied.headers)
    return denied


class CrossOriginDenied(exceptions.PermissionDenied):
    """A cross-origin request that rode on the Kratos cookie, refused with 403 (SPEC §4a).

    Its detail is Kratos's envelope, error id ``security_csrf_violation``.
    """

    def __init__(self, refusal: CrossOriginRefusal) -> None:
        super().__init__()
        self.detail: Any = csrf_error_body(refusal.reason)
        self.refusal = refusal


def _refused(request: Request, refusal: CrossOriginRefusal) -> CrossOriginDenied:
    denied = CrossOriginDenied(refusal)
    if any(value == "application/json" for name, value in refusal.headers):
        request.accepted_renderer = JSONRenderer()
        request.accepted_media_type = "application/json"
    view = (getattr(request, "parser_context", None) or {}).get("view")
    getattr(view, "headers", {}).update({"Cache-Control": "no-store"})
    return denied


def _user_for(request: HttpRequest, session: Session) -> Any:
    """Return the linked Django user when the app links users, else a :class:`KratosUser`.

    A new KratosUser for every request, a cache hit's too: an app may set attributes on
    ``request.user`` for one request, which must not outlive it.

    Raises:
        AuthenticationFailed: the app links users and this identity has no active one.
    """
    if not links_users():
        return KratosUser(session)
    # Imported only here: it needs django.contrib.auth, which DRF alone does not.
    from .django import users

    user = users.user_for_session(request, session)
    if user is None:
        # As RemoteUserBackend's user_can_authenticate: the app's own "no" (a deactivated
        # user, an unlinked identity under CREATE_USERS = False, a USER_FIELDS collision) is
        # final, never a looser KratosUser. Refused rather than anonymous, as DRF's token
        # authentication refuses an inactive user's token: permissions such as IsAAL2 read
        # the Kratos session, not request.user, and would otherwise let it through.
        raise exceptions.AuthenticationFailed(_REFUSED)
    return user


class KratosAuthentication(BaseAuthentication):
    """Authenticate with the Kratos session: cookie, ``X-Session-Token`` or Bearer.

    ``request.auth`` is the :class:`~kratos_aal.Session`; ``request.user`` is the linked
    Django user with :class:`~kratos_aal.integrations.django.KratosBackend` or
    :class:`~kratos_aal.integrations.django.KratosUserMiddleware`, else a
    :class:`KratosUser`. A request without a valid session stays anonymous (the permission
    decides what it gets); Kratos trouble is a 503. When the app links users, a session
    whose identity has no active user (deactivated, unlinked under ``CREATE_USERS = False``)
    is refused with 401, whatever the view's permissions. Cookie-authenticated unsafe requests
    pass Django's CSRF check, as with DRF's ``SessionAuthentication``.
    """

    def authenticate(self, request: Request) -> tuple[Any, Session] | None:
        """Return ``(user, session)``, or ``None`` when the request has no valid session.

        Raises:
            AuthenticationFailed: the app links users and the identity has no active one.
            KratosDenied: Kratos is in trouble (503).
        """
        django_request = request._request
        meta = django_request.META
        if django_request.method in SAFE_METHODS and (
            "HTTP_COOKIE" in meta or "HTTP_X_SESSION_TOKEN" in meta
        ):
            # The cache hit path, read from META as the decorators read it; unsafe methods
            # go the whole way, where the CSRF check sees which credential came.
            client, _ = conf.clients()
            found = cached_hit(django_request, _SIGNED_IN, client)
            if found is not None:
                user = _user_for(django_request, found.session)
                django_request.kratos_session = found.session
                setattr(django_request, _HIT, found)
                return user, found.session
        credentials = _credentials(django_request)
        if not credentials:
            return None
        client, _ = conf.clients()
        try:
            session = client.whoami(credentials)
        except StepUpRequired:
            return None  # Kratos withholds an aal1 session: the permission asks for step-up
        except KratosUnavailable as error:
            raise _denied(request, unavailable(error, None)) from None
        if session is None:
            return None
        if credentials.cookie and request.method not in SAFE_METHODS:
            # A cookie rides along on cross-site requests; a token never does.
            SessionAuthentication().enforce_csrf(request)
        django_request.kratos_session = session
        return _user_for(django_request, session), session

    def authenticate_header(self, request: Request) -> str:
        """Return the challenge that makes DRF answer 401, not 403, without a session."""
        return CHALLENGE


class _KratosOR(OR):
    """DRF's ``|``, where a Kratos denial on the left still lets the right side allow."""

    def has_permission(self, request: Request, view: Any) -> bool:
        try:
            return bool(self.op1.has_permission(request, view)) or bool(
                self.op2.has_permission(request, view)
            )
        except (KratosDenied, _NotTheirs):
            if self.op2.has_permission(request, view):
                return True
            raise


class _Combinable(OperationHolderMixin):
    """``&`` and ``|`` as DRF has them, with a Kratos-aware ``|`` (when on the left of it).

    On the right of ``|`` the other side's DRF ``OR`` runs first, which is right too: a
    Kratos denial there is the last word.
    """

    def __or__(self, other: Any) -> OperandHolder:
        return OperandHolder(_KratosOR, self, other)


class RequireAAL(_Combinable, BasePermission):
    """Require *aal* (and optionally freshness and methods) of the request's Kratos session.

    An instance goes straight into ``permission_classes`` and combines with ``&``, ``|``
    and other permissions: ``permission_classes = [RequireAAL("aal2", max_age=300)]``.

    Args:
        aal: ``"aal1"`` or ``"aal2"`` (or an :class:`~kratos_aal.AAL`).
        max_age: Seconds (or a ``timedelta``) since the newest authentication that counts.
        methods: Method names of which one must have been used, e.g. ``{"webauthn"}``.
    """

    def __init__(
        self,
        aal: AALLike = AAL.AAL2,
        *,
        max_age: float | timedelta | None = None,
        methods: Collection[str] | None = None,
    ) -> None:
        self.requirement = Requirement(aal, max_age=max_age, methods=methods)

    def __call__(self) -> RequireAAL:
        """Return itself: DRF instantiates each entry of ``permission_classes``."""
        return self

    def has_permission(self, request: Request, view: Any) -> bool:
        """Return ``True`` when the session meets the requirement.

        Raises:
            KratosDenied: it does not (or Kratos is in trouble); DRF answers with its response.
        """
        return _permits(request, self.requirement)

    def __repr__(self) -> str:
        return f"RequireAAL({self.requirement!r})"


def _permits(request: Request, requirement: Requirement) -> bool:
    """The check of RequireAAL, IsAAL1 and IsAAL2 (see :meth:`RequireAAL.has_permission`)."""
    django_request = request._request
    if django_request.method not in SAFE_METHODS or "HTTP_UPGRADE" in django_request.META:
        # DRF views are exempt from CsrfViewMiddleware: the cookie alone must not let a
        # cross-origin request in. (refusal_of's first test, here: a GET makes no call.)
        refusal = refusal_of(django_request, requirement)
        if refusal is not None:
            raise _refused(request, refusal)
    found = django_request.__dict__.get(_HIT)
    if (
        found is not None
        and found.rank >= requirement.hit_rank
        and isinstance(request.successful_authenticator, KratosAuthentication)
    ):
        # KratosAuthentication's cache hit on this request, and the request's user is
        # the one it found (not another view's authenticator on the same HttpRequest).
        if not _observe.STATE.quiet:
            decision = found.allowed(requirement)
            _observe.decided(decision, "django", django_request, web_request)
        return True
    client, _ = conf.clients()
    found = hit(django_request, requirement, client)
    if found is not None:
        authenticator = request.successful_authenticator
        if authenticator is None or isinstance(authenticator, KratosAuthentication):
            return True  # _same_person's first answer, without the call
        return _same_person(request, found.session)
    try:
        decision = client.check(
            _credentials(django_request),
            requirement,
            lambda: _return_to(django_request),
        )
    except BadRequest as error:
        raise _bad_request(str(error)) from None
    if decision.outcome is Outcome.ALLOW:
        django_request.kratos_session = decision.session
        return _same_person(request, decision.session)
    raise _denied(request, decision)


class _NotTheirs(exceptions.PermissionDenied):
    """The request's user is not the Kratos session's (a denial ``|`` may overrule)."""

    default_detail = "This Kratos session is not this user's."


def _same_person(request: Request, session: Session | None) -> bool:
    """Return ``True`` unless another authenticator's user is not *session*'s linked user.

    Raises:
        PermissionDenied: it is not (e.g. SessionAuthentication's password login, and
            another identity's Kratos session): the AAL is that identity's, not the user's.
    """
    authenticator = request.successful_authenticator
    if authenticator is None or isinstance(authenticator, KratosAuthentication):
        return True  # anonymous, or the user is the session's
    user = request.user
    if not getattr(user, "is_authenticated", False) or not links_users():
        return True
    from .django import users

    linked = None if session is None else users.user_for_session(request._request, session)
    if linked is None or linked.pk != user.pk:
        raise _NotTheirs
    return True


def _bad_request(reason: str) -> exceptions.ParseError:
    return exceptions.ParseError(bad_request(reason).body.decode().strip())


class _FixedMeta(type(BasePermission)):  # type: ignore[misc]
    """DRF's permission metaclass, with the Kratos-aware ``|``."""

    def __or__(cls, other: Any) -> OperandHolder:
        return OperandHolder(_KratosOR, cls, other)


class _Fixed(BasePermission, metaclass=_FixedMeta):
    """A :class:`RequireAAL` with the level fixed by the class."""

    aal: AAL
    #: ``Requirement(aal)``, made once per class: every request asks it. Private: a
    #: subclass's own ``requirement`` is the app's, as it always was.
    _kratos_aal_requirement: Requirement

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        requirement = Requirement(cls.aal)
        if isinstance(getattr(cls, "requirement", None), Requirement):
            # Never read (on the class or a mixin): its max_age or methods never asked.
            raise ConfigurationError(
                f"{cls.__qualname__}.requirement: a Requirement on a subclass of IsAAL1 or "
                f"IsAAL2 is not read; put RequireAAL({requirement.aal.value!r}, max_age=..., "
                f"methods=...) in permission_classes instead"
            )
        cls._kratos_aal_requirement = requirement

    def has_permission(self, request: Request, view: Any) -> bool:
        """Return ``True`` when the session meets the class's AAL (see :class:`RequireAAL`)."""
        return _permits(request, self._kratos_aal_requirement)


class IsAAL1(_Fixed):
    """Allow requests with a Kratos session of at least aal1."""

    aal = AAL.AAL1


class IsAAL2(_Fixed):
    """Allow requests with an aal2 Kratos session (step-up for aal1 sessions)."""

    aal = AAL.AAL2
