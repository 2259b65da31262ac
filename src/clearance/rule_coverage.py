"""Rule coverage: for every declared rule, how often a test run saw it pass and deny.

A rule no test ever saw deny is a rule no test protects. Counts are exact (never a rounded
percentage). What is counted:

- an action's gate 1 (its permission) and each policy and invariant, from the trace of every
  decision (``decision_made``), up to the rule that decided: ``explain`` evaluates every rule,
  but only what ``authorize`` would have evaluated counts, so both count the same;
- each model invariant: a pass for every ``save()`` / ``delete()`` of the model that went through
  (the write guard checked it), a denial for every refused write.

A rule is matched by its action (or model), gate, name and identity: the rule object in force
when the decision was made must be the declared one, so evaluations of a rule that a test
replaced (``override_rules``, ``negate_rule``, a stub that prints exactly like it) never count
for the declared rule.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.db import models

from .actions import ANYONE, Action, NamedRule, registry
from .decisions import Decision, Layer

__all__ = ["CoverageRow", "RuleCoverage"]

_MODEL_INVARIANT = "model invariant"


class _Same:
    """A rule object as a key: equal only to itself (rules that print alike stay apart).

    It holds the rule, so its identity cannot be reused by another object during the run.
    """

    __slots__ = ("rule",)

    def __init__(self, rule: object) -> None:
        self.rule = rule

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.rule is self.rule

    def __hash__(self) -> int:
        return id(self.rule)


_Key = tuple[str, str, str, "_Same | None"]


def _in_force(rules: Iterable[NamedRule], name: str) -> _Same:
    """The identity of the rule named ``name`` in force now (a fresh one when there is none)."""
    for named in rules:
        if named.name == name:
            return _Same(named.rule)
    return _Same(object())


@dataclass
class _Count:
    passed: int = 0
    denied: int = 0
    errors: int = 0


@dataclass(frozen=True)
class CoverageRow:
    """One declared rule and what the run saw of it."""

    owner: str  # the action name, or the model label for a model invariant
    gate: str  # "permission", "policy", "invariant" or "model invariant"
    rule: str
    passed: int
    denied: int
    errors: int

    @property
    def covered(self) -> bool:
        """Seen both passing and denying."""
        return self.passed > 0 and self.denied > 0

    @property
    def status(self) -> str:
        """``ok``, ``never denied``, ``never passed`` or ``never evaluated``."""
        if self.covered:
            return "ok"
        if self.passed:
            return "never denied"
        if self.denied:
            return "never passed"
        return "never evaluated"


class RuleCoverage:
    """Counts of rule outcomes, fed with decisions and guarded writes."""

    def __init__(self) -> None:
        self.counts: dict[_Key, _Count] = {}

    def _count(self, key: _Key) -> _Count:
        count = self.counts.get(key)
        if count is None:
            count = self.counts[key] = _Count()
        return count

    def _tally(self, key: _Key, outcome: bool, error: str | None) -> None:
        count = self._count(key)
        if error:
            count.errors += 1
        elif outcome:
            count.passed += 1
        else:
            count.denied += 1

    # -- feeding ------------------------------------------------------------------------------

    def record_decision(self, decision: Decision) -> None:
        """Count the rules a decision evaluated, up to the one that decided.

        Called as the decision is made (``decision_made``), so the rules in the registry are
        the ones that were evaluated.
        """
        model = self._refused_write(decision)
        if model is not None:
            in_force = registry.invariants_for(model)
            for entry in decision.trace:
                key = (
                    model._meta.label,
                    _MODEL_INVARIANT,
                    entry.rule,
                    _in_force(in_force, entry.rule),
                )
                self._tally(key, entry.outcome, entry.error)
            return
        action = registry.get(decision.action) if decision.action in registry else None
        for entry in decision.trace:
            identity: _Same | None = None
            if entry.layer is not Layer.PERMISSION:
                rules: list[NamedRule] = []
                if action is not None:
                    rules = action.policies if entry.layer is Layer.POLICY else action.invariants
                identity = _in_force(rules, entry.rule)
            self._tally(
                (decision.action, entry.layer.value, entry.rule, identity),
                entry.outcome,
                entry.error,
            )
            if not entry.outcome:
                break  # authorize stops here; explain's further rows decided nothing

    def record_write(self, model: type[models.Model], event: str) -> None:
        """Count a pass of every ``event`` invariant of ``model`` (a write that went through)."""
        for invariant in registry.invariants_for(model):
            if event in invariant.on:
                key = (model._meta.label, _MODEL_INVARIANT, invariant.name, _Same(invariant.rule))
                self._count(key).passed += 1

    @staticmethod
    def _refused_write(decision: Decision) -> type[models.Model] | None:
        """The model, when ``decision`` is a write refused by one of its model invariants."""
        if decision.allowed or decision.layer is not Layer.INVARIANT or decision.resource is None:
            return None
        if decision.action in registry:
            action = registry.get(decision.action)
            if any(rule.name == decision.rule for rule in action.invariants):
                return None
        try:
            model = apps.get_model(decision.resource.model)
        except (LookupError, ValueError):
            return None
        if any(inv.name == decision.rule for inv in registry.invariants_for(model)):
            return model
        return None

    # -- reporting ----------------------------------------------------------------------------

    def rows(self, app_labels: Collection[str] = ()) -> list[CoverageRow]:
        """One row per declared rule (of the given apps, or all), in evaluation order."""
        rows: list[CoverageRow] = []
        for action in registry.actions:
            if app_labels and not _in_apps(action, app_labels):
                continue
            if action.permission is not ANYONE:
                perm = action.permission_label
                found = [
                    c
                    for (owner, layer, rule, _), c in self.counts.items()
                    if (owner, layer, rule) == (action.name, Layer.PERMISSION.value, perm)
                ]
                rows.append(_row(action.name, Layer.PERMISSION.value, perm, found))
            for named in action.rules:
                key = (action.name, named.layer.value, named.name, _Same(named.rule))
                found = [self.counts[key]] if key in self.counts else []
                rows.append(_row(action.name, named.layer.value, named.name, found))
        invariants = sorted(registry.model_invariants.items(), key=lambda i: i[0]._meta.label)
        for model, declared in invariants:
            if app_labels and model._meta.app_label not in app_labels:
                continue
            label = model._meta.label
            for inv in declared:
                key = (label, _MODEL_INVARIANT, inv.name, _Same(inv.rule))
                found = [self.counts[key]] if key in self.counts else []
                rows.append(_row(label, _MODEL_INVARIANT, inv.name, found))
        return rows

    def uncounted(self, rows: Iterable[CoverageRow]) -> int:
        """Evaluations of rules that are not declared now (changed or declared in tests)."""
        seen = sum(c.passed + c.denied + c.errors for c in self.counts.values())
        return seen - sum(r.passed + r.denied + r.errors for r in rows)

    def report(self, app_labels: Collection[str] = ()) -> list[str]:
        """The coverage table as lines of text: exact counts, sorted, no timings."""
        rows = self.rows(app_labels)
        covered = sum(1 for r in rows if r.covered)
        scope = f" (apps: {', '.join(sorted(app_labels))})" if app_labels else ""
        lines = [f"{covered} of {len(rows)} rules seen both passing and denying{scope}"]
        if not rows:
            return lines
        header = ("action / model", "gate", "rule", "passed", "denied", "errors", "status")
        table = [header] + [
            (r.owner, r.gate, r.rule, str(r.passed), str(r.denied), str(r.errors), r.status)
            for r in rows
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        lines.append("")
        for row in table:
            cells = [
                cell.rjust(widths[i]) if 3 <= i <= 5 else cell.ljust(widths[i])
                for i, cell in enumerate(row)
            ]
            lines.append("  ".join(cells).rstrip())
        all_rows = self.rows()
        skipped = self.uncounted(all_rows)
        if skipped:
            lines.append("")
            lines.append(
                f"{skipped} rule evaluations under rules changed or declared in tests are not "
                "counted."
            )
        return lines

    def below(self, threshold: Decimal, app_labels: Collection[str] = ()) -> bool:
        """Whether the covered share is under ``threshold`` percent (compared exactly)."""
        rows = self.rows(app_labels)
        if not rows:
            return False
        covered = sum(1 for r in rows if r.covered)
        return Decimal(covered) * 100 < threshold * len(rows)


def _in_apps(action: Action, app_labels: Collection[str]) -> bool:
    if action.app_label in app_labels:
        return True
    return action.model is not None and action.model._meta.app_label in app_labels


def _row(owner: str, gate: str, rule: str, counts: list[Any]) -> CoverageRow:
    return CoverageRow(
        owner,
        gate,
        rule,
        sum(c.passed for c in counts),
        sum(c.denied for c in counts),
        sum(c.errors for c in counts),
    )
