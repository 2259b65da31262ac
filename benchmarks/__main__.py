"""``python -m benchmarks`` (``make bench``): every benchmark in one run; prints the tables.

Runs :mod:`benchmarks.decision`, then ``benchmarks.filtering``, ``benchmarks.perform``,
``benchmarks.audit``, ``benchmarks.load``, ``benchmarks.writes``, ``benchmarks.authzen`` and
``benchmarks.scopes`` when they exist. Each module's ``run()`` returns the text of its tables.
Each runs in a child process of its own (its own temporary database, no state shared with the
others), with a time limit; a module that is missing or fails is skipped with the reason.

``python -m benchmarks decision filtering`` runs only the named modules.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import platform
import sqlite3
import subprocess
import sys
import time

MODULES = ("decision", "filtering", "perform", "audit", "load", "writes", "authzen", "scopes")
TITLES = {
    "decision": "Decisions",
    "filtering": "Filtering",
    "perform": "perform",
    "audit": "Audit",
    "load": "Load",
    "writes": "Writes",
    "authzen": "AuthZEN",
    "scopes": "Scopes",
}

#: The whole run must stay under five minutes on a 2-core machine.
BUDGET_SECONDS = 300
#: Exit status of a child whose module does not exist (yet).
_MISSING = 3

_PACKAGES = (
    "Django",
    "django-clearance",
    "rules",
    "bridgekeeper",
    "django-guardian",
    "djangorestframework",
    "gunicorn",
)


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header() -> str:
    """The machine and the versions the figures were measured with."""
    versions = []
    for name in _PACKAGES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return "\n".join(
        [
            f"- Machine: {_cpu()}, {os.cpu_count()} cores, {platform.system()} "
            f"{platform.release()}",
            f"- Python {platform.python_version()} ({platform.python_implementation()}), "
            f"SQLite {sqlite3.sqlite_version}",
            f"- {', '.join(versions)}",
            f"- Command: `make bench` (`python -m benchmarks`), "
            f"{time.strftime('%Y-%m-%d', time.gmtime())}",
        ]
    )


def run_one(name: str) -> int:
    """In a child process: run ``benchmarks.<name>`` and print its tables."""
    try:
        module = importlib.import_module(f"benchmarks.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"benchmarks.{name}":
            return _MISSING
        raise
    print(module.run(), flush=True)
    return 0


def run_all(names: list[str], budget: float) -> int:
    """Run each module in a child process; print its tables or why it was skipped."""
    started = time.monotonic()
    print("## Benchmarks\n")
    print(header(), flush=True)
    failures = 0
    for name in names:
        left = budget - (time.monotonic() - started)
        if left <= 0:
            print(
                f"\n## {TITLES[name]}\n\nSkipped: the run's time budget ({budget:.0f} s) is spent."
            )
            continue
        print(f"[{name}] running...", file=sys.stderr, flush=True)
        began = time.monotonic()
        try:
            child = subprocess.run(
                [sys.executable, "-m", "benchmarks", "--child", name],
                capture_output=True,
                text=True,
                timeout=left,
                check=False,
            )
        except subprocess.TimeoutExpired:
            print(
                f"\n## {TITLES[name]}\n\nSkipped: still running after {left:.0f} s (time budget)."
            )
            failures += 1
            continue
        spent = time.monotonic() - began
        if child.returncode == _MISSING:
            print(f"\n<!-- benchmarks.{name}: not written yet, skipped -->")
            print(f"[{name}] skipped: benchmarks/{name}.py does not exist", file=sys.stderr)
            continue
        if child.returncode != 0:
            failures += 1
            reason = (child.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"\n## {TITLES[name]}\n\nSkipped: it failed ({reason}).")
            print(f"[{name}] failed after {spent:.0f} s:\n{child.stderr}", file=sys.stderr)
            continue
        text = child.stdout.strip()
        if not text.startswith("## "):  # a module may print its own section heading
            text = f"## {TITLES[name]}\n\n{text}"
        print(f"\n{text}", flush=True)
        print(f"[{name}] done in {spent:.0f} s", file=sys.stderr, flush=True)
    total = time.monotonic() - started
    print(f"\n<!-- total {total:.0f} s -->")
    print(f"[benchmarks] total {total:.0f} s", file=sys.stderr)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("modules", nargs="*", help=f"a subset of {', '.join(MODULES)}")
    parser.add_argument("--child", metavar="MODULE", help=argparse.SUPPRESS)
    parser.add_argument(
        "--budget", type=float, default=BUDGET_SECONDS, help="time limit of the run, in seconds"
    )
    args = parser.parse_args(argv)
    if args.child:
        return run_one(args.child)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    return run_all(args.modules or list(MODULES), args.budget)


if __name__ == "__main__":
    sys.exit(main())
