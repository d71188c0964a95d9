"""Test helpers: FakeKratos, an in-memory Ory Kratos, and its pytest plugin.

Needs the ``testing`` extra: ``pip install "kratos-aal[testing]"``. Names load on first
use, so that the pytest plugin living in this package costs nothing at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._clock import FakeClock
    from ._fake import FakeIdentity, FakeKratos, FakeSession, FakeTransport, Fault
    from ._faults import FaultProxy, fault_proxy
    from ._serve import reserve_port, serve, serve_wsgi

__all__ = [
    "FakeClock",
    "FakeIdentity",
    "FakeKratos",
    "FakeSession",
    "FakeTransport",
    "Fault",
    "FaultProxy",
    "fault_proxy",
    "reserve_port",
    "serve",
    "serve_wsgi",
]

_HOMES = {
    "FakeClock": "._clock",
    "FaultProxy": "._faults",
    "fault_proxy": "._faults",
    "reserve_port": "._serve",
    "serve": "._serve",
    "serve_wsgi": "._serve",
}


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(_HOMES.get(name, "._fake"), __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # The names load lazily: without this, dir() and editors' completion list none of them.
    return sorted([*__all__, *(name for name in globals() if name.startswith("__"))])
