"""The hit path's cache key: the key a request's credential would be cached under, unvalidated."""

from __future__ import annotations

from collections.abc import Iterable

from ._credentials import _COOKIE_HASH, _TOKEN_HASH

# Only values that passed validation (``Credentials``) were ever hashed into the cache, so
# a key computed here from a malformed value can only miss, and a miss takes the full
# path, which validates. What keeps that true: (1) the value hashed is the very one the
# full path would pick (``from_headers``; under ASGI ``asgi_credentials``, which reads
# lower-case names only, as ASGI servers send them) whenever that one is well-formed (any
# doubt, such as a cookie name seen where it is not a pair's name, gives ``None``, the
# full path); (2) only ASCII is hashed, as the bytes ``cache_key`` hashes
# for it (UTF-8 of ASCII is itself), so no other spelling can collide.
#
# In a Cookie header, the first mention of the name must be a pair's name: at the start
# or after ";" or "; ", with "=" right after it. Elsewhere (inside a value, a longer name,
# a space before "=") the first pair ``cookie_from_header`` matches may be another one:
# ``None``. An empty value too: ``cookie_from_header`` goes on to the next pair of the
# header, which this reading does not.


def _token_hit_key(token: bytes) -> bytes | None:
    hasher = _TOKEN_HASH.copy()
    if not token.isascii():
        return None  # never well-formed; and only ASCII hashes as cache_key hashes it
    hasher.update(token)
    return b"s" + hasher.digest()


def asgi_hit_key(
    headers: Iterable[tuple[bytes, bytes]], cookie_name: bytes, hop: bytes
) -> tuple[bytes | None, bool]:
    """Return the session cache key of raw ASGI *headers*, and whether cookie *hop* came.

    *cookie_name* is the Kratos cookie's name, encoded. The key is ``None`` when the
    request has no token or cookie the hit path can read (the full path decides then); see
    the comment above.
    """
    token: bytes | None = None
    cookie: bytes | None = None
    hops = False
    for header, value in headers:
        # Plain comparisons first: ASGI names are lower-case, and most are neither.
        if header == b"cookie":
            if value.find(hop) >= 0:  # find, not "in": "in" takes the slower buffer path
                hops = True
            if cookie is not None:
                continue
            start = value.find(cookie_name)
            if start < 0:
                continue  # no pair so named in this header
            stop = start + len(cookie_name)
            if value[stop : stop + 1] != b"=" or (
                start and value[start - 1] != 59 and value[start - 2 : start] != b"; "
            ):
                return None, False
            end = value.find(b";", stop)
            cookie = (value[stop + 1 :] if end < 0 else value[stop + 1 : end]).strip()
            if not cookie:
                return None, False
            if cookie[0] == 34 and cookie[-1] == 34 and len(cookie) >= 2:
                cookie = cookie[1:-1]
                if not cookie:
                    return None, False
        elif header == b"x-session-token" and token is None:
            token = value.strip() or None
    # _token_hit_key, inlined (and the cookie alike): this runs on every request.
    if token:
        hasher, value = _TOKEN_HASH.copy(), token
    elif cookie:
        hasher, value = _COOKIE_HASH.copy(), cookie
    else:
        return None, hops
    if not value.isascii():
        return None, hops
    hasher.update(value)
    return b"s" + hasher.digest(), hops


def environ_hit_key(token: str | None, cookie: str | None, cookie_name: str) -> bytes | None:
    """Return the session cache key of a WSGI environ's (or Django META's) credentials.

    *token* and *cookie* are ``HTTP_X_SESSION_TOKEN`` and ``HTTP_COOKIE``; ``None`` when
    the hit path cannot read them (the full path decides). The cookie is read as
    :func:`asgi_hit_key` reads one, on text: PEP 3333's strings are bytes decoded as
    latin-1, and only ASCII ones are read here.
    """
    if token is not None:
        if not token.isascii():
            return None
        stripped = token.strip()  # as from_headers strips it
        if stripped:
            return _token_hit_key(stripped.encode())
    if not cookie or not cookie.isascii():
        return None
    start = cookie.find(cookie_name)
    if start < 0:
        return None
    stop = start + len(cookie_name)
    if cookie[stop : stop + 1] != "=" or (
        start and cookie[start - 1] != ";" and cookie[start - 2 : start] != "; "
    ):
        return None
    end = cookie.find(";", stop)
    value = (cookie[stop + 1 :] if end < 0 else cookie[stop + 1 : end]).strip(_ASCII_SPACE)
    if value[:1] == '"' and len(value) >= 2 and value[-1] == '"':
        value = value[1:-1]
    if not value:
        return None
    hasher = _COOKIE_HASH.copy()  # ASCII already
    hasher.update(value.encode())
    return b"s" + hasher.digest()


#: What bytes.strip() strips (the cookie as asgi_hit_key reads it); str.strip() strips
#: "\x1c" to "\x1f" too.
_ASCII_SPACE = " \t\n\r\x0b\x0c"
