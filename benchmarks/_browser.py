"""What a browser sends with every request, for the benchmarks' requests to look like one."""

from __future__ import annotations

from typing import Any

#: A realistic browser request: eight headers, the Kratos cookie among two.
BROWSER_HEADERS = [
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("accept-language", "en-GB,en;q=0.5"),
    ("accept-encoding", "gzip, deflate, br"),
    ("referer", "http://testserver/account"),
    ("connection", "keep-alive"),
    ("upgrade-insecure-requests", "1"),
]

#: A Django CSRF cookie ahead of the Kratos one, as a Django site's browser sends them.
CSRF_COOKIE = "csrftoken=Zm9vYmFyYmF6cXV4cXV1eA"


def browser_cookie(session: Any) -> str:
    """Return the Cookie header of a browser holding *session*."""
    return f"{CSRF_COOKIE}; {session.cookie_header}"
