"""The examples of the Authorization API 1.0 specification, posted to the endpoint.

The request bodies are the specification's own (evaluation, evaluations with and without
defaults, the three evaluation semantics, the searches and their pagination); the people and
objects they name are data of this app (``spec_world``). Each response is checked field by
field.
"""

from typing import Any

import pytest

from clearance.actions import registry

pytestmark = pytest.mark.django_db

ALICE = {"type": "user", "id": "alice@example.com"}


def fingerprint(action: str) -> str:
    return registry.get(action).fingerprint()


def allowed(action: str) -> dict[str, Any]:
    """The answer to an allowed evaluation of ``action``."""
    return {
        "decision": True,
        "context": {"action": action, "code": "allowed", "fingerprint": fingerprint(action)},
    }


NOT_FOUND = {
    "decision": False,
    "context": {
        "code": "not_found",
        "error": {"status": 404, "message": "The resource was not found."},
        "reason_user": {"en-us": "The resource was not found."},
    },
}


def test_access_evaluation_example(spec_world, post):
    response = post(
        "evaluation",
        {
            "subject": ALICE,
            "resource": {"type": "account", "id": "123"},
            "action": {"name": "can_read", "properties": {"method": "GET"}},
            "context": {"time": "1985-10-26T01:22-07:00"},
        },
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == allowed("todos.read_account")


def test_a_denial_carries_gate_rule_code_reasons_and_fingerprint(spec_world, post):
    response = post(
        "evaluation",
        {
            "subject": ALICE,
            "action": {"name": "can_edit"},
            "resource": {"type": "document", "id": "resource-search.md"},
        },
    )
    body = response.json()
    assert response.status_code == 200
    assert body["decision"] is False
    context = body["context"]
    assert set(context) == {
        "action",
        "code",
        "fingerprint",
        "gate",
        "rule",
        "reason_user",
        "reason_admin",
    }
    assert context["action"] == "todos.edit_document"
    assert context["code"] == "policy.owner"
    assert context["gate"] == "policy"
    assert context["rule"] == "owner"
    assert context["fingerprint"] == fingerprint("todos.edit_document")
    assert context["reason_user"] == {"en-us": "Only its owner may edit a document."}
    admin = context["reason_admin"]["en-us"]
    assert "policy.owner" in admin and fingerprint("todos.edit_document") in admin
    assert "where(" not in admin  # never the rule's expression


BOXCARRING = [
    {"resource": {"type": "document", "id": "boxcarring.md"}},
    {"resource": {"type": "document", "id": "subject-search.md"}},
    {"resource": {"type": "document", "id": "resource-search.md"}},
]


def test_evaluations_without_defaults(spec_world, post):
    context = {"time": "2024-05-31T15:22-07:00"}
    items = [
        {"subject": ALICE, "action": {"name": "can_read"}, **item, "context": context}
        for item in BOXCARRING
    ]
    response = post("evaluations", {"evaluations": items})
    assert response.status_code == 200
    read = allowed("todos.read_document")
    assert response.json() == {"evaluations": [read, NOT_FOUND, read]}


def test_evaluations_with_a_default_subject_and_context(spec_world, post):
    response = post(
        "evaluations",
        {
            "subject": ALICE,
            "context": {"time": "2024-05-31T15:22-07:00"},
            "evaluations": [{"action": {"name": "can_read"}, **item} for item in BOXCARRING],
        },
    )
    read = allowed("todos.read_document")
    assert response.json() == {"evaluations": [read, NOT_FOUND, read]}


def test_evaluations_with_a_default_action_overridden_by_the_third(spec_world, post):
    items = [dict(item) for item in BOXCARRING]
    items[2]["action"] = {"name": "can_edit"}
    response = post(
        "evaluations",
        {
            "subject": ALICE,
            "context": {"time": "2024-05-31T15:22-07:00"},
            "action": {"name": "can_read"},
            "evaluations": items,
        },
    )
    first, second, third = response.json()["evaluations"]
    assert first == allowed("todos.read_document")
    assert second == NOT_FOUND
    assert third["decision"] is False
    assert third["context"]["code"] == "policy.owner"
    assert third["context"]["action"] == "todos.edit_document"


def _semantic(post, semantic: str) -> list[dict[str, Any]]:
    response = post(
        "evaluations",
        {
            "subject": {"type": "user", "id": "alice@example.com"},
            "action": {"name": "read"},
            "options": {"evaluations_semantic": semantic},
            "evaluations": [
                {"resource": {"type": "document", "id": "1"}},
                {"resource": {"type": "document", "id": "2"}},
                {"resource": {"type": "document", "id": "3"}},
            ],
        },
    )
    assert response.status_code == 200
    return response.json()["evaluations"]


def test_execute_all(spec_world, post):
    read = allowed("todos.read_document")
    # Document 2 is bob's and hidden from alice: she is told what "not found" tells.
    assert _semantic(post, "execute_all") == [read, NOT_FOUND, read]


def test_deny_on_first_deny(spec_world, post):
    assert _semantic(post, "deny_on_first_deny") == [allowed("todos.read_document"), NOT_FOUND]


def test_permit_on_first_permit(spec_world, post):
    assert _semantic(post, "permit_on_first_permit") == [allowed("todos.read_document")]


def test_the_default_semantic_is_execute_all(spec_world, post):
    response = post(
        "evaluations",
        {
            "subject": ALICE,
            "action": {"name": "read"},
            "evaluations": [{"resource": {"type": "document", "id": name}} for name in "123"],
        },
    )
    assert [item["decision"] for item in response.json()["evaluations"]] == [True, False, True]


def test_evaluations_without_the_array_answer_a_single_evaluation(spec_world, post):
    body = {
        "subject": ALICE,
        "action": {"name": "can_read"},
        "resource": {"type": "account", "id": "123"},
    }
    assert post("evaluations", body).json() == allowed("todos.read_account")
    assert post("evaluations", {**body, "evaluations": []}).json() == allowed("todos.read_account")


def test_an_evaluation_error_is_a_denied_item(spec_world, post):
    response = post(
        "evaluations",
        {
            "subject": ALICE,
            "action": {"name": "can_read"},
            "evaluations": [{"resource": {"type": "account", "id": "123"}}, {}],
        },
    )
    assert response.status_code == 200
    assert response.json() == {
        "evaluations": [
            allowed("todos.read_account"),
            {
                "decision": False,
                "context": {"error": {"status": 400, "message": "resource is required."}},
            },
        ]
    }


def test_subject_search_example(spec_world, post):
    response = post(
        "search/subject",
        {
            "subject": {"type": "user"},
            "action": {"name": "can_read"},
            "resource": {"type": "account", "id": "123"},
            "context": {"time": "2024-10-26T01:22-07:00"},
        },
    )
    assert response.status_code == 200
    assert response.json() == {
        "page": {"next_token": "", "count": 2},
        "results": [
            {"type": "user", "id": "alice@example.com"},
            {"type": "user", "id": "bob@example.com"},
        ],
    }


def test_resource_search_example(spec_world, post):
    response = post(
        "search/resource",
        {"subject": ALICE, "action": {"name": "can_read"}, "resource": {"type": "account"}},
    )
    assert response.json() == {
        "page": {"next_token": "", "count": 3, "total": 3},
        "results": [
            {"type": "account", "id": "123"},
            {"type": "account", "id": "456"},
            {"type": "account", "id": "789"},
        ],
    }


def test_resource_search_pagination_example(spec_world, post):
    request = {
        "subject": ALICE,
        "action": {"name": "can_read"},
        "resource": {"type": "account"},
        "page": {"limit": 2},
    }
    first = post("search/resource", request).json()
    token = first["page"]["next_token"]
    assert token
    assert first == {
        "page": {"next_token": token, "count": 2, "total": 3},
        "results": [{"type": "account", "id": "123"}, {"type": "account", "id": "456"}],
    }
    second = post("search/resource", {**request, "page": {"limit": 2, "token": token}}).json()
    assert second == {
        "page": {"next_token": "", "count": 1, "total": 3},
        "results": [{"type": "account", "id": "789"}],
    }


def test_a_page_token_is_bound_to_its_request(spec_world, post):
    request = {
        "subject": ALICE,
        "action": {"name": "can_read"},
        "resource": {"type": "account"},
        "page": {"limit": 1},
    }
    token = post("search/resource", request).json()["page"]["next_token"]
    changed = {**request, "action": {"name": "can_write"}, "page": {"limit": 1, "token": token}}
    response = post("search/resource", changed)
    assert response.status_code == 400
    assert "belongs to another request" in response.content.decode()
    forged = post("search/resource", {**request, "page": {"token": token[:-2] + "xx"}})
    assert forged.status_code == 400


def test_action_search_example(spec_world, post):
    response = post(
        "search/action",
        {
            "subject": ALICE,
            "resource": {"type": "account", "id": "123"},
            "context": {"time": "2024-10-26T01:22-07:00"},
        },
    )
    assert response.json() == {
        "page": {"next_token": "", "count": 2},
        "results": [{"name": "can_read"}, {"name": "can_write"}],
    }


def test_search_for_an_unknown_type_or_subject_finds_nothing(spec_world, post):
    unknown_type = post(
        "search/subject",
        {
            "subject": {"type": "spaceship"},
            "action": {"name": "can_read"},
            "resource": {"type": "account", "id": "123"},
        },
    )
    assert unknown_type.status_code == 200
    assert unknown_type.json()["results"] == []
    assert "spaceship" in unknown_type.json()["context"]["error"]["message"]
    nobody = post(
        "search/action",
        {
            "subject": {"type": "user", "id": "nonexistent-user"},
            "resource": {"type": "account", "id": "123"},
        },
    )
    assert nobody.json()["results"] == []


def test_metadata(client):
    response = client.get("/.well-known/authzen-configuration/authzen")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    base = "http://testserver/authzen"
    assert response.json() == {
        "policy_decision_point": base,
        "access_evaluation_endpoint": f"{base}/access/v1/evaluation",
        "access_evaluations_endpoint": f"{base}/access/v1/evaluations",
        "search_subject_endpoint": f"{base}/access/v1/search/subject",
        "search_resource_endpoint": f"{base}/access/v1/search/resource",
        "search_action_endpoint": f"{base}/access/v1/search/action",
    }


def test_metadata_with_a_configured_identifier(client, settings):
    settings.CLEARANCE_AUTHZEN = {"POLICY_DECISION_POINT": "https://pdp.example.com/authzen"}
    body = client.get("/.well-known/authzen-configuration/authzen").json()
    assert body["policy_decision_point"] == "https://pdp.example.com/authzen"
    assert (
        body["search_action_endpoint"] == "https://pdp.example.com/authzen/access/v1/search/action"
    )
