"""Hostile callers and hostile input: who may call, about whom, with what."""

import json
import uuid

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from rest_framework.authentication import BasicAuthentication

from clearance.audit.models import AuditRecord
from clearance.contrib.authzen.auth import DRFAuthentication
from clearance.contrib.authzen.models import Caller, hash_token

from .conftest import PREFIX

pytestmark = pytest.mark.django_db

ASK = {
    "subject": {"type": "user", "id": "alice@example.com"},
    "action": {"name": "can_read"},
    "resource": {"type": "account", "id": "123"},
}
BOTH = [
    "clearance.contrib.authzen.auth.BearerTokenAuthentication",
    "clearance.contrib.authzen.auth.SessionAuthentication",
]


# -- authentication of callers -------------------------------------------------------------------


def test_without_credentials_the_answer_is_401_with_a_challenge(spec_world, client):
    response = client.post(PREFIX + "evaluation", ASK, content_type="application/json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="authzen"'
    assert response.content == b"Authentication is required to call this endpoint."


@pytest.mark.parametrize("header", ["Bearer nope", "Bearer azc_" + "x" * 43, "Bearer "])
def test_a_wrong_token_is_401(spec_world, post, header):
    response = post("evaluation", ASK, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert "invalid_token" in response["WWW-Authenticate"]


def test_a_revoked_caller_is_401(spec_world, post):
    Caller.objects.filter(name="gateway").update(is_active=False)
    assert post("evaluation", ASK).status_code == 401


def test_tokens_are_stored_hashed(db):
    caller, token = Caller.issue("worker", ["user"])
    stored = Caller.objects.values_list("token_hash", flat=True).get(pk=caller.pk)
    assert stored == hash_token(token) and token not in stored
    assert Caller.for_token(token) == caller
    caller.set_token()
    caller.save()
    assert Caller.for_token(token) is None


def test_a_caller_asks_only_about_the_subject_types_it_was_given(spec_world, client):
    _, token = Caller.issue("jobs-only", ["job"])
    response = client.post(
        PREFIX + "evaluation",
        ASK,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 403
    assert response.content == b"This caller may not ask about this subject."


def test_a_signed_in_user_is_not_a_caller_unless_configured(spec_world, client):
    client.force_login(spec_world["alice"])
    assert (
        client.post(PREFIX + "evaluation", ASK, content_type="application/json").status_code == 401
    )


def _session(user, *, csrf: bool):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    headers = {}
    if csrf:
        client.get("/.well-known/authzen-configuration/authzen")  # any page; set the cookie
        from django.middleware.csrf import _get_new_csrf_string, _mask_cipher_secret

        secret = _get_new_csrf_string()
        client.cookies["csrftoken"] = secret
        headers["HTTP_X_CSRFTOKEN"] = _mask_cipher_secret(secret)
    return client, headers


def test_a_session_caller_needs_the_csrf_token(spec_world, settings):
    settings.CLEARANCE_AUTHZEN = {"AUTHENTICATION": BOTH}
    client, _ = _session(spec_world["alice"], csrf=False)
    response = client.post(PREFIX + "evaluation", ASK, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.content.decode()
    client, headers = _session(spec_world["alice"], csrf=True)
    response = client.post(PREFIX + "evaluation", ASK, content_type="application/json", **headers)
    assert response.status_code == 200
    assert response.json()["decision"] is True


def test_a_token_caller_needs_no_csrf_token(spec_world, token):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        PREFIX + "evaluation",
        ASK,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 200


def test_a_signed_in_user_asks_about_themselves_only(spec_world, settings):
    settings.CLEARANCE_AUTHZEN = {"AUTHENTICATION": BOTH}
    client, headers = _session(spec_world["alice"], csrf=True)

    def ask(subject_id):
        body = {**ASK, "subject": {"type": "user", "id": subject_id}}
        return client.post(PREFIX + "evaluation", body, content_type="application/json", **headers)

    assert ask("alice@example.com").status_code == 200
    foreign, unknown = ask("bob@example.com"), ask("nobody@example.com")
    assert (foreign.status_code, unknown.status_code) == (403, 403)
    assert foreign.content == unknown.content  # another user and nobody read the same
    found = client.post(
        PREFIX + "search/subject",
        {**ASK, "subject": {"type": "user"}},
        content_type="application/json",
        **headers,
    ).json()
    assert found["results"] == [{"type": "user", "id": "alice@example.com"}]


def test_a_user_with_the_permission_may_ask_about_anyone(spec_world, settings):
    settings.CLEARANCE_AUTHZEN = {"AUTHENTICATION": BOTH}
    alice = spec_world["alice"]
    alice.user_permissions.add(Permission.objects.get(codename="ask_about_anyone"))
    client, headers = _session(User.objects.get(pk=alice.pk), csrf=True)
    body = {**ASK, "subject": {"type": "user", "id": "bob@example.com"}}
    response = client.post(PREFIX + "evaluation", body, content_type="application/json", **headers)
    assert response.status_code == 200


def test_a_project_decides_who_may_ask_about_whom(spec_world, post, settings):
    settings.CLEARANCE_AUTHZEN = {"MAY_ASK": "todos.tests.test_hostile.only_bob"}
    assert post("evaluation", ASK).status_code == 403
    bob = {**ASK, "subject": {"type": "user", "id": "bob@example.com"}}
    assert post("evaluation", bob).status_code == 200


def only_bob(identity, subject_type, actor):
    return actor is not None and actor.email == "bob@example.com"


# -- methods, sizes ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete", "head", "options"])
def test_only_post_is_served(spec_world, client, token, method):
    response = getattr(client, method)(PREFIX + "evaluation", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_a_batch_larger_than_the_limit_is_400(spec_world, post, settings):
    settings.CLEARANCE_AUTHZEN = {"MAX_EVALUATIONS": 3}
    items = [{"resource": {"type": "account", "id": "123"}}] * 4
    body = {"subject": ASK["subject"], "action": ASK["action"], "evaluations": items}
    response = post("evaluations", body)
    assert response.status_code == 400
    assert response.content == b"At most 3 evaluations may be sent in one request."
    assert post("evaluations", {**body, "evaluations": items[:3]}).status_code == 200


def test_the_default_batch_limit_is_100(spec_world, post):
    items = [{"resource": {"type": "account", "id": "123"}}] * 101
    body = {"subject": ASK["subject"], "action": ASK["action"], "evaluations": items}
    assert post("evaluations", body).status_code == 400


def test_a_body_larger_than_the_limit_is_400(spec_world, post, settings):
    settings.CLEARANCE_AUTHZEN = {"MAX_BODY_BYTES": 1000}
    body = {**ASK, "context": {"padding": "x" * 2000}}
    response = post("evaluation", body)
    assert response.status_code == 400
    assert response.content == b"The request body is larger than 1000 bytes."


# -- objects: unknown versus foreign, state that would be written ----------------------------------


@pytest.mark.parametrize("action", ["can_read", "can_write"])
def test_an_unknown_account_and_a_foreign_one_read_the_same(spec_world, post, action):
    def ask(number):
        body = {**ASK, "action": {"name": action}, "resource": {"type": "account", "id": number}}
        response = post("evaluation", body)
        assert response.status_code == 200
        return response.json()

    foreign, unknown = ask("999"), ask("000")
    assert foreign == unknown
    assert foreign["decision"] is False
    assert foreign["context"]["error"]["status"] == 404


def test_a_foreign_account_is_not_found_by_any_search(spec_world, post):
    found = post(
        "search/resource",
        {
            "subject": ASK["subject"],
            "action": {"name": "can_write"},
            "resource": {"type": "account"},
        },
    ).json()
    assert {"type": "account", "id": "999"} not in found["results"]
    actions = post(
        "search/action",
        {"subject": ASK["subject"], "resource": {"type": "account", "id": "999"}},
    ).json()
    assert actions["results"] == []


def test_an_update_is_decided_on_the_state_it_would_write(spec_world, post):
    def edit(owner):
        resource = {"type": "document", "id": "boxcarring.md", "properties": {"owner": owner}}
        return post("evaluation", {**ASK, "action": {"name": "can_edit"}, "resource": resource})

    assert edit("alice@example.com").json()["decision"] is True
    moved = edit("bob@example.com").json()
    assert moved["decision"] is False
    assert moved["context"]["code"] == "policy.owner"


MORTY = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"


def _create(post, properties):
    return post(
        "evaluation",
        {
            "subject": {"type": "user", "id": MORTY},
            "action": {"name": "can_create_todo"},
            "resource": {"type": "todo", "id": "new", "properties": properties},
        },
    ).json()


def test_a_creation_for_someone_else_is_refused(scenario, post):
    assert _create(post, {})["decision"] is True
    assert _create(post, {"ownerID": "morty@the-citadel.com"})["decision"] is True
    foreign = _create(post, {"ownerID": "rick@the-citadel.com"})
    assert foreign["decision"] is False
    assert foreign["context"]["code"] == "policy.own_todo"
    assert _create(post, {"ownerID": "nobody@example.com"})["context"]["code"] == "not_found"


def test_a_property_of_the_wrong_kind_is_400(scenario, post):
    response = post(
        "evaluation",
        {
            "subject": {"type": "user", "id": MORTY},
            "action": {"name": "can_create_todo"},
            "resource": {"type": "todo", "id": "new", "properties": {"ownerID": {"id": 1}}},
        },
    )
    assert response.status_code == 400
    assert "resource.properties.ownerID must be a string" in response.content.decode()


# -- audit -----------------------------------------------------------------------------------------


def test_every_decision_is_recorded_with_its_caller(spec_world, post, settings):
    settings.CLEARANCE = {"RECORD_ALLOWED": True}
    request_id = uuid.uuid4().hex
    body = {
        "subject": ASK["subject"],
        "action": {"name": "can_edit"},
        "evaluations": [
            {"resource": {"type": "document", "id": "boxcarring.md"}},
            {"resource": {"type": "document", "id": "resource-search.md"}},
        ],
    }
    response = post("evaluations", body, HTTP_X_REQUEST_ID=request_id)
    assert [item["decision"] for item in response.json()["evaluations"]] == [True, False]
    records = AuditRecord.objects.filter(request_id=request_id).order_by("id")
    rows = [(r.action, r.allowed, r.code, r.caller, r.method, r.path) for r in records]
    path = PREFIX + "evaluations"
    assert rows == [
        ("todos.read_document", True, "allowed", "token:gateway", "POST", path),
        ("todos.edit_document", True, "allowed", "token:gateway", "POST", path),
        ("todos.read_document", True, "allowed", "token:gateway", "POST", path),
        ("todos.edit_document", False, "policy.owner", "token:gateway", "POST", path),
    ]
    assert records.last().actor_label == "alice"


def test_denials_are_recorded_by_default(spec_world, post):
    request_id = uuid.uuid4().hex
    body = {**ASK, "action": {"name": "can_edit"}, "resource": {"type": "document", "id": "3"}}
    assert post("evaluation", body, HTTP_X_REQUEST_ID=request_id).json()["decision"] is False
    record = AuditRecord.objects.get(request_id=request_id)
    assert (record.code, record.caller) == ("policy.owner", "token:gateway")


def test_the_reason_never_shows_an_exception(spec_world, post):
    body = json.dumps(
        {**ASK, "action": {"name": "can_edit"}, "resource": {"type": "document", "id": "3"}}
    )
    text = post("evaluation", body).content.decode()
    assert "Traceback" not in text and "where(" not in text


# -- Django REST framework's authentication ----------------------------------------------------


class BasicOnly(DRFAuthentication):
    authentication_classes = [BasicAuthentication]


def _basic(username, password):
    import base64

    pair = base64.b64encode(f"{username}:{password}".encode()).decode()
    return f"Basic {pair}"


def test_drf_authentication_makes_the_user_the_caller(spec_world, post, settings):
    settings.CLEARANCE_AUTHZEN = {"AUTHENTICATION": ["todos.tests.test_hostile.BasicOnly"]}
    alice = spec_world["alice"]
    alice.set_password("pw")
    alice.save()
    assert post("evaluation", ASK, HTTP_AUTHORIZATION=_basic("alice", "pw")).status_code == 200
    bob = {**ASK, "subject": {"type": "user", "id": "bob@example.com"}}
    assert post("evaluation", bob, HTTP_AUTHORIZATION=_basic("alice", "pw")).status_code == 403
    wrong = post("evaluation", ASK, HTTP_AUTHORIZATION=_basic("alice", "nope"))
    assert wrong.status_code == 401
    assert post("evaluation", ASK, HTTP_AUTHORIZATION="").status_code == 401


def test_decisions_are_attempts_unless_the_caller_says_it_probes(spec_world, post):
    body = {**ASK, "action": {"name": "can_edit"}, "resource": {"type": "document", "id": "3"}}
    attempt, probe = uuid.uuid4().hex, uuid.uuid4().hex
    assert post("evaluation", body, HTTP_X_REQUEST_ID=attempt).json()["decision"] is False
    record = AuditRecord.objects.get(request_id=attempt)
    assert (record.probe, record.code) == (False, "policy.owner")
    probing = {**body, "options": {"probe": True}}
    assert post("evaluation", probing, HTTP_X_REQUEST_ID=probe).json()["decision"] is False
    assert not AuditRecord.objects.filter(request_id=probe).exists()  # probes: not recorded


def test_an_id_that_names_two_rows_names_nobody(spec_world, post):
    # Emails are not unique: a second account with alice's email makes the id ambiguous.
    User.objects.create_user("alice-twin", email="alice@example.com")
    answer = post("evaluation", ASK).json()
    assert answer["decision"] is False
    assert answer["context"]["error"] == {"status": 404, "message": "The subject was not found."}
