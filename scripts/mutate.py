"""Run mutmut on one scope of the code: ``make mutate`` calls it.

    python scripts/mutate.py --scope core run --max-children 2
    python scripts/mutate.py --scope engine,perform results --all true

The scope picks the files mutmut mutates (its ``only_mutate``), so a run, its results and the
score all see the same mutants; every other setting comes from ``[tool.mutmut]`` in
pyproject.toml. A scope is a comma-separated list of the names in ``SCOPES``; ``core`` (the
default) is the engine, the rules, the invariants and ``perform``.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path

# Each rule-language pattern covers both layouts: the single module and a package of modules.
SCOPES: dict[str, list[str]] = {
    "engine": ["src/clearance/engine.py"],
    "rules": ["src/clearance/rules.py", "src/clearance/rules/*"],
    "invariants": ["src/clearance/invariants.py", "src/clearance/write_checks.py"],
    "perform": ["src/clearance/perform.py"],
    "audit": ["src/clearance/audit/*"],
    "contrib": ["src/clearance/contrib/*"],
}
SCOPES["core"] = [p for name in ("engine", "rules", "invariants", "perform") for p in SCOPES[name]]
SCOPES["all"] = SCOPES["core"] + SCOPES["audit"] + SCOPES["contrib"]


def patterns(scope: str) -> list[str]:
    """The ``only_mutate`` globs of a comma-separated scope; an unknown name is an error."""
    found: list[str] = []
    for name in filter(None, (part.strip() for part in scope.split(","))):
        if name not in SCOPES:
            raise SystemExit(f"unknown mutation scope {name!r}; pick from {', '.join(SCOPES)}")
        found += [p for p in SCOPES[name] if p not in found]
    if not found:
        raise SystemExit("empty mutation scope")
    return found


def prepare(only_mutate: list[str]) -> bool:
    """Make mutmut generate the mutants of every file of the scope; True if none is needed.

    mutmut keeps a file's mutants while they are newer than the file. A run of another scope
    leaves a plain copy of the file instead (newer than the results it keeps beside it, in
    ``.meta``): that copy is removed, so that mutmut mutates the file again (and keeps the
    results of the functions that did not change). When every file's mutants are current, the
    coverage run that ``mutate_only_covered_lines`` asks for (a whole plain run of the suite)
    would be wasted, and is skipped.
    """
    sources = [
        path
        for path in Path("src").rglob("*.py")
        if any(fnmatch.fnmatch(str(path), pattern) for pattern in only_mutate)
    ]
    current = bool(sources)
    for path in sources:
        mutated = Path("mutants") / path
        meta = mutated.with_name(mutated.name + ".meta")
        if mutated.exists() and (
            not meta.exists() or mutated.stat().st_mtime > meta.stat().st_mtime
        ):
            mutated.unlink()
        if not mutated.exists() or mutated.stat().st_mtime <= path.stat().st_mtime:
            current = False
    return current


def main(argv: list[str]) -> int:
    """Set mutmut's ``only_mutate`` to the scope, then hand the other arguments to mutmut."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scope", default="core", help="e.g. core, all, engine,perform")
    args, mutmut_args = parser.parse_known_args(argv)
    only_mutate = patterns(args.scope)

    from mutmut.__main__ import cli
    from mutmut.configuration import config

    cfg = config()
    cfg.only_mutate = only_mutate
    if mutmut_args[:1] == ["run"] and prepare(only_mutate):
        cfg.mutate_only_covered_lines = False
    return int(cli.main(args=mutmut_args, prog_name="mutmut", standalone_mode=False) or 0)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
