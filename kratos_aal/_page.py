"""Step-up inside a page: what a session may see, and the link that would let it see more.

Sans-IO and framework-free, as ``_core`` is: the template tags and globals of every
adapter ask :class:`PageAccess`, which asks :func:`page_decision`, which is the middleware's
own :func:`~kratos_aal._decision.decide`. A page never decides differently from the route that
would demand the same requirement, and never builds its URLs another way.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Collection
from datetime import datetime, timedelta, timezone

from ._config import KratosConfig
from ._decision import (
    Decision,
    Outcome,
    Requirement,
    RequirementLike,
    ReturnTo,
    _once,
    _resolve,
    decide,
)
from ._kratos_api import login_url, rebase, settings_url
from ._models import AAL, AALLike, Session
from ._web import WebRequest, WebResponse
from .exceptions import ConfigurationError

__all__ = ["PageAccess", "inline_denial", "page_decision"]


def page_decision(
    session: Session | None,
    requirement: RequirementLike,
    *,
    config: KratosConfig,
    return_to: ReturnTo = None,
    now: datetime | None = None,
    has_second_factor: bool = True,
    step_up_to: str | None = None,
) -> Decision:
    """Return what the middleware would decide for *session* on a route demanding *requirement*.

    Pure: no Kratos call. The decision carries the URL the browser would be sent to (login,
    step-up, enrollment or re-authentication) under ``browser_url``, coming back to
    *return_to* (a URL, or a callable called only for a denial).

    Args:
        session: The session Kratos showed for the request, or ``None``.
        requirement: ``"aal1"``, ``"aal2"`` or a :class:`~kratos_aal.Requirement`.
        config: Where Kratos is (``browser_url``).
        return_to: Where Kratos sends the browser back to: the page.
        now: The time to judge ``max_age`` by (default: now).
        has_second_factor: Whether the identity has a second factor; only asked when the
            session's AAL is below the requirement's (``STEP_UP`` or ``ENROLL``).
        step_up_to: Kratos's step-up URL when it withheld the session
            (``session_aal2_required``): every requirement is then a ``STEP_UP`` there.

    Raises:
        ConfigurationError: *requirement* is not one.

    .. versionadded:: 0.2
    """
    rule = Requirement.parse(requirement)
    if step_up_to is not None and session is None:
        target = rebase(config, step_up_to, _resolve(return_to))
        return Decision(Outcome.STEP_UP, None, target, requirement=rule)
    return decide(
        session,
        rule,
        now=now or datetime.now(timezone.utc),
        return_to=return_to,
        config=config,
        has_second_factor=has_second_factor,
    )


def _requirement(
    aal: RequirementLike,
    max_age: float | timedelta | None,
    methods: Collection[str] | str | None,
) -> Requirement:
    if isinstance(aal, Requirement):
        if max_age is None and methods is None:
            return aal
        # What is given replaces the requirement's own; what is not given is kept.
        return Requirement(
            aal.aal,
            max_age=aal.max_age if max_age is None else max_age,
            methods=aal.methods if methods is None else _methods(methods),
        )
    return Requirement(aal, max_age=max_age, methods=_methods(methods))


def _methods(methods: Collection[str] | str | None) -> Collection[str] | None:
    # Templates write a list as text: "webauthn,passkey" or "webauthn passkey".
    if isinstance(methods, str):
        return [m for m in methods.replace(",", " ").split() if m] or [methods]
    if methods is not None and not isinstance(methods, Collection):
        raise ConfigurationError(
            f"methods must be method names (a list, or a text such as "
            f'"webauthn,passkey"), got {methods!r}'
        )
    return methods


class PageAccess:
    """What one request's session may see, and the links that would let it see more.

    The framework adapters build it once per request from the session the request's own
    check attached (no Kratos call of its own), and their template tags and globals ask
    it. Only two answers may need Kratos, each at most once per request and cached by the
    client beyond it: whether an aal1 session's identity has a second factor (to tell
    step-up from enrollment), and the logout URL.

    Args:
        session: The request's session, or ``None``.
        config: Where Kratos is.
        return_to: The page (a URL, or a callable called at most once, when a URL needs it).
        now: The clock ``max_age`` is judged by (the client's).
        second_factor: Returns whether the session's identity has a second factor.
        logout: Returns the session's logout URL (any ``return_to``), or ``None``.
        step_up_to: Kratos's step-up URL when it withheld the session.

    .. versionadded:: 0.2
    """

    __slots__ = (
        "_factor",
        "_factor_source",
        "_logout",
        "_logout_source",
        "_now",
        "_return_to",
        "config",
        "session",
        "step_up_to",
    )

    def __init__(
        self,
        session: Session | None,
        *,
        config: KratosConfig,
        return_to: ReturnTo = None,
        now: Callable[[], datetime] | None = None,
        second_factor: Callable[[], bool] | None = None,
        logout: Callable[[], str | None] | None = None,
        step_up_to: str | None = None,
    ) -> None:
        self.session = session
        self.config = config
        self.step_up_to = step_up_to
        self._return_to = _once(return_to)
        self._now = now or (lambda: datetime.now(timezone.utc))
        self._factor: list[bool] = []
        self._factor_source = second_factor
        self._logout: list[str | None] = []
        self._logout_source = logout

    def __repr__(self) -> str:
        aal = self.session.aal.value if self.session is not None else None
        return f"PageAccess(session_aal={aal!r})"

    def decision(
        self,
        aal: RequirementLike = AAL.AAL2,
        *,
        max_age: float | timedelta | None = None,
        methods: Collection[str] | str | None = None,
    ) -> Decision:
        """Return what a route demanding this would decide for the session (no Kratos call,
        unless the session is below *aal* and its second factors are not known yet).

        Args:
            aal: ``"aal1"``, ``"aal2"`` or a :class:`~kratos_aal.Requirement`.
            max_age: Seconds since the newest method of at least *aal* was completed.
            methods: Method names of which one must have been used (a collection, or a
                text such as ``"webauthn,passkey"``).
        """
        rule = _requirement(aal, max_age, methods)
        decision = page_decision(
            self.session,
            rule,
            config=self.config,
            return_to=self._return_to,
            now=self._now(),
            step_up_to=self.step_up_to,
        )
        if (
            decision.outcome is Outcome.STEP_UP
            and decision.session is not None
            and not self.has_second_factor()
        ):
            decision = page_decision(
                self.session,
                rule,
                config=self.config,
                return_to=self._return_to,
                now=self._now(),
                has_second_factor=False,
            )
        return decision

    def allows(
        self,
        aal: AALLike | Requirement = AAL.AAL2,
        *,
        max_age: float | timedelta | None = None,
        methods: Collection[str] | str | None = None,
    ) -> bool:
        """Return whether the session meets the requirement now (pure: no Kratos call)."""
        rule = _requirement(aal, max_age, methods)
        now = self._now()
        decision = page_decision(
            self.session, rule, config=self.config, now=now, step_up_to=self.step_up_to
        )
        return decision.allowed

    def step_up_url(
        self,
        aal: RequirementLike = AAL.AAL2,
        *,
        max_age: float | timedelta | None = None,
        methods: Collection[str] | str | None = None,
    ) -> str:
        """Return where to send the browser so that the session meets the requirement.

        Login for no session, step-up for an aal1 session with a second factor, enrollment
        for one without, re-authentication for one too old or without the methods: the
        URL the middleware would send, coming back to this page. When the session already
        meets it, the page itself.
        """
        decision = self.decision(aal, max_age=max_age, methods=methods)
        return decision.redirect_to or self.page_url()

    def page_url(self) -> str:
        """Return this page's URL, where Kratos sends the browser back to (``""``: unknown)."""
        return _resolve(self._return_to) or ""

    def login_url(self) -> str:
        """Return Kratos's login URL, coming back to this page."""
        return login_url(self.config, _resolve(self._return_to))

    def settings_url(self) -> str:
        """Return Kratos's settings URL (pair an authenticator, change the password), back here."""
        return settings_url(self.config, _resolve(self._return_to))

    def logout_url(self, return_to: str | None = None) -> str | None:
        """Return a Kratos logout URL for this session, ``None`` when there is none.

        Back to *return_to* when given, else to Kratos's default return URL. Kratos's
        logout token lives as long as the session: the URL is asked of Kratos once and
        cached with the session.
        """
        if not self._logout:
            # No session, none withheld: nothing to log out of, and nothing to ask Kratos
            # (a forged cookie costs its one whoami, not a logout call besides).
            known = self.session is not None or self.step_up_to is not None
            self._logout.append(self._logout_source() if known and self._logout_source else None)
        url = self._logout[0]
        # On browser_url whatever the source wrote: Kratos writes its own base URL.
        return None if url is None else rebase(self.config, url, return_to)

    def has_second_factor(self) -> bool:
        """Return whether the session's identity has a second factor (asked once; cached).

        An aal2 session proves it has; without a way to ask, a step-up is the safe guess
        (the middleware guesses so when Kratos cannot say).
        """
        session = self.session
        if session is not None and session.aal >= AAL.AAL2:
            return True
        if not self._factor:
            self._factor.append(self._factor_source() if self._factor_source else True)
        return self._factor[0]


# ------------------------------------------------------------------------------- HTMX

#: What the inline link says, by outcome: what the click leads to.
_INLINE_TEXT = {
    Outcome.LOGIN: "Sign in to see this",
    Outcome.STEP_UP: "Verify to see this",
    Outcome.REAUTHENTICATE: "Verify to see this",
    Outcome.ENROLL: "Set up a second factor to see this",
}


def inline_denial(decision: Decision, request: WebRequest) -> WebResponse | None:
    """Return an HTMX fragment that links the way to *decision*'s URL, instead of a redirect.

    For an HTMX request only (``HX-Request: true``) and a decision with somewhere to go:
    ``200`` with a link (``hx-boost="false"``: a whole-page visit to Kratos), so that htmx
    swaps it in where the fragment would have been. ``None`` otherwise: the adapter answers
    as usual (``HX-Redirect``, a 303, or a 503 that htmx leaves unswapped).
    """
    text = _INLINE_TEXT.get(decision.outcome)
    if text is None or not decision.redirect_to or not request.is_htmx:
        return None
    body = (
        f'<a href="{html.escape(decision.redirect_to)}" hx-boost="false" '
        f'class="kratos-aal-verify" data-kratos-aal-outcome="{decision.outcome.value}">'
        f"{text}</a>"
    )
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Cache-Control", "no-store"),
        ("Vary", "HX-Request"),
    ]
    return WebResponse(200, headers, body.encode())
