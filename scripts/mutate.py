"""Run mutmut on one scope of the code: ``make mutate`` calls it.

    python scripts/mutate.py --scope core run --max-children 2
    python scripts/mutate.py --scope engine,perform results --all true

The scope picks the files mutmut mutates (its ``only_mutate``), so a run, its results and the
score all see the same mutants; every other setting comes from ``[tool.mutmut]`` in
pyproject.toml. A scope is a comma-separated list of the names in ``SCOPES`` or of the groups
in ``GROUPS``; ``core`` (the default) is the engine, the rules, the invariants and ``perform``.
A scope of several modules is run (and its results read) one module after the other, each with
its own tests.

Each module also names the test files that exercise it (``TESTS``): mutmut's first, plain run
(the one that records which tests reach which function) runs only those, so a mutant runs the
tests of its own module that reach it, not every test of the suite that happens to pass through
it. A scope keeps its mutants and results in a directory of its own (``.mutants/<scope>``, moved
to ``mutants/`` while it is the current scope), because mutmut forgets every result when the
test selection changes.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import subprocess
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
#: Names for several modules at once; each module is run with its own tests.
GROUPS: dict[str, list[str]] = {
    "core": ["engine", "rules", "invariants", "perform"],
    "all": ["engine", "rules", "invariants", "perform", "audit", "contrib"],
}

# The test files that exercise each module (its own tests, and those of the code built on it
# that check its decisions: filtering, plans, scopes). Not the console, the CLI, the checks or
# the documentation tests: they reach the core, but to render what it decided.
TESTS: dict[str, list[str]] = {
    "engine": [
        "tests/test_engine.py",
        "tests/test_authorize_many.py",
        "tests/test_filtering.py",
        "tests/test_guarded_queryset.py",
        "tests/test_queries.py",
        "tests/test_decision_costs.py",
        "tests/test_compiled_plans.py",
        "tests/test_compiled_plans_attacks.py",
        "tests/test_scopes.py",
        "tests/test_scopes_attacks.py",
        "tests/test_testing.py",
        "tests/test_actions.py",
        "tests/test_perform.py",
        "tests/contrib/test_views_async.py",
        "example/invoices/tests/test_idor.py",
    ],
    "rules": [
        "tests/test_rules.py",
        "tests/test_expressions.py",
        "tests/test_clock.py",
        "tests/test_engine.py",
        "tests/test_authorize_many.py",
        "tests/test_filtering.py",
        "tests/test_filtering_properties.py",
        "tests/test_compiled_plans.py",
        "tests/test_compiled_plans_attacks.py",
        "tests/test_collation.py",
        "tests/test_testing_filter.py",
        "tests/test_actions.py",
        "example/invoices/tests/test_idor.py",
    ],
    "invariants": [
        "tests/test_invariants.py",
        "tests/test_invariant_checks.py",
        "tests/test_guarded_queryset.py",
        "tests/test_constraints.py",
        "tests/test_write_paths.py",
        "tests/test_write_cascades.py",
        "tests/test_invariant_refusals.py",
        "tests/test_write_matrix.py",
        "tests/test_write_state_machine.py",
        "tests/test_perform.py",
        "tests/test_perform_refusals.py",
        "example/invoices/tests/test_invariants.py",
    ],
    "perform": [
        "tests/test_perform.py",
        "tests/test_perform_rows.py",
        "tests/test_perform_refusals.py",
        "tests/test_write_paths.py",
        "tests/test_write_matrix.py",
        "tests/test_invariants.py",
        "tests/test_audit_durability.py",
    ],
    "audit": ["tests/test_audit*.py", "tests/console/test_audit_page.py"],
    "contrib": ["tests/contrib/", "example/invoices/tests/"],
}


def names(scope: str) -> list[str]:
    """The module names of a comma-separated scope; an unknown or empty one is an error."""
    found: list[str] = []
    for part in filter(None, (part.strip() for part in scope.split(","))):
        if part not in SCOPES and part not in GROUPS:
            known = ", ".join([*SCOPES, *GROUPS])
            raise SystemExit(f"unknown mutation scope {part!r}; pick from {known}")
        for name in GROUPS.get(part, [part]):
            if name not in found:
                found.append(name)
    if not found:
        raise SystemExit("empty mutation scope")
    return found


def patterns(scope: str) -> list[str]:
    """The ``only_mutate`` globs of a comma-separated scope."""
    found: list[str] = []
    for name in names(scope):
        found += [p for p in SCOPES[name] if p not in found]
    return found


def tests(scope: str) -> list[str]:
    """The test files (pytest arguments) of a comma-separated scope, each once, sorted."""
    found: set[str] = set()
    for name in names(scope):
        for pattern in TESTS[name]:
            matches = sorted(str(p) for p in Path(".").glob(pattern)) if "*" in pattern else []
            found.update(matches or [pattern])
    return sorted(found)


def switch(scope: str) -> None:
    """Make ``mutants/`` the directory of this scope, putting the previous scope's aside."""
    key = ",".join(sorted(names(scope)))
    current = Path("mutants")
    marker = current / ".scope"
    if current.exists():
        previous = marker.read_text().strip() if marker.exists() else ""
        if previous == key:
            return
        if previous:
            aside = Path(".mutants") / previous
            shutil.rmtree(aside, ignore_errors=True)
            aside.parent.mkdir(exist_ok=True)
            current.rename(aside)
        else:  # a run from before scopes had directories of their own
            shutil.rmtree(current)
    stored = Path(".mutants") / key
    if stored.exists():
        stored.rename(current)
    else:
        current.mkdir()
    marker.write_text(key + "\n")


def prepare(only_mutate: list[str]) -> bool:
    """Make mutmut generate the mutants of every file of the scope; True if none is needed.

    mutmut keeps a file's mutants while they are newer than the file. A run of another scope
    leaves a plain copy of the file instead (newer than the results it keeps beside it, in
    ``.meta``): such a copy, or a file changed since it was mutated, makes every file of the
    scope mutated again (mutmut keeps the results of the functions that did not change). When
    every file's mutants are current, the coverage run that ``mutate_only_covered_lines`` asks
    for (a whole plain run of the suite) would be wasted, and is skipped.
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
        plain_copy = mutated.exists() and (
            not meta.exists() or mutated.stat().st_mtime > meta.stat().st_mtime
        )
        if plain_copy or not mutated.exists() or mutated.stat().st_mtime <= path.stat().st_mtime:
            current = False
    if not current:
        # Generate every file of the scope again, in one pass under one coverage run: a file
        # mutated again alone, beside the others' mutated copies, once came out with a tenth
        # of its mutants (mutmut 3.8.1: 102 for rules/lookups.py instead of 1,032).
        for path in sources:
            (Path("mutants") / path).unlink(missing_ok=True)
    return current


def each(modules: list[str], mutmut_args: list[str]) -> int:
    """Run ``mutmut run`` (or ``results``) for each module in turn, each with its own tests.

    With mutant names or globs after ``run`` (``clearance.perform*``), only the modules whose
    mutants they can name are run.
    """
    command = mutmut_args[:1]
    if command not in (["run"], ["results"]):
        raise SystemExit(
            f"{' '.join(mutmut_args) or 'this command'}: pick one module "
            f"({', '.join(modules)}), e.g. --scope {modules[0]}"
        )
    wanted = [a for a in mutmut_args[1:] if a.startswith("clearance")] if command == ["run"] else []
    status = 0
    for module in modules:
        if wanted and not any(_may_name(glob, module) for glob in wanted):
            continue
        if command == ["run"]:
            print(f"\n== {module}", flush=True)
        status |= subprocess.call([sys.executable, __file__, "--scope", module, *mutmut_args])
    return status


def _may_name(glob: str, module: str) -> bool:
    """Whether a mutant name glob can name a mutant of ``module``'s files."""
    prefix = glob.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
    for pattern in SCOPES[module]:
        dotted = pattern.removeprefix("src/").removesuffix(".py").removesuffix("/*")
        dotted = dotted.replace("/", ".")
        if prefix.startswith(dotted) or dotted.startswith(prefix):
            return True
    return False


def main(argv: list[str]) -> int:
    """Set mutmut's ``only_mutate`` to the scope, then hand the other arguments to mutmut."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scope", default="core", help="e.g. core, all, engine,perform")
    args, mutmut_args = parser.parse_known_args(argv)
    modules = names(args.scope)
    if len(modules) > 1:
        return each(modules, mutmut_args)
    only_mutate = patterns(args.scope)

    from mutmut.__main__ import cli
    from mutmut.configuration import config

    switch(args.scope)
    # Each mutant's tests run fastest first (scripts/mutation_order.py, importable from here).
    sys.path.insert(0, str(Path(__file__).parent))
    plugins = [p for p in os.environ.get("PYTEST_PLUGINS", "").split(",") if p]
    os.environ["PYTEST_PLUGINS"] = ",".join([*plugins, "mutation_order"])
    # The filtering/checking law (tests/test_filtering_properties.py) tries 150 random actions
    # and objects, about 20 s: every surviving mutant of the rule language pays for it. A
    # mutant that breaks the law breaks it for most examples, so a few dozen are enough here.
    os.environ.setdefault("CLEARANCE_FILTER_EXAMPLES", "30")
    cfg = config()
    cfg.only_mutate = only_mutate
    cfg.pytest_add_cli_args_test_selection = tests(args.scope)
    if cfg.type_check_command[:1] == ["mypy"]:
        # The virtualenv's mypy, whatever PATH says (mutmut recognises the report by the word).
        cfg.type_check_command = [sys.executable, "-m", *cfg.type_check_command]
    if mutmut_args[:1] == ["run"] and prepare(only_mutate):
        cfg.mutate_only_covered_lines = False
    return int(cli.main(args=mutmut_args, prog_name="mutmut", standalone_mode=False) or 0)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
