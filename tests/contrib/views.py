"""Views the integration tests request over HTTP: function views, class-based views, async."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import RequestContext, Template
from django.views import View
from django.views.generic import DetailView, ListView, UpdateView

from clearance import enforce
from clearance.contrib.guard import guard_exempt
from clearance.contrib.views import ActionRequiredMixin, AuthorizedListMixin, action_required
from tests.testapp.models import Document


def _show(doc: Document) -> str:
    return f"{doc.title} ({doc.state}, {doc.amount})"


@action_required("testapp.view")
def document_detail(request: HttpRequest, document: Document) -> HttpResponse:
    return HttpResponse(_show(document))


@action_required("testapp.approve", view_action=None)
def document_approve_unhidden(request: HttpRequest, document: Document) -> HttpResponse:
    return HttpResponse(f"approved {document.title}")


@action_required("testapp.approve")
def document_approve(request: HttpRequest, document: Document) -> HttpResponse:
    document.state = "approved"
    document.save()
    return HttpResponse(f"approved {document.title}")


@action_required("testapp.view", action_by_method={"POST": "testapp.change"}, object_kwarg="doc")
def document_change_amount(request: HttpRequest, doc: Document) -> HttpResponse:
    """Enforces inside the body: a denial there is answered like one from the decorator."""
    doc.amount = Decimal(request.POST["amount"])
    enforce(request.user, "testapp.change", doc, request=request)
    doc.save()
    return HttpResponse(f"changed {doc.title}")


@action_required("testapp.view")
async def document_detail_async(request: HttpRequest, document: Document) -> HttpResponse:
    return JsonResponse({"title": document.title, "state": document.state})


class DocumentDetail(ActionRequiredMixin, DetailView):
    model = Document
    action = "testapp.view"

    def render_to_response(self, context: dict[str, Any], **kwargs: Any) -> HttpResponse:
        return HttpResponse(_show(context["object"]))


class DocumentUpdate(ActionRequiredMixin, UpdateView):
    model = Document
    fields = ["title", "amount", "tenant"]
    action_by_method = {"GET": "testapp.view", "POST": "testapp.change"}

    def render_to_response(self, context: dict[str, Any], **kwargs: Any) -> HttpResponse:
        form = context["form"]
        return HttpResponse(f"edit {self.object.title} {form.errors.as_text()}")

    def get_success_url(self) -> str:
        return f"/contrib/cbv/{self.object.pk}/"


class DocumentList(AuthorizedListMixin, ListView):
    model = Document

    def render_to_response(self, context: dict[str, Any], **kwargs: Any) -> HttpResponse:
        return HttpResponse("\n".join(_show(d) for d in context["object_list"]))


class ApprovableList(AuthorizedListMixin, ListView):
    model = Document
    action = "testapp.approve"

    def render_to_response(self, context: dict[str, Any], **kwargs: Any) -> HttpResponse:
        return HttpResponse("\n".join(_show(d) for d in context["object_list"]))


class DocumentAsync(ActionRequiredMixin, View):
    """An async class-based view: GET shows, POST approves."""

    model = Document
    action_by_method = {"GET": "testapp.view", "POST": "testapp.approve"}

    def get_queryset(self) -> Any:
        return Document.objects.all()

    async def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        doc = await self.aget_object()
        return JsonResponse({"title": doc.title})

    async def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        doc = await self.aget_object()
        doc.state = "approved"
        await doc.asave()
        return JsonResponse({"approved": doc.title})


class DocumentListAsync(AuthorizedListMixin, ListView):
    model = Document

    async def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:  # type: ignore[override]
        queryset = await self.aget_queryset()
        return JsonResponse({"titles": [d.title async for d in queryset.order_by("title")]})


CARD = Template(
    "{% load clearance %}"
    "{% for doc in documents %}"
    "{% authorize 'testapp.view' doc as seen %}"
    "{% if seen %}<li>{{ doc.title }}"
    "{% authorize 'testapp.approve' doc as d %}"
    "{% if d %} [approve]{% else %} [no: {{ d.layer }} {{ d.code }} {{ d.reason }}]{% endif %}"
    "</li>{% endif %}"
    "{% endfor %}"
)


def document_cards(request: HttpRequest) -> HttpResponse:
    """A page whose template decides, per document, what to show (unscoped on purpose)."""
    documents = Document.objects.order_by("title")
    return HttpResponse(CARD.render(RequestContext(request, {"documents": documents})))


def unguarded(request: HttpRequest) -> HttpResponse:
    """A view that forgot authorization: it shows every document."""
    return HttpResponse(", ".join(d.title for d in Document.objects.all()))


@guard_exempt
def public(request: HttpRequest) -> HttpResponse:
    """A public page, marked as needing no authorization decision."""
    return HttpResponse("hello")


async def unguarded_async(request: HttpRequest) -> HttpResponse:
    """An async view that forgot authorization."""
    return HttpResponse(", ".join([d.title async for d in Document.objects.all()]))
