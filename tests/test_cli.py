"""``manage.py clearance``: golden output for the example, explain, and errors people can read.

The golden files in ``tests/golden/`` are the example project's ``actions`` and ``matrix``
output. After a deliberate change to the example's rules, regenerate them with::

    CLEARANCE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_cli.py -k golden

and review the diff like any other change to the rules.
"""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from clearance import authorize, where
from clearance.testing import override_rules

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("CLEARANCE_UPDATE_GOLDEN") == "1"

pytestmark = [
    pytest.mark.skipif(not apps.is_installed("invoices"), reason="the example is not installed"),
    pytest.mark.django_db(databases="__all__"),
]

GOLDEN_CASES = [
    ("actions.txt", ["actions"]),
    ("actions.md", ["actions", "--format", "markdown"]),
    ("actions.json", ["actions", "--format", "json"]),
    ("matrix.txt", ["matrix"]),
    ("matrix.md", ["matrix", "--format", "markdown"]),
    ("matrix.csv", ["matrix", "--format", "csv"]),
    ("matrix.json", ["matrix", "--format", "json"]),
]


def clearance(*args: str) -> str:
    out = io.StringIO()
    call_command("clearance", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def demo() -> None:
    call_command("seed_demo", stdout=io.StringIO())


def invoice_spec(number: str) -> str:
    from invoices.models import Invoice

    return f"invoices.Invoice:{Invoice.objects.get(number=number).pk}"


# -- golden files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("filename", "args"), GOLDEN_CASES, ids=[c[0] for c in GOLDEN_CASES])
def test_golden_output_of_the_example(demo: None, filename: str, args: list[str]) -> None:
    output = clearance(*args, "--app", "invoices")
    path = GOLDEN / filename
    if UPDATE:
        path.write_text(output, encoding="utf-8")
    assert path.exists(), f"missing {path}: run with CLEARANCE_UPDATE_GOLDEN=1"
    expected = path.read_text(encoding="utf-8")
    assert output == expected, (
        f"`manage.py clearance {' '.join(args)} --app invoices` differs from {path}. If the "
        "change to the rules is meant, regenerate: CLEARANCE_UPDATE_GOLDEN=1 "
        ".venv/bin/pytest tests/test_cli.py -k golden"
    )


def test_output_is_stable_across_runs(demo: None) -> None:
    for _filename, args in GOLDEN_CASES:
        assert clearance(*args) == clearance(*args)


def test_a_policy_added_in_a_test_changes_output_and_enforcement(demo: None) -> None:
    from invoices.models import Invoice

    alice = User.objects.get(username="alice")
    acme_002 = Invoice.objects.get(number="ACME-002")  # 980.00, submitted, owned by bob
    golden_actions = (GOLDEN / "actions.txt").read_text(encoding="utf-8")
    golden_matrix = (GOLDEN / "matrix.txt").read_text(encoding="utf-8")
    assert authorize(alice, "invoices.approve", acme_002).allowed

    with override_rules(
        "invoices.approve",
        policies={"small": where(amount__lte=500)},
        reasons={"small": "Only invoices up to 500 are approved here."},
    ):
        actions = clearance("actions", "--app", "invoices")
        matrix = clearance("matrix", "--app", "invoices")
        decision = authorize(alice, "invoices.approve", acme_002)

    assert "    small          where(amount__lte=500)\n" in actions
    assert "Only invoices up to 500 are approved here." in actions
    assert actions != golden_actions and matrix != golden_matrix
    (row,) = [line for line in matrix.splitlines() if line.startswith("invoices.approve ")]
    assert "tenant_member, four_eyes, submitted, small" in row
    assert (decision.allowed, decision.code) == (False, "policy.small")

    # Restored: the same registry prints and enforces the declared rules again.
    assert clearance("actions", "--app", "invoices") == golden_actions
    assert clearance("matrix", "--app", "invoices") == golden_matrix
    assert authorize(alice, "invoices.approve", acme_002).allowed


def test_matrix_reads_grants_from_the_database(demo: None) -> None:
    from django.contrib.auth.models import Group, Permission

    Group.objects.get(name="auditor").permissions.add(
        Permission.objects.get(codename="approve_invoice")
    )
    (row,) = [
        line.split(",")
        for line in clearance("matrix", "--format", "csv", "--app", "invoices").splitlines()
        if line.startswith("invoices.approve,")
    ]
    header = clearance("matrix", "--format", "csv", "--app", "invoices").splitlines()[0]
    assert dict(zip(header.split(","), row, strict=False))["auditor"] == "yes"


# -- explain --------------------------------------------------------------------------------------


def test_explain_an_allowed_decision(demo: None) -> None:
    from invoices.models import Membership

    spec = invoice_spec("ACME-003")
    output = clearance("explain", "carol", "invoices.approve", spec)
    # carol is an approver in Acme: gate 1 holds through that membership.
    membership = Membership.objects.get(user__username="carol", tenant__slug="acme")
    held = (
        f"Holds the permission invoices.approve_invoice through membership {membership.pk} of "
        f"tenant {membership.tenant_id} (role approver, group approver)."
    )
    rule = "has_perm('invoices.approve_invoice') or membership via tenant"
    assert output == textwrap.dedent(
        f"""\
        Actor:   carol
        Action:  invoices.approve (Approve a submitted invoice)
        Object:  {spec} (ACME-003 (Submitted))

        Gate 1, permission
          pass  invoices.approve_invoice  {rule}
                                          {held}
        Gate 2, policies
          pass  tenant_member             where(tenant__memberships__user=ACTOR)
          pass  four_eyes                 ~where(owner=ACTOR)
          pass  submitted                 where(state='submitted')
        Gate 3, invariants
          pass  within_limit              where(amount__lte=10000)
        Verdict: allowed
        """
    )


def test_explain_a_denied_decision_shows_every_rule(demo: None) -> None:
    from invoices.models import Membership

    spec = invoice_spec("ACME-003")  # alice's own invoice
    output = clearance("explain", "alice", "invoices.approve", spec)
    membership = Membership.objects.get(user__username="alice")
    assert output.splitlines()[4:] == [
        "Gate 1, permission",
        "  pass  invoices.approve_invoice  has_perm('invoices.approve_invoice') or membership via "
        "tenant",
        "                                  Holds the permission invoices.approve_invoice through "
        f"membership {membership.pk} of tenant {membership.tenant_id} (role approver, group "
        "approver).",
        "Gate 2, policies",
        "  pass  tenant_member             where(tenant__memberships__user=ACTOR)",
        "  deny  four_eyes                 ~where(owner=ACTOR)",
        "                                  Nobody approves their own invoice.",
        "  pass  submitted                 where(state='submitted')",
        "Gate 3, invariants",
        "  pass  within_limit              where(amount__lte=10000)",
        "Verdict: denied by policy.four_eyes: Nobody approves their own invoice.",
    ]
    # After a gate-1 denial every policy and invariant is still evaluated and shown.
    clerk = clearance("explain", "bob", "invoices.approve", invoice_spec("ACME-004"))
    marks = {
        line.split()[1]: line.split()[0]
        for line in clerk.splitlines()
        if line.split()[:1] in (["pass"], ["deny"])
    }
    assert marks == {
        "invoices.approve_invoice": "deny",
        "tenant_member": "pass",
        "four_eyes": "deny",  # bob owns ACME-004
        "submitted": "pass",
        "within_limit": "deny",  # 18,500
    }
    assert clerk.splitlines()[-1].startswith(
        "Verdict: denied by permission.invoices.approve_invoice:"
    )


def test_explain_records_no_decision(demo: None, clearance_decisions: list[object]) -> None:
    clearance("explain", "alice", "invoices.approve", invoice_spec("ACME-003"))
    assert clearance_decisions == []


def test_explain_is_plain_when_piped_and_coloured_when_forced(demo: None) -> None:
    spec = invoice_spec("ACME-003")
    plain = clearance("explain", "alice", "invoices.approve", spec)
    assert "\x1b[" not in plain
    coloured = clearance("explain", "alice", "invoices.approve", spec, "--force-color")
    assert "\x1b[" in coloured
    assert coloured.count("\x1b[") > plain.count("\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["zed", "invoices.approve", "X"], "No user with username 'zed'."),
        (["alice", "invoices.aprove", "X"], "No action named 'invoices.aprove' is declared."),
        (
            ["alice", "invoices.approve", "invoices.Invoice:999999"],
            "There is no invoices.Invoice with primary key '999999'.",
        ),
        (
            ["alice", "invoices.approve", "invoices.Invoic:1"],
            "no installed model 'invoices.Invoic'",
        ),
        (
            ["alice", "invoices.approve", "invoices.Invoice:abc"],
            "'abc' is not a primary key of invoices.Invoice.",
        ),
        (["alice", "invoices.approve", "invoices.Invoice:"], "write the primary key after"),
        (["alice", "invoices.approve", "invoices.Tenant:1"], "not invoices.Tenant"),
        (
            ["alice", "invoices.approve", "ACME-003"],
            "'ACME-003' is not a primary key of invoices.Invoice. (CLEARANCE['NATURAL_KEYS']",
        ),
        (["alice", "invoices.approve"], "acts on invoices.Invoice objects: name one"),
        (["alice", "invoices.approve", "invoices.Invoice:1\x00"], "not a primary key"),
        (["--pk", "alice", "invoices.view", "invoices.Invoice:1"], "not a valid pk for a user"),
    ],
)
def test_explain_refuses_unknown_input_clearly(demo: None, args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as info:
        clearance("explain", *args)
    assert message in str(info.value)


def test_explain_exits_non_zero_from_the_shell() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "manage.py", "clearance", "explain", "alice", "invoices.aprove"],
        cwd=ROOT / "example",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "CommandError: No action named 'invoices.aprove' is declared." in result.stderr
    assert "Did you mean 'invoices.approve'" in result.stderr


# A script run on a pseudo-terminal: settings of the test suite, databases in memory.
TTY_SCRIPT = """
import io, os, sys
sys.path.insert(0, {root!r})
import tests.settings as settings
settings.DATABASES["default"]["NAME"] = ":memory:"
settings.DATABASES["audit"]["NAME"] = ":memory:"
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
import django
django.setup()
from django.core.management import call_command
quiet = io.StringIO()
call_command("migrate", verbosity=0, stdout=quiet)
call_command("migrate", database="audit", verbosity=0, stdout=quiet)
call_command("seed_demo", stdout=quiet)
from invoices.models import Invoice
pk = Invoice.objects.get(number="ACME-003").pk
call_command("clearance", "explain", "alice", "invoices.approve", f"invoices.Invoice:{{pk}}")
"""


def test_explain_is_coloured_on_a_terminal() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_COLORS", "NO_COLOR")}
    env["TERM"] = "xterm"
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-c", TTY_SCRIPT.format(root=str(ROOT))],
        stdout=follower,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr.decode()
    output = b"".join(chunks).decode()
    assert "\x1b[" in output
    assert "four_eyes" in output and "Verdict: denied by policy.four_eyes" in output


# -- prune-audit ---------------------------------------------------------------------------------


def test_prune_audit_deletes_only_old_records(demo: None) -> None:
    import datetime as dt

    from django.utils import timezone

    from clearance.audit.connection import target_alias
    from clearance.audit.models import AuditRecord
    from invoices.models import Invoice

    # On PostgreSQL audit rows are written outside the test's transaction: others may exist.
    records = AuditRecord.objects.using(target_alias())
    before = set(records.values_list("pk", flat=True))
    alice = User.objects.get(username="alice")
    assert not authorize(alice, "invoices.approve", Invoice.objects.get(number="ACME-003"))
    (recent,) = records.exclude(pk__in=before)
    old_pks = []
    for days in (91, 400):
        old = AuditRecord.from_decision(recent.to_decision())
        old.at = timezone.now() - dt.timedelta(days=days)
        old.save(using=target_alias())
        old_pks.append(old.pk)
    oldest = min(records.filter(pk__in=old_pks).values_list("at", flat=True))
    dry = clearance("prune-audit", "--older-than", "90d", "--dry-run")
    assert dry.startswith(
        "Would delete 2 audit records older than 90d: 2 denied attempt(s), 0 allowed "
        f"attempt(s), 0 probe(s) (decided {oldest:%Y-%m-%d %H:%M} to "
    )
    assert dry.endswith("Nothing was deleted (--dry-run).\n")
    assert records.filter(pk__in=old_pks).count() == 2
    output = clearance("prune-audit", "--older-than", "90d")
    assert output.startswith(
        "Deleted 2 audit records older than 90d: 2 denied attempt(s), 0 allowed attempt(s), "
        f"0 probe(s) (decided {oldest:%Y-%m-%d %H:%M} to "
    )
    assert not records.filter(pk__in=old_pks).exists()
    assert records.filter(pk=recent.pk).exists()
    assert clearance("prune-audit", "--older-than", "90d") == (
        "Deleted 0 audit records older than 90d: 0 denied attempt(s), 0 allowed attempt(s), "
        "0 probe(s).\n"
    )


@pytest.mark.parametrize(
    ("age", "message"), [("3m", "Cannot read the age '3m'"), ("0d", "is zero")]
)
def test_prune_audit_refuses_an_unreadable_age(age: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        clearance("prune-audit", "--older-than", age)


# -- bad input of every subcommand: one line, no traceback ---------------------------------------


def run_manage(*args: str) -> subprocess.CompletedProcess[str]:
    """``manage.py clearance ARGS`` of the example project, from the shell."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "manage.py", "clearance", *args],
        cwd=ROOT / "example",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["prune-audit", "--older-than", "90d", "--database", "nosuchdb"],
            "No database alias 'nosuchdb' in settings.DATABASES; "
            "configured: 'default', 'audit', 'other'.",
        ),
        (["prune-audit", "--older-than", "90d", "--database", ""], "No database alias ''"),
        (["prune-audit", "--older-than", "99999999999999d"], "'99999999999999d' is too large"),
        (["audit-guard", "status", "--database", "nosuchdb"], "No database alias 'nosuchdb'"),
        (["audit-guard", "install", "--database", "nosuchdb"], "No database alias 'nosuchdb'"),
        (["replay", "--database", "nosuchdb"], "No database alias 'nosuchdb'"),
        (["replay", "--since", "99999999w"], "a time before the first year"),
        (["replay", "--since", "2026-13-45"], "Cannot read the time '2026-13-45'"),
        (["replay", "--examples", "-1"], "--examples -1: give 0 or more."),
        (
            ["replay", "--since", "2026-01-01", "--until", "2025-01-01"],
            "--since 2026-01-01 is not before --until 2025-01-01: no decision lies between them.",
        ),
        (["replay", "--since", "1d", "--until", "7d"], "--since 1d is not before --until 7d"),
        (["actions", "--app", "nosuchapp"], "No installed app 'nosuchapp'"),
        (["actions", "--app", "invoice"], "Did you mean 'invoices'?"),
        (["matrix", "--app", "nosuchapp"], "No installed app 'nosuchapp'"),
        (["actions", "--app", ""], "No installed app ''"),
        (["actions", "--bogus"], "unrecognized arguments: --bogus"),
        (["explain", "al\x00ice", "invoices.approve", "1"], "No user with username 'al\\x00ice'."),
        (["replay", "--actor", "a\x00b"], "--actor 'a\\x00b': a name holds no NUL character."),
        (["replay", "--action", "a\x00b"], "--action 'a\\x00b': a name holds no NUL character."),
        (["nosuchsubcommand"], "invalid choice: 'nosuchsubcommand'"),
    ],
)
def test_bad_input_is_one_clear_error(args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as info:
        clearance(*args)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("target", ["missing-dir/clearance.snapshot", "."])
def test_snapshot_to_a_path_that_cannot_be_written(tmp_path: Path, target: str) -> None:
    with pytest.raises(CommandError, match="Cannot write the snapshot"):
        clearance("snapshot", "--path", str(tmp_path / target))


def test_an_installed_app_without_actions_still_says_none_are_declared() -> None:
    assert clearance("actions", "--app", "sessions") == "No actions are declared.\n"
    assert clearance("matrix", "--app", "sessions") == "No actions are declared.\n"


def test_an_unknown_database_alias_exits_non_zero_without_a_traceback() -> None:
    result = run_manage("prune-audit", "--older-than", "90d", "--database", "nosuchdb")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "CommandError: No database alias 'nosuchdb' in settings.DATABASES; configured: "
        "'default', 'audit'."
    ]


def test_an_unknown_app_exits_non_zero_from_the_shell() -> None:
    result = run_manage("actions", "--app", "nosuchapp")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "CommandError: No installed app 'nosuchapp'" in result.stderr


# -- --help of every subcommand -------------------------------------------------------------------


def subcommand_parsers() -> dict[str, Any]:
    import argparse

    from clearance.management.commands.clearance import Command

    parser = Command().create_parser("manage.py", "clearance")
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_subcommand_has_a_description_and_examples_in_its_help() -> None:
    parsers = subcommand_parsers()
    assert set(parsers) == {
        "actions",
        "matrix",
        "explain",
        "prune-audit",
        "audit-guard",
        "audit-spool",
        "snapshot",
        "replay",
    }
    for name, parser in parsers.items():
        text = parser.format_help()
        _usage, _, rest = text.partition("\n\n")
        description = rest.split("\n\n")[0]
        assert not description.startswith(("positional arguments", "options")), (name, text)
        assert len(description.split()) >= 8, (name, description)
        examples = text.split("\nexamples:\n", 1)[1].splitlines()
        assert examples and all(
            line.startswith(f"  manage.py clearance {name}") for line in examples
        ), (name, examples)


def test_help_from_the_shell_keeps_the_examples_as_written() -> None:
    result = run_manage("explain", "--help")
    assert result.returncode == 0, result.stderr
    assert "exit status: 0 whatever the verdict, 1 for bad input; with --exit-code," in (
        result.stdout
    )
    assert (
        "\nexamples:\n  manage.py clearance explain alice invoices.approve invoices.Invoice:3\n"
        in result.stdout
    )


# -- explain --exit-code --------------------------------------------------------------------------


def test_explain_exit_code_says_allowed_or_denied(demo: None) -> None:
    spec = invoice_spec("ACME-003")
    assert "Verdict: allowed" in clearance(
        "explain", "carol", "invoices.approve", spec, "--exit-code"
    )
    out = io.StringIO()
    with pytest.raises(SystemExit) as info:
        call_command(
            "clearance", "explain", "alice", "invoices.approve", spec, "--exit-code", stdout=out
        )
    assert info.value.code == 1
    assert "Verdict: denied by policy.four_eyes" in out.getvalue()
    # Without --exit-code the status does not depend on the verdict.
    assert "Verdict: denied" in clearance("explain", "alice", "invoices.approve", spec)


def test_explain_exit_code_makes_bad_input_status_2(demo: None) -> None:
    with pytest.raises(CommandError) as info:
        clearance("explain", "zed", "invoices.approve", "1", "--exit-code")
    assert info.value.returncode == 2
    assert str(info.value) == "No user with username 'zed'."
    with pytest.raises(CommandError) as info:
        clearance("explain", "zed", "invoices.approve", "1")
    assert info.value.returncode == 1


# A shell run of manage.py: settings of the test suite, databases in memory, the demo data.
SHELL_SCRIPT = """
import io, os, sys
sys.path.insert(0, {root!r})
import tests.settings as settings
settings.DATABASES["default"]["NAME"] = ":memory:"
settings.DATABASES["audit"]["NAME"] = ":memory:"
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
import django
django.setup()
from django.core.management import call_command, ManagementUtility
quiet = io.StringIO()
call_command("migrate", verbosity=0, stdout=quiet)
call_command("migrate", database="audit", verbosity=0, stdout=quiet)
call_command("seed_demo", stdout=quiet)
from invoices.models import Invoice
pk = str(Invoice.objects.get(number="ACME-003").pk)
args = [a.replace("PK", pk) for a in {args!r}]
ManagementUtility(["manage.py", "clearance", *args]).execute()
"""


def run_seeded(*args: str) -> subprocess.CompletedProcess[str]:
    """``manage.py clearance ARGS`` on the demo data (``PK``: ACME-003's primary key)."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "-c", SHELL_SCRIPT.format(root=str(ROOT), args=list(args))],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_explain_exit_code_from_the_shell() -> None:
    allowed = run_seeded(
        "explain", "carol", "invoices.approve", "invoices.Invoice:PK", "--exit-code"
    )
    denied = run_seeded(
        "explain", "alice", "invoices.approve", "invoices.Invoice:PK", "--exit-code"
    )
    unknown = run_seeded("explain", "zed", "invoices.approve", "invoices.Invoice:PK", "--exit-code")
    assert (allowed.returncode, denied.returncode, unknown.returncode) == (0, 1, 2)
    assert "Verdict: allowed" in allowed.stdout
    assert "Verdict: denied by policy.four_eyes" in denied.stdout
    assert unknown.stdout == ""
    assert unknown.stderr.strip().splitlines()[-1] == "CommandError: No user with username 'zed'."
    for result in (allowed, denied, unknown):
        assert "Traceback" not in result.stderr


# -- explain: the object by primary key or natural key --------------------------------------------

NUMBERS = {"NATURAL_KEYS": {"invoices.Invoice": "number"}}


def invoice(number: str) -> Any:
    from invoices.models import Invoice

    return Invoice.objects.get(number=number)


def object_line(output: str) -> str:
    (line,) = [line for line in output.splitlines() if line.startswith("Object:")]
    return line


def test_explain_takes_a_bare_primary_key(demo: None) -> None:
    acme_003 = invoice("ACME-003")
    by_pk = clearance("explain", "alice", "invoices.approve", str(acme_003.pk))
    assert by_pk == clearance("explain", "alice", "invoices.approve", invoice_spec("ACME-003"))
    assert by_pk == clearance("explain", "alice", "invoices.approve", f"pk={acme_003.pk}")
    assert object_line(by_pk) == f"Object:  invoices.Invoice:{acme_003.pk} (ACME-003 (Submitted))"


def test_explain_takes_a_natural_key(demo: None, settings: Any) -> None:
    settings.CLEARANCE = NUMBERS
    acme_003 = invoice("ACME-003")
    output = clearance("explain", "carol", "invoices.approve", "ACME-003")
    assert object_line(output) == f"Object:  invoices.Invoice:{acme_003.pk} (ACME-003 (Submitted))"
    assert output.endswith("Verdict: allowed\n")
    assert output == clearance("explain", "carol", "invoices.approve", "number=ACME-003")
    # The primary key still works beside it.
    assert output == clearance("explain", "carol", "invoices.approve", str(acme_003.pk))


def test_explain_by_natural_key_explains_another_tenants_object(demo: None, settings: Any) -> None:
    """explain is the operator's tool: alice (Acme only) on a Globex invoice is explained, and
    denied by gate 1 (she holds no role in Globex) and the tenant rule, not reported missing."""
    settings.CLEARANCE = NUMBERS
    glx_002 = invoice("GLX-002")
    output = clearance("explain", "alice", "invoices.approve", "GLX-002")
    assert object_line(output) == f"Object:  invoices.Invoice:{glx_002.pk} (GLX-002 (Submitted))"
    assert "  deny  tenant_member" in output
    assert output.splitlines()[-1].startswith(
        "Verdict: denied by permission.invoices.approve_invoice"
    )


def test_a_number_two_tenants_share_is_an_error_listing_both(demo: None, settings: Any) -> None:
    from invoices.models import Invoice, Tenant

    settings.CLEARANCE = NUMBERS
    acme_003 = invoice("ACME-003")
    twin = Invoice.objects.create(
        tenant=Tenant.objects.get(slug="globex"), number="ACME-003", amount=5, state="submitted"
    )
    with pytest.raises(CommandError) as info:
        clearance("explain", "carol", "invoices.approve", "ACME-003")
    assert str(info.value) == (
        f"2 invoices.Invoice objects have number 'ACME-003' (invoices.Invoice:{acme_003.pk} "
        f"(ACME-003 (Submitted)), invoices.Invoice:{twin.pk} (ACME-003 (Submitted))): name one "
        f"by its primary key, e.g. pk={acme_003.pk}."
    )
    with pytest.raises(CommandError, match=r"2 invoices\.Invoice objects have number"):
        clearance("explain", "carol", "invoices.approve", "number=ACME-003")
    chosen = clearance("explain", "carol", "invoices.approve", f"pk={twin.pk}")
    assert object_line(chosen) == f"Object:  invoices.Invoice:{twin.pk} (ACME-003 (Submitted))"


def test_a_value_that_is_a_primary_key_and_another_objects_number_is_an_error(
    demo: None, settings: Any
) -> None:
    from invoices.models import Invoice, Tenant

    settings.CLEARANCE = NUMBERS
    acme_003 = invoice("ACME-003")
    value = str(acme_003.pk)
    other = Invoice.objects.create(
        tenant=Tenant.objects.get(slug="globex"), number=value, amount=5, state="submitted"
    )
    with pytest.raises(CommandError) as info:
        clearance("explain", "carol", "invoices.approve", value)
    assert str(info.value) == (
        f"'{value}' is the primary key of invoices.Invoice:{acme_003.pk} (ACME-003 (Submitted)) "
        f"and the number of invoices.Invoice:{other.pk} ({value} (Submitted)): write "
        f"pk={value} or number={value}."
    )
    by_pk = clearance("explain", "carol", "invoices.approve", f"pk={value}")
    by_number = clearance("explain", "carol", "invoices.approve", f"number={value}")
    labelled = clearance("explain", "carol", "invoices.approve", f"invoices.Invoice:{value}")
    assert object_line(by_pk) == object_line(labelled)
    assert f"invoices.Invoice:{acme_003.pk} (ACME-003" in object_line(by_pk)
    assert f"invoices.Invoice:{other.pk} ({value} (Submitted))" in object_line(by_number)
    # The same object by both: no ambiguity.
    Invoice.objects.filter(pk=other.pk).delete()
    acme_003.number = value
    acme_003.save()
    assert f"invoices.Invoice:{acme_003.pk}" in object_line(
        clearance("explain", "carol", "invoices.approve", value)
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("INV-9999", "There is no invoices.Invoice with primary key or number 'INV-9999'."),
        ("number=INV-9999", "There is no invoices.Invoice with number 'INV-9999'."),
        ("pk=INV-9999", "'INV-9999' is not a primary key of invoices.Invoice."),
        ("999999", "There is no invoices.Invoice with primary key or number '999999'."),
        # Only the primary key and the declared natural key are looked up, never another field.
        ("tenant__slug=acme", "There is no invoices.Invoice with primary key or number"),
        ("description=Office chairs", "There is no invoices.Invoice with primary key or number"),
        ("ACME-003\x00", "There is no invoices.Invoice with primary key or number"),
        ("' OR 1=1 --", "There is no invoices.Invoice with primary key or number"),
        ("ACME-%", "There is no invoices.Invoice with primary key or number 'ACME-%'."),
        ("acme-003" * 100, "There is no invoices.Invoice with primary key or number"),
        ("", "There is no invoices.Invoice with primary key or number ''."),
    ],
)
def test_explain_by_natural_key_refuses_what_names_no_object(
    demo: None, settings: Any, spec: str, message: str
) -> None:
    settings.CLEARANCE = NUMBERS
    with pytest.raises(CommandError) as info:
        clearance("explain", "alice", "invoices.approve", spec)
    assert message in str(info.value)


def test_the_natural_key_is_found_by_the_models_label_in_any_case(
    demo: None, settings: Any
) -> None:
    settings.CLEARANCE = {"NATURAL_KEYS": {"invoices.invoice": "number"}}
    output = clearance("explain", "carol", "invoices.approve", "ACME-003")
    assert "(ACME-003 (Submitted))" in object_line(output)
