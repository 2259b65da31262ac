"""The AuthZEN "Todo" interop scenario's published decision table, through a real HTTP server.

The table is the one the interop's test harness runs for the 1.0 implementer's draft
(openid/authzen, ``interop/authzen-todo-backend/test/decisions-1.0-implementers-draft.json``),
transcribed row by row: subject, action, resource type and id, the todo owner the caller states
(``resource.properties.ownerID``), and the expected decision. Each row is posted, as the
harness does, to ``<pdp>/access/v1/evaluation`` with the caller's ``Authorization`` header.
"""

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from clearance.contrib.authzen.models import Caller
from todos.scenario import seed

pytestmark = pytest.mark.django_db(transaction=True)

PID = {
    "rick": "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
    "morty": "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
    "summer": "CiRmZDI2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
    "beth": "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
    "jerry": "CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
}
EMAIL = {
    "rick": "rick@the-citadel.com",
    "morty": "morty@the-citadel.com",
    "summer": "summer@the-smiths.com",
    "beth": "beth@the-smiths.com",
    "jerry": "jerry@the-smiths.com",
}
TODO = "7240d0db-8ff0-41ec-98b2-34a096273b9f"

# (subject, action, resource type, resource id, owner stated by the caller, expected)
TABLE = [
    ("rick", "can_read_user", "user", EMAIL["beth"], None, True),
    ("rick", "can_read_user", "user", EMAIL["rick"], None, True),
    ("rick", "can_read_todos", "todo", "todo-1", None, True),
    ("rick", "can_create_todo", "todo", "todo-1", None, True),
    ("rick", "can_update_todo", "todo", TODO, "rick", True),
    ("rick", "can_update_todo", "todo", TODO, "morty", True),
    ("rick", "can_delete_todo", "todo", TODO, "rick", True),
    ("rick", "can_delete_todo", "todo", TODO, "morty", True),
    ("morty", "can_read_user", "user", EMAIL["beth"], None, True),
    ("morty", "can_read_user", "user", EMAIL["morty"], None, True),
    ("morty", "can_read_todos", "todo", "todo-1", None, True),
    ("morty", "can_create_todo", "todo", "todo-1", None, True),
    ("morty", "can_update_todo", "todo", TODO, "rick", False),
    ("morty", "can_update_todo", "todo", TODO, "morty", True),
    ("morty", "can_delete_todo", "todo", TODO, "rick", False),
    ("morty", "can_delete_todo", "todo", TODO, "morty", True),
    ("summer", "can_read_user", "user", EMAIL["beth"], None, True),
    ("summer", "can_read_user", "user", EMAIL["summer"], None, True),
    ("summer", "can_read_todos", "todo", "todo-1", None, True),
    ("summer", "can_create_todo", "todo", "todo-1", None, True),
    ("summer", "can_update_todo", "todo", TODO, "rick", False),
    ("summer", "can_update_todo", "todo", TODO, "summer", True),
    ("summer", "can_delete_todo", "todo", TODO, "rick", False),
    ("summer", "can_delete_todo", "todo", TODO, "summer", True),
    ("beth", "can_read_user", "user", EMAIL["beth"], None, True),
    ("beth", "can_read_user", "user", EMAIL["beth"], None, True),
    ("beth", "can_read_todos", "todo", "todo-1", None, True),
    ("beth", "can_create_todo", "todo", "todo-1", None, False),
    ("beth", "can_update_todo", "todo", TODO, "rick", False),
    ("beth", "can_update_todo", "todo", TODO, "beth", False),
    ("beth", "can_delete_todo", "todo", TODO, "rick", False),
    ("beth", "can_delete_todo", "todo", TODO, "beth", False),
    ("jerry", "can_read_user", "user", EMAIL["beth"], None, True),
    ("jerry", "can_read_user", "user", EMAIL["jerry"], None, True),
    ("jerry", "can_read_todos", "todo", "todo-1", None, True),
    ("jerry", "can_create_todo", "todo", "todo-1", None, False),
    ("jerry", "can_update_todo", "todo", TODO, "rick", False),
    ("jerry", "can_update_todo", "todo", TODO, "jerry", False),
    ("jerry", "can_delete_todo", "todo", TODO, "rick", False),
    ("jerry", "can_delete_todo", "todo", TODO, "jerry", False),
]


def request_of(subject: str, action: str, kind: str, ident: str, owner: str | None) -> dict:
    resource: dict[str, Any] = {"type": kind, "id": ident}
    if owner is not None:
        resource["properties"] = {"ownerID": EMAIL[owner]}
    return {
        "subject": {"type": "user", "id": PID[subject]},
        "action": {"name": action},
        "resource": resource,
    }


@pytest.fixture
def pdp(live_server: Any) -> tuple[str, str]:
    """The scenario seeded and served; returns the PDP's URL and the backend's API key."""
    seed()
    _, token = Caller.issue("todo-backend", subject_types=["user"])
    return f"{live_server.url}/authzen", f"Bearer {token}"


def call(pdp: tuple[str, str], endpoint: str, body: dict) -> tuple[int, Any]:
    url, api_key = pdp
    request = urllib.request.Request(
        f"{url}/access/v1/{endpoint}",
        data=json.dumps(body).encode(),
        headers={"Authorization": api_key, "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_table_has_the_published_forty_rows():
    assert len(TABLE) == 40
    assert sum(1 for row in TABLE if row[-1]) == 26


def test_every_decision_of_the_published_table(pdp):
    failures = []
    for row in TABLE:
        status, body = call(pdp, "evaluation", request_of(*row[:-1]))
        decision = body.get("decision") if isinstance(body, dict) else None
        if status != 200 or decision is not row[-1]:
            failures.append((row, status, body))
    assert failures == []


def test_the_table_as_one_batch(pdp):
    items = [request_of(*row[:-1]) for row in TABLE]
    status, body = call(pdp, "evaluations", {"evaluations": items})
    assert status == 200
    assert [item["decision"] for item in body["evaluations"]] == [row[-1] for row in TABLE]


def test_the_scenario_evaluations_example(pdp):
    # The scenario's payload document: which todos may Morty complete?
    status, body = call(
        pdp,
        "evaluations",
        {
            "subject": {"type": "user", "id": PID["morty"]},
            "action": {"name": "can_update_todo"},
            "resource": {},
            "context": {},
            "evaluations": [
                {
                    "resource": {
                        "type": "todo",
                        "id": "7240d0db-8ff0-41ec-98b2-34a096273b9f",
                        "properties": {"ownerID": EMAIL["rick"]},
                    }
                },
                {
                    "resource": {
                        "type": "todo",
                        "id": "7240d0db-8ff0-41ec-98b2-34a096273b9e",
                        "properties": {"ownerID": EMAIL["morty"]},
                    }
                },
            ],
        },
    )
    assert status == 200
    assert [item["decision"] for item in body["evaluations"]] == [False, True]


def test_the_metadata_names_the_served_endpoints(pdp):
    url, _ = pdp
    host = url.rsplit("/authzen", 1)[0]
    with urllib.request.urlopen(f"{host}/.well-known/authzen-configuration/authzen") as response:
        document = json.loads(response.read())
    assert document["policy_decision_point"] == url
    assert document["access_evaluation_endpoint"] == f"{url}/access/v1/evaluation"
