"""A database-level guard for the audit table on PostgreSQL: no UPDATE, DELETE only to prune.

The ORM refuses every rewrite of an audit record (see :mod:`clearance.audit.models`), but SQL
written by hand, a database console or another application reaches the table directly. On
PostgreSQL, :func:`install` adds triggers to the ``clearance_auditrecord`` table that refuse

* every ``UPDATE``;
* every ``DELETE``, except inside :func:`clearance.audit.retention.prune`, which marks its own
  transaction with ``SET LOCAL clearance.pruning = 'on'`` (a transaction-local setting that
  ends with the transaction);
* ``TRUNCATE``.

Install it with ``manage.py clearance audit-guard install`` (``remove`` takes it away,
``status`` says whether it is there); add ``--database`` for the audit alias when it is not
the default. The guard stops mistakes and code paths the ORM does not see; a role that can
change the table's triggers, or that sets ``clearance.pruning`` itself, can still get past it.
For a trail the application itself cannot rewrite, also give the application's role
``INSERT`` and ``SELECT`` only (``REVOKE UPDATE, DELETE, TRUNCATE ON clearance_auditrecord
FROM app_role``) and prune with another role.

Django's ``flush`` (and so ``TransactionTestCase``) truncates every table: remove the guard
from a database before flushing it.
"""

from __future__ import annotations

from django.db import connections

__all__ = ["PRUNING_SETTING", "install", "installed", "remove"]

#: The transaction-local PostgreSQL setting :func:`clearance.audit.retention.prune` turns on.
PRUNING_SETTING = "clearance.pruning"

_FUNCTION = "clearance_audit_refuse_rewrite"
_ROW_TRIGGER = "clearance_audit_append_only"
_TRUNCATE_TRIGGER = "clearance_audit_no_truncate"


def _table() -> str:
    from .models import AuditRecord

    return AuditRecord._meta.db_table


def _require_postgresql(using: str) -> None:
    vendor = connections[using].vendor
    if vendor != "postgresql":
        raise NotImplementedError(
            f"The audit guard is a PostgreSQL trigger; database {using!r} is {vendor}."
        )


def install(using: str = "default") -> None:
    """Create (or replace) the guard's function and triggers on database ``using``."""
    _require_postgresql(using)
    conn = connections[using]
    table = conn.ops.quote_name(_table())
    statements = [
        f"""
        CREATE OR REPLACE FUNCTION {_FUNCTION}() RETURNS trigger AS $$
        BEGIN
            IF TG_OP = 'DELETE'
               AND coalesce(current_setting('{PRUNING_SETTING}', true), '') = 'on' THEN
                RETURN OLD;
            END IF;
            RAISE EXCEPTION 'Audit records are append-only: % on % is refused (prune-audit)',
                TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
        END;
        $$ LANGUAGE plpgsql
        """,
        f"DROP TRIGGER IF EXISTS {_ROW_TRIGGER} ON {table}",
        f"""
        CREATE TRIGGER {_ROW_TRIGGER} BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION {_FUNCTION}()
        """,
        f"DROP TRIGGER IF EXISTS {_TRUNCATE_TRIGGER} ON {table}",
        f"""
        CREATE TRIGGER {_TRUNCATE_TRIGGER} BEFORE TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION {_FUNCTION}()
        """,
    ]
    with conn.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def remove(using: str = "default") -> None:
    """Drop the guard's triggers and function from database ``using`` (if they are there)."""
    _require_postgresql(using)
    conn = connections[using]
    table = conn.ops.quote_name(_table())
    with conn.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER IF EXISTS {_ROW_TRIGGER} ON {table}")
        cursor.execute(f"DROP TRIGGER IF EXISTS {_TRUNCATE_TRIGGER} ON {table}")
        cursor.execute(f"DROP FUNCTION IF EXISTS {_FUNCTION}()")


def installed(using: str = "default") -> bool:
    """Whether both of the guard's triggers are on the audit table of database ``using``."""
    _require_postgresql(using)
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname IN (%s, %s)",
            [_table(), _ROW_TRIGGER, _TRUNCATE_TRIGGER],
        )
        row = cursor.fetchone()
    return bool(row and row[0] == 2)
