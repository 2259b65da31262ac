"""The explain page's question (a user, an action, an object, a moment) and its answer.

The console explains *what would happen*: it runs the engine's three gates with every rule
evaluated, exactly like :func:`clearance.explain`, but the result is **not** a decision anybody
asked for, so it is not offered to ``decision_made`` nor to the audit sinks. Otherwise looking
at why Alice cannot approve an invoice would write a denial in Alice's name that she never
met. Who looked at what is logged instead, at INFO on the ``clearance.console`` logger.

The evaluation has no request (``ctx.request`` is None): the request being served is the staff
member's, not the explained user's. The objects offered and explained are those the console user
may see (:mod:`clearance.console.scope`): another tenant's object reads as a missing one.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from ..actions import Action, registry
from ..decisions import Decision
from ..engine import decide
from ..lookup import ObjectNotFound, find_object
from ..rules import Context
from .scope import visible_objects

__all__ = ["ExplainForm", "ObjectList", "datalist_id", "what_if"]

logger = logging.getLogger("clearance.console")

#: How many usernames, and objects, the form suggests (HTML datalists; any value may be typed).
SUGGESTED_USERS = 200
SUGGESTED_OBJECTS = 200


@dataclass(frozen=True)
class ObjectList:
    """The objects the form suggests for the actions on one model (an HTML datalist)."""

    id: str
    model: str
    objects: list[tuple[str, str]]  # (primary key, label)
    actions: list[str]


def datalist_id(model: type[models.Model]) -> str:
    """The id of the datalist of ``model``'s objects on the explain page."""
    return f"console-objects-{model._meta.app_label}-{model._meta.model_name}"


def what_if(actor: Any, action: Action, obj: Any, *, now: dt.datetime | None = None) -> Decision:
    """Every gate and rule of ``actor`` doing ``action`` on ``obj``, recorded nowhere.

    The same evaluation as :func:`clearance.explain` (same verdict, layer and rule), at ``now``
    (default: the present), without the signal and the audit sinks.
    """
    ctx = Context(actor, action, obj, now=now or timezone.now(), fresh=True)
    return decide(action, ctx, full=True)


def _action_choices() -> list[tuple[str, str]]:
    return [("", "Choose an action")] + [
        (a.name, f"{a.name} — {a.label}" if a.label != a.name else a.name) for a in registry.actions
    ]


class ExplainForm(forms.Form):
    """Who, what, on which object, and when (GET parameters, so the URL is a permalink)."""

    user = forms.CharField(
        label="User",
        max_length=254,
        help_text="The username of the person whose decision to explain.",
        widget=forms.TextInput(attrs={"list": "console-users", "autocomplete": "off"}),
    )
    action = forms.ChoiceField(label="Action", choices=())
    object = forms.CharField(
        label="Object",
        required=False,
        max_length=255,
        help_text="The object the action acts on: its primary key, or its natural key such as "
        "a number when the project names one (leave empty for an action that takes no object).",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    at = forms.DateTimeField(
        label="As of",
        required=False,
        help_text="Evaluate the rules at this moment (default: now). Rules read today's data.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
    )

    def __init__(self, *args: Any, viewer: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.viewer = viewer
        action_field = self.fields["action"]
        assert isinstance(action_field, forms.ChoiceField)
        action_field.choices = _action_choices()
        # The object field suggests the chosen action's objects (explain.js switches the list
        # when another action is chosen).
        chosen = self.data.get("action") if self.is_bound else None
        model = registry.get(chosen).model if chosen and chosen in registry else None
        object_attrs = self.fields["object"].widget.attrs
        if model is not None:
            object_attrs["list"] = datalist_id(model)
        else:
            object_attrs.pop("list", None)
        self.actor: Any = None
        self.act: Action | None = None
        self.target: models.Model | None = None

    def clean_user(self) -> Any:
        """The user named by username."""
        value = self.cleaned_data["user"].strip()
        user_model = get_user_model()
        field = user_model.USERNAME_FIELD
        try:
            self.actor = user_model._default_manager.get(**{field: value})
        except user_model.DoesNotExist:
            raise ValidationError(
                "There is no user %(value)s.", code="unknown_user", params={"value": repr(value)}
            ) from None
        return value

    def clean_action(self) -> str:
        """The declared action."""
        name: str = self.cleaned_data["action"]
        self.act = registry.get(name)
        return name

    def clean(self) -> dict[str, Any]:
        """Fetch the object of the action's model."""
        cleaned: dict[str, Any] = super().clean() or {}
        act = self.act
        if act is None or "action" not in cleaned:
            return cleaned
        pk = (cleaned.get("object") or "").strip()
        model = act.model
        if model is None:
            if pk:
                self.add_error("object", f"{act.name} acts on no object; leave this empty.")
            return cleaned
        if not pk:
            self.add_error(
                "object", f"{act.name} acts on {model._meta.label} objects: give a primary key."
            )
            return cleaned
        try:
            # Among the objects the console user may see: a hidden one reads as a missing one.
            self.target = find_object(model, pk, visible_objects(self.viewer, model))
        except ObjectNotFound as exc:
            self.add_error("object", str(exc))
        return cleaned

    def explain(self, staff: Any) -> Decision:
        """Evaluate the question of a valid form (and log who asked)."""
        assert self.act is not None and self.actor is not None
        at = self.cleaned_data.get("at")
        decision = what_if(self.actor, self.act, self.target, now=at)
        logger.info(
            "%s explained %s for %s: %s",
            getattr(staff, "get_username", lambda: str(staff))(),
            self.act.name,
            decision.actor,
            "allowed" if decision.allowed else f"denied by {decision.code}",
        )
        return decision

    @staticmethod
    def suggested_usernames() -> list[str]:
        """Usernames of active users, for the form's datalist."""
        user_model = get_user_model()
        field = user_model.USERNAME_FIELD
        users = user_model._default_manager.all()
        if any(f.name == "is_active" for f in user_model._meta.get_fields()):
            users = users.filter(is_active=True)
        names = users.order_by(field).values_list(field, flat=True)[:SUGGESTED_USERS]
        return [str(n) for n in names]

    @staticmethod
    def object_lists(viewer: Any) -> list[ObjectList]:
        """One list of suggested objects per model that actions act on, for the form's
        datalists: the object field offers the chosen action's list as soon as the action is
        chosen (a small script switches it; without the script, after the first submit)."""
        lists: dict[type[models.Model], ObjectList] = {}
        for act in registry.actions:
            model = act.model
            if model is None:
                continue
            if model not in lists:
                objects = visible_objects(viewer, model).order_by("-pk")[:SUGGESTED_OBJECTS]
                lists[model] = ObjectList(
                    datalist_id(model),
                    model._meta.label,
                    [(str(obj.pk), str(obj)) for obj in objects],
                    [],
                )
            lists[model].actions.append(act.name)
        return list(lists.values())
