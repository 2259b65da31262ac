"""A decision drawn as its three gates, rule by rule, for the explain and audit pages.

:func:`gates` turns a :class:`~clearance.Decision` into three :class:`Gate` rows, in the order
the gates run. Each rule is *passed*, *denied* or *error* as its trace says, or *not
evaluated* when the decision stopped before it (``authorize`` stops at the first denial; an
explanation evaluates every rule). The gate that decided a denial is marked ``decisive``. A
policy or invariant that passed says that it holds, not the sentence it would give on denial.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..actions import Action, registry
from ..decisions import Decision, Layer, TraceEntry

__all__ = ["GATE_NAMES", "PASSED_REASON", "Gate", "RuleRow", "gates"]

#: The name of each gate, in the order the gates run.
GATE_NAMES = {
    Layer.PERMISSION: "Permission",
    Layer.POLICY: "Policies",
    Layer.INVARIANT: "Invariants",
}

_QUESTIONS = {
    Layer.PERMISSION: "May this actor attempt this class of action?",
    Layer.POLICY: "Is the action valid here and now?",
    Layer.INVARIANT: "Would it break a rule of the system?",
}


@dataclass(frozen=True)
class RuleRow:
    """One rule of a gate as the page shows it."""

    name: str
    expression: str
    reason: str
    outcome: str  # "passed", "denied", "error" or "skipped"
    error: str | None = None
    duration_ms: float | None = None
    decisive: bool = False

    @property
    def outcome_text(self) -> str:
        """The outcome in words (never colour alone)."""
        return {
            "passed": "passed",
            "denied": "denied",
            "error": "error (denied)",
            "skipped": "not evaluated",
        }[self.outcome]


@dataclass(frozen=True)
class Gate:
    """One gate of a decision: its rules and whether it let the action through."""

    layer: Layer
    number: int
    name: str
    question: str
    rules: tuple[RuleRow, ...]
    decisive: bool

    @property
    def status(self) -> str:
        """``"passed"``, ``"denied"``, ``"not evaluated"`` or ``"no rules"``."""
        if not self.rules:
            return "no rules"
        if any(r.outcome in ("denied", "error") for r in self.rules):
            return "denied"
        if all(r.outcome == "skipped" for r in self.rules):
            return "not evaluated"
        return "passed"

    @property
    def css(self) -> str:
        """The gate's CSS class suffix."""
        return self.status.replace(" ", "-")


#: The Reason column of a policy or invariant that passed: its declared reason is the sentence
#: of a denial, which did not happen. (A passed permission says which permission is held.)
PASSED_REASON = "Holds: this rule does not refuse the action."


def _row(entry: TraceEntry, decisive: bool) -> RuleRow:
    outcome = "error" if entry.error else "passed" if entry.outcome else "denied"
    reason = entry.reason
    if outcome == "passed" and entry.layer is not Layer.PERMISSION:
        reason = PASSED_REASON
    return RuleRow(
        name=entry.rule,
        expression=entry.expression,
        reason=reason,
        outcome=outcome,
        error=entry.error,
        duration_ms=entry.duration * 1000,
        decisive=decisive,
    )


def _declared(action: Action, layer: Layer) -> list[tuple[str, str, str]]:
    if layer is Layer.PERMISSION:
        perm = action.permission_label
        expression = f"has_perm({perm!r})"
        if action.scope:  # as the decision's trace writes it
            expression += f" or membership via {', '.join(action.scope)}"
        return [(perm, expression, "")]
    rules = action.policies if layer is Layer.POLICY else action.invariants
    return [(r.name, r.expression, r.reason) for r in rules]


def _current_action(decision: Decision) -> Action | None:
    """The action as declared now, if its rule set is still the one the decision saw."""
    if decision.action not in registry:
        return None
    action = registry.get(decision.action)
    return action if action.fingerprint() == decision.fingerprint else None


def gates(decision: Decision) -> list[Gate]:
    """The decision's three gates, in order, each with its rules."""
    action = _current_action(decision)
    out = []
    for number, layer in enumerate(GATE_NAMES, start=1):
        decisive_gate = not decision.allowed and decision.layer is layer
        evaluated = [e for e in decision.trace if e.layer is layer]
        rows = [
            _row(e, decisive=decisive_gate and e.rule == decision.rule and not e.outcome)
            for e in evaluated
        ]
        seen = {e.rule for e in evaluated}
        if action is not None:
            rows.extend(
                RuleRow(name=name, expression=expression, reason=reason, outcome="skipped")
                for name, expression, reason in _declared(action, layer)
                if name not in seen
            )
        out.append(
            Gate(
                layer=layer,
                number=number,
                name=GATE_NAMES[layer],
                question=_QUESTIONS[layer],
                rules=tuple(rows),
                decisive=decisive_gate,
            )
        )
    return out
