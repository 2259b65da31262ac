"""``{% load clearance %}``: decisions in templates.

``{% authorize "invoices.approve" invoice as d %}`` puts the :class:`~clearance.Decision` in the
context as ``d``: ``{% if d %}`` is true only when the action is allowed, and ``{{ d.reason }}``,
``{{ d.layer }}`` and ``{{ d.code }}`` say why not. The actor is ``request.user`` (from the
``request`` context processor), or ``user`` (from the ``auth`` context processor). Keyword
arguments are passed to the rules as ``CTX.<name>``.

``{% can_attempt "invoices.change" as may_edit %}`` asks the permission gate alone (no object):
may the user attempt the action at all? It is what a list view scoped by the action
(``AuthorizedListMixin``) asks before answering 403, so a link to such a page can be shown only
to those it will not refuse.

The tag's decisions are probes (``probe=True``): they decide what to show, nobody tried to act,
so they are not recorded in the audit trail by default.

The tag decides; it does not hide data by itself. A template shows what the view gave it, so
scope querysets with ``authorized()`` in the view and use the tag for what to offer on the page.
"""

from __future__ import annotations

from typing import Any

from django import template

from .. import engine
from ..decisions import Decision

register = template.Library()


def _actor(context: template.Context) -> Any:
    request = context.get("request")
    actor = getattr(request, "user", None) if request is not None else None
    if actor is None:
        actor = context.get("user")
    if actor is None:
        raise template.TemplateSyntaxError(
            "{% authorize %} needs the user: add 'django.template.context_processors.request' "
            "(or 'django.contrib.auth.context_processors.auth') to the template's context "
            "processors, or pass actor=... to the tag"
        )
    return actor


@register.simple_tag(takes_context=True, name="authorize")
def authorize_tag(
    context: template.Context, action: str, obj: Any = None, **extra: Any
) -> Decision:
    """The decision for the current user doing ``action`` on ``obj``.

    ``{% authorize "invoices.approve" invoice as d %}``; ``actor=`` overrides the user.
    """
    actor = extra.pop("actor", None)
    if actor is None:
        actor = _actor(context)
    request = context.get("request")
    return engine.authorize(actor, action, obj, request=request, probe=True, **extra)


@register.simple_tag(takes_context=True, name="can_attempt")
def can_attempt_tag(context: template.Context, action: str, actor: Any = None) -> bool:
    """Whether the current user may attempt ``action`` at all: the permission gate alone.

    ``{% can_attempt "invoices.change" as may_edit %}``; ``actor=`` overrides the user. Nothing
    is recorded (nobody tried to act).
    """
    if actor is None:
        actor = _actor(context)
    return engine.can_attempt(actor, action)
