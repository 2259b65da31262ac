"""AuthZEN resource search: a page of the invoices a user may approve, on 100,000 invoices.

The world is the one of :mod:`benchmarks.filtering` (50 tenants, 40 users, the approver a
member of 10 tenants). Each row answers one page of 50 results with a total:

- *authorized(), by hand*: ``qs = authorized(user, "bench.approve", Invoice.objects.all())``,
  then ``qs.count()`` and the page ``qs.order_by("pk").values_list("pk", "number")[:51]``, with
  a warm user: the baseline, the same two queries the endpoint runs;
- *AuthZEN search, first page*: ``POST .../access/v1/search/resource`` through the view
  (request parsing, the caller's token, the subject looked up by username, gate 1, the two
  queries, the JSON answer);
- *AuthZEN search, last page*: the same with the ``page.token`` of the last page (a keyset
  page: ``pk`` after the token's position, so it costs what the first one does).

Each row is timed ``REPEATS`` times, interleaved, and the median is reported with its ratio to
the baseline. ``python -m benchmarks authzen`` runs it alone.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from . import env, harness
from .filtering import TENANTS, USER_TENANTS, build, grow

SIZE = 100_000
PAGE = 50
REPEATS = int(os.environ.get("CLEARANCE_BENCH_AUTHZEN_REPEATS", "11"))
ACTION = "bench.approve"


def _declare() -> None:
    from clearance.contrib import authzen
    from clearance.contrib.authzen.mapping import mapping

    from .benchapp.models import Invoice

    if "invoice" in mapping.resources:
        return
    authzen.subject("user", lookup="username")
    authzen.resource("invoice", Invoice, lookup="number", actions={"can_approve": ACTION})


def _post(view: Any, token: str, body: dict[str, Any]) -> dict[str, Any]:
    from django.test import RequestFactory

    request = RequestFactory().post(
        "/authzen/access/v1/search/resource",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    response = view(request)
    assert response.status_code == 200, response.content
    answer: dict[str, Any] = json.loads(response.content)
    return answer


def run() -> str:
    """Measure the three rows; returns the Markdown section."""
    env.setup()
    from django.contrib.auth import get_user_model

    from clearance import authorized
    from clearance.contrib.authzen.models import Caller
    from clearance.contrib.authzen.views import search_resource

    from .benchapp.models import Invoice

    _declare()
    world = build()
    grow(world, SIZE)
    _, token = Caller.issue("bench", ["user"])
    request = {
        "subject": {"type": "user", "id": world.approver.username},
        "action": {"name": "can_approve"},
        "resource": {"type": "invoice"},
        "page": {"limit": PAGE},
    }
    user = get_user_model().objects.get(pk=world.approver.pk)

    def by_hand() -> tuple[int, list[Any]]:
        qs = authorized(user, ACTION, Invoice.objects.all())
        return qs.count(), list(qs.order_by("pk").values_list("pk", "number")[: PAGE + 1])

    first = _post(search_resource, token, request)
    # Walk to the last page once, untimed, for its token.
    later = dict(request)
    answer = first
    while answer["page"]["next_token"]:
        later = {**request, "page": {"limit": PAGE, "token": answer["page"]["next_token"]}}
        answer = _post(search_resource, token, later)
    if answer is first or answer["page"]["next_token"] != "":
        raise AssertionError("the search has no last page to time")
    total, page = by_hand()
    if first["page"]["total"] != total or [r["id"] for r in first["results"]] != [
        number for _, number in page[:PAGE]
    ]:
        raise AssertionError("the endpoint's first page differs from authorized()'s")

    rows: list[tuple[str, Any]] = [
        ("authorized(), by hand (count + page)", by_hand),
        ("AuthZEN search, first page", lambda: _post(search_resource, token, request)),
        ("AuthZEN search, last page (token)", lambda: _post(search_resource, token, later)),
    ]
    samples = {name: harness.Samples() for name, _ in rows}
    for name, call in rows:
        call()  # warm
        with harness.count_queries() as counter:
            call()
        samples[name].queries = counter.count
    started = time.monotonic()
    for _ in range(REPEATS):
        for name, call in rows:
            samples[name].times.append(harness.time_batch(call, 1) / 1000)
    spent = time.monotonic() - started
    base = samples[rows[0][0]].median
    lines = [
        [
            name,
            harness.fmt(samples[name].median, 1),
            harness.fmt(samples[name].iqr, 1),
            str(samples[name].queries),
            f"{samples[name].median / base:.2f}x",
        ]
        for name, _ in rows
    ]
    return "\n".join(
        [
            "## AuthZEN",
            "",
            f"One page of {PAGE} invoices a user may approve, with the total, on {SIZE:,} "
            f"invoices ({env.vendor()}; the user is a member of {USER_TENANTS} of {TENANTS} "
            f"tenants; {total:,} approvable; median of {REPEATS} runs, {spent:.0f} s).",
            "",
            harness.table(
                ["request", "median ms", "IQR ms", "queries", "vs authorized()"],
                lines,
                align="lrrrr",
            ),
            "",
            "The endpoint runs the same two queries as the baseline (the total and the page); "
            "its other queries find the caller's token, the subject and the subject's "
            "permissions (gate 1), once per request.",
        ]
    )


if __name__ == "__main__":
    print(run())
