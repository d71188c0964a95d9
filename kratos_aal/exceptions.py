"""Errors raised by kratos_aal.

Every error derives from :class:`KratosAALError`. No message ever contains a
session cookie value or a session token.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "KratosAALError",
    "KratosUnavailable",
    "MalformedResponse",
    "StepUpRequired",
]


class KratosAALError(Exception):
    """Base class of every error raised by kratos_aal."""


class ConfigurationError(KratosAALError, ValueError):
    """A setting is wrong; the message names the setting and what it expects."""


class KratosUnavailable(KratosAALError):
    """Kratos could not vouch for the session: deny the request with 503.

    Raised for network errors, timeouts, 5xx and 429 answers, any 403 that is
    not ``session_aal2_required``, and bodies that are not what Kratos sends.

    Attributes:
        retry_after: Seconds the client should wait, from Kratos's own
            ``Retry-After`` on a 429, else ``None``.
        status_code: Kratos's HTTP status when it answered, else ``None``.
        cause: ``"connect"`` when Kratos could not be reached, ``"timeout"`` when it did not
            answer in time, ``"busy"`` when this process had ``max_concurrent_checks``
            calls under way already (Kratos was not asked), ``None`` when it answered (an
            error status or an odd body).
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: int | None = None,
        status_code: int | None = None,
        cause: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status_code = status_code
        self.cause = cause


class MalformedResponse(KratosUnavailable):
    """Kratos (or something in its place) answered with a body Kratos does not send."""


class StepUpRequired(KratosAALError):
    """Kratos knows the session but will not show it until a second factor is given.

    Whoami answers so (403 ``session_aal2_required``) when Kratos runs with
    ``session.whoami.required_aal: highest_available`` and the identity has a second
    factor this session has not used. :meth:`KratosClient.check` turns it into a
    ``STEP_UP`` decision; :meth:`KratosClient.whoami` raises it.

    Attributes:
        redirect_to: Kratos's step-up URL, rebased onto ``browser_url``.
    """

    def __init__(self, redirect_to: str) -> None:
        super().__init__("Kratos requires a second factor before it shows this session")
        self.redirect_to = redirect_to
