"""``AALRequiredMixin`` for class-based views."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import Any

from ..._decision import Requirement
from ..._models import AALLike
from ._glue import adeny, after, deny

__all__ = ["AALRequiredMixin"]


class AALRequiredMixin:
    """Require an AAL of a class-based view's Kratos session; put it first in the bases.

    Attributes:
        required_aal: ``"aal1"`` or ``"aal2"`` (the default).
        max_age: Seconds since the newest method of at least ``required_aal``.
        methods: Method names of which one must have been used.
        htmx_inline: Answer an HTMX request the session does not meet with an inline
            "Verify to see this" link instead of ``HX-Redirect`` (see ``require_aal``).

    .. versionadded:: 0.2 *htmx_inline*
    """

    required_aal: AALLike = "aal2"
    max_age: float | timedelta | None = None
    methods: Collection[str] | None = None
    htmx_inline: bool = False

    def get_requirement(self) -> Requirement:
        """Return the requirement for this request; override to decide per request."""
        return Requirement(self.required_aal, max_age=self.max_age, methods=self.methods)

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        requirement = self.get_requirement()
        parent = super().dispatch  # type: ignore[misc]
        if getattr(self, "view_is_async", False):

            async def _adispatch() -> Any:
                denial = await adeny(request, requirement, inline=self.htmx_inline)
                if denial is not None:
                    return denial
                return after(request, await parent(request, *args, **kwargs))

            return _adispatch()
        denial = deny(request, requirement, inline=self.htmx_inline)
        if denial is not None:
            return denial
        return after(request, parent(request, *args, **kwargs))

    # View.as_view() copies dispatch's attributes onto the view function: this one tells
    # Django's LoginRequiredMiddleware that Kratos decides who may see the view.
    dispatch.login_required = False  # type: ignore[attr-defined]
