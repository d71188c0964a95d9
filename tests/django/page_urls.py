"""Views for the template tests: one template, rendered by each kind of view."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import path
from django.views import View

from kratos_aal.integrations.django import AALRequiredMixin, apage_access, require_aal

#: Every tag once; the tests read the ``[name:value]`` pairs.
PAGE = """{% load kratos_aal %}
[session:{% if kratos_session %}{{ kratos_session.aal.value }}{% else %}none{% endif %}]
[reveal:{% if_aal "aal2" max_age=300 %}IBAN{% else %}masked{% endif_aal %}]
[link:{% step_up_url "aal2" max_age=300 %}]
[aal1:{% if_aal "aal1" %}yes{% else %}no{% endif_aal %}]
[default:{% if_aal %}aal2{% endif_aal %}]
{% aal_decision "aal2" max_age=300 as d %}[outcome:{{ d.outcome.value }}]
[methods:{% if_aal "aal2" methods="webauthn,passkey" %}key{% else %}nokey{% endif_aal %}]
[login:{% login_url %}]
[settings:{% settings_url %}]
[object:{{ kratos.login_url }}]
"""
LOGOUT = "{% load kratos_aal %}[logout:{% logout_url %}]"

#: Five guarded sections: one Kratos call at most for all of them.
FIVE = "{% load kratos_aal %}" + "".join(
    f'[s{i}:{{% if_aal "aal2" max_age={100 * i} %}}shown{{% else %}}'
    f'{{% step_up_url "aal2" max_age={100 * i} %}}{{% endif_aal %}}]'
    for i in range(1, 6)
)


def _template(text: str) -> object:
    return engines["django"].from_string(text)


@require_aal("aal1")
def sync_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_template(PAGE).render(request=request))  # type: ignore[attr-defined]


@require_aal("aal1")
async def async_page(request: HttpRequest) -> HttpResponse:
    await apage_access(request)
    return HttpResponse(_template(PAGE).render(request=request))  # type: ignore[attr-defined]


@login_not_required
def public_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_template(PAGE).render(request=request))  # type: ignore[attr-defined]


@login_not_required
async def apublic_page(request: HttpRequest) -> HttpResponse:
    await apage_access(request)
    return HttpResponse(_template(PAGE).render(request=request))  # type: ignore[attr-defined]


@login_not_required
def sync_logout(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_template(LOGOUT).render(request=request))  # type: ignore[attr-defined]


@login_not_required
async def async_logout(request: HttpRequest) -> HttpResponse:
    await apage_access(request, logout=True)
    return HttpResponse(_template(LOGOUT).render(request=request))  # type: ignore[attr-defined]


@login_not_required
async def async_logout_not_loaded(request: HttpRequest) -> HttpResponse:
    await apage_access(request)
    return HttpResponse(_template(LOGOUT).render(request=request))  # type: ignore[attr-defined]


@require_aal("aal1")
async def async_unprepared(request: HttpRequest) -> HttpResponse:
    # render() in the view's own body runs on the event loop: apage_access() is missing.
    return HttpResponse(_template(PAGE).render(request=request))  # type: ignore[attr-defined]


@require_aal("aal1")
async def async_template_response(request: HttpRequest) -> TemplateResponse:
    # Rendered after the view, in a worker thread: the blocking path serves.
    return TemplateResponse(request, _template(PAGE))


@require_aal("aal1")
def sync_five(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_template(FIVE).render(request=request))  # type: ignore[attr-defined]


@require_aal("aal1")
async def async_five(request: HttpRequest) -> HttpResponse:
    await apage_access(request)
    return HttpResponse(_template(FIVE).render(request=request))  # type: ignore[attr-defined]


@login_not_required
async def ame(request: HttpRequest) -> JsonResponse:
    session = await request.akratos_session()
    return JsonResponse({"aal": session.aal.value if session else None})


urlpatterns = [
    path("ame/", ame),
    path("page/", sync_page),
    path("apage/", async_page),
    path("public/", public_page),
    path("apublic/", apublic_page),
    path("logout/", sync_logout),
    path("alogout/", async_logout),
    path("alogout-not-loaded/", async_logout_not_loaded),
    path("unprepared/", async_unprepared),
    path("template-response/", async_template_response),
    path("five/", sync_five),
    path("afive/", async_five),
]


# ---------------------------------------------------------------- HTMX fragments
#: The fragment's own template: a link that comes back to the page (HX-Current-URL).
FRAGMENT = '{% load kratos_aal %}[fragment:{% if_aal "aal2" %}IBAN{% else %}{% step_up_url "aal2" %}{% endif_aal %}]'


@require_aal("aal2")
def frag(request: HttpRequest) -> HttpResponse:
    return HttpResponse("[fragment:IBAN]")


@require_aal("aal2", htmx_inline=True)
def frag_inline(request: HttpRequest) -> HttpResponse:
    return HttpResponse("[fragment:IBAN]")


@require_aal("aal2")
async def afrag(request: HttpRequest) -> HttpResponse:
    return HttpResponse("[fragment:IBAN]")


@require_aal("aal2", htmx_inline=True)
async def afrag_inline(request: HttpRequest) -> HttpResponse:
    return HttpResponse("[fragment:IBAN]")


class FragInline(AALRequiredMixin, View):
    htmx_inline = True

    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("[fragment:IBAN]")


@login_not_required
def frag_template(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_template(FRAGMENT).render(request=request))  # type: ignore[attr-defined]


@login_not_required
async def afrag_template(request: HttpRequest) -> HttpResponse:
    await apage_access(request)
    return HttpResponse(_template(FRAGMENT).render(request=request))  # type: ignore[attr-defined]


urlpatterns += [
    path("frag", frag),
    path("frag-inline", frag_inline),
    path("afrag", afrag),
    path("afrag-inline", afrag_inline),
    path("frag-mixin", FragInline.as_view()),
    path("frag-template", frag_template),
    path("afrag-template", afrag_template),
]
