"""A guessable cache_key_secret is refused at construction (issue 21, item 9).

With a guessable secret, whoever can write to the shared cache computes the keys and signs
a session of their own making: the secret is what makes the shared tier safe.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from kratos_aal import KratosConfig
from kratos_aal._config import guessable
from kratos_aal._settings import read
from kratos_aal.exceptions import ConfigurationError
from kratos_aal.integrations.django import conf
from kratos_aal.integrations.django.checks import check_settings

MAKE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
REDIS = "redis://127.0.0.1:1/0"
SettingsWrapper = Any

REFUSED = [
    # Repeated characters.
    pytest.param("a" * 16, "only 1 different character", id="one-character"),
    pytest.param("ab" * 8, "only 2 different characters", id="two-characters"),
    pytest.param("Ab1!" * 5, "only 4 different characters", id="four-characters"),
    pytest.param("aaaabbbbccccddddeeee", "repeated characters or a sequence", id="runs"),
    pytest.param("abcdeabcdeabcdeabcde", "repeated characters or a sequence", id="repeated"),
    # Sequences.
    pytest.param("0123456789abcdef", "repeated characters or a sequence", id="hex-digits"),
    pytest.param("abcdefghijklmnop", "repeated characters or a sequence", id="alphabet"),
    pytest.param("zyxwvutsrqponmlk", "repeated characters or a sequence", id="backwards"),
    pytest.param("acegikmoqsuwy024", "repeated characters or a sequence", id="every-other"),
    pytest.param("qwertyuiopasdfgh", "repeated characters or a sequence", id="keyboard"),
    pytest.param("1234567812345678", "repeated characters or a sequence", id="digits-twice"),
    # Known placeholders.
    pytest.param("changemechangeme", "a placeholder", id="changeme"),
    pytest.param("changeme-12345678", "a placeholder", id="changeme-digits"),
    pytest.param("put-your-secret-here", "a placeholder", id="put-your-secret-here"),
    pytest.param("Secret-Password-Test", "a placeholder", id="words"),
    pytest.param("django-insecure-changeme", "a placeholder", id="insecure-changeme"),
]


@pytest.mark.parametrize(("secret", "reason"), REFUSED)
def test_a_guessable_secret_is_refused(secret: str, reason: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        KratosConfig("http://kratos:4433", cache_url=REDIS, cache_key_secret=secret)
    message = str(raised.value)
    assert message.startswith(f"cache_key_secret is guessable ({reason}"), message
    assert MAKE in message
    assert secret not in message  # the reason, never the secret


@pytest.mark.parametrize(("secret", "reason"), REFUSED[:3])
def test_a_guessable_secret_is_refused_without_a_cache_url_too(secret: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^cache_key_secret is guessable"):
        KratosConfig("http://kratos:4433", cache_key_secret=secret)


def test_the_short_secret_message_shows_how_to_make_one() -> None:
    with pytest.raises(ConfigurationError) as raised:
        KratosConfig("http://kratos:4433", cache_key_secret="k7Qp2mZr9TvB4xW")
    assert str(raised.value).startswith("cache_key_secret must be a string of at least 16")
    assert MAKE in str(raised.value)


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(secrets.token_urlsafe(32), id="token_urlsafe-32"),
        pytest.param(secrets.token_hex(32), id="token_hex-32"),
        pytest.param("k7Qp2mZr9TvB4xWc", id="random-16"),
        pytest.param("b5cc0771aea74f68", id="hex-16"),
        pytest.param("a-test-secret-of-enough-length", id="a-phrase"),
    ],
)
def test_a_random_secret_passes(secret: str) -> None:
    config = KratosConfig("http://kratos:4433", cache_url=REDIS, cache_key_secret=secret)
    assert config.cache_key_secret == secret


def test_random_secrets_are_never_refused() -> None:
    # The bars sit far below what random secrets score: a failure here is a bar set too high.
    for _ in range(2000):
        assert guessable(secrets.token_urlsafe(32)) is None
        assert guessable(secrets.token_hex(16)) is None


def test_the_environment_names_its_variable() -> None:
    environ = {
        "KRATOS_PUBLIC_URL": "http://kratos:4433",
        "KRATOS_AAL_CACHE_URL": REDIS,
        "KRATOS_AAL_CACHE_KEY_SECRET": "changemechangeme",
    }
    with pytest.raises(ConfigurationError) as raised:
        KratosConfig.from_env(environ)
    assert str(raised.value).startswith("KRATOS_AAL_CACHE_KEY_SECRET: cache_key_secret is guess")
    assert "changemechangeme" not in str(raised.value)


def test_flask_and_django_settings_name_the_key() -> None:
    raw = {"PUBLIC_URL": "http://kratos:4433", "CACHE_URL": REDIS, "CACHE_KEY_SECRET": "a" * 16}
    with pytest.raises(ConfigurationError) as raised:
        read(raw, setting="app.config['KRATOS_AAL']")
    assert str(raised.value).startswith(
        "app.config['KRATOS_AAL']['CACHE_KEY_SECRET']: cache_key_secret is guessable"
    )


@pytest.mark.parametrize(
    "secret_key",
    [
        pytest.param("a" * 50, id="repeated"),
        pytest.param("changeme", id="short"),
        pytest.param("kratos-aal-example-not-secret", id="placeholder"),
        pytest.param(
            "django-insecure-0123456789abcdefghijklmnop", id="startproject-prefix-sequence"
        ),
    ],
)
def test_django_refuses_to_derive_from_a_guessable_secret_key(
    settings: SettingsWrapper, secret_key: str
) -> None:
    settings.SECRET_KEY = secret_key
    settings.KRATOS_AAL = {"PUBLIC_URL": "http://kratos:4433", "CACHE_URL": REDIS}
    (error,) = check_settings()
    assert error.id == "kratos_aal.E006"
    assert error.msg.startswith(
        "KRATOS_AAL['CACHE_KEY_SECRET'] is derived from SECRET_KEY, which is guessable ("
    ), error.msg
    assert MAKE in error.msg
    assert secret_key not in error.msg


def test_django_derives_from_a_startproject_secret_key(settings: SettingsWrapper) -> None:
    # `django-admin startproject` writes "django-insecure-" and 50 random characters.
    settings.SECRET_KEY = "django-insecure-iq&sia($=5i2$k_8l6#vyd&^_chr+q9nx4_=qoj&6s4c6pp5h1"
    settings.KRATOS_AAL = {"PUBLIC_URL": "http://kratos:4433", "CACHE_URL": REDIS}
    assert check_settings() == []
    assert conf.get().config.cache_key_secret


def test_django_takes_a_good_secret_beside_a_guessable_secret_key(
    settings: SettingsWrapper,
) -> None:
    settings.SECRET_KEY = "a" * 50
    settings.KRATOS_AAL = {
        "PUBLIC_URL": "http://kratos:4433",
        "CACHE_URL": REDIS,
        "CACHE_KEY_SECRET": "k7Qp2mZr9TvB4xWc",
    }
    assert check_settings() == []


def test_django_refuses_a_guessable_cache_key_secret(settings: SettingsWrapper) -> None:
    settings.KRATOS_AAL = {
        "PUBLIC_URL": "http://kratos:4433",
        "CACHE_URL": REDIS,
        "CACHE_KEY_SECRET": "0123456789abcdef",
    }
    (error,) = check_settings()
    assert error.msg.startswith("KRATOS_AAL['CACHE_KEY_SECRET']: cache_key_secret is guessable")
