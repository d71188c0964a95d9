"""KratosConfig: where Kratos is, how browsers reach it, and how long to trust an answer."""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlsplit

from ._credentials import valid_cookie_name
from .exceptions import ConfigurationError

__all__ = ["KratosConfig"]


def _base_url(value: object, setting: str, *, path_allowed: bool = True) -> str:
    text = value if isinstance(value, str) else ""
    try:
        parts = urlsplit(text.strip())
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = None, False
    if (
        parts is None
        or not port_ok
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or parts.username
        or parts.password
        or any(c.isspace() for c in text.strip())
    ):
        raise ConfigurationError(
            f"{setting} must be an absolute http(s) URL such as 'http://127.0.0.1:4433', "
            f"with no query, fragment or user info; got {value!r}"
        )
    if parts.path not in ("", "/") and not path_allowed:
        raise ConfigurationError(f"{setting} must not carry a path; got {value!r}")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_origin(value: object) -> str:
    """Return *value* as a normalised origin (lower case, no default port), or raise."""
    text = value.strip() if isinstance(value, str) else ""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        parts, port = None, -1
    host = parts.hostname if parts is not None else None
    if (
        parts is None
        or (port is not None and port <= 0)
        or parts.scheme not in _DEFAULT_PORTS
        or not host
        or parts.path
        or parts.query
        or parts.fragment
        or "?" in text
        or "#" in text
        or parts.username is not None
        or any(c.isspace() for c in text)
        or "*" in host[2:]
        or ("*" in host and not host.startswith("*."))
        # "*." alone would trust every host with a trailing dot: any site can have one.
        or (host.startswith("*.") and not host[2:].strip("."))
    ):
        raise ConfigurationError(
            f"trusted_origins must hold origins such as 'https://app.example.com' "
            f"(scheme://host[:port], or 'https://*.example.com'; no path, query or "
            f"fragment), got {value!r}"
        )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[parts.scheme]:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}"


def _origins(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise ConfigurationError(
            f"trusted_origins must be a list of origins such as "
            f"['https://app.example.com'], got {value!r}"
        )
    return tuple(dict.fromkeys(parse_origin(item) for item in value))


#: The one line that makes a good ``cache_key_secret``, shown when one is refused.
MAKE_RANDOM_ONE = """python -c "import secrets; print(secrets.token_urlsafe(32))\""""
#: Fewer different characters than this is a guessable secret (Django's own check of
#: SECRET_KEY draws the line at 5 as well); a random 16-character hex string has fewer
#: hardly ever (not once in 200,000 tries).
MIN_DISTINCT = 5
#: Fewer characters than this that do not follow from the one before (a repeat, the next or
#: previous character, the next step of a progression, a neighbour on the keyboard, a pair
#: seen before) is a guessable secret: "0123456789abcdef" has 2, "a" * 16 has 1, a random
#: 16-character hex string about 13 (fewer than 6 about once in 100,000 tries, which is then
#: refused at start-up; a 32-character one not once in 300,000).
MIN_FRESH = 6
#: Words that placeholders are made of ("changeme", "your-secret-key-here"); a secret that is
#: little else is refused. Matched without case, longest first.
PLACEHOLDER_WORDS = sorted(
    {
        "changeme", "change", "replaceme", "replace", "secret", "password", "passwd",
        "passphrase", "insecure", "unsafe", "placeholder", "example", "sample", "dummy",
        "default", "test", "testing", "todo", "fixme", "your", "here", "key", "token",
        "qwerty", "letmein", "admin", "django", "kratos", "aal", "cache", "xxx", "foo",
        "bar", "baz",
    },
    key=len,
    reverse=True,
)  # fmt: skip
_KEYBOARD = ("`1234567890-=", "~!@#$%^&*()_+", "qwertyuiop[]\\", "asdfghjkl;'", "zxcvbnm,./")
_NEIGHBOURS = frozenset(
    pair for row in _KEYBOARD for a, b in itertools.pairwise(row) for pair in ((a, b), (b, a))
)


def _fresh(text: str) -> int:
    """Return how many characters of *text* do not follow from the ones before."""
    seen: set[tuple[str, str]] = set()
    fresh = 0
    for i, char in enumerate(text):
        if i == 0:
            fresh += 1
            continue
        before = text[i - 1]
        step = ord(char) - ord(before)
        follows = (
            abs(step) <= 1
            or (i >= 2 and step == ord(before) - ord(text[i - 2]))
            or (before, char) in seen
            or (before.lower(), char.lower()) in _NEIGHBOURS
        )
        seen.add((before, char))
        fresh += not follows
    return fresh


def guessable(secret: str) -> str | None:
    """Return why *secret* is guessable (repeats, runs, placeholders), or ``None``.

    The reason never quotes the secret.
    """
    distinct = len(set(secret))
    if distinct < MIN_DISTINCT:
        return f"only {distinct} different character{'' if distinct == 1 else 's'}"
    if _fresh(secret) < MIN_FRESH:
        return "repeated characters or a sequence such as 'aaaa', 'abcd' or 'qwerty'"
    rest = secret.lower()
    for word in PLACEHOLDER_WORDS:
        rest = rest.replace(word, "")
    if _fresh(rest) < MIN_FRESH:
        return "a placeholder such as 'changeme' or 'your-secret-key-here'"
    return None


def _number(value: object, setting: str, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigurationError(f"{setting} must be a number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero) or math.isinf(value):
        bound = "0 or more" if allow_zero else "more than 0"
        raise ConfigurationError(f"{setting} must be {bound} seconds, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class KratosConfig:
    """Where Kratos is and how to use it; validated when built.

    Args:
        public_url: Kratos's public API as this server reaches it, e.g. ``http://kratos:4433``.
        browser_url: Kratos's public API as browsers reach it, may carry a path prefix
            (``http://127.0.0.1:4455/kratos``). Defaults to *public_url*.
        cookie_name: The Kratos session cookie (``ory_session_<slug>`` on Ory Network).
        timeout: Seconds to wait for Kratos before answering 503.
        cache_ttl: Seconds to trust a whoami answer; 0 disables the cache.
        cache_maxsize: How many sessions the cache holds at most.
        admin_url: Kratos's admin API, to learn whether an identity has a second factor.
        admin_token: Bearer token for *admin_url* (Ory Network API key). Never shown.
        app_url: Fixed scheme and host of this app for building ``return_to``.
        cache_url: A ``redis://`` or ``rediss://`` URL: whoami answers are shared there by
            every process and host (extra ``redis``). Never shown: it may hold a password.
        local_cache_ttl: With a shared cache, seconds the in-process copy stays in front.
        cache_key_secret: Keys the hashes that name shared entries and signs their values;
            required with a shared cache. Never shown.
        cache_key_prefix: Put before every shared key and the invalidation channel.
        trusted_origins: Origins (``https://app.example.com``, ``scheme://host[:port]``)
            whose unsafe requests may ride on the Kratos cookie, e.g. an SPA served from
            another origin; ``https://*.example.com`` trusts that domain and its
            subdomains, as Django's ``CSRF_TRUSTED_ORIGINS`` does.
        cross_origin_protection: Refuse unsafe requests from other origins that carry
            the Kratos cookie (SPEC §4a). Turn it off only when the app's own CSRF
            protection covers every route kratos-aal guards.
        max_concurrent_checks: How many calls to Kratos this process has under way at
            once (every client, thread and event loop together); a request that needs
            one more gets ``UNAVAILABLE`` (503) at once instead of waiting for Kratos.

    .. versionadded:: 0.2 *trusted_origins*, *cross_origin_protection* and
       *max_concurrent_checks*.

    Raises:
        ConfigurationError: a value is wrong; the message names the setting.

    .. versionadded:: 0.2 *max_concurrent_checks*
    """

    public_url: str
    browser_url: str | None = None
    cookie_name: str = "ory_kratos_session"
    timeout: float = 3.0
    cache_ttl: float = 30.0
    cache_maxsize: int = 10_000
    admin_url: str | None = None
    admin_token: str | None = field(default=None, repr=False)
    app_url: str | None = None
    cache_url: str | None = field(default=None, repr=False)
    local_cache_ttl: float = 5.0
    cache_key_secret: str | None = field(default=None, repr=False)
    cache_key_prefix: str = "kratos-aal:"
    #: Stored as a tuple of normalised origins; any sequence is accepted.
    trusted_origins: Sequence[str] = ()
    cross_origin_protection: bool = True
    max_concurrent_checks: int = 64

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "public_url", _base_url(self.public_url, "public_url"))
        browser = self.browser_url or self.public_url
        set_(self, "browser_url", _base_url(browser, "browser_url"))
        if not valid_cookie_name(self.cookie_name):
            raise ConfigurationError(
                f"cookie_name must be a cookie name such as 'ory_kratos_session', "
                f"got {self.cookie_name!r}"
            )
        set_(self, "timeout", _number(self.timeout, "timeout", allow_zero=False))
        set_(self, "cache_ttl", _number(self.cache_ttl, "cache_ttl", allow_zero=True))
        size = self.cache_maxsize
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigurationError(
                f"cache_maxsize must be a whole number of 1 or more, got {size!r}"
            )
        cap = self.max_concurrent_checks
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ConfigurationError(
                f"max_concurrent_checks must be a whole number of 1 or more, got {cap!r}"
            )
        if self.admin_url is not None:
            set_(self, "admin_url", _base_url(self.admin_url, "admin_url"))
        if self.admin_token is not None and (
            not isinstance(self.admin_token, str) or not self.admin_token.strip()
        ):
            raise ConfigurationError("admin_token must be a non-empty string")
        if self.admin_token and self.admin_url is None:
            raise ConfigurationError("admin_token is set but admin_url is not: set both")
        if self.app_url is not None:
            set_(self, "app_url", _base_url(self.app_url, "app_url", path_allowed=False))
        self._check_shared_cache()
        set_(self, "trusted_origins", _origins(self.trusted_origins))
        if not isinstance(self.cross_origin_protection, bool):
            raise ConfigurationError(
                f"cross_origin_protection must be True or False, got "
                f"{self.cross_origin_protection!r}"
            )

    def _check_shared_cache(self) -> None:
        # .. versionadded:: 0.2 (the shared cache settings, SPEC §5a)
        set_ = object.__setattr__
        set_(
            self,
            "local_cache_ttl",
            _number(self.local_cache_ttl, "local_cache_ttl", allow_zero=True),
        )
        secret = self.cache_key_secret
        if secret is not None and (not isinstance(secret, str) or len(secret) < 16):
            raise ConfigurationError(
                "cache_key_secret must be a string of at least 16 characters (a random one); "
                f"make one with {MAKE_RANDOM_ONE}"
            )
        weakness = guessable(secret) if secret is not None else None
        if weakness is not None:
            # The message says why, never the secret itself.
            raise ConfigurationError(
                f"cache_key_secret is guessable ({weakness}): whoever can write to the shared "
                f"cache and guess it can forge sessions; make a random one with {MAKE_RANDOM_ONE}"
            )
        prefix = self.cache_key_prefix
        if (
            not isinstance(prefix, str)
            or len(prefix) > 64
            or not prefix.isascii()
            or any(c.isspace() or not c.isprintable() for c in prefix)
        ):
            raise ConfigurationError(
                f"cache_key_prefix must be up to 64 printable ASCII characters without "
                f"spaces, got {prefix!r}"
            )
        url = self.cache_url
        if url is None or url == "":
            set_(self, "cache_url", None)
            return
        parts = urlsplit(url) if isinstance(url, str) else None
        # The URL may hold a password: the message names the scheme, never the URL.
        if parts is None or parts.scheme not in ("redis", "rediss"):
            scheme = parts.scheme if parts is not None else type(url).__name__
            raise ConfigurationError(
                f"cache_url must be a redis:// or rediss:// URL such as "
                f"'redis://127.0.0.1:6379/0'; got one with scheme {scheme!r}"
            )
        if not parts.hostname:
            raise ConfigurationError("cache_url must name a host, e.g. 'redis://127.0.0.1:6379/0'")
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if not port_ok:
            raise ConfigurationError("cache_url must have a port from 1 to 65535, or none (6379)")
        # redis-py ignores a database that is not a number and uses database 0: several
        # apps meant to be apart would share entries.
        database = parts.path.strip("/")
        if database and not (database.isascii() and database.isdigit()):
            raise ConfigurationError(
                "cache_url must have a database number as its path, e.g. 'redis://127.0.0.1:6379/0'"
            )
        problem = redis_url_problem(url)
        if problem is not None:
            raise ConfigurationError(f"cache_url cannot be used by redis-py{problem}")
        if secret is None:
            raise ConfigurationError(
                "cache_key_secret is required with a shared cache (cache_url): set it to a "
                "random string of at least 16 characters, the same on every instance"
            )

    @property
    def browser_base(self) -> str:
        """Return *browser_url*, always set after construction."""
        return self.browser_url or self.public_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> KratosConfig:
        """Build a config from ``KRATOS_*`` environment variables.

        Reads ``KRATOS_PUBLIC_URL`` (required), ``KRATOS_BROWSER_URL``, ``KRATOS_COOKIE_NAME``,
        ``KRATOS_ADMIN_URL``, ``KRATOS_ADMIN_TOKEN``, ``KRATOS_AAL_CACHE_TTL``,
        ``KRATOS_AAL_TIMEOUT``, ``KRATOS_AAL_APP_URL``, and for a shared cache
        ``KRATOS_AAL_CACHE_URL``, ``KRATOS_AAL_CACHE_KEY_SECRET``,
        ``KRATOS_AAL_CACHE_KEY_PREFIX`` and ``KRATOS_AAL_LOCAL_CACHE_TTL``, and
        ``KRATOS_AAL_TRUSTED_ORIGINS`` (comma-separated) and
        ``KRATOS_AAL_MAX_CONCURRENT_CHECKS``; keyword *overrides* win.

        Raises:
            ConfigurationError: a variable is missing or wrong; the message names it.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, key in _ENV_STRINGS.items():
            if env.get(name):
                values[key] = env[name]
        for table, convert, kind in _ENV_CONVERTED:
            for name, key in table.items():
                if env.get(name):
                    try:
                        values[key] = convert(env[name])
                    except ValueError:
                        raise ConfigurationError(
                            f"{name} must be {kind}, got {env[name]!r}"
                        ) from None
        if env.get("KRATOS_AAL_TRUSTED_ORIGINS"):
            values["trusted_origins"] = [
                item for item in env["KRATOS_AAL_TRUSTED_ORIGINS"].split(",") if item.strip()
            ]
        values.update(overrides)
        if "public_url" not in values:
            raise ConfigurationError("KRATOS_PUBLIC_URL is not set: set it to Kratos's public URL")
        try:
            return cls(**values)
        except ConfigurationError as exc:
            # Name the variable the user actually set, not only the field.
            field_name = str(exc).split(" ", 1)[0]
            env_name = _ENV_NAMES.get(field_name)
            if env_name and field_name not in overrides:
                raise ConfigurationError(f"{env_name}: {exc}") from None
            raise

    def replace(self, **changes: Any) -> KratosConfig:
        """Return a copy with *changes* applied (validated again)."""
        return replace(self, **changes)


_ENV_STRINGS = {
    "KRATOS_PUBLIC_URL": "public_url",
    "KRATOS_BROWSER_URL": "browser_url",
    "KRATOS_COOKIE_NAME": "cookie_name",
    "KRATOS_ADMIN_URL": "admin_url",
    "KRATOS_ADMIN_TOKEN": "admin_token",
    "KRATOS_AAL_APP_URL": "app_url",
    "KRATOS_AAL_CACHE_URL": "cache_url",
    "KRATOS_AAL_CACHE_KEY_SECRET": "cache_key_secret",
    "KRATOS_AAL_CACHE_KEY_PREFIX": "cache_key_prefix",
}
_ENV_NUMBERS = {
    "KRATOS_AAL_CACHE_TTL": "cache_ttl",
    "KRATOS_AAL_TIMEOUT": "timeout",
    "KRATOS_AAL_LOCAL_CACHE_TTL": "local_cache_ttl",
}
_ENV_INTEGERS = {
    "KRATOS_AAL_MAX_CONCURRENT_CHECKS": "max_concurrent_checks",
}
#: The variables read as numbers: their table, the conversion, what the error calls it.
_ENV_CONVERTED: tuple[tuple[dict[str, str], Callable[[str], float], str], ...] = (
    (_ENV_NUMBERS, float, "a number of seconds"),
    (_ENV_INTEGERS, int, "a whole number"),
)
_ENV_NAMES = {
    **{v: k for k, v in {**_ENV_STRINGS, **_ENV_NUMBERS, **_ENV_INTEGERS}.items()},
    "trusted_origins": "KRATOS_AAL_TRUSTED_ORIGINS",
}
CONFIG_FIELDS = tuple(f.name for f in fields(KratosConfig))


def redis_url_problem(url: str) -> str | None:
    """Return why redis-py cannot read *url* (its query: ``socket_timeout=abc``), or ``None``.

    The reason is ``": <redis-py's message>"``, or ``""`` when that message quotes the URL
    (and so maybe its password). Without redis-py installed there is nothing to check yet:
    building the client says the extra is missing.
    """
    try:
        from redis.connection import parse_url
    except ImportError:  # pragma: no cover - the extra is installed in the suite
        return None
    try:
        parse_url(url)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError) as error:
        said = str(error)
        userinfo = urlsplit(url).netloc.rpartition("@")[0]
        quotes = url in said or bool(userinfo and userinfo in said)
        return "" if quotes else f": {said}"
    return None
