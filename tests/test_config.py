"""KratosConfig and Requirement: every mistake fails at construction and names the setting."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from kratos_aal import AAL, ConfigurationError, KratosConfig, Requirement


def test_defaults_and_normalisation() -> None:
    config = KratosConfig(public_url="http://kratos:4433/")
    assert config.public_url == "http://kratos:4433"
    assert config.browser_url == "http://kratos:4433"
    assert (config.cookie_name, config.timeout, config.cache_ttl, config.cache_maxsize) == (
        "ory_kratos_session",
        3.0,
        30.0,
        10_000,
    )
    assert config.admin_url is None and config.app_url is None
    assert config.max_concurrent_checks == 64
    prefixed = KratosConfig(
        public_url="http://kratos:4433", browser_url="https://example.com/kratos/"
    )
    assert prefixed.browser_url == "https://example.com/kratos"
    assert prefixed.replace(cache_ttl=0).cache_ttl == 0


def test_admin_token_is_never_shown() -> None:
    config = KratosConfig(
        public_url="http://k", admin_url="http://k:4434", admin_token="ory_pat_secret"
    )
    assert "ory_pat_secret" not in repr(config)


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        pytest.param({"public_url": "kratos:4433"}, "public_url", id="public-no-scheme"),
        pytest.param({"public_url": "ftp://kratos"}, "public_url", id="public-ftp"),
        pytest.param({"public_url": "/relative"}, "public_url", id="public-relative"),
        pytest.param({"public_url": ""}, "public_url", id="public-empty"),
        pytest.param({"public_url": None}, "public_url", id="public-none"),
        pytest.param({"public_url": "http://k/?x=1"}, "public_url", id="public-query"),
        pytest.param({"public_url": "http://user:pw@k"}, "public_url", id="public-userinfo"),
        pytest.param({"public_url": "http://k:99999"}, "public_url", id="public-bad-port"),
        pytest.param({"public_url": "http://k a"}, "public_url", id="public-space"),
        pytest.param({"browser_url": "127.0.0.1:4455"}, "browser_url", id="browser-no-scheme"),
        pytest.param({"browser_url": "https://x/#frag"}, "browser_url", id="browser-fragment"),
        pytest.param({"cookie_name": "bad name"}, "cookie_name", id="cookie-space"),
        pytest.param({"cookie_name": ""}, "cookie_name", id="cookie-empty"),
        pytest.param({"timeout": -1}, "timeout", id="timeout-negative"),
        pytest.param({"timeout": 0}, "timeout", id="timeout-zero"),
        pytest.param({"timeout": "3"}, "timeout", id="timeout-string"),
        pytest.param({"timeout": float("nan")}, "timeout", id="timeout-nan"),
        pytest.param({"timeout": float("inf")}, "timeout", id="timeout-inf"),
        pytest.param({"cache_ttl": -0.5}, "cache_ttl", id="ttl-negative"),
        pytest.param({"cache_ttl": True}, "cache_ttl", id="ttl-bool"),
        pytest.param({"cache_maxsize": 0}, "cache_maxsize", id="maxsize-zero"),
        pytest.param({"cache_maxsize": 1.5}, "cache_maxsize", id="maxsize-float"),
        pytest.param({"admin_url": "kratos-admin"}, "admin_url", id="admin-url"),
        pytest.param({"admin_token": "t"}, "admin_token", id="token-without-url"),
        pytest.param(
            {"admin_url": "http://a", "admin_token": " "}, "admin_token", id="token-blank"
        ),
        pytest.param({"app_url": "example.com"}, "app_url", id="app-url"),
        pytest.param({"max_concurrent_checks": 0}, "max_concurrent_checks", id="cap-zero"),
        pytest.param({"max_concurrent_checks": -3}, "max_concurrent_checks", id="cap-negative"),
        pytest.param({"max_concurrent_checks": 2.0}, "max_concurrent_checks", id="cap-float"),
        pytest.param({"max_concurrent_checks": "8"}, "max_concurrent_checks", id="cap-string"),
        pytest.param({"max_concurrent_checks": True}, "max_concurrent_checks", id="cap-bool"),
    ],
)
def test_bad_values_name_the_setting(kwargs: dict[str, Any], setting: str) -> None:
    values = {"public_url": "http://kratos:4433", **kwargs}
    with pytest.raises(ConfigurationError, match=setting) as raised:
        KratosConfig(**values)
    assert isinstance(raised.value, ValueError)


def test_from_env() -> None:
    env = {
        "KRATOS_PUBLIC_URL": "http://kratos:4433",
        "KRATOS_BROWSER_URL": "http://127.0.0.1:4455/kratos",
        "KRATOS_COOKIE_NAME": "ory_session_slug",
        "KRATOS_ADMIN_URL": "http://kratos:4434",
        "KRATOS_ADMIN_TOKEN": "ory_pat_x",
        "KRATOS_AAL_CACHE_TTL": "12.5",
        "KRATOS_AAL_TIMEOUT": "1",
        "KRATOS_AAL_APP_URL": "https://app.example",
        "KRATOS_AAL_MAX_CONCURRENT_CHECKS": "12",
    }
    config = KratosConfig.from_env(env)
    assert config.max_concurrent_checks == 12
    assert config.browser_url == "http://127.0.0.1:4455/kratos"
    assert (config.cookie_name, config.cache_ttl, config.timeout) == ("ory_session_slug", 12.5, 1.0)
    assert (config.admin_url, config.admin_token, config.app_url) == (
        "http://kratos:4434",
        "ory_pat_x",
        "https://app.example",
    )
    assert KratosConfig.from_env(env, cache_ttl=0).cache_ttl == 0


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRATOS_PUBLIC_URL", "http://from-env:4433")
    assert KratosConfig.from_env().public_url == "http://from-env:4433"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({}, "KRATOS_PUBLIC_URL"),
        ({"KRATOS_PUBLIC_URL": "kratos:4433"}, "KRATOS_PUBLIC_URL"),
        ({"KRATOS_PUBLIC_URL": "http://k", "KRATOS_AAL_CACHE_TTL": "soon"}, "KRATOS_AAL_CACHE_TTL"),
        ({"KRATOS_PUBLIC_URL": "http://k", "KRATOS_AAL_CACHE_TTL": "-1"}, "KRATOS_AAL_CACHE_TTL"),
        ({"KRATOS_PUBLIC_URL": "http://k", "KRATOS_BROWSER_URL": "nope"}, "KRATOS_BROWSER_URL"),
        (
            {"KRATOS_PUBLIC_URL": "http://k", "KRATOS_AAL_MAX_CONCURRENT_CHECKS": "1.5"},
            "KRATOS_AAL_MAX_CONCURRENT_CHECKS",
        ),
        (
            {"KRATOS_PUBLIC_URL": "http://k", "KRATOS_AAL_MAX_CONCURRENT_CHECKS": "0"},
            "KRATOS_AAL_MAX_CONCURRENT_CHECKS",
        ),
    ],
)
def test_from_env_errors_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        KratosConfig.from_env(env)


def test_from_env_override_errors_name_the_field() -> None:
    with pytest.raises(ConfigurationError, match=r"^cache_ttl"):
        KratosConfig.from_env({"KRATOS_PUBLIC_URL": "http://k"}, cache_ttl=-1)


def test_requirement() -> None:
    rule = Requirement("aal2", max_age=timedelta(minutes=5), methods=["webauthn", "passkey"])
    assert (rule.aal, rule.max_age, rule.methods) == (
        AAL.AAL2,
        300.0,
        frozenset({"webauthn", "passkey"}),
    )
    assert Requirement().aal is AAL.AAL2 and Requirement("AAL1").aal is AAL.AAL1
    assert Requirement.parse("aal1") == Requirement(AAL.AAL1)
    assert Requirement.parse(rule) is rule


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"aal": "aal3"}, "aal"),
        ({"aal": "aal0"}, "aal"),
        ({"aal": "gold"}, "aal"),
        ({"max_age": 0}, "max_age"),
        ({"max_age": -5}, "max_age"),
        ({"max_age": "300"}, "max_age"),
        ({"max_age": True}, "max_age"),
        ({"methods": "webauthn"}, "methods"),
        ({"methods": []}, "methods"),
        ({"methods": [""]}, "methods"),
    ],
)
def test_bad_requirements(kwargs: dict[str, Any], text: str) -> None:
    with pytest.raises(ConfigurationError, match=text):
        Requirement(**kwargs)


def test_requirement_parse_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match=r"RULES\['/x'\]"):
        Requirement.parse("aal7", setting="RULES['/x']")
    with pytest.raises(ConfigurationError, match="rule"):
        Requirement.parse(2, setting="rule")  # type: ignore[arg-type]
