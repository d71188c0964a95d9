"""Path globs mapped to requirements, matched as every framework may route a path (SPEC §4)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from .._decision import Requirement, RequirementLike
from ..exceptions import ConfigurationError

_SLASHES = re.compile("/{2,}")

#: Not in :attr:`PathRules.known`.
UNKNOWN: Any = object()
#: How many plain paths' answers PathRules remembers (hostile clients make up paths).
_KNOWN_PATHS = 4096


class PathRules:
    """Path globs mapped to requirements; the first match wins.

    ``*`` matches any run of characters, ``/`` included; ``/billing/*`` also matches
    ``/billing``, and a glob without ``*`` also matches its trailing-slash twin (``/x``
    matches ``/x/``, ``/x/`` matches ``/x``). Matching is case-sensitive. Adapters ask
    :meth:`requirement`, which matches every path the framework may route the request to
    (SPEC §4).

    Raises:
        ConfigurationError: a glob or a requirement is wrong; the message names it.
    """

    def __init__(
        self, rules: Mapping[str, RequirementLike] | None, *, setting: str = "rules"
    ) -> None:
        self._rules: list[tuple[re.Pattern[str], Requirement]] = []
        #: The same globs without their trailing-slash twins: a path keeps at least what
        #: the first glob written for it demands (see :meth:`match`).
        self._written: list[tuple[re.Pattern[str], Requirement]] = []
        #: What :meth:`requirement` answered for the plain paths seen most. A hot path may
        #: read it first (``known.get(path, UNKNOWN)``) and ask only when it is not there.
        self.known: dict[str, Requirement | None] = {}
        if rules is None:
            return
        if not isinstance(rules, Mapping):
            raise ConfigurationError(
                f"{setting} must map path globs to requirements, got {rules!r}"
            )
        for glob, requirement in rules.items():
            if not isinstance(glob, str) or not glob.startswith("/"):
                raise ConfigurationError(
                    f"{setting}: the glob {glob!r} must be a path starting with '/'"
                )
            name = f"{setting}[{glob!r}]"
            rule = Requirement.parse(requirement, setting=name)
            self._rules.append((_compile(glob), rule))
            self._written.append((_compile(glob, twin=False), rule))

    def __bool__(self) -> bool:
        return bool(self._rules)

    def match(self, path: str) -> Requirement | None:
        """Return the requirement of the first glob that matches *path* as given, else ``None``.

        A glob's trailing-slash twin never weakens a later glob written for the path
        itself: with ``{"/x/": "aal1", "/x": "aal2"}``, ``/x`` demands the stricter of both.
        Adapters use :meth:`requirement`, which reads the path the way frameworks route it.
        """
        found = _first(self._rules, path)
        written = _first(self._written, path)
        if written is None or written is found:
            return found
        assert found is not None  # a twin's pattern matches all its glob's does
        return strictest([found, written])

    def requirement(self, path: str) -> Requirement | None:
        """Return the strictest requirement any routing of *path* meets, else ``None``.

        *path* is the decoded path below the mount point (``PATH_INFO``, ASGI's path less
        ``root_path``, Django's ``path_info``). Each reading from :func:`route_readings`
        is matched (first glob wins per reading), and the matches are merged with
        :func:`strictest`: ``//billing`` is public to a matcher that sees it as written,
        but Werkzeug routes it to ``/billing``.
        """
        if not self._rules:
            return None
        # Every request asks: the answers for the paths seen most are remembered.
        known = self.known.get(path, UNKNOWN)
        if known is not UNKNOWN:
            return known  # type: ignore[no-any-return]
        if _plain(path):
            match = self.match(path)  # the common case: one reading
            if len(self.known) < _KNOWN_PATHS:
                self.known[path] = match
            return match
        found = [r for r in map(self.match, route_readings(path)) if r is not None]
        return strictest(found) if found else None


def _collapse(path: str) -> str:
    return _SLASHES.sub("/", path)


def _remove_dots(path: str) -> str:
    # RFC 3986 section 5.2.4 on whole segments, as browsers and curl resolve "." and
    # "..": a trailing one leaves a trailing slash, and ".." never climbs above the top.
    out: list[str] = []
    segments = path.split("/")
    for segment in segments:
        if segment == "..":
            if len(out) > 1:
                out.pop()
        elif segment != ".":
            out.append(segment)
    if segments[-1] in (".", ".."):
        out.append("")
    return "/".join(out)


def _plain(path: str) -> bool:
    # ASCII too: only such paths are remembered, and a WSGI adapter may look one up before
    # decoding it (PEP 3333's latin-1 text of a non-ASCII path is another path decoded).
    return (
        path.isascii()
        and path.startswith("/")
        and "//" not in path
        and "/." not in path
        and "%" not in path
    )


def route_readings(path: str) -> frozenset[str]:
    """Return every path a framework might route *path* to.

    Servers pass the path through as the client sent it (gunicorn keeps ``//`` and, once
    decoded, ``%2f`` is a ``/``), and each framework then reads it its own way: Werkzeug
    routes ``"/" + path.lstrip("/")``, some routers collapse repeated slashes, some
    resolve ``.`` and ``..``, a proxy may decode ``%2e`` and ``%2f`` once more. The
    readings are the path as given, with repeated slashes collapsed, with dot segments
    resolved after that, and all of these again after one more percent-decoding.
    """
    path = path or "/"
    if _plain(path):
        return frozenset((path,))  # the common case: nothing to read differently
    readings: set[str] = set()
    for text in (path, unquote(path)):
        collapsed = "/" + _collapse(text).lstrip("/")
        readings.update((text, collapsed, _remove_dots(collapsed)))
    return frozenset(readings)


def strictest(requirements: list[Requirement]) -> Requirement:
    """Return one requirement that demands what each of *requirements* demands.

    The highest ``aal``, the shortest ``max_age``, and the methods every set allows.
    Two method sets with nothing in common cannot both be met by one method: the
    first such set is kept, as it still demands a second factor of that kind.
    """
    first = requirements[0]
    if all(r == first for r in requirements):
        return first
    aal = max(r.aal for r in requirements)
    ages = [r.max_age for r in requirements if r.max_age is not None]
    methods: frozenset[str] | None = None
    for r in requirements:
        if r.methods is not None:
            methods = r.methods if methods is None else (methods & r.methods or methods)
    return Requirement(aal, max_age=min(ages) if ages else None, methods=methods)


def _first(rules: list[tuple[re.Pattern[str], Requirement]], path: str) -> Requirement | None:
    for pattern, requirement in rules:
        if pattern.fullmatch(path):
            return requirement
    return None


def _compile(glob: str, *, twin: bool = True) -> re.Pattern[str]:
    tail = ""
    if glob.endswith("/*"):
        glob, tail = glob[:-2], "(?:/.*)?"
    elif twin and glob != "/" and not glob.endswith("*"):
        # An exact path covers its trailing-slash twin: Django (APPEND_SLASH) and Werkzeug
        # route "/x" to a view at "/x/" by a redirect, but "/x/" itself reaches it at once,
        # and Starlette's redirect_slashes does the same the other way round.
        glob, tail = glob.removesuffix("/"), "/?"
    return re.compile(".*".join(re.escape(part) for part in glob.split("*")) + tail, re.DOTALL)
