"""``{% load clearance %}``: the ``authorize`` tag, rendered in real requests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.template import Context, Template, TemplateSyntaxError
from django.test import Client

from tests.testapp.models import Document

pytestmark = pytest.mark.django_db

ClientFor = Callable[[User], Client]
Docs = dict[str, Document]


def test_template_shows_each_decision_and_nothing_of_other_tenants(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    page = client_for(member).get("/contrib/cards/").content.decode()
    assert "<li>Acme ledger [approve]</li>" in page
    assert (
        "<li>Acme draft [no: policy policy.submitted Only submitted documents can be approved.]"
        in page
    )
    assert "<li>Acme turbine [no: invariant invariant.within_limit" in page
    assert "Globex" not in page


def test_template_for_the_other_tenant(client_for: ClientFor, outsider: User, docs: Docs) -> None:
    page = client_for(outsider).get("/contrib/cards/").content.decode()
    assert page == "<li>Globex secret plan [approve]</li>"


def test_template_for_an_anonymous_visitor_shows_nothing(docs: Docs) -> None:
    assert Client().get("/contrib/cards/").content == b""


def test_tag_takes_the_user_from_the_auth_context_processor(member: User, docs: Docs) -> None:
    template = Template(
        "{% load clearance %}{% authorize 'testapp.approve' doc as d %}{{ d.allowed }} {{ d.code }}"
    )
    assert template.render(Context({"user": member, "doc": docs["a"]})) == "True allowed"
    assert template.render(Context({"user": AnonymousUser(), "doc": docs["a"]})) == (
        "False permission.testapp.approve_document"
    )


def test_tag_actor_argument_overrides_the_user(member: User, bob: User, docs: Docs) -> None:
    template = Template(
        "{% load clearance %}{% authorize 'testapp.approve' doc actor=other as d %}{{ d.code }}"
    )
    rendered = template.render(Context({"user": member, "other": bob, "doc": docs["a"]}))
    assert rendered == "policy.four_eyes"  # Bob owns the document; Mia could approve it


def test_tag_without_a_user_in_the_context_says_how_to_fix_it(docs: Docs) -> None:
    template = Template("{% load clearance %}{% authorize 'testapp.approve' doc as d %}")
    with pytest.raises(TemplateSyntaxError, match=r"context_processors\.request"):
        template.render(Context({"doc": docs["a"]}))


def test_can_attempt_asks_the_permission_gate_alone(member: User, reader: User) -> None:
    template = Template(
        "{% load clearance %}{% can_attempt 'testapp.approve' as may %}"
        "{% if may %}<a>Approve</a>{% endif %}"
    )
    assert template.render(Context({"user": member})) == "<a>Approve</a>"
    assert template.render(Context({"user": reader})) == ""  # holds no document permission
    assert template.render(Context({"user": AnonymousUser()})) == ""


def test_can_attempt_records_nothing_and_takes_an_actor(member: User, reader: User) -> None:
    from clearance.audit.models import AuditRecord

    before = AuditRecord.objects.count()
    template = Template(
        "{% load clearance %}{% can_attempt 'testapp.approve' actor=other as may %}{{ may }}"
    )
    assert template.render(Context({"user": member, "other": reader})) == "False"
    assert template.render(Context({"user": reader, "other": member})) == "True"
    assert AuditRecord.objects.count() == before
