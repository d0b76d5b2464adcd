"""`make bench`, second step: real-time charging under load over HTTP (issue 5). Not a test: nothing is
asserted; the figures are printed beside the goal.

    .venv/bin/python bench/charging.py [--accounts 1000] [--seconds 10] [--plain-workers N] [--lean-workers N]
                                       [--paths plain,lean] [--keep]

1. A fresh PostgreSQL database (`obol_chbench`, dropped first), migrated; a tenant "bench" (Europe/Berlin)
   with the sample tariffs, the demo catalog and N prepaid accounts on plan "payg", each with one MSISDN
   (4916 + 8 digits) and 1,000,000.00 EUR topped up so that nobody runs out; an API key.
2. For each server path, the same URLs and bodies:
   - plain: the Django app (django-ninja routes over charging.service) under gunicorn sync workers;
   - lean: the ASGI app `obol.charging.fast:app` under uvicorn (uvloop, httptools), skipped while
     it is not importable.
   The server is started on a free port; bench/charging_load.py drives start/update/terminate cycles
   with 1, 8 and 64 clients spread over the accounts, then 64 clients on one account (hot), each
   after a 2 s warm-up; then the server is stopped. The data grows from run to run (sessions,
   ledger); nothing is reset.
3. The table (ops/s, latency per request p50/p95/p99, answers other than ok, the generator's CPU),
   the server set-up and the goal; then `balances.verify()` and the money check (what the pockets
   lost equals the sum of the `charged` of every terminate answer). The database is dropped unless --keep.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench import charging_load

BIN = Path(sys.executable).parent
DATABASE = "obol_chbench"
SERVER = "postgresql://postgres@127.0.0.1:5432"
MSISDN_BASE = 491_600_000_000  # account i (1-based) has MSISDN 4916 followed by i on 8 digits
TOP_UP = Decimal("1000000.00")
SCENARIOS = [("1 spread", 1, False), ("8 spread", 8, False), ("64 spread", 64, False), ("64 hot", 64, True)]
GOAL = ">= 2,000 ops/s at 8 and 64 clients, p99 <= 20 ms at 8 clients, >= 700 ops/s hot"


# --- the population -------------------------------------------------------------------------------

def populate(actor, accounts: int, *, msisdn_base: int = MSISDN_BASE, top_up: Decimal = TOP_UP) -> list[str]:
    """In the tenant in scope: the sample tariffs, the demo catalog and `accounts` prepaid accounts on
    plan payg, subscribed a week ago, each with one MSISDN and `top_up` EUR. Returns the MSISDNs."""
    from django.db import transaction

    from obol.balances import services as balances
    from obol.catalog.models import PricePlan
    from obol.catalog.services import load_catalog
    from obol.catalog.tariff_services import load_tariffs
    from obol.core import clock
    from obol.core.money import Amount
    from obol.core.tenancy import current_tenant
    from obol.customers.models import BillingAccount, Customer
    from obol.subscriptions import services as subscriptions

    tariffs = ROOT / "samples" / "tariffs" / "tariffs.yaml"
    load_tariffs(tariffs.read_text(), source=str(tariffs), actor=actor)
    catalog = ROOT / "samples" / "demo" / "catalog.yaml"
    load_catalog(catalog.read_text(), source=str(catalog), actor=actor)
    plan = PricePlan.objects.get(code="payg")
    tenant = current_tenant()
    start = clock.today(tenant.timezone) - timedelta(days=7)  # active now: the bench runs at the real time
    msisdns = []
    for i in range(1, accounts + 1):
        msisdn = f"{msisdn_base + i}"
        with transaction.atomic():
            customer = Customer.objects.create(tenant=tenant, number=f"C-B{i}", name=f"Bench subscriber {i}")
            account = BillingAccount.objects.create(tenant=tenant, number=f"B-{i}", customer=customer,
                                                    currency="EUR", mode="prepaid")
            subscriptions.subscribe(actor, account, plan, start_date=start,
                                    identifiers_=[{"kind": "msisdn", "value": msisdn}])
            balances.top_up(actor, account, Amount(str(top_up), "EUR"), reference=f"BENCH-{i}")
        msisdns.append(msisdn)
    return msisdns


def money_spent(accounts_prefix: str = "B-") -> Decimal:
    """What the bench accounts' EUR pockets lost since their top-up (tenant in scope)."""
    from django.db.models import Sum

    from obol.balances.models import Pocket
    pockets = Pocket.objects.filter(account__number__startswith=accounts_prefix, unit="EUR")
    n = pockets.values("account").distinct().count()
    return n * TOP_UP - (pockets.aggregate(total=Sum("balance"))["total"] or Decimal(0))


# --- the database -----------------------------------------------------------------------------------

def admin(sql: str) -> None:
    import psycopg
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def postgres_facts(url: str) -> str:
    import psycopg
    with psycopg.connect(url) as conn:
        version = conn.execute("show server_version").fetchone()[0]
        sync = conn.execute("show synchronous_commit").fetchone()[0]
        buffers = conn.execute("show shared_buffers").fetchone()[0]
        conns = conn.execute("show max_connections").fetchone()[0]
    return (f"PostgreSQL {version} on 127.0.0.1 (TCP loopback), synchronous_commit={sync}, "
            f"shared_buffers={buffers}, max_connections={conns}")


# --- the servers ------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def command(path: str, port: int, workers: int, worker_class: str) -> list[str]:
    if path == "plain":
        return [str(BIN / "gunicorn"), "obol.wsgi:application", "-w", str(workers), "-k", worker_class,
                "-b", f"127.0.0.1:{port}"]
    return [str(BIN / "uvicorn"), "obol.charging.fast:app", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--no-proxy-headers",
            "--log-level", "warning"]


def lean_missing(env: dict) -> str | None:
    """Why the lean path cannot run (None when `obol.charging.fast` imports and has `app`)."""
    if importlib.util.find_spec("obol.charging.fast") is None:
        return "obol.charging.fast not importable"
    done = subprocess.run([sys.executable, "-c", "import obol.charging.fast as f; f.app"], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=False)
    if done.returncode:
        return f"obol.charging.fast not importable ({done.stderr.strip().splitlines()[-1:]})"
    return None


class PortTaken(Exception):
    """Something else answered on the port (another process took it between the probe and the bind)."""


class Server:
    def __init__(self, argv: list[str], env: dict, url: str, key: str):
        self.argv, self.env, self.url, self.key = argv, env, url, key
        self.log = tempfile.NamedTemporaryFile("w+", prefix="obol-chbench-", suffix=".log", delete=False)  # noqa: SIM115
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Self:
        return self

    def start(self) -> Server:
        self.process = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # a terminate of a session that does not exist: 404 unknown_session, nothing kept
            probe = urllib.request.Request(
                f"{self.url}/api/v1/charging/sessions/00000000-0000-4000-8000-000000000000/terminate",
                data=json.dumps({"request_id": f"probe-{uuid.uuid4()}", "used": 0}).encode(), method="POST",
                headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
            if self.process.poll() is not None:
                if "in use" in self.output():
                    raise PortTaken(f"{self.url}: address in use")
                raise SystemExit(f"server exited early: {' '.join(self.argv)}\n{self.output()}")
            try:
                urllib.request.urlopen(probe, timeout=2).read()
                answer = b""
            except urllib.error.HTTPError as error:  # the expected answer: 404 unknown_session
                answer = error.read()
            except OSError:
                time.sleep(0.2)
                continue
            if self.process.poll() is None and b"unknown_session" in answer:
                return self
            self.stop()  # another server holds the port, or ours answers something else
            raise PortTaken(f"{self.url}: not our server's answer ({answer[:200]!r})\n{self.output()}")
        self.stop()
        raise SystemExit(f"server did not answer within 60 s: {' '.join(self.argv)}\n{self.output()}")

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # gunicorn and uvicorn stop their workers on SIGTERM
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)  # its own session: only this server and its workers
            self.process.wait()

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-4000:]


def _cpu_of(pid: int) -> float:
    """utime + stime of one process, in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [p for child in (task / "children").read_text().split() for p in _tree(int(child))]
        except OSError:
            pass
    return found


def server_cpu(pid: int) -> float:
    """CPU seconds of the server and its workers so far."""
    return sum(_cpu_of(p) for p in _tree(pid))


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL process alive now (Linux /proc; backends that exited are lost)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/comm"):
        try:
            if stat.read_text().strip() == "postgres":
                total += _cpu_of(int(stat.parent.name))
        except (OSError, ValueError):
            pass
    return total


def idle_load(seconds: float = 1.0) -> str:
    """How busy the CPUs are with the server idle: other work on the machine skews every figure."""
    first = charging_load._machine_ticks()
    time.sleep(seconds)
    second = charging_load._machine_ticks()
    if not first or not second or second[1] == first[1]:
        return "?"
    return f"{(second[0] - first[0]) / (second[1] - first[1]):.0%}"


# --- the report ---------------------------------------------------------------------------------------

def row(path: str, scenario: str, r: dict) -> str:
    lat = r["latency_ms"]
    others = {c: n for c, n in r["codes"].items() if c != "ok"}
    odd = ", ".join(f"{c} {n}" for c, n in others.items()) or "-"
    if r["transport_errors"]:
        odd += f"; transport errors {r['transport_errors']} {r['error_kinds']}, first: {r['first_error']}"
    busy = f"{r['machine_busy']:.0%}" if r.get("machine_busy") is not None else "?"
    return (f"{path:<6} {scenario:<10} {r['ops_per_s']:>8,.0f} {lat['p50']:>7.1f} {lat['p95']:>7.1f} {lat['p99']:>7.1f}"
            f"   {r.get('server_ms_per_op', float('nan')):>6.2f} {r.get('postgres_ms_per_op', float('nan')):>6.2f}"
            f"   {r['generator_cpu_share']:>5.0%}  {busy:>5}  {r['connects']:>7,}  {odd}")


HEADER = (f"{'path':<6} {'scenario':<10} {'ops/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}"
          f"   {'srv CPU':>6} {'pg CPU':>6}   {'gen CPU':>5} {'busy':>5}  {'connects':>7}  non-ok answers")


def goal(path: str, results: dict) -> str:
    def ops(name):
        return results[name]["ops_per_s"] if name in results else float("nan")

    p99 = results["8 spread"]["latency_ms"]["p99"] if "8 spread" in results else float("nan")
    checks = [("8 clients", ops("8 spread"), ops("8 spread") >= 2000, "ops/s"),
              ("64 clients", ops("64 spread"), ops("64 spread") >= 2000, "ops/s"),
              ("p99 at 8", p99, p99 <= 20, "ms"),
              ("hot", ops("64 hot"), ops("64 hot") >= 700, "ops/s")]
    return f"  {path:<6}" + "   ".join(f"{name} {value:,.1f} {unit} ({'met' if ok else 'not met'})"
                                       for name, value, ok, unit in checks)


# --- main -------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description="real-time charging under load (issue 5)")
    parser.add_argument("--accounts", type=int, default=int(os.environ.get("BENCH_CHARGING_ACCOUNTS", "1000")))
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_CHARGING_SECONDS", "10")))
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--plain-workers", type=int, default=4, help="gunicorn workers (default 4: best of 2, 3, 4 "
                                                                       "measured on the 2-core machine)")
    parser.add_argument("--plain-worker-class", default="sync", help="gunicorn worker class (sync keeps no "
                                                                       "connection alive)")
    parser.add_argument("--lean-workers", type=int, default=2, help="uvicorn workers")
    parser.add_argument("--paths", default="plain,lean", help="which server paths to run")
    parser.add_argument("--keep", action="store_true", help=f"keep the database {DATABASE}")
    args = parser.parse_args()
    if args.accounts < max(clients for _, clients, _ in SCENARIOS):
        parser.error("--accounts: at least 64, one account per client in the spread scenarios")
    url = f"{SERVER}/{DATABASE}"
    env = {**os.environ, "OBOL_DATABASE_URL": url, "OBOL_DEBUG": "0", "DJANGO_SETTINGS_MODULE": "obol.settings"}
    env.pop("OBOL_TEST_DATABASE_URL", None)
    os.environ.update({k: env[k] for k in ("OBOL_DATABASE_URL", "OBOL_DEBUG", "DJANGO_SETTINGS_MODULE")})

    print(f"machine: {os.cpu_count()} CPU, Python {platform.python_version()}; one machine runs the server, "
          "PostgreSQL and the load generator")
    began = time.perf_counter()
    admin(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    admin(f"CREATE DATABASE {DATABASE}")
    import django
    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from obol.api.auth import create_api_key
    from obol.balances import services as balances
    from obol.charging.models import ChargingSession
    from obol.core.actors import Actor
    from obol.core.models import Tenant
    from obol.core.tenancy import tenant_context

    call_command("migrate", verbosity=0)
    migrated = time.perf_counter()
    tenant = Tenant.objects.create(code="bench", name="Charging bench", country="DE", default_currency="EUR",
                                   timezone="Europe/Berlin")
    actor = Actor.process("bench")
    with tenant_context(tenant):
        msisdns = populate(actor, args.accounts)
        key = create_api_key(actor, "charging bench", "clerk")[1]
    connections.close_all()
    print(f"set-up: database {DATABASE} migrated in {migrated - began:.1f} s; {args.accounts:,} prepaid accounts "
          f"(plan payg, one MSISDN, {TOP_UP:,} EUR each) in {time.perf_counter() - migrated:.1f} s")
    print(postgres_facts(url))

    results: dict[str, dict[str, dict]] = {}
    setups = []
    for path in [p for p in args.paths.split(",") if p]:
        if path == "lean" and (why := lean_missing(env)):
            print(f"lean path: {why}: skipped")
            continue
        workers = args.plain_workers if path == "plain" else args.lean_workers
        for attempt in range(3):
            port = free_port()
            argv = command(path, port, workers, args.plain_worker_class)
            base = f"http://127.0.0.1:{port}"
            try:
                server = Server(argv, env, base, key).start()
                break
            except PortTaken as taken:
                print(f"  {path}: {str(taken).splitlines()[0]}; another port")
        else:
            raise SystemExit(f"{path}: could not start the server")
        quiet = idle_load()
        setups.append(f"  {path:<6} {' '.join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv))}"
                      f"  (CPUs busy before the runs, server idle: {quiet})")
        results[path] = {}
        with server:
            for name, clients, hot in SCENARIOS:
                cpu0, pg0 = server_cpu(server.process.pid), postgres_cpu()
                r = charging_load.run(base, key, msisdns, clients=clients, seconds=args.seconds, warmup=args.warmup,
                                      hot=hot)
                n = max(1, r["requests_all"])  # CPU is measured over the whole run, warm-up included
                r["server_ms_per_op"] = (server_cpu(server.process.pid) - cpu0) / n * 1000
                r["postgres_ms_per_op"] = (postgres_cpu() - pg0) / n * 1000
                results[path][name] = r
                print(f"  ... {path} {name}: {r['ops_per_s']:,.0f} ops/s, p99 {r['latency_ms']['p99']:.1f} ms",
                      flush=True)
            log = server.output()
        errors = [line for line in log.splitlines() if "Traceback" in line or "ERROR" in line or "Error" in line]
        if errors:
            print(f"  {path} server log has {len(errors)} error lines, e.g. {errors[0][:200]}")

    print()
    print(f"real-time charging over HTTP: {args.accounts:,} prepaid accounts, cycles of start(60 s) -> "
          f"update(used 60, asks 60) -> terminate(used 30) = 3 requests; warm-up {args.warmup:g} s, "
          f"measured {args.seconds:g} s per scenario")
    print(HEADER)
    for path, by_scenario in results.items():
        for name, r in by_scenario.items():
            print(row(path, name, r))
    print("(latency per request; srv CPU / pg CPU: CPU ms per request of the server's processes / of PostgreSQL's, "
          "over the whole run; gen CPU: the load generator's own CPU in share of one core; busy: share of all "
          "CPUs busy during the window; connects: TCP connections opened)")
    print("server set-up (DEBUG off, no access log):")
    for line in setups:
        print(line)
    print(f"  {postgres_facts(url)}")
    print(f"goal: {GOAL}")
    for path, by_scenario in results.items():
        print(goal(path, by_scenario))

    with tenant_context(tenant):
        mismatches = balances.verify()
        spent = money_spent()
        charged = sum((Decimal(r["charged_all"]) for s in results.values() for r in s.values()), Decimal(0))
        cycles = sum(r["cycles_all"] for s in results.values() for r in s.values())
        still_open = ChargingSession.objects.filter(state=ChargingSession.State.OPEN).count()
        sessions = ChargingSession.objects.count()
    print(f"check: balances.verify() -> {'every pocket equals its ledger' if not mismatches else mismatches[:5]}; "
          f"{sessions:,} sessions, {cycles:,} complete cycles, {still_open} left open; pockets lost {spent:,} EUR, "
          f"terminate answers charged {charged:,} EUR ({'equal' if spent == charged else 'DIFFERENT'})")
    connections.close_all()
    if args.keep:
        print(f"kept database {DATABASE}: {url}")
    else:
        admin(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


if __name__ == "__main__":
    main()
