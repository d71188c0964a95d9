"""Cross-origin requests on the cookie (SPEC §4a): the algorithm, its settings, its answer.

The algorithm is Go 1.25's ``net/http.CrossOriginProtection``; the table below follows
the cases of Go's ``crossorigin_test.go``. The adapters are tested in their own folders.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kratos_aal import ConfigurationError, Credentials, KratosConfig
from kratos_aal._settings import read
from kratos_aal._web import (
    CrossOriginRefusal,
    WebRequest,
    cross_origin,
    is_trusted,
    refuse_cross_origin,
)

HOST = "example.com"
TRUSTED = KratosConfig("http://kratos:4433", trusted_origins=["https://trusted.example"])
PLAIN = KratosConfig("http://kratos:4433")


@pytest.mark.parametrize(
    ("method", "site", "origin", "allowed"),
    [
        pytest.param("POST", "same-origin", "", True, id="same-origin"),
        pytest.param("POST", "none", "", True, id="none-user-typed"),
        pytest.param("POST", "cross-site", "", False, id="cross-site"),
        pytest.param("POST", "same-site", "", False, id="same-site"),
        pytest.param("POST", "", "https://example.com", True, id="no-sfs-same-origin"),
        pytest.param("POST", "", "https://attacker.example", False, id="no-sfs-cross-origin"),
        pytest.param("POST", "", "", True, id="no-headers-not-a-browser"),
        pytest.param("POST", "", "null", False, id="origin-null"),
        pytest.param("POST", "", "https://example.com:8443", False, id="origin-other-port"),
        pytest.param("POST", "", "https://sub.example.com", False, id="origin-subdomain"),
        # Host carries no scheme: Go fails open on http->https (HSTS covers it).
        pytest.param("POST", "", "http://example.com", True, id="origin-http-https"),
        pytest.param("POST", "same-origin", "https://attacker.example", True, id="sfs-wins"),
        pytest.param("POST", "cross-site", "https://example.com", False, id="sfs-wins-refuse"),
        pytest.param("POST", "bogus", "", False, id="unknown-sfs-value"),
        pytest.param("GET", "cross-site", "https://attacker.example", True, id="get"),
        pytest.param("HEAD", "cross-site", "https://attacker.example", True, id="head"),
        pytest.param("OPTIONS", "cross-site", "https://attacker.example", True, id="options"),
        pytest.param("TRACE", "cross-site", "https://attacker.example", True, id="trace"),
        pytest.param("PUT", "cross-site", "", False, id="put"),
        pytest.param("PATCH", "same-site", "", False, id="patch"),
        pytest.param("DELETE", "", "https://attacker.example", False, id="delete"),
        pytest.param("POST", "cross-site", "https://trusted.example", True, id="trusted-sfs"),
        pytest.param("POST", "", "https://trusted.example", True, id="trusted-origin"),
        pytest.param("POST", "cross-site", "https://trusted.example:444", False, id="trusted-port"),
        pytest.param("POST", "cross-site", "http://trusted.example", False, id="trusted-scheme"),
        pytest.param("POST", "cross-site", "", False, id="trusted-needs-origin"),
    ],
)
def test_the_algorithm_is_gos(method: str, site: str, origin: str, allowed: bool) -> None:
    why = cross_origin(method, site, origin, HOST, TRUSTED)
    assert (why is None) is allowed, why


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        pytest.param("https://example.com", "example.com:443", True, id="default-port-in-host"),
        pytest.param("http://example.com", "EXAMPLE.com", True, id="host-case"),
        pytest.param("http://127.0.0.1:8000", "127.0.0.1:8000", True, id="ip-port"),
        pytest.param("http://127.0.0.1:8001", "127.0.0.1:8000", False, id="ip-other-port"),
        pytest.param("http://[::1]:8000", "[::1]:8000", True, id="ipv6"),
        pytest.param("https://example.com/path", "example.com", False, id="origin-with-path"),
        pytest.param("https://example.com, https://x", "example.com", False, id="two-origins"),
        pytest.param("javascript:alert(1)", "example.com", False, id="not-an-origin"),
        pytest.param("https://example.com", None, False, id="no-host"),
    ],
)
def test_origin_against_host(origin: str, host: str | None, allowed: bool) -> None:
    assert (cross_origin("POST", "", origin, host, PLAIN) is None) is allowed


def test_app_url_is_this_sites_origin_behind_a_proxy_that_rewrites_host() -> None:
    config = KratosConfig("http://kratos:4433", app_url="https://shop.example")
    assert cross_origin("POST", "", "https://shop.example", "app:8000", config) is None
    assert cross_origin("POST", "", "http://shop.example", "app:8000", config) is not None
    assert cross_origin("POST", "", "https://shop.example", "app:8000", PLAIN) is not None


@pytest.mark.parametrize(
    ("origin", "site", "allowed"),
    [
        pytest.param("https://example.com", "", True, id="same"),
        pytest.param("https://attacker.example", "", False, id="foreign"),
        pytest.param("https://attacker.example", "same-origin", False, id="origin-not-sfs"),
        pytest.param("null", "", False, id="null"),
        pytest.param("", "", True, id="not-a-browser"),
        pytest.param("https://trusted.example", "", True, id="trusted"),
    ],
)
def test_a_websocket_handshake_is_judged_by_origin(origin: str, site: str, allowed: bool) -> None:
    why = cross_origin("GET", site, origin, HOST, TRUSTED, websocket=True)
    assert (why is None) is allowed


@pytest.mark.parametrize(
    ("entry", "origin", "trusted"),
    [
        pytest.param("https://app.example", "https://app.example", True, id="exact"),
        pytest.param("HTTPS://App.Example:443", "https://app.example", True, id="normalised"),
        pytest.param("https://app.example:8443", "https://app.example:8443", True, id="port"),
        pytest.param("https://app.example", "https://app.example:8443", False, id="other-port"),
        pytest.param("https://app.example", "http://app.example", False, id="other-scheme"),
        pytest.param("https://app.example", "https://evilapp.example", False, id="other-host"),
        # Django's CSRF_TRUSTED_ORIGINS: "*." trusts the domain and its subdomains.
        pytest.param("https://*.example.com", "https://a.example.com", True, id="wild-sub"),
        pytest.param("https://*.example.com", "https://a.b.example.com", True, id="wild-deep"),
        pytest.param("https://*.example.com", "https://example.com", True, id="wild-apex"),
        pytest.param("https://*.example.com", "https://badexample.com", False, id="wild-suffix"),
        pytest.param("https://*.example.com", "http://a.example.com", False, id="wild-scheme"),
        pytest.param("https://*.example.com", "https://a.example.com:8443", False, id="wild-port"),
        pytest.param("https://*.example.com", "https://example.com.evil", False, id="wild-tail"),
    ],
)
def test_trusted_origins(entry: str, origin: str, trusted: bool) -> None:
    config = KratosConfig("http://kratos:4433", trusted_origins=[entry])
    assert is_trusted(origin, config) is trusted


@pytest.mark.parametrize(
    "entry",
    [
        "https://app.example/",
        "https://app.example/path",
        "app.example",
        "//app.example",
        "https://app.example?x=1",
        "https://app.example#top",
        "ftp://app.example",
        "https://user@app.example",
        "https://app.example:0",
        "https://app.example:99999",
        "https://a.*.example",
        "https://*app.example",
        "https://*",
        # No domain after "*.": it would trust every host with a trailing dot, which any
        # site can have ("https://attacker.example."); an empty {DOMAIN} in a template.
        "https://*.",
        "https://*..",
        "https://*.:8443",
        "https://app example",
        "",
        None,
        42,
    ],
)
def test_a_bad_trusted_origin_is_refused_naming_the_setting(entry: Any) -> None:
    with pytest.raises(ConfigurationError, match="trusted_origins"):
        KratosConfig("http://kratos:4433", trusted_origins=[entry])


@pytest.mark.parametrize("value", ["https://app.example", None, {"https://app.example": 1}])
def test_trusted_origins_must_be_a_list(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="trusted_origins must be a list"):
        KratosConfig("http://kratos:4433", trusted_origins=value)


@pytest.mark.parametrize("value", [0, 1, "no", None])
def test_cross_origin_protection_must_be_a_bool(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="cross_origin_protection"):
        KratosConfig("http://kratos:4433", cross_origin_protection=value)


def test_the_settings_dicts_carry_both_keys() -> None:
    settings = read(
        {
            "PUBLIC_URL": "http://kratos:4433",
            "TRUSTED_ORIGINS": ["https://spa.example"],
            "CROSS_ORIGIN_PROTECTION": False,
        }
    )
    assert settings.config.trusted_origins == ("https://spa.example",)
    assert settings.config.cross_origin_protection is False
    with pytest.raises(ConfigurationError, match=r"KRATOS_AAL\['TRUSTED_ORIGINS'\]"):
        read({"PUBLIC_URL": "http://kratos:4433", "TRUSTED_ORIGINS": ["spa.example"]})


def test_from_env_reads_trusted_origins() -> None:
    env = {
        "KRATOS_PUBLIC_URL": "http://kratos:4433",
        "KRATOS_AAL_TRUSTED_ORIGINS": "https://a.example, https://b.example:8443,",
    }
    config = KratosConfig.from_env(env)
    assert config.trusted_origins == ("https://a.example", "https://b.example:8443")
    assert config.cross_origin_protection is True
    with pytest.raises(ConfigurationError, match="KRATOS_AAL_TRUSTED_ORIGINS"):
        KratosConfig.from_env({**env, "KRATOS_AAL_TRUSTED_ORIGINS": "a.example"})


def _request(**headers: str) -> WebRequest:
    return WebRequest(
        method="POST", scheme="https", host=HOST, path="/transfer", headers=dict(headers)
    )


COOKIE = Credentials(cookie="MTcxNjc5-victim")


def test_only_the_cookie_is_refused() -> None:
    request = _request(**{"sec-fetch-site": "cross-site"})
    assert isinstance(refuse_cross_origin(request, COOKIE, PLAIN), CrossOriginRefusal)
    assert refuse_cross_origin(request, Credentials(token="ory_st_abc"), PLAIN) is None
    assert refuse_cross_origin(request, Credentials(), PLAIN) is None
    off = PLAIN.replace(cross_origin_protection=False)
    assert refuse_cross_origin(request, COOKIE, off) is None


@pytest.mark.parametrize(
    "headers",
    [
        {"accept": "application/json"},
        {"content-type": "application/json"},
        {"hx-request": "true"},
    ],
)
def test_json_clients_get_krato_s_envelope(headers: dict[str, str]) -> None:
    refusal = refuse_cross_origin(
        _request(**{"sec-fetch-site": "same-site", **headers}), COOKIE, PLAIN
    )
    assert refusal is not None and refusal.status == 403
    assert ("Content-Type", "application/json") in refusal.headers
    assert ("Cache-Control", "no-store") in refusal.headers
    error = json.loads(refusal.body)["error"]
    assert error["id"] == "security_csrf_violation"
    assert error["code"] == 403 and error["status"] == "Forbidden"
    assert error["message"] == (
        "the request was rejected to protect you from Cross-Site-Request-Forgery"
    )
    assert "Cross-Site-Request-Forgery (CSRF)" in error["reason"]
    assert "same-site" in error["details"]["reject_reason"]
    assert "redirect_browser_to" not in json.loads(refusal.body)
    assert "MTcxNjc5-victim" not in refusal.body.decode()


def test_browsers_get_a_short_page() -> None:
    origin = "https://attacker.example/<script>"
    refusal = refuse_cross_origin(_request(origin=origin, accept="text/html"), COOKIE, PLAIN)
    assert refusal is not None and refusal.status == 403
    assert ("Content-Type", "text/html; charset=utf-8") in refusal.headers
    page = refusal.body.decode()
    assert "Request refused" in page and "another site" in page
    assert "<script>" not in page and "attacker" not in page
    assert not any(name.lower() == "location" for name, _ in refusal.headers)


def test_a_refusal_is_audited_without_the_cookie(caplog: pytest.LogCaptureFixture) -> None:
    from kratos_aal import Requirement, _observe

    request = _request(**{"sec-fetch-site": "cross-site", "cookie": "ory_kratos_session=SECRET"})
    with caplog.at_level(logging.INFO, logger="kratos_aal.audit"):
        _observe.refused(request, "starlette", Requirement("aal2"), "Sec-Fetch-Site is x")
    [record] = caplog.records
    assert record.name == "kratos_aal.audit" and record.levelno == logging.INFO
    fields: Any = record
    assert fields.outcome == "cross_origin" and fields.reason == "Sec-Fetch-Site is x"
    assert fields.method == "POST" and fields.path == "/transfer"
    assert fields.required_aal == "aal2" and fields.framework == "starlette"
    assert "SECRET" not in record.getMessage() and "SECRET" not in str(record.__dict__)


HEADER_TEXT = st.text(st.characters(max_codepoint=0x2FF), max_size=300) | st.sampled_from(
    ["null", "https://example.com", "http://[::1]:80", "https://*.x", "\r\nX: y", "://", ""]
)


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "put", "DELETE", "BREW", ""]),
    site=HEADER_TEXT,
    origin=HEADER_TEXT,
    host=HEADER_TEXT | st.none(),
    websocket=st.booleans(),
)
def test_hostile_headers_never_crash_and_never_leak_unquoted(
    method: str, site: str, origin: str, host: str | None, websocket: bool
) -> None:
    why = cross_origin(method, site, origin, host, TRUSTED, websocket=websocket)
    assert why is None or ("\r" not in why and "\n" not in why and len(why) < 200)
    request = WebRequest(
        method=method,
        scheme="https",
        host=host,
        path="/x",
        headers={"sec-fetch-site": site, "origin": origin, "accept": site},
    )
    refusal = refuse_cross_origin(request, COOKIE, TRUSTED, websocket=websocket)
    assert refusal is None or refusal.status == 403
