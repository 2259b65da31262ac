"""Insecure direct object references: a user of tenant Acme can neither see nor change an
invoice of tenant Globex through any entry point, over real HTTP requests.

Each entry point is asked for a Globex invoice by users of Acme (Alice, an approver; Bob, a clerk;
and the superuser, a member of Acme only). Every answer must be a refusal and must carry none of
Globex's data; the invoice must be unchanged afterwards. The unguarded-view middleware runs in
strict mode, so each page must also have made an authorization decision.
"""

from collections.abc import Callable
from typing import Any

import django
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from clearance.contrib.guard import UnguardedView
from demo.settings import CLEARANCE as DEMO_CLEARANCE
from invoices.models import Invoice

pytestmark = [pytest.mark.django_db(databases="__all__"), pytest.mark.urls("demo.urls")]

ClientFor = Callable[[str], Client]
InvoiceGetter = Callable[[str], Invoice]

# What must never reach a user of Acme: Globex's name, its invoice numbers and descriptions.
GLOBEX_DATA = ["Globex", "GLX-00", "Warehouse shelving", "Cleaning supplies", "Forklift service"]


@pytest.fixture(autouse=True)
def strict_guard(settings: Any) -> None:
    """Every page in this suite must make an authorization decision."""
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "clearance.contrib.guard.UnguardedViewMiddleware"]
    settings.CLEARANCE = {
        **settings.CLEARANCE,
        "GUARD_STRICT": True,
        "GUARD_EXEMPT": DEMO_CLEARANCE["GUARD_EXEMPT"],
    }


@pytest.fixture
def api_for(demo: str) -> Callable[[str], APIClient]:
    def login(username: str) -> APIClient:
        client = APIClient()
        client.force_login(get_user_model().objects.get(username=username))
        return client

    return login


@pytest.fixture
def staff_for(client_for: ClientFor) -> ClientFor:
    """A client for a demo user made staff, so the admin is open to them."""

    def login(username: str) -> Client:
        get_user_model().objects.filter(username=username).update(is_staff=True)
        return client_for(username)

    return login


def assert_no_globex(response: Any) -> None:
    body = response.content.decode()
    leaked = [item for item in GLOBEX_DATA if item in body]
    assert not leaked, f"{response.request['PATH_INFO']} leaked {leaked}"


def snapshot(invoice: Invoice) -> tuple[Any, ...]:
    fresh = Invoice.objects.get(pk=invoice.pk)
    return (fresh.state, fresh.amount, fresh.description, fresh.tenant_id, fresh.approved_by_id)


# -- reading --------------------------------------------------------------------------------------

READ_PAGES = [
    ("the function view (detail page)", "/invoices/{pk}/"),
    ("the decorated function view (print page, a template with the tag)", "/invoices/{pk}/print/"),
    ("the async function view", "/invoices/{pk}/status.json"),
    ("the class-based edit view", "/invoices/{pk}/edit/"),
]


@pytest.mark.parametrize("username", ["alice", "bob", "admin"])
@pytest.mark.parametrize(("entry", "path"), READ_PAGES)
def test_pages_answer_not_found_for_another_tenants_invoice(
    client_for: ClientFor, invoice: InvoiceGetter, username: str, entry: str, path: str
) -> None:
    glx = invoice("GLX-001")  # a draft: the clerk's edit page would open for his own tenant
    response = client_for(username).get(path.format(pk=glx.pk))
    assert response.status_code == 404, entry
    assert_no_globex(response)


def test_hidden_looks_exactly_like_missing(client_for: ClientFor, invoice: InvoiceGetter) -> None:
    client = client_for("alice")
    hidden = client.get(f"/invoices/{invoice('GLX-002').pk}/print/")
    missing = client.get("/invoices/999999/print/")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.content == missing.content


@pytest.mark.parametrize(
    ("username", "path"),
    [
        ("alice", "/invoices/"),
        ("bob", "/invoices/"),
        ("admin", "/invoices/"),
        ("bob", "/invoices/drafts/"),
        ("admin", "/invoices/drafts/"),
    ],
)
def test_lists_and_their_templates_show_only_own_tenant(
    client_for: ClientFor, username: str, path: str
) -> None:
    response = client_for(username).get(path)
    assert response.status_code == 200
    assert "ACME-00" in response.content.decode()
    assert_no_globex(response)


def test_the_drafts_list_shows_what_the_clerk_may_edit(client_for: ClientFor) -> None:
    page = client_for("bob").get("/invoices/drafts/").content.decode()
    assert "ACME-001" in page and "ACME-008" in page  # the drafts of his tenant
    assert "ACME-002" not in page  # submitted: no longer editable


def test_the_drafts_list_refuses_a_role_that_edits_nothing(client_for: ClientFor) -> None:
    response = client_for("alice").get("/invoices/drafts/")
    assert response.status_code == 403  # approvers do not hold invoices.change_invoice
    assert "invoices.change_invoice" in response.content.decode()
    assert_no_globex(response)


def test_the_dave_of_globex_sees_nothing_of_acme(
    client_for: ClientFor, invoice: InvoiceGetter
) -> None:
    client = client_for("dave")
    assert client.get(f"/invoices/{invoice('ACME-001').pk}/print/").status_code == 404
    page = client.get("/invoices/drafts/").content.decode()
    assert "GLX-001" in page and "ACME" not in page


# -- changing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["bob", "admin"])
def test_the_class_based_edit_view_cannot_change_it(
    client_for: ClientFor, invoice: InvoiceGetter, username: str
) -> None:
    glx = invoice("GLX-001")
    before = snapshot(glx)
    response = client_for(username).post(
        f"/invoices/{glx.pk}/edit/", {"description": "Pwned", "amount": "1.00"}
    )
    assert response.status_code == 404
    assert_no_globex(response)
    assert snapshot(glx) == before


@pytest.mark.parametrize(
    ("username", "path"),
    [
        ("bob", "/invoices/{pk}/submit/"),
        ("alice", "/invoices/{pk}/approve/"),
        ("alice", "/invoices/{pk}/pay/"),
        ("admin", "/invoices/{pk}/approve/"),
    ],
)
def test_workflow_posts_cannot_change_it(
    client_for: ClientFor, invoice: InvoiceGetter, username: str, path: str
) -> None:
    glx = {"submit": "GLX-001", "approve": "GLX-002", "pay": "GLX-003"}[path.split("/")[3]]
    target = invoice(glx)
    before = snapshot(target)
    response = client_for(username).post(path.format(pk=target.pk))
    assert response.status_code == 404
    assert_no_globex(response)
    assert snapshot(target) == before


# -- the REST API ---------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["alice", "bob", "admin"])
def test_api_detail_is_not_found(
    api_for: Callable[[str], APIClient], invoice: InvoiceGetter, username: str
) -> None:
    response = api_for(username).get(f"/api/invoices/{invoice('GLX-002').pk}/")
    assert response.status_code == 404
    assert_no_globex(response)


@pytest.mark.parametrize("username", ["alice", "bob", "admin"])
@pytest.mark.parametrize("path", ["/api/invoices/", "/api/invoices/approvable/"])
def test_api_lists_exclude_it(
    api_for: Callable[[str], APIClient], username: str, path: str
) -> None:
    response = api_for(username).get(path)
    assert response.status_code in (200, 403)  # Bob may not approve anything: 403 with reason
    assert_no_globex(response)


def test_api_list_is_the_users_tenant(api_for: Callable[[str], APIClient]) -> None:
    numbers = [row["number"] for row in api_for("alice").get("/api/invoices/").json()]
    assert numbers and all(n.startswith("ACME-") for n in numbers)


@pytest.mark.parametrize("username", ["bob", "admin"])
def test_api_update_is_not_found(
    api_for: Callable[[str], APIClient], invoice: InvoiceGetter, username: str
) -> None:
    glx = invoice("GLX-001")
    before = snapshot(glx)
    client = api_for(username)
    for method in (client.patch, client.put):
        response = method(f"/api/invoices/{glx.pk}/", {"description": "Pwned", "amount": "1"})
        assert response.status_code == 404
        assert_no_globex(response)
    assert snapshot(glx) == before


@pytest.mark.parametrize(
    ("username", "action", "number"),
    [
        ("bob", "submit", "GLX-001"),
        ("alice", "approve", "GLX-002"),
        ("admin", "approve", "GLX-002"),
        ("alice", "pay", "GLX-003"),
    ],
)
def test_api_custom_actions_are_not_found(
    api_for: Callable[[str], APIClient],
    invoice: InvoiceGetter,
    username: str,
    action: str,
    number: str,
) -> None:
    target = invoice(number)
    before = snapshot(target)
    response = api_for(username).post(f"/api/invoices/{target.pk}/{action}/")
    assert response.status_code == 404
    assert_no_globex(response)
    assert snapshot(target) == before


# -- the admin ------------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["alice", "admin"])
def test_admin_changelist_lists_only_own_tenant(staff_for: ClientFor, username: str) -> None:
    response = staff_for(username).get("/admin/invoices/invoice/")
    assert response.status_code == 200
    assert "ACME-002" in response.content.decode()
    assert_no_globex(response)


@pytest.mark.parametrize("username", ["alice", "admin"])
def test_admin_search_finds_nothing_of_globex(staff_for: ClientFor, username: str) -> None:
    response = staff_for(username).get("/admin/invoices/invoice/?q=GLX")
    assert response.status_code == 200
    assert_no_globex(response)


@pytest.mark.parametrize("username", ["alice", "admin"])
def test_admin_change_page_reads_as_missing(
    staff_for: ClientFor, invoice: InvoiceGetter, username: str
) -> None:
    glx = invoice("GLX-001")
    before = snapshot(glx)
    client = staff_for(username)
    response = client.get(f"/admin/invoices/invoice/{glx.pk}/change/", follow=True)
    assert response.redirect_chain[-1][0] == "/admin/"
    assert "doesn\u2019t exist" in response.content.decode()
    assert_no_globex(response)
    posted = client.post(
        f"/admin/invoices/invoice/{glx.pk}/change/",
        {
            "tenant": glx.tenant_id,
            "number": "GLX-001",
            "description": "Pwned",
            "amount": "1",
            "state": "draft",
        },
    )
    # For the superuser the invoice does not exist (redirect, as for a missing one). Alice holds
    # no change permission at all: Django 5.2's admin refuses that first (403); Django 6 looks
    # the object up first and, not finding it, redirects as for a missing one.
    alice_status = 403 if django.VERSION < (6,) else 302
    assert posted.status_code == {"alice": alice_status, "admin": 302}[username]
    assert_no_globex(posted)
    assert snapshot(glx) == before


def test_admin_bulk_action_cannot_reach_it(staff_for: ClientFor, invoice: InvoiceGetter) -> None:
    glx = invoice("GLX-002")
    before = snapshot(glx)
    response = staff_for("admin").post(
        "/admin/invoices/invoice/",
        {"action": "approve_selected", "_selected_action": [glx.pk], "index": 0},
        follow=True,
    )
    assert_no_globex(response)
    assert snapshot(glx) == before


# -- visible but refused: 403 or 409, with the reason --------------------------------------------


def test_a_visible_invoice_refused_answers_403_with_the_reason(
    api_for: Callable[[str], APIClient], client_for: ClientFor, invoice: InvoiceGetter
) -> None:
    own = invoice("ACME-003")  # Alice's own invoice
    api = api_for("alice").post(f"/api/invoices/{own.pk}/approve/")
    assert api.status_code == 403
    assert api.json()["code"] == "policy.four_eyes"
    assert api.json()["reason"] == "Nobody approves their own invoice."
    page = client_for("alice").get(f"/invoices/{own.pk}/print/").content.decode()
    assert "You may not approve this invoice (policy): Nobody approves their own invoice." in page


def test_an_invariant_answers_409(
    api_for: Callable[[str], APIClient], invoice: InvoiceGetter
) -> None:
    big = invoice("ACME-004")
    response = api_for("admin").post(f"/api/invoices/{big.pk}/approve/")
    assert response.status_code == 409
    assert response.json()["layer"] == "invariant"
    assert invoice("ACME-004").state == "submitted"


# -- every HTTP method: an unsafe one is never decided as a read ----------------------------------


@pytest.mark.parametrize("method", ["delete", "put", "patch", "post"])
@pytest.mark.parametrize(
    ("entry", "path"),
    [
        ("the decorated function view (view action)", "/invoices/{pk}/print/"),
        ("the async function view (view action)", "/invoices/{pk}/status.json"),
    ],
)
def test_an_unsafe_method_on_a_read_only_view_is_not_allowed(
    client_for: ClientFor, invoice: InvoiceGetter, entry: str, path: str, method: str
) -> None:
    own = invoice("ACME-001")
    before = snapshot(own)
    response = getattr(client_for("bob"), method)(path.format(pk=own.pk))
    assert response.status_code == 405, entry
    assert "ACME-001" not in response.content.decode()
    assert snapshot(own) == before


def test_the_delete_view_refuses_delete_when_only_post_is_mapped(
    client_for: ClientFor, invoice: InvoiceGetter
) -> None:
    own = invoice("ACME-001")  # Bob's draft: he may view it, he may not delete invoices
    client = client_for("bob")
    refused = client.post(f"/invoices/{own.pk}/delete/", HTTP_ACCEPT="application/json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission.invoices.delete_invoice"
    for method in (client.delete, client.put, client.patch):
        response = method(f"/invoices/{own.pk}/delete/")
        assert response.status_code == 405
        assert response["Allow"] == "GET, POST, HEAD, OPTIONS"
    assert Invoice.objects.filter(pk=own.pk).exists()


@pytest.mark.parametrize(
    "path",
    [
        "/invoices/{pk}/",
        "/invoices/{pk}/print/",
        "/invoices/{pk}/status.json",
        "/invoices/{pk}/edit/",
        "/invoices/{pk}/delete/",
        "/api/invoices/{pk}/",
    ],
)
def test_head_and_options_reveal_nothing_of_another_tenant(
    client_for: ClientFor, invoice: InvoiceGetter, path: str
) -> None:
    glx = invoice("GLX-001")
    client = client_for("bob")
    head = client.head(path.format(pk=glx.pk))
    assert head.status_code == 404
    assert not head.content
    options = client.options(path.format(pk=glx.pk))
    assert options.status_code in (200, 404)
    assert_no_globex(options)
    assert snapshot(glx) == snapshot(invoice("GLX-001"))


# -- lookups by a field that is unique per tenant only --------------------------------------------


@pytest.fixture
def globex_twin(invoice: InvoiceGetter) -> Invoice:
    """Globex numbers an invoice ACME-001 too (numbers are unique per tenant only)."""
    glx = invoice("GLX-001")
    return Invoice.objects.create(
        tenant=glx.tenant,
        number="ACME-001",
        owner=glx.owner,
        amount=glx.amount,
        description="Warehouse shelving (twin)",
    )


BY_NUMBER = ["/invoices/number/{number}/", "/invoices/number/{number}/page/"]


@pytest.mark.parametrize("path", BY_NUMBER)
def test_a_number_another_tenant_also_uses_finds_your_own_invoice(
    client_for: ClientFor, globex_twin: Invoice, path: str
) -> None:
    response = client_for("bob").get(path.format(number="ACME-001"))
    assert response.status_code == 200
    assert "Acme" in response.content.decode()
    assert_no_globex(response)


@pytest.mark.parametrize("path", BY_NUMBER)
def test_a_number_only_another_tenant_uses_reads_as_missing(
    client_for: ClientFor, globex_twin: Invoice, path: str
) -> None:
    client = client_for("bob")
    theirs = client.get(path.format(number="GLX-002"))
    missing = client.get(path.format(number="NOPE-404"))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.content == missing.content
    # Several visible matches (Carol belongs to both tenants) are not found either: never a 500.
    several = client_for("carol").get(path.format(number="ACME-001"))
    assert several.status_code == 404
    assert several.content == client_for("carol").get(path.format(number="NOPE-404")).content


# -- a detail endpoint that never loads its object through the gates ------------------------------


@pytest.mark.urls("invoices.tests.variant_urls")
def test_a_detail_action_that_skips_get_object_is_reported_in_strict_mode(
    api_for: Callable[[str], APIClient], invoice: InvoiceGetter
) -> None:
    # ClearancePermission decided the permission gate (alice may view invoices), nothing about
    # the Globex invoice the endpoint then reads: strict mode must not count that as guarded.
    with pytest.raises(UnguardedView, match="without any decision about an object"):
        api_for("alice").get(f"/careless/invoices/{invoice('GLX-002').pk}/summary/")


# -- the REST API as the how-to writes it: another tenant's id in the payload -------------------

plain_api = pytest.mark.urls("invoices.tests.variant_urls")


@plain_api
def test_api_create_in_another_tenant_is_refused(
    api_for: Callable[[str], APIClient], invoice: InvoiceGetter
) -> None:
    globex = invoice("GLX-001").tenant
    before = Invoice.objects.filter(tenant=globex).count()
    response = api_for("bob").post(
        "/plain-api/invoices/",
        {"tenant": globex.pk, "number": "PWN-1", "amount": "1.00", "description": "Pwned"},
    )
    assert response.status_code == 403
    # Bob is a clerk in Acme only: no role of his grants add_invoice in Globex.
    assert response.json()["code"] == "permission.invoices.add_invoice"
    assert_no_globex(response)
    assert Invoice.objects.filter(tenant=globex).count() == before
    assert not Invoice.objects.filter(number="PWN-1").exists()


@plain_api
def test_api_create_in_the_users_own_tenant_is_allowed(
    api_for: Callable[[str], APIClient], invoice: InvoiceGetter
) -> None:
    acme = invoice("ACME-001").tenant
    response = api_for("bob").post(
        "/plain-api/invoices/", {"tenant": acme.pk, "number": "ACME-100", "amount": "10.00"}
    )
    assert response.status_code == 201
    assert Invoice.objects.get(number="ACME-100").tenant == acme


@plain_api
@pytest.mark.parametrize("method", ["patch", "put"])
def test_api_update_cannot_move_an_invoice_to_another_tenant(
    api_for: Callable[[str], APIClient], invoice: InvoiceGetter, method: str
) -> None:
    own = invoice("ACME-001")  # Bob's draft: he may change it
    globex = invoice("GLX-001").tenant
    before = snapshot(own)
    payload = {"tenant": globex.pk, "number": own.number, "amount": "120.00"}
    response = getattr(api_for("bob"), method)(f"/plain-api/invoices/{own.pk}/", payload)
    assert response.status_code == 403
    # Decided on the invoice as it would be saved: in Globex, where bob holds no role.
    assert response.json()["code"] == "permission.invoices.change_invoice"
    assert_no_globex(response)
    assert snapshot(own) == before


@plain_api
def test_api_update_that_stays_in_reach_is_allowed(
    api_for: Callable[[str], APIClient], invoice: InvoiceGetter
) -> None:
    own = invoice("ACME-001")
    response = api_for("bob").patch(f"/plain-api/invoices/{own.pk}/", {"description": "Desks"})
    assert response.status_code == 200
    assert invoice("ACME-001").description == "Desks"


@plain_api
def test_api_anonymous_create_is_not_authenticated(invoice: InvoiceGetter) -> None:
    acme = invoice("ACME-001").tenant
    response = APIClient().post(
        "/plain-api/invoices/", {"tenant": acme.pk, "number": "ANON-1", "amount": "1.00"}
    )
    assert response.status_code in (401, 403)
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert not Invoice.objects.filter(number="ANON-1").exists()


# -- the console, opened by a staff member of one tenant ------------------------------------------


@pytest.fixture
def globex_denial(user: Callable[[str], Any], invoice: InvoiceGetter) -> Any:
    """A recorded denial about a Globex invoice: Dave may not submit a submitted invoice."""
    import clearance
    from clearance.audit.models import AuditRecord

    glx = invoice("GLX-002")
    decision = clearance.authorize(user("dave"), "invoices.submit", glx)
    assert not decision
    return AuditRecord.objects.filter(resource_pk=str(glx.pk), action="invoices.submit").latest(
        "at"
    )


def test_the_console_offers_and_explains_only_the_staff_members_tenant(
    client_for: ClientFor, invoice: InvoiceGetter
) -> None:
    client = client_for("erin")  # an Acme auditor with the staff flag and the console's permission
    form = client.get("/clearance/explain/?action=invoices.view")
    assert form.status_code == 200
    assert "ACME-001" in form.content.decode()
    assert_no_globex(form)
    glx = invoice("GLX-002")
    hidden = client.get(f"/clearance/explain/?user=dave&action=invoices.view&object={glx.pk}")
    missing = client.get("/clearance/explain/?user=dave&action=invoices.view&object=999999")
    assert_no_globex(hidden)
    assert f"There is no invoices.Invoice with primary key &#x27;{glx.pk}&#x27;" in (
        hidden.content.decode()
    )
    assert "There is no invoices.Invoice with primary key &#x27;999999&#x27;" in (
        missing.content.decode()
    )


def test_the_console_audit_trail_shows_only_the_staff_members_tenant(
    client_for: ClientFor, globex_denial: Any
) -> None:
    client = client_for("erin")
    trail = client.get("/clearance/audit/?actor=dave&action=invoices.submit")
    assert trail.status_code == 200
    assert f"invoices.Invoice:{globex_denial.resource_pk}<" not in trail.content.decode()
    assert "Only draft invoices can be submitted." not in trail.content.decode()
    assert client.get(f"/clearance/audit/{globex_denial.pk}/").status_code == 404
    # Acme's own history is still there.
    assert "Nobody approves their own invoice." in client.get("/clearance/audit/").content.decode()


def test_the_console_needs_its_permission_not_only_the_staff_flag(
    staff_for: ClientFor,
) -> None:
    response = staff_for("alice").get("/clearance/audit/")  # staff, without the permission
    assert response.status_code == 403
    assert "Audit trail" not in response.content.decode()
