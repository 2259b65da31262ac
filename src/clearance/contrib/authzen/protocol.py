"""Reading AuthZEN request bodies: strict JSON, the information model's required fields.

Everything here raises :class:`BadRequest` with a message for the caller; nothing is decided.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BadRequest",
    "Entity",
    "Evaluation",
    "entity",
    "merged_evaluation",
    "parse_body",
]


class BadRequest(Exception):
    """The request (or one evaluation of a batch) does not follow the specification."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise BadRequest(f"The member {key!r} appears twice in one object.")
        found[key] = value
    return found


def _no_constant(name: str) -> Any:
    raise BadRequest(f"{name} is not a JSON number.")


def parse_body(content_type: str, body: bytes) -> dict[str, Any]:
    """The JSON object in ``body``; :class:`BadRequest` for anything else.

    The content type must be ``application/json`` (parameters such as ``charset=utf-8`` are
    fine); the body must be UTF-8 I-JSON: no duplicate member names, no ``NaN``/``Infinity``.
    """
    if not body.strip():
        raise BadRequest("The request body is empty; it must be a JSON object.")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        shown = media_type or "none"
        raise BadRequest(f"The Content-Type must be application/json, not {shown}.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The request body is not valid UTF-8.") from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except BadRequest:
        raise
    except RecursionError:
        raise BadRequest("The request body nests too deeply.") from None
    except ValueError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    return data


@dataclass(frozen=True)
class Entity:
    """A subject, resource or action as sent: ``type`` and ``id`` (``name`` for an action)."""

    type: str
    id: str | None
    properties: dict[str, Any] = field(default_factory=dict)


def _properties(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{where}.properties must be an object.")
    return value


def entity(value: Any, where: str, *, need_id: bool = True) -> Entity:
    """A subject or resource (``where`` names it in messages)."""
    if value is None:
        raise BadRequest(f"{where} is required.")
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be an object.")
    kind = value.get("type")
    if kind is None:
        raise BadRequest(f"{where}.type is required.")
    if not isinstance(kind, str):
        raise BadRequest(f"{where}.type must be a string.")
    ident = value.get("id")
    if ident is None:
        if need_id:
            raise BadRequest(f"{where}.id is required.")
    elif not isinstance(ident, str):
        raise BadRequest(f"{where}.id must be a string.")
    return Entity(kind, ident, _properties(value.get("properties"), where))


def action(value: Any) -> Entity:
    """The action: its ``name`` (kept in ``Entity.type``) and properties."""
    if value is None:
        raise BadRequest("action is required.")
    if not isinstance(value, dict):
        raise BadRequest("action must be an object.")
    name = value.get("name")
    if name is None:
        raise BadRequest("action.name is required.")
    if not isinstance(name, str):
        raise BadRequest("action.name must be a string.")
    return Entity(name, None, _properties(value.get("properties"), "action"))


def context(value: Any) -> dict[str, Any]:
    """The context object (empty when absent)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("context must be an object.")
    return value


@dataclass(frozen=True)
class Evaluation:
    """One evaluation: subject, action, resource and context, validated."""

    subject: Entity
    action: Entity
    resource: Entity
    context: dict[str, Any]


def evaluation(data: dict[str, Any]) -> Evaluation:
    """Validate a single Access Evaluation request."""
    return Evaluation(
        entity(data.get("subject"), "subject"),
        action(data.get("action")),
        entity(data.get("resource"), "resource"),
        context(data.get("context")),
    )


def _merge(default: Any, item: Any, required: tuple[str, ...]) -> Any:
    """The item's entity, falling back to the default's required members it lacks."""
    if item is None:
        return default
    if not isinstance(item, dict) or not isinstance(default, dict):
        return item
    merged = dict(item)
    for key in required:
        if key not in merged and key in default:
            merged[key] = default[key]
    return merged


def merged_evaluation(defaults: dict[str, Any], item: Any, index: int) -> Evaluation:
    """Evaluation ``index`` of a batch, with the top-level values as defaults.

    A member of the item replaces the top-level one as a whole; only the required members it
    lacks (``type``/``id``, an action's ``name``) come from the top-level entity.
    """
    if not isinstance(item, dict):
        raise BadRequest(f"evaluations[{index}] must be an object.")
    return evaluation(
        {
            "subject": _merge(defaults.get("subject"), item.get("subject"), ("type", "id")),
            "action": _merge(defaults.get("action"), item.get("action"), ("name",)),
            "resource": _merge(defaults.get("resource"), item.get("resource"), ("type", "id")),
            "context": item["context"] if "context" in item else defaults.get("context"),
        }
    )
