"""Scopes: gate 1 held through a membership of the object's scope (an organisation, a team).

Django's permissions are global. In a multi-tenant project a role is held *within* something
("maintainer of Acme, reader of Globex"): a :class:`Scope` names that something (the scope
model), the model linking a user to one of its objects (the membership) and how a membership
grants Django permissions (its many-to-many to ``auth.Group``, or a role field whose values
name Groups). An action whose permission is held within a scope says how to reach the scope
object from its resource (``Action(..., scope="organization")``); gate 1 then holds when the
actor holds the permission globally, or through a membership of the object's scope object.

Django's ``Group`` and ``Permission`` rows stay the source of truth. An actor's memberships
(with the permissions they grant) are loaded on first need, in at most two queries per scope,
and kept on the actor object as Django keeps ``_perm_cache``;
:func:`clearance.clear_actor_cache` forgets them.

This module holds the declarations and their registry (:data:`scope_registry`), the lazy
resolution of an action's scope paths (:func:`resolve_path`), the per-actor memberships
(:func:`memberships`) and, per action, the :class:`ScopeGate` the engine asks.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models
from django.db.models import Exists, Q

from .origin import declared_at
from .rules import ACTOR_CACHE_ATTR
from .rules.context import attribute_name

if TYPE_CHECKING:
    from .actions import Action

__all__ = [
    "Memberships",
    "Scope",
    "ScopeGate",
    "ScopePath",
    "ScopeRegistry",
    "fingerprint_lines",
    "memberships",
    "resolve_path",
    "scope_gate",
    "scope_registry",
    "validate_scope_paths",
]

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_SEGMENT = re.compile(r"^[A-Za-z_]\w*$")


def _model_argument(what: str, value: Any, scope: str) -> type[models.Model] | str:
    if isinstance(value, str) and value.count(".") == 1:
        return value
    if isinstance(value, type) and issubclass(value, models.Model):
        return value
    raise ImproperlyConfigured(
        f"Scope {scope!r}: {what} must be a model or an 'app_label.Model' string, got {value!r}"
    )


def _resolve_model(value: type[models.Model] | str) -> type[models.Model]:
    if isinstance(value, str):
        return apps.get_model(value)
    return value


class Scope:
    """A scope in which Django permissions are held through memberships.

    ```python
    Scope(
        "organization",
        model=Organization,          # the scope model
        membership=Membership,       # links a user to an organization
        groups="groups",             # the membership's many-to-many to auth.Group
    )
    Scope(
        "team", model=Team, membership=TeamMembership,
        role="role", roles={"maintainer": ["Maintainers"], "reader": ["Readers"]},
    )
    ```

    ``name`` is unique (``[a-z_][a-z0-9_]*``). ``model`` and ``membership`` are models or
    ``"app_label.Model"`` strings. ``user_field`` is the membership's foreign key to the user
    model; ``scope_field`` its foreign key to ``model`` (default: its only one). A membership
    grants exactly the Django permissions of its groups: either its many-to-many ``groups`` to
    ``auth.Group``, or, with ``role=`` and ``roles=``, the Groups named for the value of its
    ``role`` field. Give exactly one of the two forms. ``label`` names the scope for people
    (default: the model's verbose name).

    Declare scopes in an app's ``authz.py``; an action says how its objects reach the scope
    object with ``Action(..., scope="organization")``. Fields are checked when first used and
    by the system checks (``clearance.E020``), so the models may live in another app.
    """

    def __init__(
        self,
        name: str,
        *,
        model: type[models.Model] | str,
        membership: type[models.Model] | str,
        user_field: str = "user",
        scope_field: str | None = None,
        groups: str | None = None,
        role: str | None = None,
        roles: Mapping[Any, Any] | None = None,
        label: str = "",
        register: bool = True,
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ImproperlyConfigured(
                f"Scope name {name!r} must be lowercase letters, digits and underscores "
                "([a-z_][a-z0-9_]*), e.g. 'organization'"
            )
        self._model = _model_argument("model", model, name)
        self._membership = _model_argument("membership", membership, name)
        for what, value in (("user_field", user_field), ("scope_field", scope_field)):
            if value is not None and (not isinstance(value, str) or not _SEGMENT.match(value)):
                raise ImproperlyConfigured(
                    f"Scope {name!r}: {what} must be the name of a field, got {value!r}"
                )
        role_form = role is not None or roles is not None
        if groups is not None and role_form:
            raise ImproperlyConfigured(
                f"Scope {name!r}: give either groups= (the membership's many-to-many to "
                "auth.Group) or role= and roles= (a role field and the Groups of each role), "
                "not both"
            )
        if groups is None and not role_form:
            raise ImproperlyConfigured(
                f"Scope {name!r}: say how a membership grants permissions: groups='groups' "
                "(its many-to-many to auth.Group), or role='role' with roles={'maintainer': "
                "['Maintainers'], ...}"
            )
        if groups is not None and (not isinstance(groups, str) or not _SEGMENT.match(groups)):
            raise ImproperlyConfigured(
                f"Scope {name!r}: groups must be the name of the membership's many-to-many "
                f"to auth.Group, got {groups!r}"
            )
        frozen_roles: dict[Any, tuple[str, ...]] = {}
        if role_form:
            if role is None or roles is None:
                raise ImproperlyConfigured(
                    f"Scope {name!r}: role= and roles= go together: role names the "
                    "membership's role field, roles maps each of its values to Group names"
                )
            if not isinstance(role, str) or not _SEGMENT.match(role):
                raise ImproperlyConfigured(
                    f"Scope {name!r}: role must be the name of the membership's role field, "
                    f"got {role!r}"
                )
            if not isinstance(roles, Mapping) or not roles:
                raise ImproperlyConfigured(
                    f"Scope {name!r}: roles must map each role to a list of Group names, "
                    f"got {roles!r}"
                )
            for value, names in roles.items():
                # Read once: a generator of names would be used up by the check below.
                listed = _iterable(names)
                if isinstance(names, str) or not all(isinstance(n, str) and n for n in listed):
                    raise ImproperlyConfigured(
                        f"Scope {name!r}: roles[{value!r}] must be a list of Group names, "
                        f"got {names!r}"
                    )
                frozen_roles[value] = tuple(listed)
        if not isinstance(label, str):
            raise ImproperlyConfigured(f"Scope {name!r}: label must be a string, got {label!r}")
        self.name = name
        self.user_field = user_field
        self._scope_field = scope_field
        self.groups = groups
        self.role = role
        self.roles: dict[Any, tuple[str, ...]] = frozen_roles
        self._label = label
        self.declared_at = declared_at()
        self._fields: tuple[str, str] | None = None
        if register:
            scope_registry.register(self)

    # -- declaration ----------------------------------------------------------------------

    @property
    def model(self) -> type[models.Model]:
        """The scope model (resolved lazily from an ``"app_label.Model"`` string)."""
        self._model = _resolve_model(self._model)
        return self._model

    @property
    def membership(self) -> type[models.Model]:
        """The membership model (resolved lazily from an ``"app_label.Model"`` string)."""
        self._membership = _resolve_model(self._membership)
        return self._membership

    @property
    def label(self) -> str:
        """The scope for people: ``label=``, or the scope model's verbose name."""
        return self._label or str(self.model._meta.verbose_name)

    @property
    def scope_field(self) -> str:
        """The membership's foreign key to the scope model (resolved; see :meth:`check`)."""
        return self.fields()[1]

    def fields(self) -> tuple[str, str]:
        """``(user_field, scope_field)``, checked against the models; raises
        ``ImproperlyConfigured`` naming what is wrong (see :meth:`problems`)."""
        if self._fields is None:
            problems = self.problems()
            if problems:
                raise ImproperlyConfigured(f"Scope {self.name!r}: {problems[0]}")
        assert self._fields is not None
        return self._fields

    def problems(self) -> list[str]:
        """What is wrong with the declaration against the models (empty when nothing)."""
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        try:
            model, membership = self.model, self.membership
        except (LookupError, ValueError) as exc:
            return [f"{exc}"]
        found: list[str] = []
        label = membership._meta.label
        user_model = get_user_model()
        found += _foreign_key_problems(
            membership, self.user_field, user_model, "the user model", "user_field"
        )
        scope_field = self._scope_field
        if scope_field is None:
            candidates = [
                f.name
                for f in membership._meta.get_fields()
                if (f.many_to_one or f.one_to_one) and f.concrete and _same(f.related_model, model)
            ]
            if len(candidates) != 1:
                found.append(
                    f"{label} has {len(candidates)} foreign keys to {model._meta.label} "
                    f"({', '.join(candidates) or 'none'}); name one with scope_field="
                )
            else:
                scope_field = candidates[0]
        else:
            found += _foreign_key_problems(
                membership, scope_field, model, "the scope model", "scope_field"
            )
        if self.groups is not None:
            field = _field(membership, self.groups)
            if field is None:
                found.append(f"{label} has no field {self.groups!r} (groups)")
            elif not field.many_to_many or not _same(field.related_model, Group):
                found.append(f"{label}.{self.groups} is not a many-to-many to auth.Group (groups)")
        else:
            assert self.role is not None
            field = _field(membership, self.role)
            if field is None:
                found.append(f"{label} has no field {self.role!r} (role)")
            elif field.is_relation or not field.concrete:
                found.append(f"{label}.{self.role} is not a plain field holding the role (role)")
            else:
                found += [
                    f"{label}.{self.role}: {problem} (roles)"
                    for problem in map(functools.partial(_role_key_problem, field), self.roles)
                    if problem is not None
                ]
        if not found and scope_field is not None:
            self._fields = (self.user_field, scope_field)
        return found

    # -- what a membership grants ---------------------------------------------------------

    def member_key(self, actor: Any) -> Any:
        """The primary key ``actor``'s memberships are filed under, or None when it has none.

        Only an instance of the membership's user model (a subclass or proxy of it, or a lazy
        object wrapping one, such as ``request.user``) holds memberships. Any other actor (a
        system actor, an object of another model, a custom actor object) holds none, whatever
        its primary key: the user whose key happens to be equal is someone else.
        """
        from django.contrib.auth import get_user_model

        pk = getattr(actor, "pk", None)
        if pk is None:
            return None
        self.fields()  # the membership's user field points to the user model (checked)
        if not isinstance(actor, get_user_model()):
            return None
        return pk

    def load(self, actor: Any) -> Memberships:
        """The actor's memberships of this scope, with what they grant (one or two queries;
        no query for an actor that is not a user with a primary key, see
        :meth:`member_key`)."""
        from django.contrib.auth.models import Group

        pk = self.member_key(actor)
        if pk is None:
            return Memberships({}, {})
        user_field, scope_field = self.fields()
        manager = self.membership._default_manager
        mine = manager.filter(**{f"{user_field}__pk": pk}).order_by()
        # (membership pk, scope pk, group name, role, "app_label.codename")
        entries: list[tuple[Any, Any, str, Any, str]] = []
        if self.groups is not None:
            g = self.groups
            rows = mine.values_list(
                "pk",
                f"{scope_field}__pk",
                f"{g}__name",
                f"{g}__permissions__content_type__app_label",
                f"{g}__permissions__codename",
            )
            entries = [
                (mpk, spk, group, None, f"{app}.{codename}")
                for mpk, spk, group, app, codename in rows
                if spk is not None and codename is not None
            ]
            return Memberships.build(self, entries, {})
        assert self.role is not None
        held = list(mine.values_list("pk", f"{scope_field}__pk", self.role))
        if not held:
            return Memberships({}, {})
        names = sorted({name for group_names in self.roles.values() for name in group_names})
        perms: dict[str, set[str]] = {}
        for group, app, codename in Group.objects.filter(name__in=names).values_list(
            "name", "permissions__content_type__app_label", "permissions__codename"
        ):
            if codename is not None:
                perms.setdefault(group, set()).add(f"{app}.{codename}")
        by_role: dict[str, list[Any]] = {}
        for value, group_names in self.roles.items():
            for group in group_names:
                for perm in perms.get(group, ()):
                    if value not in by_role.setdefault(perm, []):
                        by_role[perm].append(value)
        for mpk, spk, value in held:
            if spk is None:
                continue
            try:
                group_names = self.roles.get(value, ())
            except TypeError:  # an unhashable value names no role
                continue
            for group in group_names:
                entries.extend((mpk, spk, group, value, perm) for perm in perms.get(group, ()))
        return Memberships.build(self, entries, by_role)

    def granting(self, actor: Any, perm: str) -> models.QuerySet[Any]:
        """The primary keys of the scope objects where ``actor`` holds ``perm`` through a
        membership, as a subquery (``values()`` of one column) for ``authorized()``.

        Read from the tables when the query runs, not from the memberships cached on the actor
        (as ``authorized()`` reads every other rule): the groups' permissions joined, or, for
        the role form, each role with an ``EXISTS`` on the permissions of its Groups."""
        from django.contrib.auth.models import Group

        user_field, scope_field = self.fields()
        pk = self.member_key(actor)
        if pk is None:  # not a user: no membership at all (never the rows of a NULL user)
            none: models.QuerySet[Any] = self.membership._default_manager.none()
            return none.values(f"{scope_field}__pk")
        mine = self.membership._default_manager.filter(**{f"{user_field}__pk": pk})
        app_label, codename = perm.split(".", 1)
        if self.groups is not None:
            mine = mine.filter(
                **{
                    f"{self.groups}__permissions__content_type__app_label": app_label,
                    f"{self.groups}__permissions__codename": codename,
                }
            )
        else:
            assert self.role is not None
            granted = Q(pk__in=[])  # no role, no grant
            for value, names in self.roles.items():
                groups = Group.objects.filter(
                    name__in=list(names),
                    permissions__content_type__app_label=app_label,
                    permissions__codename=codename,
                )
                granted |= Q(**{self.role: value}) & Q(Exists(groups))
            mine = mine.filter(granted)
        keys: models.QuerySet[Any] = mine.order_by().values(f"{scope_field}__pk")
        return keys

    def describe(self) -> str:
        """The declaration in one line (an action's fingerprint includes it)."""
        roles = sorted((repr(value), list(names)) for value, names in self.roles.items())
        return (
            f"{self.name} model={_label_of(self._model)} membership={_label_of(self._membership)}"
            f" user={self.user_field} scope_field={self._scope_field or '-'}"
            f" groups={self.groups or '-'} role={self.role or '-'} roles={roles!r}"
        )

    def __repr__(self) -> str:
        return f"<Scope {self.name}>"

    def __str__(self) -> str:
        return self.name


def _role_key_problem(field: Any, key: Any) -> str | None:
    """What is wrong with ``key`` as a value of the role field ``field``, or None.

    Gate 1 looks a membership's role up among the keys in Python, and ``authorized()`` asks
    SQL for the memberships whose role is among them, after Django converted each key to the
    field's type. A key that is not already a value of that type (``1`` for a ``CharField``,
    which SQL matches as ``"1"`` and Python never does) or None (which SQL never matches) would
    make the two disagree, so it is refused.
    """
    if key is None:
        return "the role key None matches no membership in SQL; name the role"
    try:
        converted = field.to_python(key)
        same = bool(converted == key)
    except Exception:
        return f"the role key {key!r} is not a value of the field"
    if not same:
        return (
            f"the role key {key!r} is not a value of the field as it holds it "
            f"(the field holds {converted!r}); give the key as the field holds it"
        )
    return None


def _iterable(value: Any) -> list[Any]:
    try:
        return list(value)
    except TypeError:
        return [None]


def _foreign_key_problems(
    membership: type[models.Model],
    name: str,
    target: type[models.Model],
    what: str,
    argument: str,
) -> list[str]:
    """What is wrong with ``membership.<name>`` as a foreign key to ``target`` (``what``, as
    the message calls it), each problem naming the ``argument`` of Scope that gave ``name``."""
    label = membership._meta.label
    field = _field(membership, name)
    if field is None:
        return [f"{label} has no field {name!r} ({argument})"]
    if not (field.many_to_one or field.one_to_one) or not field.concrete:
        return [f"{label}.{name} is not a foreign key ({argument})"]
    if not _same(field.related_model, target):
        return [
            f"{label}.{name} points to {_label_of(field.related_model)}, "
            f"not to {what} {target._meta.label} ({argument})"
        ]
    return []


def _field(model: type[models.Model], name: str) -> Any:
    try:
        return model._meta.get_field(name)
    except FieldDoesNotExist:
        return None


def _same(a: Any, b: Any) -> bool:
    if not (isinstance(a, type) and issubclass(a, models.Model)):
        return False
    return bool(a is b or a._meta.concrete_model is b._meta.concrete_model)


def _label_of(model: Any) -> str:
    return str(getattr(getattr(model, "_meta", None), "label", model))


class Memberships:
    """What an actor's memberships of one scope grant.

    ``grants`` maps a permission to ``{scope pk: reason}``, ordered by membership (the reason
    names the first membership and group granting it); ``roles`` maps a permission to the role
    values whose Groups grant it (the role form).
    """

    __slots__ = ("grants", "roles")

    def __init__(self, grants: dict[str, dict[Any, str]], roles: dict[str, list[Any]]) -> None:
        self.grants = grants
        self.roles = roles

    @classmethod
    def build(
        cls,
        scope: Scope,
        entries: list[tuple[Any, Any, str, Any, str]],
        roles: dict[str, list[Any]],
    ) -> Memberships:
        """From ``(membership pk, scope pk, group, role, perm)`` rows, in any order."""
        entries.sort(key=lambda e: (_order(e[0]), e[2]))
        grants: dict[str, dict[Any, str]] = {}
        label = scope.label
        for mpk, spk, group, role, perm in entries:
            held = grants.setdefault(perm, {})
            if spk in held:
                continue
            how = f"group {group}" if role is None else f"role {role}, group {group}"
            held[spk] = (
                f"Holds the permission {perm} through membership {mpk} of {label} {spk} ({how})."
            )
        return cls(grants, roles)

    def __repr__(self) -> str:
        return f"<Memberships {sorted(self.grants)}>"


def _order(value: Any) -> tuple[int, Any]:
    # Integer keys sort as numbers, the rest (UUIDs, strings) by their text.
    return (0, value) if isinstance(value, int) else (1, str(value))


def memberships(actor: Any, scope: Scope) -> Memberships:
    """The actor's memberships of ``scope``, loaded on first need and kept on the actor object
    (as Django keeps ``_perm_cache``); :func:`clearance.clear_actor_cache` forgets them."""
    # getattr, not __dict__: request.user is a SimpleLazyObject that forwards attributes.
    cache = getattr(actor, ACTOR_CACHE_ATTR, None)
    if cache is not None:
        found: Memberships | None = cache.get(scope)
        if found is not None:
            return found
    found = scope.load(actor)
    if cache is None:
        cache = {}
        # An actor that takes no attributes gets its memberships for this call only.
        with contextlib.suppress(AttributeError):
            setattr(actor, ACTOR_CACHE_ATTR, cache)
    cache[scope] = found
    return found


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------


class ScopeRegistry:
    """Every declared :class:`Scope`, by name; ``version`` moves with each change.

    The action registry saves and restores it with its own state
    (:meth:`clearance.actions.Registry.snapshot`), and is told of each change through
    ``listeners``.
    """

    def __init__(self) -> None:
        self._scopes: dict[str, Scope] = {}
        self.version = 0
        #: Called after every change (the action registry recompiles what depends on scopes).
        self.listeners: list[Callable[[], None]] = []

    def register(self, scope: Scope) -> None:
        """Add a scope; another scope of the same name or model is a configuration error."""
        existing = self._scopes.get(scope.name)
        if existing is not None and existing is not scope:
            raise ImproperlyConfigured(
                f"Scope {scope.name!r} is declared twice: at {existing.declared_at} and at "
                f"{scope.declared_at}"
            )
        for other in self._scopes.values():
            if other is scope:
                continue
            a, b = other._model, scope._model
            if not isinstance(a, str) and not isinstance(b, str) and _same(a, b):
                raise ImproperlyConfigured(
                    f"Scopes {other.name!r} and {scope.name!r} are both declared on "
                    f"{b._meta.label}: a path to a {b._meta.label} must reach one scope"
                )
        self._scopes[scope.name] = scope
        self.changed()

    def unregister(self, name: str) -> Scope:
        """Remove a scope (for tests); returns it."""
        scope = self._scopes.pop(name)
        self.changed()
        return scope

    def get(self, name: str) -> Scope:
        """The scope called ``name`` (``LookupError`` when none is)."""
        try:
            return self._scopes[name]
        except KeyError:
            declared = ", ".join(sorted(self._scopes)) or "none"
            raise LookupError(f"No scope is called {name!r} (declared: {declared})") from None

    def for_model(self, model: type[models.Model]) -> Scope | None:
        """The scope declared on ``model`` (or on its concrete model), or None."""
        found = [scope for scope in self._scopes.values() if _same(scope.model, model)]
        if len(found) > 1:
            raise ImproperlyConfigured(
                f"Scopes {', '.join(repr(s.name) for s in found)} are all declared on "
                f"{model._meta.label}: a path to a {model._meta.label} must reach one scope"
            )
        return found[0] if found else None

    def __contains__(self, name: object) -> bool:
        return name in self._scopes

    def __iter__(self) -> Iterator[Scope]:
        return iter(sorted(self._scopes.values(), key=lambda s: s.name))

    def __len__(self) -> int:
        return len(self._scopes)

    @property
    def scopes(self) -> list[Scope]:
        """Every declared scope, sorted by name."""
        return list(self)

    def changed(self) -> None:
        """Note a change (what was resolved against the scopes is resolved again)."""
        self.version += 1
        for listener in self.listeners:
            listener()

    def snapshot(self) -> dict[str, Scope]:
        """The registry's state (put it back with :meth:`restore`)."""
        return dict(self._scopes)

    def restore(self, state: dict[str, Scope]) -> None:
        """Put back a state captured with :meth:`snapshot`."""
        self._scopes = dict(state)
        self.changed()


#: The process-wide registry of scopes that ``authz.py`` modules fill.
scope_registry = ScopeRegistry()


# --------------------------------------------------------------------------------------------
# Paths from an action's objects to their scope objects
# --------------------------------------------------------------------------------------------


def validate_scope_paths(action: str, scope: Any) -> tuple[str, ...]:
    """``Action(scope=...)`` as a tuple of paths, checked for form only (the fields are
    checked lazily, see :func:`resolve_path`)."""
    paths = (scope,) if isinstance(scope, str) else scope
    try:
        paths = tuple(paths)
    except TypeError:
        paths = (scope,)
    if not paths:
        raise ImproperlyConfigured(
            f"Action {action!r}: scope= needs a path (or several), e.g. scope='organization'"
        )
    for path in paths:
        if not isinstance(path, str) or not all(_SEGMENT.match(s) for s in path.split("__")):
            raise ImproperlyConfigured(
                f"Action {action!r}: a scope path is a chain of foreign keys like "
                f"'repository__organization' (or 'pk'), got {path!r}"
            )
        if path != "pk" and "pk" in path.split("__"):
            raise ImproperlyConfigured(
                f"Action {action!r}: scope path {path!r}: 'pk' is a path of its own (the object "
                "is itself the scope object); end a path at the foreign key to the scope model"
            )
    if len(set(paths)) != len(paths):
        raise ImproperlyConfigured(f"Action {action!r}: scope paths repeat: {paths!r}")
    return paths


class ScopePath:
    """One path from an object to its scope object, resolved against the models.

    ``value(obj)`` is the scope object's primary key (None when a foreign key on the way is
    NULL), read without a query for the last hop; ``lookup`` the ORM path to the same key.
    """

    __slots__ = ("checks", "hops", "last", "lookup", "path", "pk_field", "scope")

    def __init__(
        self,
        path: str,
        scope: Scope,
        hops: tuple[tuple[str, Any], ...],
        last: str,
        lookup: str,
        pk_field: Any,
    ) -> None:
        self.path = path
        self.scope = scope
        self.hops = hops  # (attname checked for NULL, the field followed), per hop but the last
        self.last = last  # the attribute holding the scope object's pk on the last object
        self.lookup = lookup
        self.pk_field = pk_field

    def value(self, obj: Any) -> Any:
        """The primary key of ``obj``'s scope object along this path, or None."""
        for attname, field in self.hops:
            if getattr(obj, attname) is None:
                # NULL, unless an unsaved related object is set (a create of both).
                if not field.is_cached(obj):
                    return None
                obj = field.get_cached_value(obj)
                if obj is None:
                    return None
                continue
            obj = getattr(obj, field.name)
        return getattr(obj, self.last)

    def __repr__(self) -> str:
        return f"<ScopePath {self.path} -> {self.scope.name}>"


def resolve_path(model: type[models.Model], path: str) -> ScopePath:
    """The :class:`ScopePath` ``path`` names from ``model``; ``ImproperlyConfigured`` saying
    what is wrong (an unknown field, a to-many or reverse hop, an end model that is not a
    declared scope)."""
    if path == "pk":
        scope = scope_registry.for_model(model)
        if scope is None:
            raise ImproperlyConfigured(
                f"scope path 'pk': {model._meta.label} is not the model of a declared Scope "
                f"(declared: {_declared_scopes()})"
            )
        return ScopePath(path, scope, (), "pk", "pk", model._meta.pk)
    current = model
    fields = []
    for segment in path.split("__"):
        try:
            field = current._meta.get_field(segment)
        except FieldDoesNotExist:
            raise ImproperlyConfigured(
                f"scope path {path!r}: {current._meta.label} has no field {segment!r}"
            ) from None
        if not field.is_relation:
            raise ImproperlyConfigured(
                f"scope path {path!r}: {current._meta.label}.{segment} is not a foreign key"
            )
        if field.many_to_many or field.one_to_many:
            raise ImproperlyConfigured(
                f"scope path {path!r}: {current._meta.label}.{segment} is a to-many relation; "
                "a scope path follows foreign keys and one-to-one fields only (a to-many hop "
                "would give an object several scope objects and duplicate rows)"
            )
        related = field.related_model
        if not field.concrete or not isinstance(related, type):
            raise ImproperlyConfigured(
                f"scope path {path!r}: {current._meta.label}.{segment} is not a forward "
                "foreign key or one-to-one field"
            )
        fields.append(field)
        current = related
    scope = scope_registry.for_model(current)
    if scope is None:
        raise ImproperlyConfigured(
            f"scope path {path!r} ends at {current._meta.label}, which is not the model of a "
            f"declared Scope (declared: {_declared_scopes()})"
        )
    last: Any = fields[-1]
    pk = current._meta.pk
    if last.target_field is pk or _same_field(last.target_field, pk):
        hops = tuple((f.attname, f) for f in fields[:-1])
        end = last.attname
    else:  # a foreign key to another unique field: follow it and read the pk
        hops = tuple((f.attname, f) for f in fields)
        end = "pk"
    return ScopePath(path, scope, hops, end, f"{path}__pk", pk)


def _same_field(a: Any, b: Any) -> bool:
    return bool(a.model._meta.concrete_model is b.model._meta.concrete_model and a.name == b.name)


def _declared_scopes() -> str:
    return ", ".join(f"{s.name} on {_label_of(s._model)}" for s in scope_registry) or ("none")


# --------------------------------------------------------------------------------------------
# Gate 1 within scopes, per action
# --------------------------------------------------------------------------------------------


class ScopeGate:
    """Gate 1 within the scopes of one action, after ``has_perm`` said no.

    ``check(actor, obj)`` is the reason gate 1 holds through a membership (of ``obj``'s scope
    object, or of some scope object when ``obj`` is None), or None; it raises when a path
    cannot be followed or the memberships cannot be loaded (the engine denies, failing
    closed). ``lacks`` and ``lacks_any`` are the denial reasons with and without an object;
    ``condition(actor)`` the ``Q`` that keeps a queryset's rows within those scope objects.
    ``fast`` is ``check`` for the compiled plans: for a warm actor, a few attribute reads and
    dictionary lookups; anything else goes through ``check``.
    """

    __slots__ = (
        "act",
        "fast",
        "lacks",
        "lacks_any",
        "paths",
        "perm",
        "problem",
        "scopes",
        "version",
    )

    def __init__(self, act: Action) -> None:
        self.act = act
        self.version = scope_registry.version
        self.perm = act.permission_label
        self.problem: str | None = None
        paths: list[ScopePath] = []
        model = act.model
        try:
            if model is None:
                raise ImproperlyConfigured("an action with scope= needs a model")
            paths = [resolve_path(model, path) for path in act.scope]
            for path in paths:
                path.scope.fields()
        except (ImproperlyConfigured, LookupError, ValueError) as exc:
            self.problem = f"{act.name}: {exc}"
            paths = []
        self.paths = tuple(paths)
        scopes: list[Scope] = []
        for path in self.paths:
            if path.scope not in scopes:
                scopes.append(path.scope)
        self.scopes = tuple(scopes)
        labels = " or ".join(s.label for s in scopes) or "scope"
        self.lacks = (
            f"This needs the permission {self.perm}, globally or through a membership of the "
            f"object's {labels}, which you do not hold."
        )
        self.lacks_any = (
            f"This needs the permission {self.perm}, globally or through a membership of some "
            f"{labels}, which you do not hold."
        )
        self.fast: Callable[[Any, Any], str | None] = _fast_check(self)

    def check(self, actor: Any, obj: Any) -> str | None:
        """Why gate 1 holds through a membership, or None (see the class docstring)."""
        if self.problem is not None:
            raise ImproperlyConfigured(self.problem)
        if obj is None:
            return self.some(actor)
        perm = self.perm
        for path in self.paths:
            pk = path.value(obj)
            if pk is None:
                continue
            held = memberships(actor, path.scope).grants.get(perm)
            if held:
                reason = held.get(pk)
                if reason is None:  # a value not converted yet (a string from a form)
                    reason = held.get(path.pk_field.to_python(pk))
                if reason is not None:
                    return reason
        return None

    def some(self, actor: Any) -> str | None:
        """Why gate 1 holds through a membership of some scope object, or None."""
        if self.problem is not None:
            raise ImproperlyConfigured(self.problem)
        for scope in self.scopes:
            held = memberships(actor, scope).grants.get(self.perm)
            if held:
                return next(iter(held.values()))
        return None

    def condition(self, actor: Any) -> Q | None:
        """The rows within a scope object where ``actor`` holds the permission through a
        membership: a ``Q`` of subqueries OR-ed over the paths, read from the tables when the
        query runs (see :meth:`Scope.granting`); None for an actor that holds no membership
        at all (not a user)."""
        if self.problem is not None:
            raise ImproperlyConfigured(self.problem)
        condition: Q | None = None
        for path in self.paths:
            if path.scope.member_key(actor) is None:
                continue
            q = Q(**{f"{path.lookup}__in": path.scope.granting(actor, self.perm)})
            condition = q if condition is None else condition | q
        return condition

    def related_paths(self) -> list[str]:
        """The relations a batch of objects follows to reach their scope objects (to fetch
        them once for the batch)."""
        found = []
        for path in self.paths:
            names = [field.name for _attname, field in path.hops]
            if names:
                found.append("__".join(names))
        return found


def _fast_check(gate: ScopeGate) -> Callable[[Any, Any], str | None]:
    """``gate.check``, with a warm answer found by attribute reads and dictionary lookups.

    Generated once per gate, one block per path. It gives exactly ``check``'s answer: whatever
    it cannot settle that way (a cold actor, a NULL key with an unsaved object behind it, a key
    not found as it is) goes to ``check``.
    """
    if gate.problem is not None:
        return gate.check
    names: dict[str, Any] = {"general": gate.check, "PERM": gate.perm}

    def read(target: str, attribute: str) -> str:
        if attribute_name(attribute):
            return f"{target}.{attribute}"
        return f"getattr({target}, {attribute!r})"

    lines = [
        "def check(actor, obj):",
        "    if obj is None:",
        "        return general(actor, obj)",
        f"    cache = getattr(actor, {ACTOR_CACHE_ATTR!r}, None)",
        "    if cache is None:",
        "        return general(actor, obj)",
    ]
    for i, path in enumerate(gate.paths):
        names[f"S{i}"] = path.scope
        lines += [
            f"    held = cache.get(S{i})",
            "    if held is None:",
            "        return general(actor, obj)",
            "    t = obj",
        ]
        for attname, field in path.hops:
            # The related object Django cached (its descriptor reads the same), else fetched.
            lines += [
                f"    if {read('t', attname)} is None:",
                "        return general(actor, obj)",
                f"    f = t._state.fields_cache.get({field.name!r})",
                f"    t = {read('t', field.name)} if f is None else f",
            ]
        lines += [
            f"    pk = {read('t', path.last)}",
            "    grants = None if pk is None else held.grants.get(PERM)",
            "    if grants is not None:",
            "        reason = grants.get(pk)",
            "        return general(actor, obj) if reason is None else reason",
        ]
    lines.append("    return None")
    exec("\n".join(lines), names)
    check: Callable[[Any, Any], str | None] = names["check"]
    return check


def fingerprint_lines(act: Action) -> list[str]:
    """What a scoped action's fingerprint includes: its paths and the declarations of the
    scopes they reach (a change of either changes who may do what)."""
    lines = [f"scope {' '.join(act.scope)}"]
    lines += [f"scope_declaration {scope.describe()}" for scope in scope_gate(act).scopes]
    return lines


def scope_gate(act: Action) -> ScopeGate:
    """The current :class:`ScopeGate` of ``act`` (rebuilt when a scope is declared)."""
    gate: ScopeGate | None = act.__dict__.get("_scope_gate")
    if gate is None or gate.version != scope_registry.version:
        gate = ScopeGate(act)
        act.__dict__["_scope_gate"] = gate
    return gate
