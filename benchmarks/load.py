"""Load: the example project served by gunicorn on loopback, driven by a bounded load generator.

The example project (``example/``, settings :mod:`benchmarks.loadsite.settings`) is migrated,
seeded (``seed_demo``, plus ``EXTRA_INVOICES`` invoices of a tenant nobody in the demo
belongs to) and served by gunicorn (``gthread``, ``WORKERS`` processes of ``THREADS`` threads)
on 127.0.0.1. ``CLIENTS`` client threads, each with its own keep-alive connection, send for
``SECONDS`` seconds per round:

- half: bob (a clerk) POSTs an approval of ACME-002: refused by the permission gate, recorded;
- a quarter: alice opens the invoice list (each row decides whether she may approve it);
- a quarter: alice opens ACME-002's page (three decisions).

The same requests go to the example's views (*clearance*) and to twins with the rules written
by hand (*hand-written*, :mod:`benchmarks.loadsite.views`, nothing recorded), interleaved
round by round. Reported: requests per second, latency percentiles, the ratios of clearance
over hand-written, and — the point of the audit trail — refused approvals against the audit
rows of those approvals, which must be equal. On PostgreSQL (``CLEARANCE_BENCH_DATABASE=
postgresql``) it also reports the most connections the server held at once;
``CLEARANCE_LOAD_AUDIT_CONNECTION=process`` serves with one audit connection per process.

Everything runs on loopback; the run is bounded by time (about 40 s with the set-up).
"""

from __future__ import annotations

import http.client
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import harness

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example"

WORKERS = int(os.environ.get("CLEARANCE_LOAD_WORKERS", "2"))
THREADS = int(os.environ.get("CLEARANCE_LOAD_THREADS", "4"))
CLIENTS = int(os.environ.get("CLEARANCE_LOAD_CLIENTS", "16"))
SECONDS = float(os.environ.get("CLEARANCE_LOAD_SECONDS", "4"))
ROUNDS = int(os.environ.get("CLEARANCE_LOAD_ROUNDS", "3"))
EXTRA_INVOICES = 2000
CSRF = "b" * 32  # a CSRF secret of our own, sent as cookie and header


@dataclass
class Tally:
    """What one configuration's requests got."""

    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    refused: int = 0  # approvals answered 403
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _environment(run_dir: Path, pg_name: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(EXAMPLE), env.get("PYTHONPATH", "")])
    env["DJANGO_SETTINGS_MODULE"] = "benchmarks.loadsite.settings"
    env["CLEARANCE_LOAD_DIR"] = str(run_dir)
    if pg_name:
        env["CLEARANCE_LOAD_PG_NAME"] = pg_name
    else:
        env.pop("CLEARANCE_LOAD_PG_NAME", None)
    return env


def _setup_django(env: dict[str, str]) -> None:
    for key in ("DJANGO_SETTINGS_MODULE", "CLEARANCE_LOAD_DIR", "CLEARANCE_LOAD_PG_NAME"):
        if key in env:
            os.environ[key] = env[key]
    for path in (str(EXAMPLE), str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)
    import django

    django.setup()


def _create_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(**_pg_params("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def _drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(**_pg_params("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_params(dbname: str) -> dict[str, Any]:
    return {
        "host": os.environ.get("CLEARANCE_TEST_PG_HOST", "127.0.0.1"),
        "port": int(os.environ.get("CLEARANCE_TEST_PG_PORT", "5432")),
        "user": os.environ.get("CLEARANCE_TEST_PG_USER", "postgres"),
        "password": os.environ.get("CLEARANCE_TEST_PG_PASSWORD") or None,
        "dbname": dbname,
    }


def _seed() -> dict[str, Any]:
    """Migrate, seed the demo, add the extra invoices; the ids and cookies the clients need."""
    from decimal import Decimal

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.signed_cookies import SessionStore
    from django.core.management import call_command

    from invoices.models import Invoice, Tenant

    call_command("migrate", verbosity=0)
    if "audit" in settings.DATABASES:
        call_command("migrate", database="audit", verbosity=0)
    with open(os.devnull, "w") as quiet:
        call_command("seed_demo", verbosity=0, stdout=quiet)
    other, _ = Tenant.objects.get_or_create(slug="initech", defaults={"name": "Initech"})
    Invoice.objects.bulk_create(
        Invoice(
            tenant=other,
            number=f"INI-{n:05d}",
            amount=Decimal(100 + n % 900),
            state="submitted",
        )
        for n in range(EXTRA_INVOICES)
    )

    def cookie(username: str) -> str:
        user = User.objects.get(username=username)
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.save()
        return f"sessionid={store.session_key}; csrftoken={CSRF}"

    return {
        "invoice": Invoice.objects.get(number="ACME-002").pk,
        "bob": cookie("bob"),
        "alice": cookie("alice"),
    }


def _audit_rows(invoice: int) -> int:
    from clearance.audit.models import AuditRecord

    return AuditRecord.objects.filter(
        method="POST", path=f"/invoices/{invoice}/approve/", allowed=False
    ).count()


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--worker-class",
        "gthread",
        "--workers",
        str(WORKERS),
        "--threads",
        str(THREADS),
        "--timeout",
        "60",
        "--log-level",
        "warning",
        "demo.wsgi:application",
    ]
    server = subprocess.Popen(
        command, cwd=EXAMPLE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {server.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("gunicorn did not start listening within 30 s")


def _requests(prefix: str, ids: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(method, path, cookie, is the refused approval) in the mix's proportions."""
    pk = ids["invoice"]
    approve = ("POST", f"{prefix}/invoices/{pk}/approve/", ids["bob"], True)
    listing = ("GET", f"{prefix}/invoices/", ids["alice"], False)
    detail = ("GET", f"{prefix}/invoices/{pk}/", ids["alice"], False)
    return [approve, approve, listing, detail]


def _drive(port: int, mix: list[tuple[str, str, str, bool]], seconds: float) -> Tally:
    """``CLIENTS`` threads send requests of ``mix`` for ``seconds``; what they got."""
    tally = Tally()
    stop = time.monotonic() + seconds
    start_line = threading.Barrier(CLIENTS + 1)

    def client(n: int) -> None:
        rng = random.Random(n)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies = []
        refused = 0
        errors = []
        start_line.wait()
        while time.monotonic() < stop:
            method, path, cookie, is_approval = rng.choice(mix)
            headers = {"Cookie": cookie, "Host": "127.0.0.1"}
            if method == "POST":
                headers |= {"X-CSRFToken": CSRF, "Content-Length": "0"}
            began = time.perf_counter()
            try:
                conn.request(method, path, headers=headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"{method} {path}: {exc!r}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            latencies.append(time.perf_counter() - began)
            expected = 403 if is_approval else 200
            if response.status != expected:
                errors.append(f"{method} {path}: {response.status}")
            elif is_approval:
                refused += 1
        conn.close()
        with tally.lock:
            tally.latencies.extend(latencies)
            tally.refused += refused
            tally.errors.extend(errors)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    start_line.wait()
    began = time.monotonic()
    for t in threads:
        t.join()
    tally.seconds = time.monotonic() - began
    return tally


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class _ConnectionSampler(threading.Thread):
    """The most connections the served database had open at once (PostgreSQL)."""

    def __init__(self, name: str) -> None:
        super().__init__(daemon=True)
        self.name_ = name
        self.most = 0
        self.done = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(**_pg_params("postgres"), autocommit=True) as conn:
            while not self.done.wait(0.1):
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [self.name_]
                ).fetchone()
                self.most = max(self.most, int(row[0]) if row else 0)


def run() -> str:
    """Serve, drive, count; return the tables as Markdown."""
    postgres = os.environ.get("CLEARANCE_BENCH_DATABASE", "sqlite").lower().startswith("postgres")
    pg_name = os.environ.get("CLEARANCE_BENCH_PG_NAME", "clearance_bench") + "_load"
    run_dir = Path(tempfile.mkdtemp(prefix="clearance-load-"))
    env = _environment(run_dir, pg_name if postgres else None)
    if postgres:
        _create_pg_database(pg_name)
    server = None
    try:
        _setup_django(env)
        ids = _seed()
        from django.db import connections

        connections.close_all()
        port = _free_port()
        server = _serve(env, port)
        mixes = {"clearance": _requests("", ids), "hand-written": _requests("/hand", ids)}
        for mix in mixes.values():  # warm both: imports, caches, connections
            _drive(port, mix, 1.0)
        tallies = {label: Tally() for label in mixes}
        rows_before = _audit_rows(ids["invoice"])
        sampler = _ConnectionSampler(pg_name) if postgres else None
        if sampler is not None:
            sampler.start()
        for n in range(ROUNDS):
            for label in sorted(mixes, reverse=bool(n % 2)):
                got = _drive(port, mixes[label], SECONDS)
                whole = tallies[label]
                whole.latencies += got.latencies
                whole.seconds += got.seconds
                whole.refused += got.refused
                whole.errors += got.errors
        if sampler is not None:
            sampler.done.set()
            sampler.join()
        rows = _audit_rows(ids["invoice"]) - rows_before
        spooled = sum(
            1
            for f in (run_dir / "spool").glob("*.jsonl")
            for line in f.read_text().splitlines()
            if line.strip()
        )
        connections.close_all()
        return _report(tallies, rows, spooled, sampler.most if sampler else None, postgres)
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
        try:
            from django.db import connections as django_connections

            django_connections.close_all()
        except Exception:
            pass
        if postgres:
            _drop_pg_database(pg_name)
        shutil.rmtree(run_dir, ignore_errors=True)


def _report(
    tallies: dict[str, Tally], rows: int, spooled: int, most: int | None, postgres: str | bool
) -> str:
    base = tallies["hand-written"]
    base_rps = len(base.latencies) / base.seconds
    lines = []
    table_rows = []
    for label in ("hand-written", "clearance"):
        t = tallies[label]
        rps = len(t.latencies) / t.seconds
        p = [_percentile(t.latencies, q) for q in (0.50, 0.95, 0.99)]
        bp = [_percentile(base.latencies, q) for q in (0.50, 0.95, 0.99)]
        table_rows.append(
            [
                label,
                f"{len(t.latencies):,}",
                f"{rps:,.0f}",
                f"{p[0]:.1f}",
                f"{p[1]:.1f}",
                f"{p[2]:.1f}",
                f"{rps / base_rps:.2f}x",
                f"{p[0] / bp[0]:.2f}x",
                f"{p[2] / bp[2]:.2f}x",
                f"{t.refused:,}",
                "—" if label == "hand-written" else f"{rows:,}",
                f"{len(t.errors)}",
            ]
        )
    database = "PostgreSQL" if postgres else "SQLite (audit trail in a file of its own)"
    if postgres:
        mode = os.environ.get("CLEARANCE_LOAD_AUDIT_CONNECTION", "thread")
        database += f', AUDIT_CONNECTION = "{mode}"'
    lines.append(
        f"gunicorn gthread, {WORKERS} workers x {THREADS} threads, {CLIENTS} client threads, "
        f"{ROUNDS} rounds of {SECONDS:.0f} s per row, interleaved; {database}."
    )
    lines.append("")
    lines.append(
        harness.table(
            [
                "views",
                "requests",
                "req/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "req/s vs hand",
                "p50 vs hand",
                "p99 vs hand",
                "refused approvals",
                "audit rows",
                "errors",
            ],
            table_rows,
        )
    )
    refused = tallies["clearance"].refused
    verdict = "equal" if rows == refused else "NOT EQUAL"
    lines.append("")
    lines.append(
        f"- Refused approvals through clearance: {refused:,}; audit rows for them: {rows:,} "
        f"({verdict}); records waiting in the spool: {spooled}."
    )
    if most is not None:
        lines.append(
            f"- Most PostgreSQL connections open at once: {most} "
            f"({WORKERS * THREADS} server threads; the benchmark's own connection included)."
        )
    errors = tallies["clearance"].errors + base.errors
    if errors:
        lines.append(f"- Unexpected answers (first 3): {errors[:3]}")
    if rows != refused:
        raise SystemExit("\n".join(lines) + "\nAudit rows and refused approvals differ.")
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
