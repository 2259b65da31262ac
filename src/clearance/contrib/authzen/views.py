"""The HTTP endpoints: metadata, Access Evaluation(s) and the three searches.

Every API endpoint takes ``POST`` with an ``application/json`` body and answers JSON with status
200, decisions included (a denial is ``"decision": false``). Errors are HTTP statuses with a
plain-text message, as the specification's error table says: 400 for a request that does not
follow the specification, 401 without valid credentials (with ``WWW-Authenticate``), 403 for a
subject the caller may not ask about (or a failed CSRF check), 405 for another method.
The ``X-Request-ID`` a caller sends is echoed and recorded with each decision.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from ...audit.recording import recording
from ...audit.requests import CALLER_ATTRIBUTE, REQUEST_ID_ATTRIBUTE
from . import protocol
from .auth import AuthenticationFailed, authenticate
from .conf import authzen_settings
from .protocol import BadRequest
from .service import Service

__all__ = [
    "evaluation",
    "evaluations",
    "metadata",
    "search_action",
    "search_resource",
    "search_subject",
]

_ENDPOINTS = {
    "access_evaluation_endpoint": "evaluation",
    "access_evaluations_endpoint": "evaluations",
    "search_subject_endpoint": "search_subject",
    "search_resource_endpoint": "search_resource",
    "search_action_endpoint": "search_action",
}
_SUFFIX = "access/v1/evaluation"

Handler = Callable[[Service, dict[str, Any]], dict[str, Any]]


def _error(message: str, status: int, request_id: str = "") -> HttpResponse:
    response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    if request_id:
        response["X-Request-ID"] = request_id
    return response


def _request_id(request: HttpRequest) -> tuple[str, str]:
    """(the id sent by the caller, to echo; the id the audit records)."""
    raw = request.headers.get("X-Request-ID", "")
    sent = "".join(ch for ch in raw if 32 < ord(ch) < 127)[:128]
    recorded = getattr(request, REQUEST_ID_ATTRIBUTE, None) or sent or uuid.uuid4().hex
    setattr(request, REQUEST_ID_ATTRIBUTE, recorded)
    return sent, str(recorded)


def _body(request: HttpRequest) -> bytes:
    limit = int(authzen_settings.MAX_BODY_BYTES)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise BadRequest(f"The request body is larger than {limit} bytes.")
    try:
        body = request.body
    except RequestDataTooBig:
        raise BadRequest(f"The request body is larger than {limit} bytes.") from None
    if len(body) > limit:
        raise BadRequest(f"The request body is larger than {limit} bytes.")
    return body


def _serve(request: HttpRequest, handler: Handler) -> HttpResponse:
    sent_id, recorded_id = _request_id(request)
    if request.method != "POST":
        response: HttpResponse = HttpResponseNotAllowed(["POST"])
        response.content = b"This endpoint takes POST requests only."
        response["Content-Type"] = "text/plain; charset=utf-8"
        return response
    try:
        identity, challenge = authenticate(request)
    except AuthenticationFailed as exc:
        identity, challenge = None, str(exc)
        response = _error(str(exc), 401, sent_id)
        response["WWW-Authenticate"] = 'Bearer realm="authzen", error="invalid_token"'
        return response
    except PermissionDenied as exc:
        return _error(str(exc) or "Forbidden.", 403, sent_id)
    if identity is None:
        response = _error("Authentication is required to call this endpoint.", 401, sent_id)
        if challenge:
            response["WWW-Authenticate"] = challenge
        return response
    setattr(request, CALLER_ATTRIBUTE, identity.label)
    try:
        data = protocol.parse_body(request.META.get("CONTENT_TYPE", ""), _body(request))
        service = Service(identity, request, recorded_id)
        service.read_options(data)
        with recording():
            answer = handler(service, data)
    except BadRequest as exc:
        return _error(exc.message, exc.status, sent_id)
    response = JsonResponse(answer)
    if sent_id:
        response["X-Request-ID"] = sent_id
    return response


@csrf_exempt
def evaluation(request: HttpRequest) -> HttpResponse:
    """Access Evaluation: one decision."""
    return _serve(request, lambda service, data: service.evaluate(protocol.evaluation(data)))


@csrf_exempt
def evaluations(request: HttpRequest) -> HttpResponse:
    """Access Evaluations: a batch, with defaults and the three evaluation semantics."""
    return _serve(request, lambda service, data: service.evaluations(data))


@csrf_exempt
def search_subject(request: HttpRequest) -> HttpResponse:
    """Subject Search: who may do the action on the resource."""
    return _serve(request, lambda service, data: service.search_subject(data))


@csrf_exempt
def search_resource(request: HttpRequest) -> HttpResponse:
    """Resource Search: on which resources of a type the subject may do the action."""
    return _serve(request, lambda service, data: service.search_resource(data))


@csrf_exempt
def search_action(request: HttpRequest) -> HttpResponse:
    """Action Search: which declared actions the subject may do on the resource."""
    return _serve(request, lambda service, data: service.search_action(data))


def metadata(request: HttpRequest) -> HttpResponse:
    """The PDP metadata document (``/.well-known/authzen-configuration``); no credentials."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    configured = authzen_settings.POLICY_DECISION_POINT
    if configured:
        base = str(configured).rstrip("/")
        document = {"policy_decision_point": base}
        for key, name in _ENDPOINTS.items():
            path = reverse(f"clearance_authzen:{name}")
            document[key] = base + "/" + path[path.index("access/v1/") :]
        return JsonResponse(document)
    evaluation_path = reverse("clearance_authzen:evaluation")
    prefix = evaluation_path[: -len(_SUFFIX)]
    document = {"policy_decision_point": request.build_absolute_uri(prefix).rstrip("/")}
    for key, name in _ENDPOINTS.items():
        document[key] = request.build_absolute_uri(reverse(f"clearance_authzen:{name}"))
    return JsonResponse(document)
