"""Django users linked to Kratos identities: ``KratosUserMiddleware``, ``KratosBackend``, ``login``.

.. code-block:: python

    MIDDLEWARE = [..., "django.contrib.auth.middleware.AuthenticationMiddleware",
                  "kratos_aal.integrations.django.KratosUserMiddleware"]
    AUTHENTICATION_BACKENDS = ["kratos_aal.integrations.django.KratosBackend"]
    # urls.py: path("kratos/", include("kratos_aal.integrations.django.urls"))
    LOGIN_URL = "kratos_aal:login"

Like Django's ``RemoteUserMiddleware``, with the Kratos session as the remote user. The
Kratos session is asked for on every request that carries one (through the client's
cache), and ``request.user`` follows it: nothing is stored in Django's session, so a
logout, a revoked session or a disabled identity in Kratos leaves no Django login behind.

.. versionadded:: 0.1
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from cachetools import TTLCache
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import DataError, IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.module_loading import import_string

from ..._decision import unavailable
from ..._kratos_api import login_url
from ..._models import Session
from ..._web import BadRequest, bad_request, conclude, origin_of
from ...exceptions import KratosUnavailable, StepUpRequired
from . import conf
from ._glue import as_response, credentials_of, web_request
from .models import user_field_problems

__all__ = ["KratosBackend", "KratosUserMiddleware", "login"]

logger = logging.getLogger("kratos_aal")

BACKEND = f"{__name__}.KratosBackend"
_DEFAULT_BACKEND = "kratos_aal.integrations.django.KratosBackend"


def _trait(traits: Any, path: str) -> Any:
    value = traits
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


class KratosBackend(ModelBackend):
    """Find (or create) the Django user linked to a Kratos session's identity.

    Users are created on first sight when ``KRATOS_AAL['CREATE_USERS']`` is true (the
    default), with the identity id as username and no usable password. Fields listed in
    ``KRATOS_AAL['USER_FIELDS']`` are copied from traits once per new Kratos session. A
    created user is neither staff nor a superuser: the app decides that. Permissions and
    groups work as with ``ModelBackend``.
    """

    def authenticate(
        self, request: HttpRequest | None, kratos_session: Session | None = None, **kwargs: Any
    ) -> Any:
        """Return the user linked to *kratos_session*'s identity, or ``None``."""
        if kratos_session is None or kratos_session.identity is None:
            return None
        identity = kratos_session.identity
        if identity.state not in (None, "active"):
            return None  # Kratos refuses such sessions too; never trust a stale copy
        from .models import KratosIdentityLink

        link = (
            KratosIdentityLink.objects.select_related("user")
            .filter(identity_id=identity.id)
            .first()
        )
        if link is None:
            if not conf.get().create_users:
                return None
            link = self._create(identity.id)
            if link is None:
                return None
        if link.session_id != kratos_session.id and not self._sync(link, kratos_session):
            return None
        user = link.user
        return user if self.user_can_authenticate(user) else None

    @staticmethod
    def _create(identity_id: str) -> Any:
        from .models import KratosIdentityLink

        model = auth.get_user_model()
        try:
            with transaction.atomic():
                user = model._default_manager.create_user(
                    **{model.USERNAME_FIELD: identity_id}, password=None
                )
                return KratosIdentityLink.objects.create(identity_id=identity_id, user=user)
        except IntegrityError:
            # Another request linked this identity first: use its user. A user that merely
            # has the identity id as username is not linked: never take over an account.
            link = (
                KratosIdentityLink.objects.select_related("user")
                .filter(identity_id=identity_id)
                .first()
            )
            if link is None:
                _refuse(
                    identity_id,
                    "KRATOS_AAL['CREATE_USERS']",
                    f"a {model._meta.label} user's {model.USERNAME_FIELD} is identity "
                    f"{identity_id}, but that user is not linked to it, so none is created; "
                    "the identity is not signed in until a KratosIdentityLink links them or "
                    "that user is renamed",
                )
            return link

    @staticmethod
    def _sync(link: Any, session: Session) -> bool:
        """Copy ``USER_FIELDS`` from traits; return ``False`` when the user cannot take them."""
        user = link.user
        traits = session.identity.traits if session.identity else {}
        identity_id = link.identity_id
        changed = []
        for field, path in _user_fields().items():
            value = _trait(traits, path)
            if value is None or isinstance(value, (Mapping, list)):
                continue
            text = str(value)
            limit = getattr(user._meta.get_field(field), "max_length", None)
            if limit:
                text = text[:limit]
            if getattr(user, field) != text:
                setattr(user, field, text)
                changed.append(field)
        if changed:
            try:
                # A savepoint: the request's own transaction (ATOMIC_REQUESTS) stays usable.
                with transaction.atomic():
                    user.save(update_fields=changed)
            except IntegrityError:
                taken = _taken(user, changed)
                _refuse(
                    identity_id,
                    _fields_setting(taken),
                    f"identity {identity_id}'s {_traits_of(taken)} already another "
                    f"{user._meta.label} user's {', '.join(taken)}; the identity is not "
                    "signed in until that changes (map a unique field only from a trait "
                    "Kratos keeps unique and verified)",
                )
                return False
            except (DataError, ValueError, ValidationError):
                _refuse(
                    identity_id,
                    _fields_setting(changed),
                    f"identity {identity_id}'s {_traits_of(changed)} not fit for "
                    f"{user._meta.label}'s {', '.join(changed)}; the identity is not signed in",
                )
                return False
        link.session_id = session.id
        link.save(update_fields=["session_id"])
        return True


# The USER_FIELDS last found right: checked once per settings, not on every request.
_CHECKED: list[Mapping[str, str]] = []


def _user_fields() -> Mapping[str, str]:
    """Return ``USER_FIELDS``, checked against the user model.

    Raises:
        ImproperlyConfigured: ``KRATOS_AAL`` is wrong, or a ``USER_FIELDS`` key is no plain
            field of the user model; the message names it.
    """
    fields = conf.get().user_fields
    if not _CHECKED or _CHECKED[0] is not fields:
        problems = user_field_problems(auth.get_user_model(), fields)
        if problems:
            raise ImproperlyConfigured(problems[0])
        _CHECKED[:] = [fields]
    return fields


def _taken(user: Any, fields: list[str]) -> list[str]:
    """Return which of *fields* another user already holds (all of them when none is unique)."""
    others = type(user)._default_manager.exclude(pk=user.pk)
    taken = [
        field
        for field in fields
        if user._meta.get_field(field).unique
        and others.filter(**{field: getattr(user, field)}).exists()
    ]
    return taken or fields


# One WARNING per identity and field for a while, not one per request: a refused identity
# comes back on every request, and each would log the same lines.
_REFUSED: TTLCache[tuple[str, str], bool] = TTLCache(maxsize=1024, ttl=600)
_REFUSED_LOCK = threading.Lock()


def _traits_of(fields: list[str]) -> str:
    """Name the traits that *fields* are copied from (never a trait's value)."""
    mapped = conf.get().user_fields
    paths = ", ".join(repr(mapped[field]) for field in fields)
    return f"trait {paths} is" if len(fields) == 1 else f"traits {paths} are"


def _fields_setting(fields: list[str]) -> str:
    return " and ".join(f"KRATOS_AAL['USER_FIELDS'][{field!r}]" for field in fields)


def _refuse(identity_id: str, setting: str, why: str) -> None:
    """Log why *identity_id* is not signed in: one WARNING per identity and *setting* a while."""
    with _REFUSED_LOCK:
        if (identity_id, setting) in _REFUSED:
            return
        _REFUSED[identity_id, setting] = True
    # The identity id and the settings only: never a trait's value, a cookie or a token.
    logger.warning("%s: %s", setting, why)


# The AUTHENTICATION_BACKENDS last read, and the KratosBackend (or subclass) it lists.
_LISTED: list[tuple[Any, type[KratosBackend] | None]] = []


def listed_backend() -> type[KratosBackend] | None:
    """Return the first :class:`KratosBackend`, or subclass, in ``AUTHENTICATION_BACKENDS``.

    Raises:
        ImportError: a listed backend cannot be imported (as Django's own ``get_backends``).
    """
    listed = settings.AUTHENTICATION_BACKENDS
    if not _LISTED or _LISTED[0][0] is not listed:
        found = None
        for path in listed:
            backend = import_string(path)
            if isinstance(backend, type) and issubclass(backend, KratosBackend):
                found = backend
                break
        _LISTED[:] = [(listed, found)]
    return _LISTED[0][1]


def user_for_session(request: HttpRequest | None, session: Session) -> Any:
    """Return the user linked to *session* by the listed ``KratosBackend``, or ``None``."""
    # The app's own subclass decides (its user_can_authenticate may refuse more users).
    backend = listed_backend() or KratosBackend
    return backend().authenticate(request, kratos_session=session)


def _kratos_session(request: HttpRequest) -> Session | None:
    credentials = credentials_of(request)
    if not credentials:
        return None
    client, _ = conf.clients()
    try:
        return client.whoami(credentials)
    except StepUpRequired:
        return None


def _kratos_login(request: HttpRequest) -> str | None:
    """Return the user key of a Django login made through :class:`KratosBackend`, if any."""
    session = getattr(request, "session", None)
    if session is None:
        return None
    path = session.get(auth.BACKEND_SESSION_KEY)
    if not path:
        return None
    if path not in (BACKEND, _DEFAULT_BACKEND):
        # RemoteUserMiddleware's test: is the backend that logged it in ours, or a subclass?
        try:
            backend = import_string(path)
        except ImportError:
            return None  # Django's own get_user() makes such a login anonymous
        if not (isinstance(backend, type) and issubclass(backend, KratosBackend)):
            return None
    user_key: str | None = session.get(auth.SESSION_KEY)
    return user_key


def _same_user(user: Any, user_key: str) -> bool:
    return user is not None and bool(user._meta.pk.value_to_string(user) == user_key)


def _resolve(request: HttpRequest) -> HttpResponse | None:
    """Set ``request.user`` from the Kratos session; return a 503 when Kratos is in trouble."""
    try:
        session = _kratos_session(request)
    except KratosUnavailable as error:
        response = conclude(unavailable(error, None), web_request(request), credentials_of(request))
        assert response is not None
        return as_response(response)
    user = None if session is None else user_for_session(request, session)
    user_key = _kratos_login(request)
    logged_out = user_key is not None and not _same_user(user, user_key)
    if logged_out:
        # As RemoteUserMiddleware does when its header names someone else, or is gone: a
        # Django login made through this backend lasts only while the request's Kratos
        # session is that user's. Another identity, one the app refuses (deactivated,
        # unlinked, a USER_FIELDS collision) or no Kratos session at all: logged out.
        auth.logout(request)
    if user is None and (logged_out or session is not None):
        # Anonymous, whatever request.auser cached before. With a Kratos session the app
        # refuses beside a login by another backend (a password), too: the AAL checks judge
        # that session, so the request is never that login's user served with another
        # identity's second factor. The login stays for requests without a Kratos session.
        user = AnonymousUser()
    if user is not None:
        request.user = request._kratos_aal_user = user
    # Else (no Kratos session), like RemoteUserMiddleware, leave whatever Django's own
    # session says (a password login through ModelBackend, or nobody).
    return None


class KratosUserMiddleware:
    """Make ``request.user`` the Django user linked to the Kratos session's identity.

    Put it after ``AuthenticationMiddleware``. Requests without a Kratos session keep
    whatever user Django's own session says (e.g. a password login to the admin), except
    one that came from :class:`KratosBackend`: that one is logged out, as it is when the
    request's Kratos session is another identity's, or one with no active user (as
    ``RemoteUserMiddleware`` logs out its backend's login when the header changes). A
    request with a Kratos session whose identity has no active user is anonymous, whoever
    Django's own session names.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        _user_fields()  # fail at start-up, naming the key (WSGI servers run no system checks)
        listed_backend()  # and on a backend that does not import
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        return _resolve(request) or self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> Any:
        # The whoami is cached and the user is a database row: both are blocking calls.
        denial = await sync_to_async(_resolve)(request)
        if denial is not None:
            return denial
        user = request.__dict__.get("_kratos_aal_user")
        if user is not None:

            async def auser() -> Any:
                return user

            request.auser = auser
        return await self.get_response(request)


@login_not_required
def login(request: HttpRequest) -> HttpResponse:
    """Send the browser to Kratos's login, and back to ``next`` afterwards.

    Point ``LOGIN_URL`` here, so that ``@login_required``, ``LoginRequiredMiddleware`` and
    the admin send people to Kratos. ``next`` must be on an allowed host, else it is ``/``.
    """
    target = request.GET.get("next") or "/"
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = "/"
    try:
        origin = origin_of(web_request(request), conf.get().config)
    except BadRequest as error:
        return as_response(bad_request(str(error)))
    if target.startswith("//"):
        target = origin.split(":", 1)[0] + ":" + target
    elif not target.startswith(("http://", "https://")):
        target = origin + ("" if target.startswith("/") else "/") + target
    response = HttpResponseRedirect(login_url(conf.get().config, target))
    response.status_code = 303
    return response
