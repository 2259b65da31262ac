"""System checks: each one fires on a broken declaration and is silent on the example project."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.backends import ModelBackend
from django.core import checks
from django.core.checks import CheckMessage
from django.test import override_settings

from clearance import ACTOR, ANYONE, Action, authorize, model_invariant, predicate, where
from clearance.actions import attach, registry
from clearance.checks import check_authz_modules
from tests.testapp.models import Document, Note, Tenant

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example"
example_installed = pytest.mark.skipif(
    not apps.is_installed("invoices"), reason="the example app is not installed"
)

CLEARANCE_BACKEND = "clearance.backends.ClearanceBackend"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"

ALL_IDS = [
    "clearance.E001",
    "clearance.E002",
    "clearance.E003",
    "clearance.E004",
    "clearance.E005",
    "clearance.E006",
    "clearance.E020",
    "clearance.E021",
    "clearance.E101",
    "clearance.E102",
    "clearance.W001",
    "clearance.W002",
    "clearance.W003",
    "clearance.W004",
]


def run(app_labels: list[str] | None = None) -> list[CheckMessage]:
    """The clearance checks, as ``manage.py check --tag clearance [app_label ...]`` runs them."""
    configs = [apps.get_app_config(label) for label in app_labels] if app_labels else None
    return checks.run_checks(app_configs=configs, tags=["clearance"])


def by_id(messages: list[CheckMessage], check_id: str) -> list[CheckMessage]:
    return [m for m in messages if m.id == check_id]


class ObjectGrantingBackend(ModelBackend):
    """A backend that answers ``has_perm(perm, obj)`` on its own."""

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return obj is not None


# -- silent where nothing is wrong ----------------------------------------------------------------


@example_installed
@pytest.mark.parametrize("check_id", ALL_IDS)
def test_each_check_is_silent_on_the_example_project(check_id: str) -> None:
    assert by_id(run(["invoices"]), check_id) == []
    assert by_id(run(), check_id) == []


@example_installed
def test_manage_py_check_on_the_example_is_clean() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert result.stderr == ""


def test_the_checks_carry_the_clearance_tag() -> None:
    registered = checks.registry.registry.get_checks()
    ours = [c for c in registered if c.__module__ == "clearance.checks"]
    assert len(ours) == 8
    assert all("clearance" in c.tags for c in ours)


# -- E001: a permission no model declares ---------------------------------------------------------


def test_e001_permission_declared_by_no_model(fresh_registry: Any) -> None:
    Action("testapp.archive", model=Document, permission="testapp.archive_documnet")
    (error,) = by_id(run(), "clearance.E001")
    assert error.level == checks.ERROR
    assert "'testapp.archive'" in error.msg and "'testapp.archive_documnet'" in error.msg
    assert "no installed model declares" in error.msg
    assert error.hint is not None and "Did you mean" in error.hint


def test_e001_accepts_default_and_meta_permissions(fresh_registry: Any) -> None:
    Action("testapp.edit", model=Document, permission="testapp.change_document")
    Action("testapp.submit", model=Document, permission="testapp.submit_document")
    Action("testapp.open", model=Document, permission=ANYONE).policy("mine", where(owner=ACTOR))
    assert by_id(run(), "clearance.E001") == []


def test_e001_wrong_app_label(fresh_registry: Any) -> None:
    Action("testapp.edit", model=Document, permission="auth.change_document")
    (error,) = by_id(run(["testapp"]), "clearance.E001")
    assert "'auth.change_document'" in error.msg


# -- E002: the permission of another model --------------------------------------------------------


def test_e002_permission_of_another_model(fresh_registry: Any) -> None:
    Action("testapp.annotate", model=Note, permission="testapp.approve_document")
    (error,) = by_id(run(), "clearance.E002")
    assert "acts on testapp.Note" in error.msg
    assert "declared by testapp.Document" in error.msg
    assert error.hint is not None and "permission_model='testapp.Document'" in error.hint


def test_e002_is_silent_when_the_other_model_is_stated(fresh_registry: Any) -> None:
    Action(
        "testapp.annotate",
        model=Note,
        permission="testapp.approve_document",
        permission_model=Document,
    ).policy("any", where(text__isnull=False))
    assert by_id(run(), "clearance.E002") == []


def test_e002_a_wrong_statement_is_reported(fresh_registry: Any) -> None:
    Action(
        "testapp.annotate",
        model=Note,
        permission="testapp.approve_document",
        permission_model="testapp.Tenant",
    )
    (error,) = by_id(run(), "clearance.E002")
    assert "states that its permission" in error.msg and "testapp.Tenant" in error.msg


# -- E003: a where() lookup that does not resolve -------------------------------------------------


@pytest.mark.parametrize(
    ("lookups", "complaint"),
    [
        ({"titel": "x"}, "where(titel=...)"),
        ({"state__startswithh": "s"}, "Unsupported lookup 'startswithh'"),
        ({"tenant__memberships__usr": ACTOR}, "where(tenant__memberships__usr=...)"),
        ({"owner__usrname": ACTOR.username}, "where(owner__usrname=...)"),
        ({"amount__lte": 10}, None),
        ({"tenant__memberships__user": ACTOR}, None),
        ({"owner__username__iexact": ACTOR.username}, None),
        ({"title__lower": "x"}, "Unsupported lookup 'lower'"),
        ({"tenant__name__iexact": "acme"}, None),
    ],
)
def test_e003_lookup_that_does_not_resolve(
    fresh_registry: Any, lookups: dict[str, Any], complaint: str | None
) -> None:
    action = Action("testapp.probe", model=Document, permission="testapp.view_document")
    action.policy("probe", ~where(state="gone") & where(**lookups))
    errors = by_id(run(), "clearance.E003")
    if complaint is None:
        assert errors == []
    else:
        (error,) = errors
        assert error.msg.startswith("Action 'testapp.probe': policy 'probe' does not resolve on")
        assert complaint in error.msg
        assert error.hint is not None and "tests/test_checks.py:" in error.hint


def test_e003_where_on_an_action_without_a_model(fresh_registry: Any) -> None:
    Action("testapp.export", permission="testapp.view_document").policy("mine", where(owner=ACTOR))
    (error,) = by_id(run(), "clearance.E003")
    assert "acts on no model" in error.msg


def test_e003_model_invariant(fresh_registry: Any) -> None:
    model_invariant(Tenant, "named", ~where(nam=""), reason="A tenant has a name.")
    (error,) = by_id(run(), "clearance.E003")
    assert error.obj is Tenant and "where(nam=...)" in error.msg


# -- E004: duplicate rule names -------------------------------------------------------------------


def test_e004_duplicate_rule_names_in_one_action(fresh_registry: Any) -> None:
    action = Action("testapp.close", model=Document, permission="testapp.change_document")
    action.policy("open", ~where(state="closed"))
    action.invariant("open", where(amount__lte=5))
    (error,) = by_id(run(), "clearance.E004")
    assert "2 rules named 'open'" in error.msg
    assert error.hint is not None and "policy.open at" in error.hint
    assert "invariant.open at" in error.hint


def test_e004_duplicate_model_invariants(fresh_registry: Any) -> None:
    model_invariant(Note, "short", where(text__regex=r"^.{0,10}$"))
    model_invariant(Note, "short", ~where(text=""))
    (error,) = by_id(run(), "clearance.E004")
    assert error.obj is Note and "model invariants named 'short'" in error.msg


# -- E005: a rule attached to an unknown action ---------------------------------------------------


def test_e005_rule_attached_to_an_unknown_action(fresh_registry: Any) -> None:
    attach("testapp.aprove").policy("weekday", ~where(state="weekend"), reason="Not on weekends.")
    (error,) = by_id(run(), "clearance.E005")
    assert "'testapp.aprove'" in error.msg and "never enforced" in error.msg
    assert error.hint is not None and "Did you mean 'testapp.approve'" in error.hint


def test_attach_waits_for_the_action_and_then_enforces(
    fresh_registry: Any, alice: Any, bob: Any, make_doc: Any
) -> None:
    attach("testapp.later").invariant(
        "small", where(amount__lte=50), reason="Only small documents."
    )
    assert by_id(run(), "clearance.E005") != []
    later = Action("testapp.later", model=Document, permission="testapp.approve_document")
    later.policy("member", where(tenant__memberships__user=ACTOR))
    assert by_id(run(), "clearance.E005") == []
    assert [r.name for r in later.invariants] == ["small"]
    assert later.invariants[0].declared_at.startswith(__file__)
    decision = authorize(alice, "testapp.later", make_doc(owner=bob))
    assert (decision.code, decision.reason) == ("invariant.small", "Only small documents.")


def test_attach_to_a_declared_action_applies_at_once(fresh_registry: Any) -> None:
    attach("testapp.approve").policy("weekday", predicate(lambda ctx: True, uses_object=False))
    assert registry.get("testapp.approve").policies[-1].name == "weekday"


# -- E020, E021: scopes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"user_field": "member", "groups": "groups"}, "has no field 'member' (user_field)"),
        ({"user_field": "org", "groups": "groups"}, "not to the user model"),
        ({"scope_field": "user", "groups": "groups"}, "not to the scope model"),
        ({"scope_field": "nothing", "groups": "groups"}, "has no field 'nothing'"),
        ({"groups": "user"}, "is not a many-to-many to auth.Group"),
        ({"role": "ranking", "roles": {"a": ["A"]}}, "has no field 'ranking' (role)"),
        ({"role": "org", "roles": {"a": ["A"]}}, "is not a plain field"),
    ],
)
def test_e020_a_scope_that_does_not_fit_its_models(
    fresh_registry: Any, arguments: dict[str, Any], message: str
) -> None:
    from clearance import Scope
    from tests.testapp.models import Org, OrgMembership

    Scope("organization", model=Org, membership=OrgMembership, **arguments)
    (error,) = by_id(run(), "clearance.E020")
    assert error.msg.startswith("Scope 'organization': ") and message in error.msg
    assert error.hint is not None and __file__ in error.hint
    assert by_id(run(["testapp"]), "clearance.E020") == [error]
    assert by_id(run(["auth"]), "clearance.E020") == []


def test_e020_a_membership_with_several_keys_to_the_scope_model(fresh_registry: Any) -> None:
    from clearance import Scope
    from tests.testapp.models import Org, Project

    # Project has two foreign keys to Org: which one links it to its scope object?
    Scope("organization", model=Org, membership=Project, user_field="org", groups="members")
    messages = [e.msg for e in by_id(run(), "clearance.E020")]
    assert any("2 foreign keys to testapp.Org (org, partner); name one" in m for m in messages)


def test_e020_two_scopes_on_one_model_named_by_strings(fresh_registry: Any) -> None:
    from clearance import Scope

    Scope("organization", model="testapp.Org", membership="testapp.OrgMembership", groups="groups")
    Scope(
        "org_roles",
        model="testapp.Org",
        membership="testapp.OrgRole",
        role="role",
        roles={"a": ["A"]},
    )
    (error,) = by_id(run(), "clearance.E020")
    assert "'org_roles', 'organization' are all declared on testapp.Org" in error.msg


def test_e020_a_scope_model_that_is_not_installed(fresh_registry: Any) -> None:
    from clearance import Scope

    Scope("organization", model="testapp.Nowhere", membership="testapp.OrgMembership", groups="g")
    (error,) = by_id(run(), "clearance.E020")
    assert "Nowhere" in error.msg


@pytest.mark.parametrize(
    ("model_name", "path", "message"),
    [
        ("Project", "owner", "testapp.Project has no field 'owner'"),
        ("Project", "name", "testapp.Project.name is not a foreign key"),
        ("Project", "members", "to-many relation"),
        ("Project", "org__projects", "testapp.Org.projects is a to-many relation"),
        ("Task", "project", "ends at testapp.Project, which is not the model of a declared Scope"),
        ("Task", "pk", "testapp.Task is not the model of a declared Scope"),
        ("Org", "memberships", "to-many relation"),
    ],
)
def test_e021_a_scope_path_that_does_not_lead_to_a_scope(
    fresh_registry: Any, model_name: str, path: str, message: str
) -> None:
    from clearance import Scope
    from tests.testapp import models

    Scope("organization", model=models.Org, membership=models.OrgMembership, groups="groups")
    model = getattr(models, model_name)
    perm = f"testapp.change_{model_name.lower()}"
    Action("testapp.scoped", model=model, permission=perm, scope=path)
    Action(
        "testapp.fine", model=models.Task, permission="testapp.change_task", scope="project__org"
    )
    (error,) = by_id(run(), "clearance.E021")
    assert error.obj.name == "testapp.scoped" and message in error.msg, error.msg
    assert error.hint is not None and "organization on testapp.Org" in error.hint
    assert __file__ in error.hint


def test_e021_a_scoped_action_without_a_model(fresh_registry: Any) -> None:
    Action("testapp.report", permission="testapp.change_project", scope="org")
    (error,) = by_id(run(), "clearance.E021")
    assert "has scope=('org',) but no model" in error.msg


def test_e021_is_silent_on_good_paths(fresh_registry: Any) -> None:
    from clearance import Scope
    from tests.testapp.models import Org, OrgMembership, Project

    Scope("organization", model=Org, membership=OrgMembership, groups="groups")
    Action(
        "testapp.a", model=Project, permission="testapp.change_project", scope=("org", "partner")
    )
    Action("testapp.b", model=Org, permission="testapp.change_org", scope="pk")
    assert by_id(run(), "clearance.E021") == [] and by_id(run(), "clearance.E020") == []


# -- W001: an action with no policy ---------------------------------------------------------------


def test_w001_action_without_policy(fresh_registry: Any) -> None:
    Action("testapp.peek", model=Document, permission="testapp.view_document")
    Action("testapp.glance", model=Document, permission=ANYONE)
    warnings = by_id(run(), "clearance.W001")
    assert [w.obj.name for w in warnings] == ["testapp.glance", "testapp.peek"]
    assert all(w.level == checks.WARNING for w in warnings)
    assert "anonymous visitors included" in warnings[0].msg
    assert "whoever holds testapp.view_document" in warnings[1].msg


def test_w001_leaves_out_an_action_held_within_a_scope(fresh_registry: Any) -> None:
    # Its gate 1 already depends on the object (a membership of the object's organisation):
    # "whoever holds the permission may do it on any object" would be wrong.
    from clearance import Scope
    from tests.testapp.models import Org, OrgMembership, Project

    Scope("organization", model=Org, membership=OrgMembership, groups="groups")
    Action(
        "testapp.change_project", model=Project, permission="testapp.change_project", scope="org"
    )
    Action("testapp.peek", model=Document, permission="testapp.view_document")
    assert [w.obj.name for w in by_id(run(), "clearance.W001")] == ["testapp.peek"]


def test_w001_can_be_silenced(fresh_registry: Any) -> None:
    Action("testapp.peek", model=Document, permission="testapp.view_document")
    with override_settings(SILENCED_SYSTEM_CHECKS=["clearance.W001"]):
        messages = [m for m in run() if not m.is_silenced()]
    assert by_id(messages, "clearance.W001") == []


# -- W002: no authz module anywhere ---------------------------------------------------------------


def test_w002_no_app_has_an_authz_module() -> None:
    installed = ["django.contrib.auth", "django.contrib.contenttypes", "clearance"]
    with override_settings(INSTALLED_APPS=installed):
        (warning,) = check_authz_modules()
    assert warning.id == "clearance.W002"
    assert "no installed app has an authz module" in warning.msg
    assert check_authz_modules() == []


# -- W003: an invariant that fits a CHECK constraint but has none ---------------------------------


def test_w003_single_table_invariant_without_constraint(fresh_registry: Any) -> None:
    model_invariant(Document, "positive", where(amount__gte=0), reason="No negative amounts.")
    model_invariant(Document, "owned", ~where(owner=ACTOR))  # no SQL form without an actor
    (warning,) = by_id(run(), "clearance.W003")
    assert warning.obj is Document and warning.level == checks.WARNING
    assert "'positive' of testapp.Document fits a database CHECK constraint" in warning.msg
    assert warning.hint is not None and "invariant_constraint('positive'" in warning.hint
    assert by_id(run(["auth"]), "clearance.W003") == []


# -- E006 / W004: the backend order ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("backends", "expected"),
    [
        (
            ["guardian.backends.ObjectPermissionBackend", "clearance.backends.ClearanceBackend"],
            "clearance.E006",
        ),
        (
            [f"{__name__}.ObjectGrantingBackend", "clearance.backends.ClearanceBackend"],
            "clearance.W004",
        ),
        (
            ["django.contrib.auth.backends.ModelBackend", "clearance.backends.ClearanceBackend"],
            None,
        ),
        (
            ["clearance.backends.ClearanceBackend", "guardian.backends.ObjectPermissionBackend"],
            None,
        ),
        (["guardian.backends.ObjectPermissionBackend"], None),
    ],
)
def test_backend_order(backends: list[str], expected: str | None) -> None:
    with override_settings(AUTHENTICATION_BACKENDS=backends):
        messages = [m for m in run() if m.id in ("clearance.E006", "clearance.W004")]
    if expected is None:
        assert messages == []
    else:
        (message,) = messages
        assert message.id == expected
        assert backends[0] in message.msg
        assert (
            message.hint == f"Move clearance.backends.ClearanceBackend before {backends[0]}."
            or (
                message.hint is not None
                and "Move clearance.backends.ClearanceBackend first" in message.hint
            )
        )


# -- E101, E102: the CLEARANCE settings -----------------------------------------------------------

#: For every setting, values that must be refused when the project starts.
INVALID_SETTINGS: dict[str, list[Any]] = {
    "AUDIT_SINKS": ["clearance.audit.sinks.LoggingSink", [42]],
    "RECORD_ALLOWED": [2, -0.5, "yes", None],
    "RECORD_PROBES": [2, "no", None],
    "AUDIT_WRITE_THROUGH": ["yes", 1, None],
    "AUDIT_DATABASE": ["", 42],
    "AUDIT_FAIL_CLOSED": ["yes", 1, None],
    "AUDIT_BATCH_SIZE": [0, "10", True],
    "AUDIT_FLUSH_INTERVAL": [0, -1, "1", True],
    "AUDIT_LOCK_TIMEOUT": [0, -1, "1s", True],
    "AUDIT_STATEMENT_TIMEOUT": [0, "1s", True],
    "AUDIT_SPOOL": [3, ""],
    "AUDIT_CONNECTION": ["shared", None],
    "AUDIT_REQUEST_ID_HEADER": ["X Request ID", "X-Request-ID\n", 42],
    "AUDIT_REQUEST_ID_SET_BY_PROXY": ["true", 1],
    "RAISE_RULE_ERRORS": ["no", 0],
    "INVARIANT_STATUS": [200, 302, 600, "409", 409.0, True],
    "GUARD_STRICT": ["on", 1],
    "GUARD_EXEMPT": [r"^admin/", ["(unclosed"], [42]],
    "CONSOLE_SEES_ALL": ["all", 1],
    "SNAPSHOT_PATH": [3, ""],
    "REPLAY_REPORT_PATH": [3, ""],
    "CONSOLE_VIEW_ACTIONS": [
        ["invoices.Invoice"],
        {"testapp.Nothing": "testapp.approve"},
        {"testapp.Document": "testapp.nothing"},
        {"testapp.Note": "testapp.approve"},
    ],
    "NATURAL_KEYS": [
        ["testapp.Document"],
        {"testapp.Nothing": "title"},
        {"testapp.Document": "nosuchfield"},
        {"testapp.Document": 3},
        {"testapp.Document": "tenant"},
        {"testapp.Document": "pk"},
    ],
}


def setting_errors(**clearance: Any) -> list[CheckMessage]:
    with override_settings(CLEARANCE=clearance):
        return [m for m in run() if m.id in ("clearance.E101", "clearance.E102")]


def test_every_setting_is_validated() -> None:
    from clearance.conf import _VALIDATORS, DEFAULTS

    assert set(_VALIDATORS) == set(DEFAULTS) == set(INVALID_SETTINGS)


def test_the_defaults_are_valid() -> None:
    from clearance.conf import DEFAULTS

    assert setting_errors(**DEFAULTS) == []


@pytest.mark.parametrize("name", sorted(INVALID_SETTINGS))
def test_e102_an_invalid_value_of_each_setting(name: str) -> None:
    for value in INVALID_SETTINGS[name]:
        errors = setting_errors(**{name: value})
        assert [m.id for m in errors] == ["clearance.E102"], (name, value)
        assert f"CLEARANCE[{name!r}]" in errors[0].msg
        assert repr(value) in errors[0].msg


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RECORD_ALLOWED", 0.25),
        ("AUDIT_DATABASE", "audit"),
        ("AUDIT_REQUEST_ID_HEADER", None),
        ("AUDIT_REQUEST_ID_HEADER", ""),
        ("AUDIT_REQUEST_ID_HEADER", "X-Correlation-ID"),
        ("INVARIANT_STATUS", 422),
        ("GUARD_EXEMPT", (r"^$", r"^static/")),
        ("CONSOLE_VIEW_ACTIONS", {"testapp.Document": "testapp.read"}),
        ("NATURAL_KEYS", {"testapp.Document": "title", "testapp.Note": "text"}),
    ],
)
def test_valid_values_are_accepted(name: str, value: Any) -> None:
    assert setting_errors(**{name: value}) == []


def test_e101_unknown_setting_and_not_a_dict() -> None:
    [unknown] = setting_errors(INVARIANT_STATUSS=409)
    assert unknown.id == "clearance.E101"
    assert "'INVARIANT_STATUSS'" in unknown.msg
    with override_settings(CLEARANCE=["INVARIANT_STATUS", 409]):
        [error] = [m for m in run() if m.id == "clearance.E101"]
    assert "must be a dict" in error.msg


def test_manage_py_check_stops_on_an_invalid_invariant_status() -> None:
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    with (
        override_settings(CLEARANCE={"INVARIANT_STATUS": 200}),
        pytest.raises(SystemCheckError, match=r"clearance\.E102.*INVARIANT_STATUS"),
    ):
        call_command("check", tags=["clearance"])
