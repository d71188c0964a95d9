"""Kratos's UI messages (Kratos's ``text/`` package) as FakeKratos sends them."""

from __future__ import annotations

from typing import Any

#: Kratos's default minimum password length
#: (selfservice.methods.password.config.min_password_length).
_MIN_PASSWORD = 8

# Kratos's UI messages (text/id.go) that the fake uses.
#: herodot's message for every 400 (ErrBadRequest).
BAD_REQUEST = "The request was malformed or contained invalid parameters"

MSG_CONFIRM = (1010003, "Please confirm this action by verifying that it is you.", "info")


MSG_SECOND_FACTOR = (1010004, "Please complete the second authentication challenge.", "info")


MSG_SAVED = (1050001, "Your changes have been saved!", "success")


MSG_INVALID_CREDENTIALS = (
    4000006,
    "The provided credentials are invalid, check for spelling mistakes in your password or "
    "username, email address, or phone number.",
    "error",
)


MSG_INVALID_CODE = (
    4000008,
    "The provided authentication code is invalid, please try again.",
    "error",
)


MSG_INVALID_LOOKUP = (4000016, "The backup recovery code is not valid.", "error")
MSG_USED_LOOKUP = (4000012, "This backup recovery code has already been used.", "error")
MSG_DUPLICATE = (
    4000007,
    "An account with the same identifier (email, phone, username, ...) exists already.",
    "error",
)
MSG_EMAIL_MISSING = (4000002, "Property email is missing.", "error")
MSG_NO_TOTP = (4000011, "You have no TOTP device set up.", "error")


def _ui_text(message: tuple[int, str, str], **context: Any) -> dict[str, Any]:
    text: dict[str, Any] = {"id": message[0], "text": message[1], "type": message[2]}
    if context:
        text["context"] = context
    return text


def _too_short(password: str) -> dict[str, Any] | None:
    """Return the message for a new *password* under ``_MIN_PASSWORD``, else ``None``.

    strategy/password/validator.go: ErrorValidationPasswordMinLength.
    """
    if len(password) >= _MIN_PASSWORD:
        return None
    text = (
        4000032,
        f"The password must be at least {_MIN_PASSWORD} characters long, but got {len(password)}.",
        "error",
    )
    return _ui_text(text, min_length=_MIN_PASSWORD, actual_length=len(password))
