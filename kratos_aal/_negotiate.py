"""Browser or JSON client? Decided the way Kratos decides (``x/isjsonrequest.go``)."""

from __future__ import annotations

__all__ = ["negotiate", "wants_json"]

_KRATOS_OFFERS = ("text/html", "text/*", "*/*", "application/json")


def _specs(accept: str) -> list[tuple[str, float]]:
    specs = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if not media:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        specs.append((media.lower(), quality))
    return specs


def negotiate(accept: str, offers: tuple[str, ...], default: str) -> str:
    """Pick the offer for an ``Accept`` header as gddo's ``NegotiateContentType`` does.

    Exact matches beat ``type/*``, which beats ``*/*``; among equals, the earlier offer wins.
    """
    best, best_q, best_wild = default, -1.0, 3
    specs = _specs(accept)
    for offer in offers:
        for value, quality in specs:
            if quality == 0 or quality < best_q:
                continue
            if value == "*/*":
                if quality > best_q or best_wild > 2:
                    best, best_q, best_wild = offer, quality, 2
            elif value.endswith("/*"):
                if offer.startswith(value[:-1]) and (quality > best_q or best_wild > 1):
                    best, best_q, best_wild = offer, quality, 1
            elif value == offer and (quality > best_q or best_wild > 0):
                best, best_q, best_wild = offer, quality, 0
    return best


def wants_json(accept: str | None, content_type: str | None = None) -> bool:
    """Return whether Kratos would answer this request with JSON rather than a redirect.

    True when ``Accept`` prefers ``application/json`` over HTML, or the request body is
    ``application/json``.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "application/json":
        return True
    return negotiate(accept or "", _KRATOS_OFFERS, "text/html") == "application/json"
