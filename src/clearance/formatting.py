"""Decisions as text for people: the trace gate by gate, for failing tests and the command line.

The text is stable (no timings, no timestamps), so it can be compared and diffed. Colour is
optional: pass ``paint``, a function of a style name and a piece of text.
"""

from __future__ import annotations

from collections.abc import Callable

from .actions import Action, registry
from .decisions import Decision, Layer, TraceEntry

__all__ = ["GATE_TITLES", "Paint", "format_decision"]

#: ``paint(style, text)`` returns the text coloured for ``style``: ``"pass"``, ``"deny"``,
#: ``"error"``, ``"skip"``, ``"heading"``, ``"allowed"`` or ``"denied"``.
Paint = Callable[[str, str], str]

#: The heading of each gate, in the order the gates run.
GATE_TITLES = {
    Layer.PERMISSION: "Gate 1, permission",
    Layer.POLICY: "Gate 2, policies",
    Layer.INVARIANT: "Gate 3, invariants",
}


def _plain(style: str, text: str) -> str:
    return text


def _declared(action: Action | None, layer: Layer) -> list[str]:
    if action is None:
        return []
    if layer is Layer.PERMISSION:
        return [action.permission_label]
    rules = action.policies if layer is Layer.POLICY else action.invariants
    return [rule.name for rule in rules]


def format_decision(
    decision: Decision,
    *,
    paint: Paint | None = None,
    subject: str | None = None,
) -> str:
    """The decision's trace, gate by gate, one line per rule, then the verdict.

    Each rule shows ``pass``, ``deny`` or ``error`` with its expression; a denying rule also
    shows its reason. Rules the decision did not evaluate (``authorize`` stops at the first
    denial) are listed as ``skip``. ``subject`` replaces the first line (actor, action, object).
    """
    paint = paint or _plain
    action = registry.get(decision.action) if decision.action in registry else None
    if action is not None and action.fingerprint() != decision.fingerprint:
        action = None  # the rule set changed since; show only what the trace says
    lines = [subject or _subject(decision)]
    entries = list(decision.trace)
    width = max([len(e.rule) for e in entries] + [len(n) for n in _all_names(action)] + [4])
    for layer, title in GATE_TITLES.items():
        lines.append(paint("heading", title))
        evaluated = [e for e in entries if e.layer is layer]
        seen = {e.rule for e in evaluated}
        for entry in evaluated:
            lines.extend(_entry_lines(entry, width, paint))
        for name in _declared(action, layer):
            if name not in seen:
                lines.append(f"  {paint('skip', 'skip ')} {name:<{width}}  not evaluated")
        if not evaluated and not _declared(action, layer):
            lines.append("  (none)")
    if decision.allowed:
        lines.append(paint("allowed", "Verdict: allowed"))
    else:
        lines.append(paint("denied", f"Verdict: denied by {decision.code}: {decision.reason}"))
    return "\n".join(lines)


def _all_names(action: Action | None) -> list[str]:
    if action is None:
        return []
    return [action.permission_label, *(rule.name for rule in action.rules)]


def _subject(decision: Decision) -> str:
    target = f" on {decision.resource}" if decision.resource is not None else ""
    return f"{decision.actor} {decision.action}{target}"


def _entry_lines(entry: TraceEntry, width: int, paint: Paint) -> list[str]:
    if entry.error:
        mark = paint("error", "error")
    elif entry.outcome:
        mark = paint("pass", "pass ")
    else:
        mark = paint("deny", "deny ")
    lines = [f"  {mark} {entry.rule:<{width}}  {entry.expression}".rstrip()]
    indent = " " * (2 + 5 + 1 + width + 2)
    if entry.layer is Layer.PERMISSION or not entry.outcome:
        lines.append(f"{indent}{entry.reason}")
    if entry.error:
        lines.append(f"{indent}{paint('error', 'raised ' + entry.error)}")
    return lines
