"""The specification's error answers: a status and a plain message, never a 500 or an allow."""

import json

import pytest

pytestmark = pytest.mark.django_db

VALID = {
    "subject": {"type": "user", "id": "alice@example.com"},
    "action": {"name": "can_read"},
    "resource": {"type": "account", "id": "123"},
}


def without(key: str) -> dict:
    return {k: v for k, v in VALID.items() if k != key}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (without("subject"), "subject is required."),
        (without("action"), "action is required."),
        (without("resource"), "resource is required."),
        ({**VALID, "subject": {"id": "alice@example.com"}}, "subject.type is required."),
        ({**VALID, "subject": {"type": "user"}}, "subject.id is required."),
        ({**VALID, "action": {}}, "action.name is required."),
        ({**VALID, "resource": {"id": "123"}}, "resource.type is required."),
        ({**VALID, "resource": {"type": "account"}}, "resource.id is required."),
        ({**VALID, "subject": "alice"}, "subject must be an object."),
        ({**VALID, "action": {"name": 123}}, "action.name must be a string."),
        ({**VALID, "resource": {"type": "account", "id": 123}}, "resource.id must be a string."),
        ({**VALID, "context": []}, "context must be an object."),
        ({**VALID, "subject": {**VALID["subject"], "properties": 1}}, "subject.properties"),
        ([VALID], "The request body must be a JSON object."),
        ({**VALID, "subject": {"type": "robot", "id": "r2"}}, "No subject type 'robot'"),
        ({**VALID, "resource": {"type": "spaceship", "id": "1"}}, "No resource type"),
        ({**VALID, "action": {"name": "can_fly"}}, "'can_fly' is not declared for resources"),
    ],
)
def test_a_request_that_does_not_follow_the_specification_is_400(spec_world, post, body, message):
    response = post("evaluation", body)
    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert message in response.content.decode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", "not valid JSON"),
        ("", "The request body is empty"),
        ('{"subject": 1, "subject": 2}', "appears twice"),
        ('{"context": {"n": NaN}}', "NaN is not a JSON number"),
        ("[" * 100_000 + "]" * 100_000, "The request body"),
        (b"\xff\xfe{}", "not valid UTF-8"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_400(spec_world, post, data, message, settings):
    settings.CLEARANCE_AUTHZEN = {"MAX_BODY_BYTES": 1_000_000}
    response = post("evaluation", data)
    assert response.status_code == 400
    assert message in response.content.decode()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_json_by_its_content_type_is_400(spec_world, post, content_type):
    response = post("evaluation", json.dumps(VALID), content_type=content_type)
    assert response.status_code == 400
    assert "Content-Type must be application/json" in response.content.decode()


def test_a_charset_parameter_is_fine(spec_world, post):
    response = post("evaluation", VALID, content_type="application/json; charset=utf-8")
    assert response.status_code == 200


def test_unknown_fields_are_ignored(spec_world, post):
    response = post("evaluation", {**VALID, "foo": "bar", "futureField": {"nested": True}})
    assert response.status_code == 200
    assert response.json()["decision"] is True


@pytest.mark.parametrize(
    "options",
    [[], {"evaluations_semantic": "first_come"}],
)
def test_bad_batch_options_are_400(spec_world, post, options):
    body = {
        **without("resource"),
        "options": options,
        "evaluations": [{"resource": VALID["resource"]}],
    }
    assert post("evaluations", body).status_code == 400


def test_evaluations_must_be_an_array(spec_world, post):
    response = post("evaluations", {**VALID, "evaluations": {"1": VALID}})
    assert response.status_code == 400
    assert response.content.decode() == "evaluations must be an array."


@pytest.mark.parametrize("page", [[], {"limit": -1}, {"limit": "2"}, {"token": 7}])
def test_a_bad_page_is_400(spec_world, post, page):
    body = {**VALID, "resource": {"type": "account"}, "page": page}
    assert post("search/resource", body).status_code == 400


def test_the_request_id_is_echoed(spec_world, post):
    response = post("evaluation", VALID, HTTP_X_REQUEST_ID="bfe9eb29-ab87-4ca3-be83-a1d5d8305716")
    assert response["X-Request-ID"] == "bfe9eb29-ab87-4ca3-be83-a1d5d8305716"
    error = post("evaluation", without("subject"), HTTP_X_REQUEST_ID="req-7")
    assert (error.status_code, error["X-Request-ID"]) == (400, "req-7")


def test_an_unknown_subject_is_denied_as_not_found(spec_world, post):
    response = post(
        "evaluation", {**VALID, "subject": {"type": "user", "id": "nobody@example.com"}}
    )
    assert response.status_code == 200
    assert response.json() == {
        "decision": False,
        "context": {
            "code": "not_found",
            "error": {"status": 404, "message": "The subject was not found."},
            "reason_user": {"en-us": "The subject was not found."},
        },
    }
