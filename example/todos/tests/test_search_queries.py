"""A resource search answers a page with one query for the filter's total and one for the page.

Both come from the same :func:`clearance.authorized` queryset; the page is a keyset slice
(``pk`` after the token's position), so a later page costs what the first one does.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from todos.models import Account

pytestmark = pytest.mark.django_db

ROWS = 300


@pytest.fixture
def many_accounts(spec_world):
    """ROWS accounts, every third one alice's, the others bob's."""
    alice, bob = spec_world["alice"], spec_world["bob"]
    Account.objects.bulk_create(Account(number=f"A{i:05d}") for i in range(ROWS))
    through = Account.holders.through
    links = [
        through(account_id=pk, user_id=(alice if i % 3 == 0 else bob).pk)
        for i, pk in enumerate(
            Account.objects.filter(number__startswith="A")
            .order_by("pk")
            .values_list("pk", flat=True)
        )
    ]
    through.objects.bulk_create(links)
    return Account.objects.filter(holders=alice).count()


def _search(post, page):
    return post(
        "search/resource",
        {
            "subject": {"type": "user", "id": "alice@example.com"},
            "action": {"name": "can_write"},
            "resource": {"type": "account"},
            "page": page,
        },
    )


def test_a_page_is_one_query_for_the_total_and_one_for_the_page(many_accounts, post):
    seen: list[str] = []
    page = {"limit": 25}
    pages = 0
    while True:
        with CaptureQueriesContext(connection) as captured:
            response = _search(post, page)
        body = response.json()
        assert response.status_code == 200
        on_accounts = [q["sql"] for q in captured.captured_queries if '"todos_account"' in q["sql"]]
        assert len(on_accounts) == 2, on_accounts
        assert "COUNT(" in on_accounts[0].upper()
        assert "LIMIT 26" in on_accounts[1].upper()
        # The rest: the caller's token, the subject, and the subject's permissions (gate 1).
        assert len(captured.captured_queries) == 6, [q["sql"] for q in captured.captured_queries]
        assert body["page"]["total"] == many_accounts
        seen += [item["id"] for item in body["results"]]
        pages += 1
        token = body["page"]["next_token"]
        if not token:
            break
        page = {"limit": 25, "token": token}
    assert len(seen) == len(set(seen)) == many_accounts
    assert pages == -(-many_accounts // 25)
    mine = set(
        Account.objects.filter(holders__email="alice@example.com").values_list("number", flat=True)
    )
    assert set(seen) == mine


def test_a_batch_about_one_subject_loads_it_once(spec_world, post):
    items = [{"resource": {"type": "account", "id": number}} for number in ("123", "456", "789")]
    body = {
        "subject": {"type": "user", "id": "alice@example.com"},
        "action": {"name": "can_read"},
        "evaluations": items * 10,
    }
    with CaptureQueriesContext(connection) as captured:
        response = post("evaluations", body)
    assert [item["decision"] for item in response.json()["evaluations"]] == [True] * 30
    on_users = [q for q in captured.captured_queries if 'FROM "auth_user"' in q["sql"]]
    on_permissions = [q for q in captured.captured_queries if '"auth_permission"' in q["sql"]]
    assert len(on_users) == 1
    assert len(on_permissions) == 2  # the user's own and their groups', once
