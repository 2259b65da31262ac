"""Decisions, the layer that made them, their traces, and the exceptions that carry them."""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import logging
import threading
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied

__all__ = [
    "UNAVAILABLE_REASON",
    "ActorRef",
    "Decision",
    "Denied",
    "InvariantViolation",
    "Layer",
    "NotFilterable",
    "PermissionMissing",
    "PolicyDenied",
    "ResourceRef",
    "TraceEntry",
    "UnknownAction",
    "actor_ref",
    "database_unavailable",
    "is_unavailable",
    "pin_actor",
    "resource_ref",
]


class Layer(str, enum.Enum):
    """The gate a rule belongs to, in the order the gates run."""

    PERMISSION = "permission"
    POLICY = "policy"
    INVARIANT = "invariant"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class ActorRef:
    """Who asked: a readable label and the primary key (None for anonymous actors)."""

    label: str
    pk: Any = None
    kind: str = "user"

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """What was acted on: the model label (``app_label.Model``) and the primary key."""

    model: str
    pk: Any = None

    def __str__(self) -> str:
        return f"{self.model}:{self.pk}" if self.pk is not None else f"{self.model}:(unsaved)"


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One rule as it was evaluated: its gate, name, outcome and how long it took.

    ``outcome`` is True when the rule held, False when it denied. ``error`` is set when the rule
    raised (the outcome is then False: rules fail closed).
    """

    layer: Layer
    rule: str
    outcome: bool
    reason: str
    expression: str
    duration: float
    error: str | None = None

    @property
    def code(self) -> str:
        """The machine-readable code a denial by this rule carries."""
        return f"{self.layer.value}.{self.rule}"

    def as_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready data (as audit records and log lines keep it)."""
        return {
            "layer": self.layer.value,
            "rule": self.rule,
            "outcome": self.outcome,
            "reason": self.reason,
            "expression": self.expression,
            "duration_ms": round(self.duration * 1000, 4),
            "error": self.error,
        }


_FIELDS = (
    "allowed",
    "action",
    "actor",
    "resource",
    "layer",
    "rule",
    "reason",
    "code",
    "at",
    "fingerprint",
    "error",
    "explained",
    "performed",
    "probe",
)

# A raw trace row: (layer, rule name, outcome, reason, expression, seconds, error).
RawTrace = tuple[Layer, str, bool, str, str, float, "str | None"]


class Decision:
    """The answer to "may this actor do this action on this object?", with everything behind it.

    A Decision is immutable and truthy only when the action is allowed. When it is denied,
    ``layer``, ``rule``, ``reason`` and ``code`` name the first gate and rule that said no.
    ``trace`` lists every rule evaluated, with its outcome and time; ``error`` is set when a
    rule raised; ``fingerprint`` identifies the rule set in force.
    """

    allowed: bool
    action: str
    actor: ActorRef
    resource: ResourceRef | None
    layer: Layer | None
    rule: str | None
    reason: str
    code: str
    at: dt.datetime
    fingerprint: str
    error: str | None
    explained: bool
    performed: bool | None
    probe: bool

    _trace: tuple[TraceEntry, ...] | None
    _raw: list[RawTrace] | None
    _src: tuple[Any, ...] | None

    __slots__ = ("__weakref__", "_raw", "_src", "_trace", *_FIELDS)

    def __init__(
        self,
        *,
        allowed: bool,
        action: str,
        actor: ActorRef,
        resource: ResourceRef | None,
        layer: Layer | None,
        rule: str | None,
        reason: str,
        code: str,
        at: dt.datetime,
        fingerprint: str,
        trace: tuple[TraceEntry, ...] | list[RawTrace] = (),
        error: str | None = None,
        explained: bool = False,
        performed: bool | None = None,
        probe: bool = False,
    ) -> None:
        setter = object.__setattr__
        setter(self, "allowed", bool(allowed))
        setter(self, "action", action)
        setter(self, "actor", actor)
        setter(self, "resource", resource)
        setter(self, "layer", layer)
        setter(self, "rule", rule)
        setter(self, "reason", reason)
        setter(self, "code", code)
        setter(self, "at", at)
        setter(self, "fingerprint", fingerprint)
        setter(self, "error", error)
        setter(self, "explained", explained)
        setter(self, "performed", performed)
        setter(self, "probe", bool(probe))
        setter(self, "_src", None)
        if isinstance(trace, tuple) and all(isinstance(t, TraceEntry) for t in trace):
            setter(self, "_trace", trace)
            setter(self, "_raw", None)
        else:
            setter(self, "_trace", None)
            setter(self, "_raw", list(trace))

    @classmethod
    def _make(
        cls,
        allowed: bool,
        action: str,
        actor: ActorRef,
        resource: ResourceRef | None,
        layer: Layer | None,
        rule: str | None,
        reason: str,
        code: str,
        at: dt.datetime,
        fingerprint: str,
        raw_trace: list[RawTrace],
        error: str | None,
        explained: bool,
        probe: bool = False,
    ) -> Decision:
        """The engine's constructor: positional, ``allowed`` a bool, a raw trace list it hands
        over (no copy). The same Decision as ``__init__`` builds, in about a third of the time.
        """
        self = _new(cls)
        _set_allowed(self, allowed)
        _set_action(self, action)
        _set_actor(self, actor)
        _set_resource(self, resource)
        _set_layer(self, layer)
        _set_rule(self, rule)
        _set_reason(self, reason)
        _set_code(self, code)
        _set_at(self, at)
        _set_fingerprint(self, fingerprint)
        _set_error(self, error)
        _set_explained(self, explained)
        _set_performed(self, None)
        _set_probe(self, probe)
        _set_trace(self, None)
        _set_raw(self, raw_trace)
        _set_src(self, None)
        return self

    def __getattr__(self, name: str) -> Any:
        # Only reached for a slot not set yet: the fields of a deferred decision. Filled under
        # a lock: another thread reading the same decision waits, then reads what was filled.
        if name in _DEFERRED:
            with _filling:
                try:
                    source = object.__getattribute__(self, "_src")
                except AttributeError:
                    source = None
                if source is not None:
                    slots = vars(Decision)
                    fields = source[0](*source[1:])
                    with contextlib.suppress(AttributeError):
                        object.__getattribute__(self, "actor")
                        del fields["actor"]  # pinned when it was decided (see pin_actor)
                    for field_name, value in fields.items():
                        slots[field_name].__set__(self, value)
                    _set_trace(self, None)
                    _set_src(self, None)
                with contextlib.suppress(AttributeError):
                    return object.__getattribute__(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Decision is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Decision is immutable; cannot delete {name!r}")

    @property
    def trace(self) -> tuple[TraceEntry, ...]:
        """Each rule evaluated, in order: its gate, name, outcome, reason and time."""
        trace = self._trace
        if trace is None:
            with _filling:  # another thread may be turning the raw rows into the trace
                trace = self._trace
                if trace is None:
                    rows: list[RawTrace] = self._raw or []
                    trace = tuple(TraceEntry(*row) for row in rows)
                    object.__setattr__(self, "_trace", trace)
                    object.__setattr__(self, "_raw", None)
        return trace

    def __bool__(self) -> bool:
        return self.allowed

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Decision):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in _FIELDS) and (
            self.trace == other.trace
        )

    def __hash__(self) -> int:
        return hash((self.allowed, self.action, self.code, self.at, self.resource))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._fields(),))

    def _fields(self) -> dict[str, Any]:
        fields = {f: getattr(self, f) for f in _FIELDS}
        fields["trace"] = self.trace
        return fields

    @property
    def denied(self) -> bool:
        """True when the action is not allowed."""
        return not self.allowed

    @property
    def kind(self) -> str:
        """``"probe"`` (it decides what to show) or ``"attempt"`` (someone tried to act)."""
        return "probe" if self.probe else "attempt"

    def replace(self, **changes: Any) -> Decision:
        """Return a copy with some fields changed (the Decision itself never changes)."""
        fields = self._fields()
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"Decision has no field(s) {sorted(unknown)}")
        fields.update(changes)
        return Decision(**fields)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dictionary of every field (for logs, APIs and audit rows)."""
        return {
            "allowed": self.allowed,
            "action": self.action,
            "actor": {
                "label": self.actor.label,
                "pk": _plain(self.actor.pk),
                "kind": self.actor.kind,
            },
            "resource": (
                {"model": self.resource.model, "pk": _plain(self.resource.pk)}
                if self.resource is not None
                else None
            ),
            "layer": self.layer.value if self.layer is not None else None,
            "rule": self.rule,
            "reason": self.reason,
            "code": self.code,
            "error": self.error,
            "at": self.at.isoformat(),
            "fingerprint": self.fingerprint,
            "explained": self.explained,
            "performed": self.performed,
            "probe": self.probe,
            "trace": [t.as_dict() for t in self.trace],
        }

    def __repr__(self) -> str:
        return f"<Decision {self}>"

    def __str__(self) -> str:
        verdict = "allowed" if self.allowed else f"denied by {self.code}"
        target = f" on {self.resource}" if self.resource is not None else ""
        return f"{self.actor} {self.action}{target}: {verdict}"


# The slots' own setters (Decision.__setattr__ refuses every write), for Decision._make.
_new = object.__new__
(
    _set_allowed,
    _set_action,
    _set_actor,
    _set_resource,
    _set_layer,
    _set_rule,
    _set_reason,
    _set_code,
    _set_at,
    _set_fingerprint,
    _set_error,
    _set_explained,
    _set_performed,
    _set_probe,
    _set_trace,
    _set_raw,
) = (vars(Decision)[name].__set__ for name in (*_FIELDS, "_trace", "_raw"))


_set_src = vars(Decision)["_src"].__set__
_get_src = vars(Decision)["_src"].__get__
#: Held while a decision's deferred fields or its trace are filled in (see Decision.trace).
_filling = threading.RLock()
#: The slots a deferred decision fills on first read (everything but ``allowed``).
_DEFERRED = frozenset(_FIELDS) - {"allowed"} | {"_raw", "_trace"}


#: What a deferred :class:`Decision` is built from: ``(build, *arguments)``, where
#: ``build(*arguments)`` returns every field but ``allowed``, and ``_raw`` for the trace.
Deferred = tuple[Any, ...]


def deferred_decision(allowed: bool, source: Deferred, probe: bool = False) -> Decision:
    """A Decision whose other fields are built from ``source`` when one is first read.

    The engine's fast path uses it: most decisions are only tested for truth, so the
    references, the timestamp and the trace are built only for those that are looked at (a
    denial's message, ``explain``, the audit sinks when they write their records). ``source``
    is a tuple whose first item is a function of the others returning every field but
    ``allowed`` (``_raw`` for the trace); reading any field fills them all, except ``allowed``
    and ``probe`` (set at once: what the audit asks on the call) and an actor
    :func:`pin_actor` fixed.
    """
    self = _new(Decision)
    _set_allowed(self, allowed)
    _set_probe(self, probe)
    _set_src(self, source)
    return self


def pin_actor(decision: Decision, actor: Any) -> None:
    """Fix ``decision.actor`` now, as :func:`actor_ref` describes ``actor`` at this moment.

    For a decision whose fields are built later (:func:`deferred_decision`): the audit keeps
    such a decision in its buffer and builds its record when the buffer is written, by which
    time the actor object may have changed (a renamed user, a deleted one whose ``pk`` is now
    None). Everything else a deferred decision is built from was captured when it was made.
    Does nothing to a decision whose fields are built already. Call it once, as the decision is
    made, before it leaves the thread that made it.
    """
    if _get_src(decision) is not None:  # deferred, not built yet
        _set_actor(decision, actor_ref(actor))


def _rebuild(fields: dict[str, Any]) -> Decision:
    return Decision(**fields)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (int, str, float, bool)):
        return value
    return str(value)


# --------------------------------------------------------------------------------------------
# References for the decision record
# --------------------------------------------------------------------------------------------


#: Where actor_ref() keeps the reference it built for a user object, as Django keeps
#: ``_perm_cache``; it is checked against the user's pk and username on every use.
_ACTOR_REF_ATTR = "_clearance_actor_ref"
logger = logging.getLogger("clearance")
_ANONYMOUS = ActorRef("anonymous", None, "anonymous")


def _unnamed(actor: Any) -> str:
    return f"<unnamed {type(actor).__name__}>"


def actor_ref(actor: Any) -> ActorRef:
    """A small, serializable reference to the actor (label and primary key)."""
    cached: ActorRef | None = getattr(actor, _ACTOR_REF_ATTR, None)
    if (
        cached is not None
        and getattr(actor, "is_authenticated", False)
        and cached.pk == getattr(actor, "pk", None)
    ):
        try:
            if cached.label == str(actor.get_username()):
                return cached
        except Exception:  # asked again below, where a failure is described and logged
            pass
    ref = getattr(actor, "actor_ref", None)
    if isinstance(ref, ActorRef):
        return ref
    if not getattr(actor, "is_authenticated", False):
        return _ANONYMOUS
    get_username = getattr(actor, "get_username", None)
    try:
        label = str(get_username() if callable(get_username) else actor)
    except Exception:
        # A record is never lost because its actor cannot say its name (a broken custom user,
        # a directory that is down): it is kept under a label that says so.
        logger.exception("The actor %s could not say its name", type(actor).__name__)
        return ActorRef(_unnamed(actor), getattr(actor, "pk", None), "user")
    ref = ActorRef(label, getattr(actor, "pk", None), "user")
    if not callable(get_username):
        return ref
    # An actor that takes no attributes gets a new reference each time.
    with contextlib.suppress(AttributeError):
        setattr(actor, _ACTOR_REF_ATTR, ref)
    return ref


_model_labels: dict[type[Any], str] = {}
_new_ref = object.__new__
# ResourceRef is a frozen dataclass with slots: its slots' setters build one without the
# dataclass __init__ (a third of the time; resource_ref runs for every decision).
_set_ref_model = vars(ResourceRef)["model"].__set__
_set_ref_pk = vars(ResourceRef)["pk"].__set__


def resource_ref(obj: Any) -> ResourceRef | None:
    """A small, serializable reference to the object (model label and primary key)."""
    if obj is None:
        return None
    cls = type(obj)
    label = _model_labels.get(cls)
    if label is None:
        label = _model_labels[cls] = obj._meta.label
    ref: ResourceRef = _new_ref(ResourceRef)
    _set_ref_model(ref, label)
    _set_ref_pk(ref, obj.pk)
    return ref


class Denied(PermissionDenied):
    """An action was refused. Carries the :class:`Decision` as ``.decision``.

    A subclass of Django's ``PermissionDenied``, so an unhandled denial in a view answers 403.
    """

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        super().__init__(decision.reason)

    def __str__(self) -> str:
        return self.decision.reason

    @property
    def code(self) -> str:
        """The denying rule's machine-readable code, e.g. ``policy.four_eyes``."""
        return self.decision.code

    @property
    def layer(self) -> Layer | None:
        """The gate that denied."""
        return self.decision.layer

    @property
    def reason(self) -> str:
        """The reason written for people."""
        return self.decision.reason


class PermissionMissing(Denied):
    """Gate 1 denied: the actor lacks the capability (or is anonymous or inactive)."""


class PolicyDenied(Denied):
    """Gate 2 denied: the action is not valid in the current context."""


class InvariantViolation(Denied):
    """Gate 3 denied: the action or write would break a rule of the system."""


_EXCEPTION_FOR_LAYER: dict[Layer, type[Denied]] = {
    Layer.PERMISSION: PermissionMissing,
    Layer.POLICY: PolicyDenied,
    Layer.INVARIANT: InvariantViolation,
}


#: The reason of a denial whose gate raised because the database was unavailable (it could not
#: be reached, dropped the connection or did not answer in time). The integrations answer such a
#: denial with 503 Service Unavailable.
UNAVAILABLE_REASON = (
    "This could not be decided because the database is unavailable; try again in a moment."
)


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is unavailable (Django's ``OperationalError`` or
    ``InterfaceError``: unreachable, connection dropped, timed out)."""
    from django.db import InterfaceError, OperationalError

    return isinstance(exc, (OperationalError, InterfaceError))


def is_unavailable(decision: Decision) -> bool:
    """Whether ``decision`` is a denial made because the database was unavailable."""
    return (
        not decision.allowed
        and decision.error is not None
        and (decision.reason == UNAVAILABLE_REASON)
    )


def describe_error(exc: BaseException) -> str:
    """How a rule's exception is written into ``Decision.error``: ``"Type: message"``."""
    return f"{type(exc).__name__}: {exc}"


def undecided_reason(rule: str, exc: BaseException | str) -> str:
    """The reason of a denial whose deciding rule raised: it says the rule could not be decided.

    ``"could not be decided: rule within_limit raised RelatedObjectDoesNotExist"``: never the
    text of a real denial, which would tell the person something that was never found true.
    ``exc`` is the exception, or its :func:`describe_error` text (``"Type: message"``).
    """
    kind = exc.split(":", 1)[0] if isinstance(exc, str) else type(exc).__name__
    return f"could not be decided: rule {rule} raised {kind}"


def exception_for(decision: Decision) -> Denied:
    """The :class:`Denied` subclass instance matching a denied decision's layer.

    A denial that no gate made (``layer`` None: ``audit.unrecorded`` in fail-closed audit
    mode) raises :class:`Denied` itself.
    """
    assert not decision.allowed, "an allowed decision has no exception"
    if decision.layer is None:
        return Denied(decision)
    return _EXCEPTION_FOR_LAYER[decision.layer](decision)


class UnknownAction(LookupError):
    """An action name that nobody declared. This is a programming error, not a denial."""

    def __init__(self, name: object, known: list[str] | None = None) -> None:
        self.name = name
        hint = ""
        if known:
            import difflib

            close = difflib.get_close_matches(str(name), known, n=3)
            if close:
                hint = f" Did you mean {', '.join(repr(c) for c in close)}?"
        super().__init__(
            f"No action named {name!r} is declared. Declare it with "
            f"clearance.Action({name!r}, ...) in an app's authz.py.{hint}"
        )


class NotFilterable(Exception):
    """A rule cannot become SQL, so ``authorized()`` cannot filter a queryset with it.

    Raised instead of returning a wider result. ``.action`` and ``.rule`` name the culprit.
    """

    def __init__(self, action: str, rule: str, detail: str = "") -> None:
        self.action = action
        self.rule = rule
        message = (
            f"Rule {rule!r} of action {action!r} cannot be expressed as a database filter"
            f"{': ' + detail if detail else ''}. Express it with where(...), declare the "
            "predicate with uses_object=False if it does not read the object, or pass "
            "evaluate_in_python=True to authorized() to check rows one by one (slow)."
        )
        super().__init__(message)
