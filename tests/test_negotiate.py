"""Browser or JSON, decided as Kratos's IsJSONRequest decides (BEHAVIOR.md §0)."""

from __future__ import annotations

import pytest

from kratos_aal._negotiate import negotiate, wants_json

CHROME = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "content_type", "expected"),
    [
        pytest.param(None, None, False, id="no-accept"),
        pytest.param("*/*", None, False, id="python-requests-default"),
        pytest.param(CHROME, None, False, id="chrome"),
        pytest.param("application/json", None, True, id="json"),
        pytest.param("application/json, text/plain, */*", None, True, id="axios"),
        pytest.param("text/html;q=0.5, application/json", None, True, id="json-preferred"),
        pytest.param("application/json;q=0.2, text/*;q=0.9", None, False, id="text-wildcard-wins"),
        pytest.param("application/json;q=0", None, False, id="json-refused"),
        pytest.param("application/json;q=bogus", None, False, id="bad-q"),
        pytest.param("text/html", "application/json", True, id="json-body"),
        pytest.param("text/html", "Application/JSON; charset=utf-8", True, id="json-body-params"),
        pytest.param(None, "application/x-www-form-urlencoded", False, id="form"),
        pytest.param(",,;", None, False, id="garbage"),
    ],
)
def test_wants_json(accept: str | None, content_type: str | None, expected: bool) -> None:
    assert wants_json(accept, content_type) is expected


def test_negotiate_prefers_exact_over_wildcards() -> None:
    offers = ("text/html", "application/json")
    assert negotiate("*/*;q=0.9, application/json;q=0.9", offers, "text/html") == "application/json"
    assert negotiate("text/*", offers, "x") == "text/html"
    assert negotiate("image/png", offers, "fallback") == "fallback"


def test_status_texts_are_kratos_own() -> None:
    from kratos_aal._web import status_text

    # Go's http.StatusText, whatever Python version renamed (3.13: "Unprocessable Content").
    assert status_text(422) == "Unprocessable Entity"
    assert status_text(413) == "Request Entity Too Large"
    assert status_text(403) == "Forbidden"
