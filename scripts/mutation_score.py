"""Summarise a mutmut run: the score per module and the surviving mutants.

``make mutate`` runs it after ``mutmut run``; run it again at any time with
``.venv/bin/python scripts/mutation_score.py --scope core`` (the scope of the run, see
scripts/mutate.py). It reads ``mutmut results --all true``, so it sees whatever the last
(possibly interrupted) run decided.

The score of a module is (killed + typed) / decided, where a mutant is *killed* when a test
failed or timed out on it, *typed* when mypy (strict) refused it before any test ran (mutmut's
``caught by type check``: such a change could not pass ``make lint``), and *decided* when it was
run at all (not ``not checked`` or ``skipped``). Mutants no test reached (``no tests``) count as
decided and not killed: code that no test runs is a gap too.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

KILLED = {"killed", "timeout"}
TYPED = {"caught by type check"}
UNDECIDED = {"not checked", "skipped"}
# clearance.rules.xǁWhereǁcheck__mutmut_3 or clearance.perform.x_aperform__mutmut_1
NAME = re.compile(r"^(?P<module>[\w.]+?)\.x[_ǁ]")


MUTATE = Path(__file__).with_name("mutate.py")


def results(scope: str) -> list[tuple[str, str]]:
    """(mutant name, status) for every mutant of the scope that mutmut knows of."""
    out = subprocess.run(
        [sys.executable, str(MUTATE), "--scope", scope, "results", "--all", "true"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = []
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep:
            rows.append((name, status))
    return rows


def main(argv: list[str]) -> int:
    """Print the per-module table and the survivors; exit 0 (the score is reported, not a gate)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scope", default="core", help="as for scripts/mutate.py")
    scope = parser.parse_args(argv).scope
    per_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: list[str] = []
    for name, status in results(scope):
        match = NAME.match(name)
        module = match["module"] if match else name.rsplit(".", 1)[0]
        per_module[module][status] += 1
        if status in ("survived", "no tests", "suspicious"):
            survivors.append(f"{name}: {status}")
    print(f"{'module':<36} {'killed':>7} {'typed':>6} {'decided':>8} {'score':>7} {'unrun':>6}")
    total_killed = total_typed = total_decided = 0
    for module in sorted(per_module):
        counts = per_module[module]
        killed = sum(counts[s] for s in KILLED)
        typed = sum(counts[s] for s in TYPED)
        decided = sum(n for s, n in counts.items() if s not in UNDECIDED)
        unrun = sum(counts[s] for s in UNDECIDED)
        total_killed += killed
        total_typed += typed
        total_decided += decided
        score = f"{100 * (killed + typed) / decided:.1f}%" if decided else "-"
        print(f"{module:<36} {killed:>7} {typed:>6} {decided:>8} {score:>7} {unrun:>6}")
    if total_decided:
        score = 100 * (total_killed + total_typed) / total_decided
        print(f"{'all':<36} {total_killed:>7} {total_typed:>6} {total_decided:>8} {score:.1f}%")
    print("(killed: by a failing or timed-out test; typed: refused by mypy --strict)")
    print(f"\nSurvivors ({len(survivors)}); inspect one with `.venv/bin/mutmut show NAME`:")
    for line in survivors:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
