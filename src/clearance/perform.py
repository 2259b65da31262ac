"""``perform()``: run an action atomically, on a locked row, with the rules re-checked.

A check-then-save is a race: two requests both read a submitted invoice, both pass the
"submitted" policy, and both approve it. ``perform`` closes the gap:

1. open ``transaction.atomic()`` on the object's write database;
2. re-read the row with ``select_for_update()``, so concurrent performers queue behind it;
3. run the three gates on that fresh, locked row (a denial means the body never runs);
4. hand the locked object to the body;
5. re-read the row and re-check the action's invariants and the model's invariants on the
   state the body left, before commit; any denial rolls everything back and raises.

The decision goes to the audit sinks with ``performed`` set: False for a denial or a body that
failed, True once the action's changes are handed to the transaction.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import perf_counter
from typing import Any, TypeVar, cast

from asgiref.sync import sync_to_async
from django.db import OperationalError, connections, models, router, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from .actions import Action, NamedRule, registry
from .decisions import Decision, Denied, Layer, TraceEntry, exception_for, undecided_reason
from .engine import actor_ref, decide, record, resolve, resource_ref, run_rule
from .invariants import acting, invariants_on, sync_guards
from .request_context import current_request
from .rules import Context, Where, freeze
from .rules.context import decision_now

__all__ = ["BUSY_CODE", "aperform", "perform", "performs"]

#: The code of a ``perform()`` refused because another transaction held SQLite's write lock.
BUSY_CODE = "perform.busy"

_BUSY_REASON = (
    "Another write held the database while this action waited for it, so the action was not "
    "performed. Try again."
)

_M = TypeVar("_M", bound=models.Model)
_R = TypeVar("_R")


#: Single-row statements compiled once and run again with another primary key, by shape.
_statements: dict[tuple[Any, ...], tuple[str, tuple[Any, ...]]] = {}
_MAX_STATEMENTS = 512


def _fetch_row(
    key: tuple[Any, ...],
    build: Callable[[], models.QuerySet[_M]],
    model: type[_M],
    using: str,
    pk: Any,
) -> _M | None:
    """The row ``pk`` as ``build()`` selects it, or None when it does not exist.

    Django compiles a query anew on every run; the statements ``perform`` runs twice per call
    differ only by the primary key, so they are compiled once per shape (``key``) and run as
    raw SQL through the model's manager, which converts the values as the ORM does. Models
    with a parent model or a non-integer primary key take the ORM's way every time.
    """
    manager = model._base_manager.db_manager(using)
    if model._meta.parents or not isinstance(pk, int) or isinstance(pk, bool):
        return next(iter(build()), None)
    entry = _statements.get(key)
    if entry is None:
        sql, params = build().query.get_compiler(using=using).as_sql()
        if not params or params[-1] != pk:
            return next(iter(build()), None)
        if len(_statements) >= _MAX_STATEMENTS:
            _statements.clear()
        entry = _statements[key] = (sql, tuple(params[:-1]))
    sql, prefix = entry
    rows = list(manager.raw(sql, [*prefix, pk]))
    return rows[0] if rows else None


def _lock(obj: _M, using: str, act: Action, ctx: Context) -> _M:
    """The object's row, re-read and locked until the transaction ends.

    The to-many lookups of the action's rules (``where(tenant__memberships__user=ACTOR)``) are
    answered in the same statement, on the same snapshot, and handed to the gates through the
    decision's memo, so that the gates ask the database nothing more.
    """
    model = type(obj)
    seeds: list[tuple[Any, Any]] = []
    for named in act.rules:
        for leaf in named.rule.leaves():
            if not isinstance(leaf, Where):
                continue
            try:
                groups = leaf.groups(model)
            except Exception:
                continue  # left to the gates, which fail closed and record the error
            for group in groups:
                try:
                    bound = group.bound(ctx)
                except Exception:
                    continue
                if bound is not None:
                    seeds.append((group, bound))
    frozen = tuple((group, freeze(bound)) for group, bound in seeds)

    def build() -> models.QuerySet[_M]:
        query = model._base_manager.db_manager(using).filter(pk=obj.pk)
        for i, (group, bound) in enumerate(seeds):
            inner = group.matching(bound).filter(
                **{group.anchor_field: OuterRef(group.prefix or "pk")}
            )
            query = query.annotate(**{f"_clearance_many_{i}": Exists(inner)})
        if connections[using].features.has_select_for_update_of and not model._meta.parents:
            return cast("models.QuerySet[_M]", query.select_for_update(of=("self",)))
        return cast("models.QuerySet[_M]", query.select_for_update())

    key = ("lock", model, using, act.name, registry.version, frozen)
    locked = _fetch_row(key, build, model, using, obj.pk)
    if locked is None:
        raise cast(Any, model).DoesNotExist(
            f"{model._meta.object_name} matching query does not exist."
        )
    for i, (group, bound) in enumerate(seeds):
        hit = bool(locked.__dict__.pop(f"_clearance_many_{i}"))
        anchor = group.anchor(locked)
        if anchor is not None:
            # The format of ``_ManyGroup.prefetch``: (anchors asked, anchors that matched).
            _remember(ctx, group, bound, anchor, hit)
    return locked


def _remember(ctx: Context, group: Any, bound: Any, anchor: Any, hit: bool) -> None:
    """Hand a to-many answer read in the locking statement to the gates."""
    group.remember(ctx, bound, frozenset({anchor}), frozenset({anchor}) if hit else frozenset())


def _take_sqlite_write_lock(obj: models.Model, using: str) -> None:
    """Take SQLite's write lock before reading the row (SQLite has no ``FOR UPDATE``).

    A transaction that reads first and writes later cannot wait for another writer (SQLite
    answers "database is locked" at once, to avoid a deadlock). Writing first makes concurrent
    performers queue behind each other, as ``select_for_update()`` does elsewhere: a statement
    that changes nothing, on the row itself.
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    meta = obj._meta
    column = quote(cast(Any, meta.pk).column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(meta.db_table)} SET {column} = {column} WHERE {column} = %s",
            [obj.pk],
        )


def _busy(act: Action, actor: Any, obj: Any, exc: OperationalError) -> Decision:
    """The denial of a ``perform()`` that could not take SQLite's write lock in time."""
    return Decision(
        allowed=False,
        action=act.name,
        actor=actor_ref(actor),
        resource=resource_ref(obj),
        layer=None,
        rule="busy",
        reason=_BUSY_REASON,
        code=BUSY_CODE,
        at=timezone.now(),
        fingerprint=act.fingerprint(),
        error=f"{type(exc).__name__}: {exc}",
        performed=False,
    )


def _is_lock_timeout(exc: OperationalError) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text


def _refuse_awaitable(result: Any, what: str) -> None:
    """Raise when a body returned something to await: it would run after the transaction."""
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()  # never run: nothing of it reaches the database
        raise TypeError(
            f"{what} returned {type(result).__name__}, an awaitable: it would run after the "
            "transaction, outside the lock and the re-check. The action was rolled back; pass a "
            "plain function that does its work before it returns."
        )


def _reread(obj: _M, using: str) -> _M | None:
    """The row as the body left it (None when the body deleted it)."""
    model = type(obj)

    def build() -> models.QuerySet[_M]:
        return cast("models.QuerySet[_M]", model._base_manager.db_manager(using).filter(pk=obj.pk))

    return _fetch_row(("row", model, using), build, model, using, obj.pk)


def _recheck(act: Action, ctx: Context) -> tuple[list[TraceEntry], NamedRule | None, str | None]:
    """Evaluate the action's and the model's invariants; (trace, first failing rule, error)."""
    rules: list[NamedRule] = [*act.invariants, *invariants_on(type(ctx.obj), "save")]
    trace: list[TraceEntry] = []
    for named in rules:
        start = perf_counter()
        held, error = run_rule(named, ctx)
        trace.append(
            TraceEntry(
                Layer.INVARIANT,
                named.name,
                held,
                undecided_reason(named.name, error) if error else named.reason,
                named.expression,
                perf_counter() - start,
                error,
            )
        )
        if not held:
            return trace, named, error
    return trace, None, None


@contextmanager
def perform(
    actor: Any,
    action: str | Action,
    obj: _M,
    *,
    request: Any = None,
    **extra: Any,
) -> Iterator[_M]:
    """Do ``action`` on ``obj`` atomically, on the locked row, with the rules re-checked.

    Yields the freshly locked object; change and save *that* object in the body::

        with perform(request.user, "invoices.approve", invoice) as locked:
            locked.state = "approved"
            locked.save()

    Raises the matching :class:`~clearance.Denied` when a gate denies (the body does not run)
    or when the state the body left breaks an invariant (everything is rolled back). An
    unsaved ``obj`` (a creation) is not locked: the gates run on it as given.
    """
    act = resolve(actor, action, obj)
    if request is None:
        request = current_request.get()
    sync_guards()
    using = router.db_for_write(type(obj), instance=obj)
    announced: Decision | None = None
    try:
        with transaction.atomic(using=using), acting(actor, act):
            ctx = Context(
                actor, act, obj, now=decision_now(extra), request=request, extra=extra, fresh=True
            )
            if obj.pk is not None and connections[using].vendor == "sqlite":
                _take_sqlite_write_lock(obj, using)
            target = _lock(obj, using, act, ctx) if obj.pk is not None else obj
            ctx.obj = target
            decision = decide(act, ctx, full=False)
            if not decision.allowed:
                raise exception_for(record(decision.replace(performed=False), request))
            try:
                yield target
            except Denied:
                # A guard inside the body refused a write and recorded its own decision.
                raise
            except BaseException:
                record(decision.replace(performed=False), request)
                raise
            after = _reread(target, using) if target.pk is not None else target
            trace = decision.trace
            if after is not None:
                # A context of its own: nothing the gates memoised before the body (to-many
                # answers read with the lock, predicates) stands for the state it left.
                fresh = Context(
                    actor, act, after, now=ctx.now, request=request, extra=extra, fresh=True
                )
                post, failed, error = _recheck(act, fresh)
                trace = (*trace, *post)
                if failed is not None:
                    denial = decision.replace(
                        allowed=False,
                        layer=Layer.INVARIANT,
                        rule=failed.name,
                        reason=(undecided_reason(failed.name, error) if error else failed.reason),
                        code=failed.code,
                        error=error,
                        trace=trace,
                        performed=False,
                    )
                    raise exception_for(record(denial, request))
            announced = record(decision.replace(trace=trace, performed=True), request)
            if not announced.allowed:
                # The audit could not record it and is configured to fail closed.
                raise exception_for(announced)
    except Exception as exc:
        if announced is not None and announced.allowed:
            # The commit itself failed: the action was not performed after all.
            record(
                announced.replace(performed=False, error=f"{type(exc).__name__}: {exc}"),
                request,
            )
        if isinstance(exc, OperationalError) and _is_lock_timeout(exc):
            # SQLite's single writer: another transaction held the database too long (taking
            # the lock first, in the body's writes, or at commit). Nothing was written.
            raise Denied(record(_busy(act, actor, obj, exc), request)) from exc
        raise


def performs(action: str | Action) -> Callable[[Callable[..., _R]], Callable[..., _R]]:
    """Decorate a service function ``fn(actor, obj, ...)`` to run it inside :func:`perform`.

    The function receives the locked object in place of ``obj``; a ``request=`` keyword is
    passed to ``perform`` (and on to the function if it takes one)::

        @performs("invoices.approve")
        def approve(user, invoice):
            invoice.state = "approved"
            invoice.save()

        approve(request.user, invoice)
    """

    def decorator(fn: Callable[..., _R]) -> Callable[..., _R]:
        if inspect.iscoroutinefunction(fn):
            raise TypeError(
                f"@performs cannot wrap the coroutine function {fn.__qualname__}: a database "
                "transaction cannot span awaits. Write the body as a plain function and call "
                "it with `await aperform(actor, action, obj, body)`."
            )
        takes_request = "request" in inspect.signature(fn).parameters

        @functools.wraps(fn)
        def wrapper(actor: Any, obj: Any, *args: Any, **kwargs: Any) -> _R:
            request = kwargs.get("request") if takes_request else kwargs.pop("request", None)
            with perform(actor, action, obj, request=request) as locked:
                result = fn(actor, locked, *args, **kwargs)
                _refuse_awaitable(result, fn.__qualname__)
                return result

        wrapper.action = action  # type: ignore[attr-defined]
        return wrapper

    return decorator


async def aperform(
    actor: Any,
    action: str | Action,
    obj: _M,
    body: Callable[[_M], _R],
    *,
    request: Any = None,
    **extra: Any,
) -> _R:
    """Async twin of :func:`perform`: run the synchronous ``body(locked)`` inside it.

    The whole transaction (lock, gates, body, re-check, commit) runs in one worker thread, as
    Django requires: a transaction cannot span awaits. Returns what ``body`` returns::

        await aperform(request.user, "invoices.approve", invoice, approve_locked)
    """
    if inspect.iscoroutinefunction(body) or inspect.iscoroutinefunction(
        getattr(body, "__call__", None)  # noqa: B004 (an object whose __call__ is async)
    ):
        raise TypeError(
            "aperform() runs the body inside a database transaction, which cannot span awaits: "
            "pass a plain function"
        )

    def run() -> _R:
        with perform(actor, action, obj, request=request, **extra) as locked:
            result = body(locked)
            _refuse_awaitable(result, "The body of aperform()")
            return result

    return await sync_to_async(run)()
