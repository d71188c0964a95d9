"""Demand the right Ory Kratos Authenticator Assurance Level per route.

The core imports no web framework; adapters live in ``kratos_aal.integrations``.
"""

from __future__ import annotations

from ._client import AsyncKratosClient, KratosClient
from ._config import KratosConfig
from ._credentials import Credentials
from ._decision import Decision, Outcome, Requirement
from ._models import AAL, AuthenticationMethod, Identity, Session
from ._page import PageAccess, page_decision
from ._version import __version__ as __version__
from .exceptions import (
    ConfigurationError,
    KratosAALError,
    KratosUnavailable,
    MalformedResponse,
    StepUpRequired,
)

__all__ = [
    "AAL",
    "AsyncKratosClient",
    "AuthenticationMethod",
    "ConfigurationError",
    "Credentials",
    "Decision",
    "Identity",
    "KratosAALError",
    "KratosClient",
    "KratosConfig",
    "KratosUnavailable",
    "MalformedResponse",
    "Outcome",
    "PageAccess",
    "Requirement",
    "Session",
    "StepUpRequired",
    "page_decision",
]
