"""Template tags: ``{% load kratos_aal %}``.

.. code-block:: django

    {% if_aal "aal2" max_age=300 %}
      {{ account.iban }}
    {% else %}
      <a href="{% step_up_url "aal2" max_age=300 %}">Verify to see your IBAN</a>
    {% endif_aal %}

- ``{% if_aal aal max_age=... methods=... %}...{% else %}...{% endif_aal %}``: the body
  when the session meets the requirement now, the ``{% else %}`` part otherwise.
- ``{% step_up_url aal max_age=... methods=... %}``: where the middleware would send the
  browser for that requirement (login, step-up, enrollment, re-authentication), coming
  back to this page.
- ``{% aal_decision aal max_age=... methods=... as decision %}``: the whole
  :class:`~kratos_aal.Decision` (``decision.outcome``, ``decision.redirect_to``), to word
  the link by what it leads to (``{% if decision.outcome == "enroll" %}``).
- ``{% login_url %}``, ``{% logout_url %}`` (a Kratos logout URL for this session, empty
  without one) and ``{% settings_url %}``.

*aal* is ``"aal1"`` or ``"aal2"`` (default ``"aal2"``); *methods* a list or a text such as
``"webauthn,passkey"``. The request's session is the one its own check attached: the tags
make no Kratos call of their own (see :mod:`kratos_aal.integrations.django.pages`).

.. versionadded:: 0.2
"""

from __future__ import annotations

from typing import Any

from django import template
from django.core.exceptions import ImproperlyConfigured
from django.template.base import FilterExpression, NodeList, Parser, Token, Variable

from ...._decision import Decision
from ...._page import PageAccess, _requirement
from ....exceptions import ConfigurationError
from ..pages import page_access

register = template.Library()

_OPTIONS = ("max_age", "methods")


def _page(context: template.Context) -> PageAccess:
    request = getattr(context, "request", None) or context.get("request")
    if request is None:
        raise ImproperlyConfigured(
            "kratos_aal template tags need the request: render with render(request, ...) "
            "or a RequestContext"
        )
    return page_access(request)


@register.simple_tag(takes_context=True)
def step_up_url(
    context: template.Context, aal: Any = "aal2", max_age: Any = None, methods: Any = None
) -> str:
    """Return where to send the browser so that the session meets the requirement."""
    return _page(context).step_up_url(aal, max_age=max_age, methods=methods)


@register.simple_tag(takes_context=True)
def aal_decision(
    context: template.Context, aal: Any = "aal2", max_age: Any = None, methods: Any = None
) -> Decision:
    """Return what a route with this requirement would decide for the session."""
    return _page(context).decision(aal, max_age=max_age, methods=methods)


@register.simple_tag(takes_context=True)
def login_url(context: template.Context) -> str:
    """Return Kratos's login URL, coming back to this page."""
    return _page(context).login_url()


@register.simple_tag(takes_context=True)
def logout_url(context: template.Context) -> str:
    """Return a Kratos logout URL for this session, or ``""`` without one."""
    return _page(context).logout_url() or ""


@register.simple_tag(takes_context=True)
def settings_url(context: template.Context) -> str:
    """Return Kratos's settings URL, coming back to this page."""
    return _page(context).settings_url()


class IfAALNode(template.Node):
    """``{% if_aal %}``: one branch or the other, by what the session allows now."""

    child_nodelists = ("nodelist_true", "nodelist_false")

    def __init__(
        self,
        aal: FilterExpression | None,
        options: dict[str, FilterExpression],
        nodelist_true: NodeList,
        nodelist_false: NodeList,
    ) -> None:
        self.aal = aal
        self.options = options
        self.nodelist_true = nodelist_true
        self.nodelist_false = nodelist_false

    def render(self, context: template.Context) -> str:
        aal = self.aal.resolve(context) if self.aal is not None else "aal2"
        options = {name: value.resolve(context) for name, value in self.options.items()}
        allowed = _page(context).allows(aal, **options)
        branch = self.nodelist_true if allowed else self.nodelist_false
        rendered: str = branch.render(context)
        return rendered


@register.tag("if_aal")
def do_if_aal(parser: Parser, token: Token) -> IfAALNode:
    """Parse ``{% if_aal "aal2" max_age=300 methods="webauthn" %}...{% endif_aal %}``."""
    bits = token.split_contents()
    name, args = bits[0], bits[1:]
    aal = None
    if args and "=" not in args[0]:
        aal = parser.compile_filter(args.pop(0))
    options: dict[str, FilterExpression] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in _OPTIONS or key in options:
            raise template.TemplateSyntaxError(
                f"{name} takes an AAL and max_age=... or methods=...; got {arg!r}"
            )
        options[key] = parser.compile_filter(value)
    _check_constants(name, aal, options)
    nodelist_true = parser.parse(("else", "endif_aal"))
    nodelist_false = NodeList()
    if parser.next_token().contents == "else":
        nodelist_false = parser.parse(("endif_aal",))
        parser.delete_first_token()
    return IfAALNode(aal, options, nodelist_true, nodelist_false)


_VARIABLE = object()


def _constant(expression: FilterExpression) -> Any:
    """Return the value a template literal stands for, or ``_VARIABLE``."""
    var = expression.var
    if expression.filters:
        return _VARIABLE
    if isinstance(var, Variable):
        return _VARIABLE if var.literal is None else var.literal
    return var  # a quoted text


def _check_constants(
    name: str, aal: FilterExpression | None, options: dict[str, FilterExpression]
) -> None:
    """Refuse, when the template is compiled, a requirement its literals cannot make."""
    level = "aal2" if aal is None else _constant(aal)
    given = {key: _constant(value) for key, value in options.items()}
    try:
        known = {key: value for key, value in given.items() if value is not _VARIABLE}
        _requirement(
            "aal2" if level is _VARIABLE else level,
            known.get("max_age"),
            known.get("methods"),
        )
    except ConfigurationError as error:
        raise template.TemplateSyntaxError(f"{{% {name} %}}: {error}") from None
