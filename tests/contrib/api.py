"""A DRF API over the test documents, protected by clearance."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from clearance import enforce
from clearance.contrib.drf import ClearanceAPIMixin, ClearanceFilterBackend, ClearancePermission
from tests.testapp.models import Document


class DocumentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Document
        fields = ["id", "title", "state", "amount", "tenant"]


class DocumentViewSet(ClearanceAPIMixin, viewsets.ModelViewSet):
    queryset = Document.objects.order_by("title")
    serializer_class = DocumentSerializer
    permission_classes = [ClearancePermission]
    filter_backends = [ClearanceFilterBackend]
    clearance_actions = {
        "create": "testapp.create",
        "update": "testapp.change",
        "partial_update": "testapp.change",
        "destroy": "testapp.change",
        "approve": "testapp.approve",
        "approvable": "testapp.approve",
    }

    def perform_update(self, serializer: Any) -> None:
        # The change is decided again on the state it leaves; a denial rolls it back.
        with transaction.atomic():
            document = serializer.save()
            enforce(self.request.user, "testapp.change", document, request=self.request)

    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        document = self.get_object()
        document.state = "approved"
        document.save()
        return Response(self.get_serializer(document).data)

    @action(detail=False)
    def approvable(self, request: Request) -> Response:
        documents = self.filter_queryset(self.get_queryset())
        return Response(self.get_serializer(documents, many=True).data)


class UnmappedViewSet(viewsets.ModelViewSet):
    """Forgot to map ``update``: a configuration error, never an allow."""

    queryset = Document.objects.all()
    serializer_class = DocumentSerializer
    permission_classes = [ClearancePermission]


class ByTitleViewSet(ClearanceAPIMixin, viewsets.ReadOnlyModelViewSet):
    """Looked up by title, which is not unique, and without the filter backend."""

    queryset = Document.objects.all()
    serializer_class = DocumentSerializer
    permission_classes = [ClearancePermission]
    lookup_field = "title"


class ChannelViewSet(ClearanceAPIMixin, viewsets.ModelViewSet):
    """Passes the request's channel to the rules as ``CTX.channel``."""

    queryset = Document.objects.all()
    serializer_class = DocumentSerializer
    permission_classes = [ClearancePermission]
    filter_backends = [ClearanceFilterBackend]
    clearance_actions = {"create": "testapp.create", "partial_update": "testapp.change"}

    def get_clearance_context(self) -> dict[str, Any]:
        return {"channel": self.request.headers.get("X-Channel", "")}


class WithoutMixinViewSet(viewsets.ModelViewSet):
    """Maps its writes, but cannot decide them on what they would write."""

    queryset = Document.objects.all()
    serializer_class = DocumentSerializer
    permission_classes = [ClearancePermission]
    clearance_actions = {"create": "testapp.create", "partial_update": "testapp.change"}
