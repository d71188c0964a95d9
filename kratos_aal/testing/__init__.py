"""Test helpers: FakeKratos, an in-memory Ory Kratos, and its pytest plugin.

Needs the ``testing`` extra: ``pip install "kratos-aal[testing]"``.
"""

from __future__ import annotations

from ._clock import FakeClock
from ._fake import FakeIdentity, FakeKratos, FakeSession, FakeTransport, Fault

__all__ = ["FakeClock", "FakeIdentity", "FakeKratos", "FakeSession", "FakeTransport", "Fault"]
