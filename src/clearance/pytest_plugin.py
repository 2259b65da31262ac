"""pytest plugin: decision capture, rule coverage and rule negation for authorization tests.

Enable it with ``-p clearance.pytest_plugin`` (in ``addopts``) or
``pytest_plugins = ["clearance.pytest_plugin"]`` in the root ``conftest.py``. It is not loaded
automatically, because importing ``clearance`` imports Django.

Fixtures:

- ``clearance_decisions``: a :class:`~clearance.testing.DecisionLog` of the decisions made
  during the test;
- ``clearance_registry``: the rule registry, restored after the test (declare freely).

Each test also gets an audit spool of its own (under pytest's temporary directory) when
``CLEARANCE["AUDIT_SPOOL"]`` is unset, so a record one test could not write (a test without
database access, say) is never replayed into the table while another test counts its rows,
nor in a later run.

The audit records a test makes outside any recording scope (``clearance.audit.recording``) are
written when the test reads ``AuditRecord.objects`` or when it ends (dropped when it has no
database access), never by the background thread while another test runs.

Every test: a predicate that returns something other than True or False denies; the plugin
warns about each one (``NonBoolPredicateWarning``), so a test that passes because of it shows.

Options:

- ``--clearance-coverage``: after the run, report for every declared rule how many times the
  suite saw it pass and deny (exact counts);
- ``--clearance-coverage-app=LABEL`` (repeatable): only the rules of these apps;
- ``--clearance-coverage-fail-under=N``: fail the run when fewer than N percent of the rules were
  seen both passing and denying (implies ``--clearance-coverage``);
- ``--clearance-negate=ACTION:RULE`` (repeatable): run the suite with that rule negated, to show
  that some test fails (the tests have teeth).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .actions import Registry
    from .rule_coverage import RuleCoverage
    from .testing import DecisionLog

_PLUGIN_NAME = "clearance-rules"


def _percentage(value: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise pytest.UsageError(f"--clearance-coverage-fail-under={value}: not a number") from None
    if not 0 <= number <= 100:
        raise pytest.UsageError(f"--clearance-coverage-fail-under={value}: must be 0 to 100")
    return number


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``--clearance-*`` options."""
    group = parser.getgroup("clearance", "django-clearance authorization rules")
    group.addoption(
        "--clearance-coverage",
        action="store_true",
        default=False,
        help="report, for every declared rule, how often the tests saw it pass and deny",
    )
    group.addoption(
        "--clearance-coverage-app",
        action="append",
        default=[],
        metavar="LABEL",
        help="report rule coverage for this app label only (repeatable)",
    )
    group.addoption(
        "--clearance-coverage-fail-under",
        default=None,
        metavar="N",
        help="fail when fewer than N percent of the rules were seen passing and denying",
    )
    group.addoption(
        "--clearance-negate",
        action="append",
        default=[],
        metavar="ACTION:RULE",
        help="negate one policy or invariant for the whole run (do the tests notice?)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the session-wide part when an option asks for it."""
    if hasattr(config, "workerinput"):
        return  # pytest-xdist worker: coverage is not merged across workers
    threshold = config.getoption("clearance_coverage_fail_under")
    wants_coverage = bool(config.getoption("clearance_coverage")) or threshold is not None
    negate = list(config.getoption("clearance_negate"))
    if wants_coverage or negate:
        config.pluginmanager.register(
            _Session(
                coverage=wants_coverage,
                threshold=_percentage(threshold) if threshold is not None else None,
                apps=tuple(config.getoption("clearance_coverage_app")),
                negate=negate,
            ),
            _PLUGIN_NAME,
        )


class _Session:
    """Negated rules and rule coverage for one test session."""

    def __init__(
        self,
        *,
        coverage: bool,
        threshold: Decimal | None,
        apps: tuple[str, ...],
        negate: list[str],
    ) -> None:
        self.coverage: RuleCoverage | None = None
        self.wants_coverage = coverage
        self.threshold = threshold
        self.apps = apps
        self.negate = negate
        self.failed = False
        self._stack = contextlib.ExitStack()

    # -- set up -------------------------------------------------------------------------------

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        lines = []
        if self.negate:
            lines.append(f"clearance: negated {', '.join(self.negate)}")
        if self.wants_coverage:
            lines.append("clearance: rule coverage on")
        return lines

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        from django.apps import apps

        if not apps.ready:
            raise pytest.UsageError(
                "clearance's pytest options need Django set up (pytest-django with --ds or "
                "DJANGO_SETTINGS_MODULE)"
            )
        for spec in self.negate:
            self._negate(spec)
        if self.wants_coverage:
            self._start_coverage()

    def _negate(self, spec: str) -> None:
        from .actions import registry
        from .testing import negate_rule

        action, sep, rule = spec.rpartition(":")
        if not sep or not action or not rule:
            raise pytest.UsageError(f"--clearance-negate={spec}: expected ACTION:RULE")
        if action not in registry:
            raise pytest.UsageError(f"--clearance-negate={spec}: no action named {action!r}")
        try:
            self._stack.enter_context(negate_rule(action, rule))
        except ValueError as exc:
            raise pytest.UsageError(f"--clearance-negate={spec}: {exc}") from None

    def _start_coverage(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from .rule_coverage import RuleCoverage
        from .signals import decision_made

        coverage = self.coverage = RuleCoverage()

        def on_decision(sender: Any, decision: Any, **kwargs: Any) -> None:
            coverage.record_decision(decision)

        def on_save(sender: Any, raw: bool = False, **kwargs: Any) -> None:
            if not raw:
                coverage.record_write(sender, "save")

        def on_delete(sender: Any, **kwargs: Any) -> None:
            coverage.record_write(sender, "delete")

        for signal, receiver in (
            (decision_made, on_decision),
            (post_save, on_save),
            (post_delete, on_delete),
        ):
            signal.connect(receiver, weak=False)
            self._stack.callback(signal.disconnect, receiver)

    # -- tear down ----------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Iterator[None]:
        try:
            return (yield)
        finally:
            self._stack.close()
            coverage = self.coverage
            if (
                coverage is not None
                and self.threshold is not None
                and coverage.below(self.threshold, self.apps)
            ):
                self.failed = True
                session.testsfailed += 1

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.coverage is None:
            return
        terminalreporter.write_sep("-", "clearance rule coverage")
        for line in self.coverage.report(self.apps):
            terminalreporter.write_line(line)
        if self.threshold is not None:
            if self.failed:
                terminalreporter.write_line(
                    f"FAIL: fewer than {self.threshold}% of the rules were seen both passing and "
                    "denying (--clearance-coverage-fail-under)",
                    red=True,
                    bold=True,
                )
            else:
                terminalreporter.write_line(
                    f"Required rule coverage of {self.threshold}% reached.", green=True
                )


# --------------------------------------------------------------------------------------------
# Every test: predicates that returned something other than True or False
# --------------------------------------------------------------------------------------------


_DB_FIXTURES = frozenset(
    {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback"}
)


def _uses_database(item: pytest.Item) -> bool:
    names = set(getattr(item, "fixturenames", ()))
    return item.get_closest_marker("django_db") is not None or bool(names & _DB_FIXTURES)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Warn (``NonBoolPredicateWarning``) about each predicate that returned a non-bool; write
    the audit records the test made outside any recording scope when it ends."""
    from django.apps import apps

    if not apps.ready:
        return (yield)
    import warnings

    from .audit.recording import pending
    from .testing import NonBoolPredicateWarning, capture_non_bool_results

    # A test's records outside a scope are written when it reads the table or ends, never by
    # the background thread while another test counts its own.
    pending.timer = False
    uses_database = _uses_database(item)
    if uses_database:
        pending.flush()  # what the test's fixtures decided
    else:
        pending.discard()
    with capture_non_bool_results() as seen:
        try:
            return (yield)
        finally:
            if uses_database:
                pending.flush()
            else:
                pending.discard()
            for result in dict.fromkeys(seen):
                warnings.warn(NonBoolPredicateWarning(str(result)), stacklevel=1)


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


_spool_numbers = itertools.count(1)


@pytest.fixture(autouse=True)
def _clearance_audit_spool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A spool directory per test (created only if the test spools a record)."""
    from .audit import spool

    base = tmp_path_factory.getbasetemp() / "clearance-audit-spool"
    previous = spool.default_directory
    spool.default_directory = base / str(next(_spool_numbers))
    try:
        yield
    finally:
        spool.default_directory = previous


@pytest.fixture
def clearance_decisions() -> Iterator[DecisionLog]:
    """The decisions made during the test, in order (allowed and denied)."""
    from .testing import capture_decisions

    with capture_decisions() as log:
        yield log


@pytest.fixture
def clearance_registry() -> Iterator[Registry]:
    """The rule registry; whatever the test declares or changes is undone afterwards."""
    from .actions import registry

    state = registry.snapshot()
    try:
        yield registry
    finally:
        registry.restore(state)
