"""The AuthZEN app against the library's own test models: mapping, checks, tenants, jobs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core import checks
from django.test import Client

from clearance import Action, SystemActor, predicate
from clearance.contrib import authzen
from clearance.contrib.authzen.mapping import mapping
from clearance.contrib.authzen.models import Caller
from tests.testapp.models import Document, Tenant

pytestmark = pytest.mark.django_db

URL = "/authzen/access/v1/evaluation"


@pytest.fixture
def declared(fresh_registry: Any) -> Iterator[None]:
    """A mapping of the test models (the creation action comes from the contrib fixtures);
    restored afterwards."""
    state = mapping.snapshot()
    authzen.subject("member", User, lookup="username")
    authzen.subject("job", actors={"nightly": SystemActor("nightly", ["testapp.approve_document"])})
    authzen.resource(
        "doc",
        Document,
        lookup="title",
        properties={"tenant": "tenant__name", "amount": "amount", "state": "state"},
        actions={"approve": "testapp.approve", "create": authzen.creation("testapp.create")},
    )
    try:
        yield
    finally:
        mapping.restore(state)


@pytest.fixture
def ask(client: Client, settings: Any) -> Callable[..., Any]:
    settings.ROOT_URLCONF = "tests.urls"  # the contrib tests' own URLconf has no AuthZEN
    _, token = Caller.issue("gateway", ["*"])

    def post(subject: dict[str, str], action: str, resource: dict[str, Any]) -> Any:
        body = {"subject": subject, "action": {"name": action}, "resource": resource}
        return client.post(
            URL,
            json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )

    return post


def test_a_creation_in_a_foreign_tenant_is_refused(
    declared: None, ask: Callable[..., Any], alice: User, tenant: Tenant, other_tenant: Tenant
) -> None:
    alice.user_permissions.add(
        Permission.objects.get(content_type__app_label="testapp", codename="add_document")
    )
    member = {"type": "member", "id": "alice"}

    def create(tenant_name: str) -> dict[str, Any]:
        resource = {"type": "doc", "id": "", "properties": {"tenant": tenant_name, "amount": "5"}}
        response = ask(member, "create", resource)
        assert response.status_code == 200
        return dict(response.json())

    assert create("Acme")["decision"] is True
    foreign = create("Globex")
    assert foreign["decision"] is False
    assert foreign["context"]["code"] == "policy.tenant_member"
    assert not Document.objects.exists()  # deciding a creation writes nothing


def test_a_system_actor_is_a_subject(
    declared: None, ask: Callable[..., Any], make_doc: Callable[..., Document], tenant: Tenant
) -> None:
    make_doc(title="q3", state="submitted")
    answer = ask({"type": "job", "id": "nightly"}, "approve", {"type": "doc", "id": "q3"}).json()
    # The job may approve but not view documents: the document is hidden from it.
    assert answer["decision"] is False
    assert answer["context"]["error"] == {"status": 404, "message": "The resource was not found."}
    unknown = ask({"type": "job", "id": "daily"}, "approve", {"type": "doc", "id": "q3"}).json()
    assert unknown["context"]["error"] == {"status": 404, "message": "The subject was not found."}


def test_a_bad_property_value_is_400(declared: None, ask: Callable[..., Any], alice: User) -> None:
    resource = {"type": "doc", "id": "", "properties": {"tenant": "Acme", "amount": "lots"}}
    response = ask({"type": "member", "id": "alice"}, "create", resource)
    assert response.status_code == 400
    assert "resource.properties.amount" in response.content.decode()


# -- system checks -------------------------------------------------------------------------------


def run() -> list[checks.CheckMessage]:
    return [
        m for m in checks.run_checks(tags=["clearance"]) if m.id.startswith("clearance_authzen")
    ]


def ids(messages: list[checks.CheckMessage]) -> list[str]:
    return sorted(m.id for m in messages)


def test_the_declared_mapping_is_clean() -> None:
    assert run() == []


def test_a_mapping_mistake_is_reported(fresh_registry: Any) -> None:
    state = mapping.snapshot()

    @predicate
    def reads_the_object(ctx: Any) -> bool:
        return bool(ctx.obj.title)

    slow = Action("testapp.slow", model=Document, permission="testapp.approve_document")
    slow.policy("python", reads_the_object)
    try:
        authzen.subject("someone", User, lookup="nickname")
        authzen.resource(
            "thing",
            Document,
            lookup="colour",
            properties={"who": "watchers", "where": "title__name", "x": "nothing"},
            actions={
                "nope": "testapp.nope",
                "other": "todos.view",
                "slow": "testapp.slow",
            },
        )
        found = run()
    finally:
        mapping.restore(state)
    assert ids(found) == [
        "clearance_authzen.E102",
        "clearance_authzen.E102",
        "clearance_authzen.E103",
        "clearance_authzen.E103",
        "clearance_authzen.E103",
        "clearance_authzen.E104",
        "clearance_authzen.E105",
        "clearance_authzen.W101",
    ]
    assert "testapp.nope" in " ".join(m.msg for m in found)


@pytest.mark.parametrize(
    "value",
    [
        {"COLOUR": 1},
        {"MAX_EVALUATIONS": 0},
        {"PAGE_SIZE": True},
        {"PAGE_SIZE": 10, "MAX_PAGE_SIZE": 5},
        {"AUTHENTICATION": "clearance.contrib.authzen.auth.BearerTokenAuthentication"},
        {"AUTHENTICATION": ["no.such.Authentication"]},
        {"MAY_ASK": 3},
        {"POLICY_DECISION_POINT": "http://pdp.example.com"},
        [],
    ],
)
def test_a_bad_setting_is_reported(settings: Any, value: Any) -> None:
    settings.CLEARANCE_AUTHZEN = value
    assert ids(run()) == ["clearance_authzen.E101"]


def test_the_command_issues_rotates_lists_and_revokes_tokens() -> None:
    import io

    from django.core.management import CommandError, call_command

    out = io.StringIO()
    call_command("authzen_caller", "issue", "gateway", "--subject-type", "user", stdout=out)
    first = out.getvalue().strip()
    caller = Caller.for_token(first)
    assert caller is not None and caller.subject_types == ["user"]
    out = io.StringIO()
    call_command("authzen_caller", "issue", "gateway", stdout=out)
    second = out.getvalue().strip()
    assert Caller.for_token(first) is None and Caller.for_token(second) == caller
    out = io.StringIO()
    call_command("authzen_caller", "list", stdout=out)
    assert out.getvalue() == "gateway\tactive\tuser\n"
    call_command("authzen_caller", "revoke", "gateway", stdout=io.StringIO())
    assert Caller.for_token(second) is None
    with pytest.raises(CommandError):
        call_command("authzen_caller", "revoke", "nobody", stdout=io.StringIO())
