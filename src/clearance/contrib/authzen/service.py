"""Answering AuthZEN requests from clearance's gates.

Every decision is made by :func:`clearance.authorize` (or :func:`clearance.authorized` for a
resource search) with the HTTP request, so it is audited with the request's metadata and the
caller. What a caller is told:

- a decision: ``{"decision": bool, "context": {...}}``, the context carrying the clearance
  action, the ``code``, the ``gate`` and ``rule`` that denied, a user-facing and an
  administrator-facing reason and the rule-set ``fingerprint`` (see :func:`decision_context`);
- an object that does not exist, and an object the subject may not even see, get the same
  answer: ``decision: false`` with ``context.error.status`` 404 (see :func:`not_found`);
- a request the mapping cannot answer (an unknown type or action, a bad property value) or a
  subject the caller may not ask about raises :class:`~.protocol.BadRequest` (400 / 403).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing

from ... import engine
from ...actions import Action, registry
from ...decisions import Decision, NotFilterable, UnknownAction
from ..denials import view_action_for
from . import protocol
from .auth import CallerIdentity, may_ask
from .conf import authzen_settings
from .mapping import ResourceType, SubjectType, Unresolvable, mapping
from .protocol import BadRequest, Entity, Evaluation

__all__ = ["Service", "decision_context", "not_found"]

_PAGE_SALT = "clearance.contrib.authzen.page"

Answer = dict[str, Any]


def _language() -> str:
    return str(getattr(settings, "LANGUAGE_CODE", "en") or "en")


def decision_context(decision: Decision, request_id: str = "") -> dict[str, Any]:
    """The response context of a decision.

    ``action`` (the clearance action), ``code``, ``fingerprint``; for a denial also ``gate``
    (permission, policy or invariant), ``rule``, ``reason_user`` (the rule's reason, written for
    people) and ``reason_admin`` (which gate and rule, the rule set, and the request id to find
    the audit record by). Keys of the reasons are the project's ``LANGUAGE_CODE``.
    Never the rule's expression, the trace or an exception's text: those stay in the audit.
    """
    found: dict[str, Any] = {
        "action": decision.action,
        "code": decision.code,
        "fingerprint": decision.fingerprint,
    }
    if decision.allowed:
        return found
    gate = decision.layer.value if decision.layer is not None else None
    if gate is not None:
        found["gate"] = gate
    if decision.rule:
        found["rule"] = decision.rule
    lang = _language()
    found["reason_user"] = {lang: decision.reason}
    admin = (
        f"{decision.action} was denied by {decision.code}"
        f"{f' at the {gate} gate' if gate else ''}, rule set {decision.fingerprint}"
    )
    if decision.error:
        admin += "; the rule could not be evaluated (the exception is in the audit log)"
    if request_id:
        admin += f"; audit request id {request_id}"
    found["reason_admin"] = {lang: admin + "."}
    return found


def not_found(what: str = "resource") -> Answer:
    """The answer for an object that does not exist, or that the subject may not see."""
    message = f"The {what} was not found."
    return {
        "decision": False,
        "context": {
            "code": "not_found",
            "error": {"status": 404, "message": message},
            "reason_user": {_language(): message},
        },
    }


def error_answer(exc: BadRequest) -> Answer:
    """A denied evaluation carrying the error that prevented it (inside a batch)."""
    return {
        "decision": False,
        "context": {"error": {"status": exc.status, "message": exc.message}},
    }


@dataclass(frozen=True)
class _Target:
    """What one evaluation is about, resolved."""

    subject_type: SubjectType
    actor: Any
    resource_type: ResourceType
    action: Action
    creates: bool


def _page(data: dict[str, Any]) -> tuple[int, str | None]:
    page = data.get("page")
    if page is None:
        return int(authzen_settings.PAGE_SIZE), None
    if not isinstance(page, dict):
        raise BadRequest("page must be an object.")
    limit = page.get("limit", authzen_settings.PAGE_SIZE)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise BadRequest("page.limit must be a non-negative integer.")
    token = page.get("token")
    if token is not None and not isinstance(token, str):
        raise BadRequest("page.token must be a string.")
    return min(limit, int(authzen_settings.MAX_PAGE_SIZE)), token or None


def _request_digest(data: dict[str, Any]) -> str:
    page = dict(data.get("page") or {})
    page.pop("token", None)
    stable = {**data, "page": page}
    text = json.dumps(stable, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _position(data: dict[str, Any], token: str | None) -> Any:
    """Where the page starts: None for the first page, else the position the token carries."""
    if token is None:
        return None
    try:
        payload = signing.loads(token, salt=_PAGE_SALT)
    except signing.BadSignature:
        raise BadRequest("page.token is not a token this endpoint issued.") from None
    if not isinstance(payload, dict) or payload.get("h") != _request_digest(data):
        raise BadRequest(
            "page.token belongs to another request: subject, action, resource, context and "
            "page.limit must stay the same while paging."
        )
    return payload.get("p")


def _token(data: dict[str, Any], position: Any) -> str:
    return signing.dumps({"h": _request_digest(data), "p": position}, salt=_PAGE_SALT)


def _search_answer(results: list[dict[str, Any]], next_token: str = "", **page: Any) -> Answer:
    return {"page": {"next_token": next_token, "count": len(results), **page}, "results": results}


def _empty(message: str) -> Answer:
    answer = _search_answer([])
    answer["context"] = {"error": {"status": 404, "message": message}}
    return answer


class Service:
    """Answers the AuthZEN requests of one authenticated caller, within one HTTP request."""

    def __init__(self, identity: CallerIdentity, request: Any, request_id: str = "") -> None:
        self.identity = identity
        self.request = request
        self.request_id = request_id
        # One actor object per subject for the whole request: a batch about one subject loads
        # it, and its permissions (gate 1), once.
        self._actors: dict[tuple[str, str], Any] = {}
        #: Whether the caller said it only decides what to show (``"options": {"probe": true}``):
        #: its decisions are then probes, not recorded by default. Otherwise they are attempts.
        self.probe = False

    def read_options(self, data: dict[str, Any]) -> None:
        """Take ``options.probe`` from a request body (any other value means an attempt)."""
        options = data.get("options")
        self.probe = isinstance(options, dict) and options.get("probe") is True

    # -- resolution ------------------------------------------------------------------------

    def _subject_type(self, entity: Entity) -> SubjectType:
        found = mapping.subjects.get(entity.type)
        if found is None:
            raise BadRequest(f"No subject type {entity.type!r} is declared.")
        return found

    def _resource_type(self, entity: Entity) -> ResourceType:
        found = mapping.resources.get(entity.type)
        if found is None:
            raise BadRequest(f"No resource type {entity.type!r} is declared.")
        return found

    def _action(self, resource_type: ResourceType, name: str) -> tuple[Action, bool]:
        target = resource_type.action_for(name)
        if target is None:
            raise BadRequest(
                f"The action {name!r} is not declared for resources of type {resource_type.name!r}."
            )
        try:
            return registry.get(target[0]), target[1]
        except UnknownAction:
            raise BadRequest(
                f"The action {name!r} maps to the clearance action {target[0]!r}, which is not "
                "declared.",
                500,
            ) from None

    def _actor(self, subject_type: SubjectType, entity: Entity) -> Any:
        """The subject's actor, None when it names nobody; 403 when the caller may not ask."""
        key = (subject_type.name, entity.id or "")
        if key not in self._actors:
            self._actors[key] = subject_type.resolve(key[1])
        actor = self._actors[key]
        if not may_ask(self.identity, subject_type.name, actor):
            raise BadRequest("This caller may not ask about this subject.", 403)
        return actor

    def _extra(self, ev: Evaluation) -> dict[str, Any]:
        return {
            "authzen": {
                "caller": self.identity.label,
                "subject": ev.subject.properties,
                "action": ev.action.properties,
                "resource": ev.resource.properties,
                "context": ev.context,
            }
        }

    # -- one decision ------------------------------------------------------------------------

    def _decide(self, actor: Any, act: Action, obj: Any, extra: dict[str, Any]) -> Decision:
        return engine.authorize(actor, act, obj, request=self.request, probe=self.probe, **extra)

    def _answer(self, decision: Decision) -> Answer:
        return {
            "decision": decision.allowed,
            "context": decision_context(decision, self.request_id),
        }

    def _on(self, target: _Target, resource: Entity, extra: dict[str, Any]) -> Answer:
        """Decide ``target`` on ``resource`` (looked up, described or to be created)."""
        rtype, act = target.resource_type, target.action
        try:
            if target.creates or not rtype.stored:
                obj = rtype.build(None if target.creates else resource.id, resource.properties)
                return self._answer(self._decide(target.actor, act, obj, extra))
            obj = rtype.load(resource.id or "")
            if obj is None:
                return not_found()
            after = rtype.changed(obj, resource.properties)
        except Unresolvable as exc:
            if exc.status == 404:
                return not_found()
            raise BadRequest(exc.message, exc.status) from None
        # An object the subject may not even see answers as if it did not exist.
        seen_act = view_action_for(rtype.model)
        if seen_act is not None and seen_act is not act:
            seen = self._decide(target.actor, seen_act, obj, extra)
            if not seen.allowed:
                return not_found()
        decision = self._decide(target.actor, act, obj, extra)
        if not decision.allowed:
            return not_found() if seen_act is act else self._answer(decision)
        if after is not None:
            # An update is decided on the state that would be written, too.
            decision = self._decide(target.actor, act, after, extra)
        return self._answer(decision)

    def evaluate(self, ev: Evaluation) -> Answer:
        """The answer to one evaluation; :class:`BadRequest` when it cannot be asked."""
        subject_type = self._subject_type(ev.subject)
        resource_type = self._resource_type(ev.resource)
        act, creates = self._action(resource_type, ev.action.type)
        actor = self._actor(subject_type, ev.subject)
        if actor is None:
            return not_found("subject")
        target = _Target(subject_type, actor, resource_type, act, creates)
        return self._on(target, ev.resource, self._extra(ev))

    def evaluations(self, data: dict[str, Any]) -> Answer:
        """The Access Evaluations answer (a single evaluation when the array is absent)."""
        items = data.get("evaluations")
        if items is None or items == []:
            return self.evaluate(protocol.evaluation(data))
        if not isinstance(items, list):
            raise BadRequest("evaluations must be an array.")
        limit = int(authzen_settings.MAX_EVALUATIONS)
        if len(items) > limit:
            raise BadRequest(f"At most {limit} evaluations may be sent in one request.")
        semantic = _semantic(data.get("options"))
        answers: list[Answer] = []
        for index, item in enumerate(items):
            try:
                answer = self.evaluate(protocol.merged_evaluation(data, item, index))
            except BadRequest as exc:
                answer = error_answer(exc)
            answers.append(answer)
            if semantic == "deny_on_first_deny" and not answer["decision"]:
                break
            if semantic == "permit_on_first_permit" and answer["decision"]:
                break
        return {"evaluations": answers}

    # -- searches ------------------------------------------------------------------------------

    def search_resource(self, data: dict[str, Any]) -> Answer:
        """Resources of a type the subject may act on: one :func:`authorized` query per page."""
        limit, token = _page(data)
        subject = protocol.entity(data.get("subject"), "subject")
        action = protocol.action(data.get("action"))
        resource = protocol.entity(data.get("resource"), "resource", need_id=False)
        ctx = protocol.context(data.get("context"))
        try:
            subject_type = self._subject_type(subject)
            rtype = self._resource_type(resource)
            act, creates = self._action(rtype, action.type)
        except BadRequest as exc:
            return _empty(exc.message)
        after = _position(data, token)
        actor = self._actor(subject_type, subject)
        if actor is None:
            return _empty("The subject was not found.")
        if creates or not rtype.stored:
            return _empty(f"Resources of type {rtype.name!r} are not stored: nothing to search.")
        extra = self._extra(Evaluation(subject, action, resource, ctx))
        queryset = rtype.base_queryset()
        seen_act = view_action_for(rtype.model)
        if seen_act is not None and seen_act is not act:
            queryset = self._authorized(actor, seen_act, queryset, extra)
        allowed = self._authorized(actor, act, queryset, extra)
        total = allowed.count()
        rows = allowed.order_by("pk")
        if after is not None:
            rows = rows.filter(pk__gt=after)
        page = list(rows.values_list("pk", rtype.lookup[0])[: limit + 1])
        more = len(page) > limit
        page = page[:limit]
        results = [
            {"type": rtype.name, "id": "" if ident is None else str(ident)} for _, ident in page
        ]
        next_token = ""
        if more or (limit == 0 and total):
            next_token = _token(data, page[-1][0] if page else after)
        return _search_answer(results, next_token, total=total)

    def _authorized(self, actor: Any, act: Action, queryset: Any, extra: dict[str, Any]) -> Any:
        try:
            return engine.authorized(actor, act, queryset, request=self.request, **extra)
        except NotFilterable:
            # Correct but slow: the system check clearance_authzen.W101 says so at startup.
            return engine.authorized(
                actor, act, queryset, request=self.request, evaluate_in_python=True, **extra
            )

    def search_subject(self, data: dict[str, Any]) -> Answer:
        """Subjects of a type that may do the action on the resource (each one decided)."""
        limit, token = _page(data)
        subject = protocol.entity(data.get("subject"), "subject", need_id=False)
        action = protocol.action(data.get("action"))
        resource = protocol.entity(data.get("resource"), "resource")
        ctx = protocol.context(data.get("context"))
        try:
            subject_type = self._subject_type(subject)
            rtype = self._resource_type(resource)
            act, creates = self._action(rtype, action.type)
        except BadRequest as exc:
            return _empty(exc.message)
        after = _position(data, token)
        extra = self._extra(Evaluation(subject, action, resource, ctx))
        candidates = list(self._candidates(subject_type, after, limit + 1))
        more = len(candidates) > limit
        candidates = candidates[:limit]
        results: list[dict[str, Any]] = []
        for _, actor in candidates:
            if not may_ask(self.identity, subject_type.name, actor):
                continue
            target = _Target(subject_type, actor, rtype, act, creates)
            try:
                answer = self._on(target, resource, extra)
            except BadRequest as exc:
                return _empty(exc.message)
            if answer["decision"]:
                results.append({"type": subject_type.name, "id": subject_type.id_of(actor)})
        last = candidates[-1][0] if candidates else after
        return _search_answer(results, _token(data, last) if more else "")

    def _candidates(
        self, subject_type: SubjectType, after: Any, count: int
    ) -> Iterator[tuple[Any, Any]]:
        if subject_type.actors is not None:
            keys = sorted(subject_type.actors)
            start = 0 if after is None else sum(1 for key in keys if key <= str(after))
            for key in keys[start : start + count]:
                yield key, subject_type.actors[key]
            return
        rows = subject_type.base_queryset().order_by("pk")
        if after is not None:
            rows = rows.filter(pk__gt=after)
        for actor in rows[:count]:
            yield actor.pk, actor

    def search_action(self, data: dict[str, Any]) -> Answer:
        """The declared actions of the resource's type the subject may do on it."""
        subject = protocol.entity(data.get("subject"), "subject")
        resource = protocol.entity(data.get("resource"), "resource")
        ctx = protocol.context(data.get("context"))
        _page(data)
        try:
            subject_type = self._subject_type(subject)
            rtype = self._resource_type(resource)
        except BadRequest as exc:
            return _empty(exc.message)
        actor = self._actor(subject_type, subject)
        if actor is None:
            return _empty("The subject was not found.")
        results: list[dict[str, Any]] = []
        for name in rtype.actions:
            act, creates = self._action(rtype, name)
            ev = Evaluation(subject, Entity(name, None, {}), resource, ctx)
            target = _Target(subject_type, actor, rtype, act, creates)
            answer = self._on(target, resource, self._extra(ev))
            if answer["decision"]:
                results.append({"name": name})
        return _search_answer(results)


def _semantic(options: Any) -> str:
    if options is None:
        return "execute_all"
    if not isinstance(options, dict):
        raise BadRequest("options must be an object.")
    semantic = options.get("evaluations_semantic", "execute_all")
    if semantic not in ("execute_all", "deny_on_first_deny", "permit_on_first_permit"):
        raise BadRequest(
            "options.evaluations_semantic must be execute_all, deny_on_first_deny or "
            "permit_on_first_permit."
        )
    return str(semantic)
