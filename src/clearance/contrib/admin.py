"""The admin: a ``ModelAdmin`` mixin whose permissions come from clearance actions.

::

    @admin.register(Invoice)
    class InvoiceAdmin(ClearanceAdminMixin, admin.ModelAdmin):
        clearance_actions = {"view": "invoices.view", "change": "invoices.change"}
        actions = ["approve_selected"]

        @guarded_action("invoices.approve", description="Approve the selected invoices")
        def approve_selected(self, request, queryset): ...

- The changelist (and every page that loads objects through ``get_queryset``: change, delete,
  history, search, autocomplete) is scoped with :func:`~clearance.authorized` by the view
  action, so an object the user may not see "does not exist", as for a missing one.
- ``has_view/change/delete_permission(request, obj)`` decide the mapped action on the object;
  without an object (menus, buttons) they ask the permission gate alone.
  ``has_module_permission`` (the model's entry on the index) holds with Django's answer or
  with the permission gate of a mapped action, so a permission held within a scope counts.
  ``has_add_permission`` asks the permission gate; the add action is decided on the new object
  before it is saved, and the change action on the object as the form would save it. Kinds not
  in ``clearance_actions`` keep Django's own answer (``view`` defaults to the model's view
  action).
- Admin actions marked with :func:`guarded_action` are offered only to users who may attempt
  the clearance action, and run only when it is allowed on *every* selected object (otherwise
  nothing runs and each refusal is shown with its reason). Every admin action runs in a
  transaction: a denial raised inside it (an invariant on ``save()`` or a guarded bulk write)
  rolls it back and is shown as an error message.
- A denial raised while saving or deleting through a form is shown as an error message, never
  a server error, and the transaction is rolled back.
- A change page shown read-only because the change action is denied on the object says why:
  a message with the denial's reason and code (the gate and rule that made it read-only).
- ``get_clearance_context(request)`` returns values the rules read as ``CTX.<name>``; every
  decision of the admin receives them.
- **Attempts and probes.** A page that is only shown (``GET``, ``HEAD``, ``OPTIONS``,
  ``TRACE``: the changelist, a change form, a read-only object, the delete confirmation page,
  the history) decides what to show: its checks are probes, not recorded in the audit trail by
  default (see :func:`clearance.authorize`). With any other method (a ``POST``, or a ``PUT``,
  ``PATCH``, ``DELETE`` the admin does not expect) the check of what the page acts on (change
  or add on the change form, delete on the delete page, the view action on the history) is an
  attempt, recorded once per object and request; the other checks that page makes to render
  itself stay probes. Saving (the add or change action on the object as it will be saved) and
  a guarded admin action (its action on every selected object) are always attempts.

The checks call the engine directly, so policies and invariants bind superusers too.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import ImproperlyConfigured
from django.db import models, router, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from .. import engine
from ..actions import Action, registry
from ..decisions import Denied, exception_for
from .denials import view_action_for

__all__ = ["ClearanceAdminMixin", "guarded_action"]

#: How many refused objects an admin action lists by name before summarising the rest.
_LISTED = 10

#: Methods that only show a page: every check they make is a probe.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

#: Request attributes: the kind of check the admin view being served acts on, and the
#: (action, model, pk) keys of the checks already recorded as attempts in this request.
_ACTS_ON = "_clearance_admin_acts_on"
_ATTEMPTED = "_clearance_admin_attempted"
_ANY = object()


def _attempt_key(act: Action, obj: Any) -> tuple[str, str, Any]:
    meta = getattr(obj, "_meta", None)
    return (act.name, meta.label if meta is not None else type(obj).__qualname__, obj.pk)


def _first_attempt(request: HttpRequest, act: Action, obj: Any) -> bool:
    """Note ``act`` on ``obj`` as attempted in ``request``; False when it already was."""
    seen: set[Any] = request.__dict__.setdefault(_ATTEMPTED, set())
    key = _attempt_key(act, obj)
    if key in seen:
        return False
    seen.add(key)
    return True


def guarded_action(action: str, **admin_action_kwargs: Any) -> Callable[..., Any]:
    """Mark an admin action as doing the clearance ``action`` on each selected object.

    Takes the keyword arguments of ``django.contrib.admin.action`` (``description``,
    ``permissions``) as well.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        func.clearance_action = action  # type: ignore[attr-defined]
        return admin.action(**admin_action_kwargs)(func) if admin_action_kwargs else func

    return decorate


class ClearanceAdminMixin:
    """Mix into a ``ModelAdmin`` (before it) to take its permissions from clearance actions.

    ``clearance_actions`` maps ``"view"``, ``"change"``, ``"delete"`` and ``"add"`` to action
    names. ``clearance_admin_actions`` maps admin action names to clearance actions, as an
    alternative to :func:`guarded_action` (``delete_selected`` uses the ``"delete"`` action).
    """

    clearance_actions: dict[str, str] = {}
    clearance_admin_actions: dict[str, str] = {}
    model: type[models.Model]

    def get_clearance_context(self, request: HttpRequest) -> dict[str, Any]:
        """Values the rules read as ``CTX.<name>`` (and ``ctx.extra``); none by default."""
        return {}

    def _extra(self, request: HttpRequest) -> dict[str, Any]:
        return dict(self.get_clearance_context(request) or {})

    # -- which action --------------------------------------------------------------------

    def clearance_action(self, kind: str) -> Action | None:
        """The action mapped to ``kind`` (``view``, ``change``, ``delete``, ``add``), or None."""
        name = self.clearance_actions.get(kind)
        if name is not None:
            return registry.get(name)
        if kind == "view":
            return view_action_for(self.model)
        return None

    def _view_action(self) -> Action:
        act = self.clearance_action("view")
        if act is None:
            raise ImproperlyConfigured(
                f"{type(self).__name__}: {self.model._meta.label} has no view action; set "
                "clearance_actions['view']"
            )
        return act

    def _decide(
        self, request: HttpRequest, kind: str, obj: Any, default: Callable[[], bool]
    ) -> bool:
        act = self.clearance_action(kind)
        if act is None:
            return default()
        if obj is None:
            return engine.can_attempt(request.user, act)
        probe = not self._attempts(request, kind, act, obj)
        return engine.authorize(
            request.user, act, obj, request=request, probe=probe, **self._extra(request)
        ).allowed

    def _attempts(self, request: HttpRequest, kind: str, act: Action, obj: Any) -> bool:
        """Whether this check of ``kind`` on ``obj`` is an attempt (see the module docs)."""
        if request.method in _SAFE_METHODS:
            return False
        # Outside the views below (a custom admin view), every check of a request that may
        # act counts as an attempt.
        acts_on = request.__dict__.get(_ACTS_ON, _ANY)
        if acts_on is not _ANY and acts_on != kind:
            return False
        return _first_attempt(request, act, obj)

    @staticmethod
    def _acting_on(request: HttpRequest, kind: str) -> None:
        request.__dict__[_ACTS_ON] = kind

    # -- the queryset and the permissions -------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> models.QuerySet[Any]:
        """Django's queryset, narrowed to the objects the user may view (one SQL query)."""
        queryset: models.QuerySet[Any] = super().get_queryset(request)  # type: ignore[misc]
        return engine.authorized(
            request.user, self._view_action(), queryset, request=request, **self._extra(request)
        )

    def has_module_permission(self, request: HttpRequest) -> bool:
        """Django's answer (a permission of the app, held globally), or else the permission
        gate of a mapped action: a permission held only within a scope (through a membership,
        see :class:`~clearance.Scope`) opens the model's entry on the admin's index too."""
        parent = super().has_module_permission  # type: ignore[misc]
        if parent(request):
            return True
        return any(
            self._decide(request, kind, None, lambda: False)
            for kind in ("view", "change", "add", "delete")
        )

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """The view action (or, failing it, the change action) on ``obj``."""
        parent = super().has_view_permission  # type: ignore[misc]
        if self._decide(request, "view", obj, lambda: bool(parent(request, obj))):
            return True
        change = self.clearance_action("change")
        return change is not None and self._decide(request, "change", obj, lambda: False)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """The change action on ``obj`` (the permission gate alone without one)."""
        parent = super().has_change_permission  # type: ignore[misc]
        return self._decide(request, "change", obj, lambda: bool(parent(request, obj)))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """The delete action on ``obj`` (the permission gate alone without one)."""
        parent = super().has_delete_permission  # type: ignore[misc]
        return self._decide(request, "delete", obj, lambda: bool(parent(request, obj)))

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        """The permission gate of the add action (decided on the new object when saved)."""
        parent = super().has_add_permission  # type: ignore[misc]
        return self._decide(request, "add", None, lambda: bool(parent(request, *args)))

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Decide the add or change action on the object as it will be saved, then save."""
        act = self.clearance_action("change" if change else "add")
        if act is not None:
            decision = engine.authorize(
                request.user, act, obj, request=request, **self._extra(request)
            )
            if not decision:
                raise exception_for(decision)
        super().save_model(request, obj, form, change)  # type: ignore[misc]

    # -- admin actions --------------------------------------------------------------------

    def _admin_action_for(self, name: str, func: Any) -> str | None:
        explicit = getattr(func, "clearance_action", None) or self.clearance_admin_actions.get(name)
        if explicit:
            return str(explicit)
        if name == "delete_selected":
            act = self.clearance_action("delete")
            return act.name if act is not None else None
        return None

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        """Django's admin actions, guarded: offered only to users who may attempt them."""
        # Django 6.1 passes where the actions are shown and describes each one with an
        # ``Action`` dataclass; Django 5.2 takes only the request and uses tuples.
        parent: Any = super()
        if action_location is None:
            actions: dict[str, Any] = parent.get_actions(request)
        else:
            actions = parent.get_actions(request, action_location=action_location)
        guarded: dict[str, Any] = {}
        for name, entry in actions.items():
            func = entry[0] if isinstance(entry, tuple) else entry.func
            act = self._admin_action_for(name, func)
            if act is not None and not engine.can_attempt(request.user, act):
                continue
            wrapped = self._guard(func, act)
            if isinstance(entry, tuple):
                guarded[name] = (wrapped, *entry[1:])
            else:
                guarded[name] = dataclasses.replace(entry, func=wrapped)
        return guarded

    def _guard(self, func: Callable[..., Any], act: str | None) -> Callable[..., Any]:
        @functools.wraps(func)
        def guarded(modeladmin: Any, request: HttpRequest, queryset: models.QuerySet[Any]) -> Any:
            if act is not None:
                objects = list(queryset)
                decisions = engine.authorize_many(
                    request.user, act, objects, request=request, **self._extra(request)
                )
                # Attempts, each recorded once: a later check of the same object in this
                # request (the delete confirmation lists them again) is a probe.
                registered = registry.get(act)
                for obj in objects:
                    _first_attempt(request, registered, obj)
                refused = [(o, d) for o, d in zip(objects, decisions, strict=True) if not d]
                if refused:
                    self._report_refusals(request, refused)
                    return None
            try:
                with transaction.atomic(using=router.db_for_write(self.model)):
                    return func(modeladmin, request, queryset)
            except Denied as exc:
                self._report_denial(request, exc)
                return None

        return guarded

    def _report_refusals(self, request: HttpRequest, refused: list[tuple[Any, Any]]) -> None:
        self.message_user(  # type: ignore[attr-defined]
            request,
            f"Nothing was done: {len(refused)} of the selected objects may not be acted on.",
            messages.ERROR,
        )
        for obj, decision in refused[:_LISTED]:
            self.message_user(request, f"{obj}: {decision.reason}", messages.ERROR)  # type: ignore[attr-defined]
        if len(refused) > _LISTED:
            self.message_user(  # type: ignore[attr-defined]
                request, f"… and {len(refused) - _LISTED} more.", messages.ERROR
            )

    def _report_denial(self, request: HttpRequest, exc: Denied) -> None:
        self.message_user(  # type: ignore[attr-defined]
            request, f"Nothing was changed: {exc.decision.reason}", messages.ERROR
        )

    # -- denials while saving -------------------------------------------------------------

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """Django's add/change page; a denial while saving is an error message, not a 500.

        Shown read-only because the change action is denied on the object, the page says why.
        """
        self._acting_on(request, "add" if object_id is None else "change")
        if object_id is not None and request.method in ("GET", "HEAD"):
            self._explain_read_only(request, object_id)
        try:
            response: HttpResponse = super().changeform_view(  # type: ignore[misc]
                request, object_id, form_url, extra_context
            )
        except Denied as exc:
            self._report_denial(request, exc)
            return HttpResponseRedirect(request.get_full_path())
        return response

    def _explain_read_only(self, request: HttpRequest, object_id: str) -> None:
        """Tell why the change page of ``object_id`` is read-only, if the change action says so.

        A probe (it decides what to show, nobody tried to change anything): not recorded by
        default. Nothing is said for an object the user may not view (Django answers that).
        """
        act = self.clearance_action("change")
        if act is None:
            return
        obj = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        if obj is None:
            return
        decision = engine.authorize(
            request.user, act, obj, request=request, probe=True, **self._extra(request)
        )
        if decision or not self.has_view_permission(request, obj):
            return
        messages.warning(
            request,
            f"Read only ({decision.code}): {decision.reason}",
            fail_silently=True,
        )

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Django's history page (its view check is an attempt only with an unsafe method)."""
        self._acting_on(request, "view")
        response: HttpResponse = super().history_view(  # type: ignore[misc]
            request, object_id, extra_context
        )
        return response

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Django's changelist; a denial while saving list-editable rows is an error message."""
        self._acting_on(request, "change")
        try:
            response: HttpResponse = super().changelist_view(request, extra_context)  # type: ignore[misc]
        except Denied as exc:
            self._report_denial(request, exc)
            return HttpResponseRedirect(request.get_full_path())
        return response

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Django's delete page; a denial while deleting is an error message, not a 500."""
        self._acting_on(request, "delete")
        try:
            response: HttpResponse = super().delete_view(  # type: ignore[misc]
                request, object_id, extra_context
            )
        except Denied as exc:
            self._report_denial(request, exc)
            return HttpResponseRedirect(request.get_full_path())
        return response
