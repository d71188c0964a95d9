"""Pins on ``_web.py`` (issue 10): each test fails under a mutation the suite once let live."""

from __future__ import annotations

from kratos_aal import Requirement
from kratos_aal._web import WebResponse, bad_request, route_readings, strictest


def test_readings_strip_only_slashes_before_the_first_segment() -> None:
    # Werkzeug's "/" + lstrip("/"): a segment starting with another character stays whole.
    assert route_readings("//Xa") == {"//Xa", "/Xa"}
    assert route_readings("//X/a") == {"//X/a", "/X/a"}


def test_strictest_keeps_the_level_it_was_given() -> None:
    merged = strictest([Requirement("aal1", max_age=60), Requirement("aal1", max_age=30)])
    assert merged == Requirement("aal1", max_age=30)
    merged = strictest([Requirement("aal2", max_age=60), Requirement("aal1", max_age=30)])
    assert merged == Requirement("aal2", max_age=30)


def test_bad_request_is_plain_text_with_its_reason() -> None:
    assert bad_request("path too long") == WebResponse(
        400,
        [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")],
        b"Bad Request: path too long\n",
    )
