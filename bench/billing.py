"""`make bench`, third step: a mass bill run (issue 6) on SQLite and PostgreSQL. Not a test: nothing
is asserted; the figures are printed beside the goal.

    .venv/bin/python bench/billing.py [--accounts 10000] [--databases sqlite,postgresql] [--pdfs 200]
        [--workers N] [--pdf-workers N] [--pg-database obol_billbench]

1. A fresh database (SQLite file in a temporary directory; PostgreSQL `obol_billbench` or
   `--pg-database`, dropped first and at the end), migrated; a tenant with German VAT, two plans (30.00 and 60.00 a month in advance,
   prorated, and a per-unit quantity charge of 2.50 on the first) and N accounts (cycle day 1), each
   with one subscription. Every fourth account is activated on 16 November (proration), every fourth
   changes plan on 21 November, every fourth is terminated with effect from 11 November, the rest
   run since October. Every account is postpaid with twelve rated records in November (calls
   national and international, data: three usage lines in arrears), and every fifth has a 20%
   discount. Bulk inserts, as the services write them (not counted).
2. A bill run of every account for 1 December: generate (on PostgreSQL in `--workers` processes, one
   per core by default, as `obol billrun generate --workers N`), accept, issue, each step timed;
   invoices/s from generate to issued, and the peak memory of the process that ran it (the set-up runs
   in one of its own before).
3. The PDFs of the first `--pdfs` issued invoices, rendered and stored by `documents.store_pdfs` in
   `--pdf-workers` processes (default: one per core): documents/s, the workers' start included.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
PG_DATABASE = os.environ.get("BENCH_PG_DATABASE", "obol_billbench")
RUN_DAY = date(2026, 12, 1)
GOAL = ">= 1,000 invoices/s from generate to issued (without PDF); >= 25 PDFs/s"


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def populate(accounts: int) -> None:
    """In the tenant in scope (see the module's docstring)."""
    from obol.billing.models import TaxRate
    from obol.catalog.models import Charge, PricePlan, PricePlanVersion
    from obol.core.tenancy import current_tenant
    from obol.customers.models import BillingAccount, Customer
    from obol.subscriptions.models import Subscription, SubscriptionChange

    tenant = current_tenant()
    TaxRate.objects.create(tenant=tenant, country="DE", category="standard", rate=Decimal(19),
                           valid_from=date(2007, 1, 1))
    plans = []
    for code, price in (("bench-a", "30.00"), ("bench-b", "60.00")):
        plan = PricePlan.objects.create(tenant=tenant, code=code, name=code, currency="EUR")
        version = PricePlanVersion.objects.create(tenant=tenant, plan=plan, number=1, effective_from=date(2026, 1, 1),
                                                  content_hash="bench")
        Charge.objects.create(tenant=tenant, version=version, code="monthly-fee", name="Monthly fee",
                              kind="recurring", price=Decimal(price), period="month", billing="advance", prorate=True)
        if code == "bench-a":
            Charge.objects.create(tenant=tenant, version=version, code="lines", name="Extra lines", kind="quantity",
                                  model="per_unit", price=Decimal("2.50"), period="month", billing="advance",
                                  prorate=True)
        plans.append(plan)
    a, b = plans
    customers = Customer.objects.bulk_create(
        [Customer(tenant=tenant, number=f"C-{i}", name=f"Bench customer {i}") for i in range(accounts)])
    billing_accounts = BillingAccount.objects.bulk_create(
        [BillingAccount(tenant=tenant, number=f"B-{i}", customer=c, currency="EUR", bill_cycle_day=1)
         for i, c in enumerate(customers)])
    starts = [date(2026, 11, 16) if i % 4 == 0 else date(2026, 10, 1) for i in range(accounts)]
    subscriptions = Subscription.objects.bulk_create(
        [Subscription(tenant=tenant, number=f"S-{i}", account=account, plan=a, quantity=Decimal(1 + i % 3),
                      status="terminated" if i % 4 == 2 else "active", start_date=starts[i],
                      end_date=date(2026, 11, 11) if i % 4 == 2 else None)
         for i, account in enumerate(billing_accounts)])
    changes = []
    for i, sub in enumerate(subscriptions):
        rows = [("create", starts[i], "pending", a), ("activate", starts[i], "active", a)]
        if i % 4 == 1:
            rows.append(("change_plan", date(2026, 11, 21), "active", b))
        if i % 4 == 2:
            rows.append(("terminate", date(2026, 11, 11), "terminated", a))
        changes += [SubscriptionChange(tenant=tenant, subscription=sub, seq=n, kind=kind, effective_date=day,
                                       status=status, plan=plan, quantity=sub.quantity)
                    for n, (kind, day, status, plan) in enumerate(rows, start=1)]
    SubscriptionChange.objects.bulk_create(changes, batch_size=5000)
    usage_and_discounts(subscriptions)


def usage_and_discounts(subscriptions) -> None:
    """November's rated calls and data of every subscription (three aggregates each: national and
    international calls, data; 12 records), billed in arrears on the run; and a 20% discount for
    six months on every fifth subscription (all accounts are postpaid)."""
    from datetime import UTC, datetime

    from obol.balances.models import Promotion, PromotionApplication
    from obol.catalog.models import Charge, PricePlanVersion, Service
    from obol.core.bulk import insert_values
    from obol.core.tenancy import current_tenant
    from obol.usage.models import RatedRecord

    tenant = current_tenant()
    voice = Service.objects.create(tenant=tenant, code="voice", name="Calls", kind="voice", unit="second")
    data = Service.objects.create(tenant=tenant, code="data", name="Data", kind="data", unit="byte")
    for version in PricePlanVersion.objects.all():
        Charge.objects.create(tenant=tenant, version=version, code="calls", name="Calls", kind="usage", service=voice,
                              rate_table="voice", position=5)
        Charge.objects.create(tenant=tenant, version=version, code="data", name="Data", kind="usage", service=data,
                              rate_table="data", position=6)
    rated = datetime(2026, 11, 30, 23, tzinfo=UTC)
    kinds = [("voice", "national", 120, 90_000), ("voice", "international", 60, 420_000), ("data", "", 10_485_760, 0)]
    rows = []
    for sub in subscriptions:
        for n in range(12):
            service, group, quantity, micros = kinds[n % 3]
            rows.append((tenant.pk, f"{sub.number}-{n}", sub.account_id, sub.pk, service, date(2026, 11, 1),
                         datetime(2026, 11, 1 + n * 2, 9, n, tzinfo=UTC), quantity, group, 0 if n % 4 else quantity,
                         quantity, quantity, micros + n * 1_001, "EUR", False, "", "", "", "", rated,
                         micros + n * 1_001))
    insert_values(RatedRecord, ["tenant_id", "record_key", "account_id", "subscription_id", "service", "cycle_start",
                                "start", "quantity", "destination_group", "included", "charged", "billed",
                                "price_micros", "currency", "uncovered", "takes", "rate_table", "destination",
                                "time_band", "rated_at", "accrued_micros"], rows)
    promotion = Promotion.objects.create(tenant=tenant, code="SAVE20", name="Bench offer", kind="discount",
                                         trigger="code", discount_type="percent", discount_percent=Decimal(20),
                                         discount_periods=6, charge_kinds=["recurring"])
    PromotionApplication.objects.bulk_create([
        PromotionApplication(tenant=tenant, promotion=promotion, subscription=sub, account_id=sub.account_id,
                             start_date=date(2026, 11, 1), end_date=date(2027, 5, 1))
        for i, sub in enumerate(subscriptions) if i % 5 == 0], batch_size=5000)


def measure(accounts: int, pdfs: int, pdf_workers: int, workers: int) -> dict:
    """In the tenant in scope: the bill run's steps and the PDFs, timed. With `workers` > 1 on
    PostgreSQL, generate runs as `obol billrun generate RUN --workers N` does (N processes, their
    start included)."""
    from io import StringIO

    from django.core.management import call_command
    from django.db import connection

    from obol.billing import billrun, documents
    from obol.billing.models import Invoice
    from obol.core.actors import Actor
    from obol.core.tenancy import current_tenant

    actor = Actor.process("bench")
    run = billrun.start(actor, RUN_DAY, every_account=True)
    out = {}
    began = time.perf_counter()
    for step in ("generate", "accept", "issue"):
        t0 = time.perf_counter()
        if step == "generate" and workers > 1 and connection.vendor == "postgresql":
            call_command("billrun", "generate", str(run.pk), "--tenant", current_tenant().code, "--workers",
                         str(workers), "--json", stdout=StringIO())
            out[step] = (Invoice.objects.filter(bill_run=run).count(), time.perf_counter() - t0)
            continue
        summary = (billrun.generate(actor, run) if step == "generate"
                   else billrun.apply(actor, run, step, on=RUN_DAY))
        out[step] = (summary.done, time.perf_counter() - t0)
    out["total"] = (out["issue"][0], time.perf_counter() - began)
    out["peak_mib"] = peak_mib()
    chosen = list(Invoice.objects.filter(state="issued").order_by("pk").values_list("pk", flat=True)[:pdfs])
    t0 = time.perf_counter()
    out["pdf"] = (documents.store_pdfs(chosen, workers=pdf_workers), time.perf_counter() - t0)
    return out


def child(database_url: str, accounts: int, pdfs: int, pdf_workers: int, workers: int, setup: bool) -> None:
    """One database, in this process (started by main with OBOL_DATABASE_URL set): with `setup`,
    migrate and populate it; else measure the run, in a process of its own, so that the peak memory
    is the run's (the set-up holds all its rows at once)."""
    import django
    django.setup()
    from django.core.management import call_command

    from obol.core.models import Tenant
    from obol.core.tenancy import tenant_context

    if setup:
        t0 = time.perf_counter()
        call_command("migrate", verbosity=0)
        tenant = Tenant.objects.create(code="bench", name="Billing bench", country="DE", default_currency="EUR")
        with tenant_context(tenant):
            populate(accounts)
        print(f"SETUP {time.perf_counter() - t0:.1f}", flush=True)
        return
    with tenant_context(Tenant.objects.get(code="bench")):
        result = measure(accounts, pdfs, pdf_workers, workers)
    print("RESULT " + " ".join(f"{k}={v[0]}:{v[1]:.3f}" if isinstance(v, tuple) else f"{k}={v:.0f}"
                               for k, v in result.items()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="a mass bill run (issue 6)")
    parser.add_argument("--accounts", type=int, default=int(os.environ.get("BENCH_BILLING_ACCOUNTS", "10000")))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="generate's processes on PostgreSQL (SQLite has one writer: 1)")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--pdfs", type=int, default=200)
    parser.add_argument("--pdf-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--pg-database", default=PG_DATABASE)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--setup", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.accounts, args.pdfs, args.pdf_workers, args.workers, args.setup)
    print(f"bill run: {args.accounts:,} accounts (proration, plan changes, terminations, usage, discounts), every "
          f"account on {RUN_DAY}; generate (PostgreSQL: {args.workers} processes) -> accept -> issue; then "
          f"{args.pdfs} PDFs in {args.pdf_workers} processes")
    print(f"{'database':<11} {'set-up s':>8} {'generate/s':>11} {'accept/s':>9} {'issue/s':>8} "
          f"{'invoices/s':>11} {'peak MiB':>9} {'PDFs/s':>7}")
    for database in [d for d in args.databases.split(",") if d]:
        with tempfile.TemporaryDirectory() as tmp:
            if database == "sqlite":
                url = f"sqlite:///{tmp}/bench.sqlite3"
            else:
                for sql in (f"DROP DATABASE IF EXISTS {args.pg_database}", f"CREATE DATABASE {args.pg_database}"):
                    subprocess.run(["psql", f"{PG_SERVER}/postgres", "-qc", sql], check=True)
                url = f"{PG_SERVER}/{args.pg_database}"
            env = {**os.environ, "OBOL_DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "obol.settings",
                   "OBOL_DEBUG": "0"}
            argv = [sys.executable, __file__, "--child", url, "--accounts", str(args.accounts), "--pdfs", str(args.pdfs),
                    "--pdf-workers", str(args.pdf_workers), "--workers", str(args.workers)]
            prepared = subprocess.run([*argv, "--setup"], env=env, capture_output=True, text=True, check=False)
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            if database != "sqlite":
                subprocess.run(["psql", f"{PG_SERVER}/postgres", "-qc", f"DROP DATABASE IF EXISTS {args.pg_database}"],
                               check=False)
        setup = next((x.split()[1] for x in prepared.stdout.splitlines() if x.startswith("SETUP ")), None)
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None or setup is None:
            failed = done if setup is not None else prepared
            print(f"{database}: failed\n{failed.stdout[-2000:]}\n{failed.stderr[-3000:]}")
            continue
        _, *pairs = line.split()
        figures = dict(pair.split("=") for pair in pairs)

        def rate(key):
            n, seconds = figures[key].split(":")
            return int(n) / float(seconds) if float(seconds) else 0.0

        print(f"{database:<11} {float(setup):>8.1f} {rate('generate'):>11,.0f} {rate('accept'):>9,.0f} "
              f"{rate('issue'):>8,.0f} {rate('total'):>11,.0f} {float(figures['peak_mib']):>9,.0f} "
              f"{rate('pdf'):>7,.1f}")
    print(f"goal: {GOAL}")


if __name__ == "__main__":
    main()
