"""The admin mixin over HTTP: scoped changelist, hidden change pages, guarded bulk actions."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.testapp.models import Document

pytestmark = pytest.mark.django_db

ClientFor = Callable[[User], Client]
Docs = dict[str, Document]
CHANGELIST = "/contrib/admin/testapp/document/"


def page(response: object) -> str:
    return response.content.decode()  # type: ignore[attr-defined,no-any-return]


def run_action(client: Client, action: str, *docs: Document) -> str:
    response = client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [d.pk for d in docs], "index": 0},
        follow=True,
    )
    assert response.status_code == 200
    return page(response)


def test_changelist_shows_only_the_rows_authorized_gives(
    client_for: ClientFor, member: User, outsider: User, docs: Docs
) -> None:
    mine = page(client_for(member).get(CHANGELIST))
    assert "Acme ledger" in mine and "Acme turbine" in mine
    assert "Globex" not in mine
    theirs = page(client_for(outsider).get(CHANGELIST))
    assert "Globex secret plan" in theirs and "Acme" not in theirs


def test_change_page_of_a_hidden_object_reads_as_missing(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    client = client_for(member)
    response = client.get(f"{CHANGELIST}{docs['b'].pk}/change/", follow=True)
    assert response.redirect_chain[-1][0] == "/contrib/admin/"
    assert "doesn\u2019t exist" in page(response)
    assert "Globex secret plan" not in page(response)
    posted = client.post(
        f"{CHANGELIST}{docs['b'].pk}/change/",
        {"title": "Taken", "state": "draft", "amount": "1", "tenant": docs["b"].tenant_id},
    )
    assert posted.status_code == 302
    docs["b"].refresh_from_db()
    assert docs["b"].title == "Globex secret plan"


def test_change_page_of_a_visible_object_is_shown(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    response = client_for(member).get(f"{CHANGELIST}{docs['a'].pk}/change/")
    assert response.status_code == 200
    assert "Acme ledger" in page(response)


def test_change_page_is_read_only_when_the_change_action_denies(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    Document.objects.filter(pk=docs["a"].pk).update(state="approved")
    response = client_for(member).get(f"{CHANGELIST}{docs['a'].pk}/change/")
    assert response.status_code == 200
    assert 'name="_save"' not in page(response)  # view only: policy.not_approved


def test_saving_a_change_that_breaks_an_invariant_shows_an_error(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    a = docs["a"]
    response = client_for(member).post(
        f"{CHANGELIST}{a.pk}/change/",
        {"title": "Huge", "state": "submitted", "amount": "50000", "tenant": a.tenant_id},
        follow=True,
    )
    assert response.status_code == 200
    assert "Nothing was changed: Documents above 10,000 are refused." in page(response)
    a.refresh_from_db()
    assert (a.title, a.amount) == ("Acme ledger", Decimal("100"))


def test_saving_a_change_that_moves_the_object_away_is_refused(
    client_for: ClientFor, member: User, docs: Docs, other_tenant: object
) -> None:
    a = docs["a"]
    response = client_for(member).post(
        f"{CHANGELIST}{a.pk}/change/",
        {"title": "Moved", "state": "submitted", "amount": "100", "tenant": other_tenant.pk},  # type: ignore[attr-defined]
        follow=True,
    )
    assert "Only members of the tenant may change it." in page(response)
    a.refresh_from_db()
    assert a.tenant_id != other_tenant.pk  # type: ignore[attr-defined]


def test_guarded_bulk_action_refuses_the_whole_batch_with_reasons(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    text = run_action(client_for(member), "approve_selected", docs["a"], docs["big"])
    assert "Nothing was done: 1 of the selected objects may not be acted on." in text
    assert "Acme turbine: Documents above 10,000 can never be approved." in text
    assert set(Document.objects.values_list("state", flat=True)) == {"submitted", "draft"}


def test_guarded_bulk_action_runs_when_every_object_is_allowed(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    text = run_action(client_for(member), "approve_selected", docs["a"])
    assert "Approved 1 documents." in text
    docs["a"].refresh_from_db()
    assert docs["a"].state == "approved"


def test_bulk_action_that_would_break_an_invariant_changes_nothing(
    client_for: ClientFor, member: User, docs: Docs, make_doc: Callable[..., Document]
) -> None:
    bonus = make_doc(title="Acme bonus", amount=Decimal("6000"))
    text = run_action(client_for(member), "double_amount", docs["a"], bonus)
    assert "Nothing was changed: Documents above 10,000 are refused." in text
    assert "Doubled." not in text
    docs["a"].refresh_from_db()
    bonus.refresh_from_db()
    assert (docs["a"].amount, bonus.amount) == (Decimal("100"), Decimal("6000"))


def test_bulk_delete_is_guarded_by_the_delete_action(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    text = run_action(client_for(member), "delete_selected", docs["a"], docs["draft"])
    assert "Acme ledger: Only drafts can be deleted." in text
    assert Document.objects.filter(pk__in=[docs["a"].pk, docs["draft"].pk]).count() == 2


def test_actions_the_user_may_not_attempt_are_not_offered(
    client_for: ClientFor,
    make_user: Callable[..., User],
    tenant: object,
    editors: object,
    docs: Docs,
) -> None:
    viewer = make_user("vic", approver=False, tenants=(tenant,), is_staff=True)
    viewer.groups.add(editors)  # type: ignore[arg-type]
    text = page(client_for(viewer).get(CHANGELIST))
    assert "double_amount" in text
    assert "approve_selected" not in text


def test_a_hidden_object_cannot_be_acted_on_by_forging_the_selection(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    run_action(client_for(member), "approve_selected", docs["b"])
    docs["b"].refresh_from_db()
    assert docs["b"].state == "submitted"


def test_the_admin_passes_values_to_the_rules_as_ctx(
    rf: object, member: User, docs: Docs, document_actions: dict[str, object]
) -> None:
    from typing import Any

    from clearance import CTX, where
    from tests.contrib.admin_site import DocumentAdmin, site

    document_actions["change"].policy(  # type: ignore[attr-defined]
        "in_office", where(state=CTX.allowed_state), reason="Only in the office."
    )

    class OfficeAdmin(DocumentAdmin):
        def get_clearance_context(self, request: Any) -> dict[str, Any]:
            return {"allowed_state": "submitted"}

    request = rf.get("/")  # type: ignore[attr-defined]
    request.user = member
    assert OfficeAdmin(Document, site).has_change_permission(request, docs["a"])
    assert not DocumentAdmin(Document, site).has_change_permission(request, docs["a"])


def test_a_read_only_change_page_says_which_rule_made_it_read_only(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    Document.objects.filter(pk=docs["a"].pk).update(state="approved")
    response = client_for(member).get(f"{CHANGELIST}{docs['a'].pk}/change/")
    assert 'name="_save"' not in page(response)
    assert "Read only (policy.not_approved): Approved documents are final." in page(response)


def test_an_editable_change_page_says_nothing_of_read_only(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    response = client_for(member).get(f"{CHANGELIST}{docs['a'].pk}/change/")
    assert 'name="_save"' in page(response)
    assert "Read only" not in page(response)


def test_the_read_only_reason_of_a_user_without_the_permission(
    client_for: ClientFor, reader: User, docs: Docs
) -> None:
    from django.contrib.auth.models import Permission

    reader.user_permissions.add(
        Permission.objects.get(codename="view_document", content_type__app_label="testapp")
    )
    reader.is_staff = True
    reader.save()
    response = client_for(reader).get(f"{CHANGELIST}{docs['a'].pk}/change/")
    assert response.status_code == 200
    assert "Read only (permission.testapp.change_document): " in page(response)
