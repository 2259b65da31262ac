"""The package's structure, read from its source with ``ast`` (docs/architecture.md).

* No module of ``src/clearance`` uses a private (underscore) name of another of its modules:
  neither ``from .x import _y`` nor ``x._y`` on an imported module. Dunder names are fine.
* The modules of ``src/clearance`` import each other without a cycle. Imports under
  ``if TYPE_CHECKING:`` are left out (they never run); imports inside functions count like any
  other: a function-local import only delays a cycle, it does not remove it.
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "clearance"


@dataclass
class Module:
    name: str
    #: Relative to ``src/``.
    path: Path
    tree: ast.Module
    #: Imported clearance module -> line numbers of the imports (TYPE_CHECKING ones left out).
    imports: dict[str, list[int]] = field(default_factory=dict)


def _module_name(path: Path) -> str:
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(src: Path = SRC) -> dict[str, Module]:
    found = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        relative = path.relative_to(src)
        found[_module_name(relative)] = Module(
            _module_name(relative), relative, ast.parse(path.read_text())
        )
    return found


def _absolute(module: Module, level: int, name: str | None) -> str:
    """The absolute module a ``from`` import of ``module`` names."""
    if level == 0:
        return name or ""
    base = module.name.split(".")
    if module.path.name != "__init__.py":
        base.pop()
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _type_checking_only(tree: ast.Module) -> set[int]:
    """The ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for statement in node.body:
                    inside.update(id(n) for n in ast.walk(statement))
    return inside


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _analyse(modules: dict[str, Module]) -> list[str]:
    """Fill in each module's imports; return the private names used across modules."""
    offences = []
    for module in modules.values():
        skipped = _type_checking_only(module.tree)
        # Local names bound to a clearance module (``from . import engine``, ``import x as y``).
        module_names: dict[str, str] = {}

        def depends(
            target: str,
            line: int,
            node: ast.AST,
            module: Module = module,
            skipped: set[int] = skipped,
        ) -> None:
            if id(node) not in skipped and target != module.name:
                lines = module.imports.setdefault(target, [])
                if line not in lines:
                    lines.append(line)

        for node in ast.walk(module.tree):
            if isinstance(node, ast.ImportFrom):
                source = _absolute(module, node.level, node.module)
                if source.split(".")[0] != PACKAGE:
                    continue
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    if submodule in modules:
                        module_names[alias.asname or alias.name] = submodule
                        depends(submodule, node.lineno, node)
                    else:
                        depends(source, node.lineno, node)
                        if _private(alias.name) and source != module.name:
                            offences.append(
                                f"{module.path}:{node.lineno}: from {source} import {alias.name}"
                            )
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == PACKAGE:
                        depends(alias.name, node.lineno, node)
                        # ``import clearance.engine`` binds ``clearance``; ``as e`` binds the module
                        top = alias.name.split(".")[0]
                        module_names[alias.asname or top] = alias.name if alias.asname else top
        for node in ast.walk(module.tree):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            dotted = []
            value = node.value
            while isinstance(value, ast.Attribute):
                dotted.insert(0, value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in module_names:
                target = ".".join([module_names[value.id], *dotted])
                if target in modules and target != module.name:
                    offences.append(f"{module.path}:{node.lineno}: {target}.{node.attr}")
    return offences


def _cycles(modules: dict[str, Module]) -> list[list[str]]:
    """One cycle through each group of modules that import each other (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        for target in modules[name].imports:
            if target not in modules:
                continue
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in on_stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == name:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for name in sorted(modules):
        if name not in index:
            visit(name)
    return [_cycle_in(modules, group) for group in groups]


def _cycle_in(modules: dict[str, Module], group: list[str]) -> list[str]:
    """A shortest import path from the group's first module back to itself."""
    start = group[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        name = queue.pop(0)
        for target in sorted(modules[name].imports):
            if target == start:
                return [*paths[name], start]
            if target in group and target not in paths:
                paths[target] = [*paths[name], target]
                queue.append(target)
    return group  # pragma: no cover - a strongly connected group always has a cycle


def _describe(modules: dict[str, Module], cycle: list[str]) -> str:
    steps = []
    for here, there in itertools.pairwise(cycle):
        lines = ",".join(str(n) for n in modules[here].imports[there])
        steps.append(f"{here} (line {lines}) -> {there}")
    return "\n  ".join(steps)


@pytest.fixture(scope="module")
def package() -> tuple[dict[str, Module], list[str]]:
    modules = _modules()
    return modules, _analyse(modules)


def test_the_whole_package_is_read(package: tuple[dict[str, Module], list[str]]) -> None:
    modules, _ = package
    assert {"clearance", "clearance.engine", "clearance.contrib.drf"} <= set(modules)
    assert "clearance.actions" in modules["clearance.engine"].imports


def test_no_module_uses_another_modules_private_names(
    package: tuple[dict[str, Module], list[str]],
) -> None:
    _, offences = package
    assert not offences, "private names used across modules (make them public):\n" + "\n".join(
        offences
    )


def test_no_import_cycles(package: tuple[dict[str, Module], list[str]]) -> None:
    modules, _ = package
    cycles = _cycles(modules)
    assert not cycles, "import cycles inside src/clearance:\n" + "\n".join(
        "  " + _describe(modules, cycle) for cycle in cycles
    )


def test_the_checks_see_a_private_name_and_a_cycle(tmp_path: Path) -> None:
    """Both checks fail on a package that breaks them (they could not pass by reading nothing)."""
    pkg = tmp_path / PACKAGE
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import _hidden\n\ndef _own():\n    pass\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from . import c\n\n"
        "def f():\n    from . import a\n    return a._own\n"
    )
    (pkg / "c.py").write_text(
        "import clearance.b as b\nimport clearance.a\n\nb.__name__\nclearance.a._own()\n"
    )
    modules = _modules(tmp_path)
    offences = _analyse(modules)
    assert offences == [
        "clearance/a.py:1: from clearance.b import _hidden",
        "clearance/b.py:8: clearance.a._own",
        "clearance/c.py:5: clearance.a._own",
    ]
    assert _cycles(modules) == [["clearance.a", "clearance.b", "clearance.a"]]
