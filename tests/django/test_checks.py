"""System checks and settings: each mistake names the setting and how to fix it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from kratos_aal.integrations.django import KratosSessionMiddleware
from kratos_aal.integrations.django.checks import MIDDLEWARE, check_settings
from kratos_aal.integrations.django.conf import get

SettingsWrapper = Any  # pytest-django renamed its class across versions
GOOD = {"PUBLIC_URL": "http://kratos:4433"}


def ids(settings: SettingsWrapper) -> list[tuple[str, str]]:
    return [(found.id, found.msg) for found in check_settings()]


def test_example_settings_pass(settings: SettingsWrapper) -> None:
    assert check_settings() == []


@pytest.mark.parametrize(
    ("value", "error_id", "text"),
    [
        pytest.param(
            {}, "kratos_aal.E001", "KRATOS_AAL['PUBLIC_URL'] is not set", id="no-public-url"
        ),
        pytest.param(
            {**GOOD, "BROWSER_URL": "127.0.0.1:4455"},
            "kratos_aal.E002",
            "KRATOS_AAL['BROWSER_URL']: browser_url must be an absolute http(s) URL",
            id="browser-url",
        ),
        pytest.param(
            {**GOOD, "CACHE_TTL": -1}, "kratos_aal.E002", "KRATOS_AAL['CACHE_TTL']", id="cache-ttl"
        ),
        pytest.param(
            {**GOOD, "TIMEOUT": 0}, "kratos_aal.E002", "KRATOS_AAL['TIMEOUT']", id="timeout"
        ),
        pytest.param(
            {**GOOD, "PUBLC_URL": "x"},
            "kratos_aal.E002",
            "KRATOS_AAL['PUBLC_URL'] is not a setting; did you mean 'PUBLIC_URL'?",
            id="typo",
        ),
        pytest.param(
            {**GOOD, "RULES": {"/billing/*": "aal5"}},
            "kratos_aal.E003",
            "KRATOS_AAL['RULES']['/billing/*']",
            id="bad-rule",
        ),
        pytest.param(
            {**GOOD, "RULES": {"billing": "aal2"}},
            "kratos_aal.E003",
            "must be a path",
            id="bad-glob",
        ),
        pytest.param(
            "http://kratos:4433", "kratos_aal.E002", "KRATOS_AAL must be a dict", id="not-a-dict"
        ),
    ],
)
def test_bad_settings(settings: SettingsWrapper, value: Any, error_id: str, text: str) -> None:
    settings.KRATOS_AAL = value
    found = ids(settings)
    assert [f[0] for f in found] == [error_id]
    assert text in found[0][1]
    with pytest.raises(ImproperlyConfigured, match=re.escape(text.split(":")[0])):
        KratosSessionMiddleware(lambda request: None)


def test_missing_kratos_aal(settings: SettingsWrapper) -> None:
    del settings.KRATOS_AAL
    assert [f[0] for f in ids(settings)] == ["kratos_aal.E001"]
    # At the first request too, the message says what is wrong: it is not set at all.
    with pytest.raises(ImproperlyConfigured, match=r"^KRATOS_AAL is not set: set it to a dict"):
        KratosSessionMiddleware(lambda request: None)


def test_without_installed_app_warns_once_that_checks_do_not_run(
    settings: SettingsWrapper, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.apps import apps

    from kratos_aal.integrations.django import conf

    monkeypatch.setattr(conf, "_warned_not_installed", False)
    monkeypatch.setattr(apps, "is_installed", lambda name: name != conf.APP)
    with caplog.at_level("WARNING", logger="kratos_aal"):
        for cookie_name in ("a", "b"):  # each change of the setting reads it again
            settings.KRATOS_AAL = {**GOOD, "COOKIE_NAME": cookie_name}
            assert get().config.cookie_name == cookie_name
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "'kratos_aal.integrations.django' is not in INSTALLED_APPS: kratos-aal works, but its "
        "system checks of KRATOS_AAL do not run (a mistyped key passes `manage.py check`). "
        "Add it to INSTALLED_APPS."
    ]


def test_with_installed_app_nothing_is_said(
    settings: SettingsWrapper, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kratos_aal.integrations.django import conf

    monkeypatch.setattr(conf, "_warned_not_installed", False)
    with caplog.at_level("WARNING", logger="kratos_aal"):
        settings.KRATOS_AAL = {**GOOD, "COOKIE_NAME": "c"}
        assert get().config.cookie_name == "c"
    assert [r for r in caplog.records if "INSTALLED_APPS" in r.getMessage()] == []


def test_rules_without_middleware(settings: SettingsWrapper) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE]
    assert [f[0] for f in ids(settings)] == ["kratos_aal.E004"]
    settings.KRATOS_AAL = GOOD  # no RULES: the decorators work without the middleware
    assert ids(settings) == []


def test_middleware_before_security_middleware(settings: SettingsWrapper) -> None:
    settings.MIDDLEWARE = [MIDDLEWARE, *[m for m in settings.MIDDLEWARE if m != MIDDLEWARE]]
    found = check_settings()
    assert [f.id for f in found] == ["kratos_aal.W001"]
    assert "SecurityMiddleware" in found[0].hint


def test_settings_changes_are_picked_up(settings: SettingsWrapper) -> None:
    assert get().config.public_url == "http://127.0.0.1:4433"
    settings.KRATOS_AAL = {**GOOD, "COOKIE_NAME": "ory_session_acme", "RULES": {"/x/*": "aal1"}}
    assert get().config.cookie_name == "ory_session_acme"
    assert get().rules.match("/x/y") is not None


def test_every_config_field_has_a_key(settings: SettingsWrapper) -> None:
    settings.KRATOS_AAL = {
        "PUBLIC_URL": "http://kratos:4433",
        "BROWSER_URL": "https://example.com/kratos",
        "COOKIE_NAME": "ory_session_x",
        "TIMEOUT": 1.5,
        "CACHE_TTL": 0,
        "CACHE_MAXSIZE": 5,
        "ADMIN_URL": "http://kratos:4434",
        "ADMIN_TOKEN": "ory_pat_t",
        "APP_URL": "https://example.com",
        "MAX_CONCURRENT_CHECKS": 7,
    }
    config = get().config
    assert (config.timeout, config.cache_ttl, config.cache_maxsize, config.admin_token) == (
        1.5,
        0,
        5,
        "ory_pat_t",
    )
    assert config.max_concurrent_checks == 7


def test_decorators_use_the_settings(settings: SettingsWrapper) -> None:
    settings.KRATOS_AAL = {**GOOD, "BROWSER_URL": "https://example.com/kratos"}
    reply = Client().get("/billing/")
    assert reply["Location"].startswith("https://example.com/kratos/self-service/login/browser?")
