"""Bill runs: invoicing many accounts for one day, as steps that may each run again.

- `start` records the run: its day and which accounts it takes (those due that day by their cycle
  day, or every account, or one cycle day), narrowed to a reseller's or a segment's, or a list of
  account numbers.
- `generate` makes the accounts' draft invoices, CHUNK accounts per transaction, with a handful of
  queries and bulk inserts per chunk. An account's error (its charges cannot be worked out) is
  recorded against the run and does not stop the others. Running it again resumes: accounts that
  hold an invoice of the run are skipped, the others are tried again, and an account never gets a
  second invoice for the day. A run killed anywhere and run again ends with exactly one invoice per
  account, as an uninterrupted run would.
- `apply` runs accept, cancel or issue on the run's invoices (all, or a selection), CHUNK invoices
  per transaction (`services.move_many`), recording errors the same way.
- `chunk=(k, n)` takes every n-th account from the k-th, so n processes can share a run;
  `generate_parallel` forks n of them (PostgreSQL) and counts the run after them.
- Generate, issue and cancel of more than a chunk first refresh the database's statistics of the
  tables they read (`refresh_statistics`): they have just grown by bulk writes (the day's rated
  records, the drafts of the step before), and with the figures of the smaller table (PostgreSQL)
  or none (SQLite) the planner reads every row of the tenant for each chunk through the tenant's
  index instead of the account's (on PostgreSQL a quarter of the time of generate and half of issue
  at 5,000 accounts; on SQLite a seventh of generate at 10,000; growing with the square of the
  run). Generate refreshes them again whenever its invoices have doubled the table
  (`GrowingTables`: a tenant's first run).
"""
from __future__ import annotations

import calendar
import multiprocessing
import queue
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal

from django.db import connection, connections, transaction
from django.db.models import Q

from obol.billing import events, services
from obol.billing.models import BillRun, BillRunError, Invoice, InvoiceLine, InvoiceTax
from obol.core import audit, clock
from obol.core.actors import Actor
from obol.core.bulk import GrowingTables, collected_per_chunk, refresh_statistics
from obol.core.errors import ObolError, ValidationFailed
from obol.core.money import digits
from obol.core.tenancy import current_tenant, tenant_context
from obol.customers.models import BillingAccount, Reseller

STEPS = ("accept", "cancel", "issue", "send")


@dataclass
class Summary:
    run: int
    step: str
    day: str
    taken: int = 0  # accounts (generate) or invoices (other steps) this call worked on
    done: int = 0  # invoices generated / moved
    nothing_due: int = 0
    errors: int = 0
    skipped: int = 0  # generate: accounts that already hold an invoice of the run
    seconds: float = 0.0
    gross: dict[str, str] = field(default_factory=dict)  # currency -> total of the invoices made or moved

    @property
    def per_second(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "per_second": round(self.per_second, 1)}

    def __str__(self) -> str:
        money = ", ".join(f"{total} {currency}" for currency, total in sorted(self.gross.items())) or "0"
        return (f"bill run {self.run} ({self.day}) {self.step}: {self.taken} taken, {self.done} done, "
                f"{self.nothing_due} with nothing due, {self.skipped} already done, {self.errors} errors; "
                f"gross {money}; {self.seconds:.1f} s ({self.per_second:,.0f}/s)")


def due_on(day: date) -> Q:
    """Accounts whose bill period starts on `day` (the account's `cycle`):
    - monthly, quarterly, yearly: cycle day = the day of the month, or a later cycle day the month
      does not have when `day` is its last day (31 on 30 April); quarterly, in a month 0, 3, 6 or 9
      months from the cycle month; yearly, in the cycle month;
    - weekly: the account's weekday is the day's."""
    last = calendar.monthrange(day.year, day.month)[1]
    on_day = Q(bill_cycle_day=day.day) | (Q(bill_cycle_day__gt=day.day) if day.day == last else Q(pk__in=[]))
    return Q(bill_period="week", bill_weekday=day.weekday()) | (on_day & _in_month(day))


def _in_month(day: date) -> Q:
    """Monthly accounts, and quarterly and yearly ones whose period starts in `day`'s month."""
    quarter_months = [m for m in range(1, 13) if (day.month - m) % 3 == 0]
    return (Q(bill_period="month") | Q(bill_period="quarter", bill_cycle_month__in=quarter_months)
            | Q(bill_period="year", bill_cycle_month=day.month))


def accounts_of(run: BillRun):
    accounts = BillingAccount.objects.all()
    if run.account_numbers:
        accounts = accounts.filter(number__in=run.account_numbers)
    elif run.cycle_day:  # a cycle billed on another day (late): its monthly, quarterly and yearly accounts due
        accounts = accounts.filter(Q(bill_cycle_day=run.cycle_day) & _in_month(run.day))
    elif not run.every_account:
        accounts = accounts.filter(due_on(run.day))
    if run.reseller_id:
        accounts = accounts.filter(reseller_id=run.reseller_id)
    if run.segment:
        accounts = accounts.filter(segment=run.segment)
    return accounts.order_by("pk")


@transaction.atomic
def start(actor: Actor, day: date, *, every_account: bool = False, cycle_day: int | None = None,
          reseller: str | None = None, segment: str = "", accounts: Sequence[str] = ()) -> BillRun:
    actor.require_write()
    if cycle_day is not None and not 1 <= cycle_day <= 31:
        raise ValidationFailed(f"cycle_day: 1 to 31, not {cycle_day}", field="cycle_day")
    found_reseller = None
    if reseller:
        found_reseller = Reseller.objects.filter(code=reseller).first()
        if found_reseller is None:
            raise ValidationFailed(f"reseller: no reseller {reseller!r}", field="reseller")
    numbers = sorted(set(accounts))
    if numbers:
        known = set(BillingAccount.objects.filter(number__in=numbers).values_list("number", flat=True))
        if missing := [n for n in numbers if n not in known]:
            raise ValidationFailed(f"accounts: no account {', '.join(missing)}", field="accounts")
    run = BillRun.objects.create(day=day, every_account=every_account, cycle_day=cycle_day, reseller=found_reseller,
                                 segment=segment, account_numbers=numbers, created_by=actor.label[:200])
    run.accounts = accounts_of(run).count()
    run.save(update_fields=["accounts"])
    audit.record(actor, "billrun.started", run, {"day": day, "accounts": run.accounts, "every_account": every_account,
                                                 "cycle_day": cycle_day, "reseller": reseller, "segment": segment,
                                                 "numbers": numbers})
    return run


def _failed(run: BillRun, account_id: int, step: str, error: Exception) -> None:
    """Keep why the step failed for the account; an unexpected error is kept too (with its type),
    so one account's bad data never stops the run."""
    if isinstance(error, ObolError):
        code, where, message = error.code, error.field or "", error.message
    else:
        code, where, message = "unexpected_error", "", f"{type(error).__name__}: {error}"
    BillRunError.objects.update_or_create(run=run, account_id=account_id, step=step, defaults={
        "code": code, "field": where, "message": message, "created_at": clock.now()})


def _add(summary: Summary, amounts: Iterable[tuple[str, Decimal]]) -> None:
    """Add documents' (currency, gross) to the summary's gross per currency."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for currency, gross in amounts:
        totals[currency] += gross
    for currency, total in totals.items():
        summary.gross[currency] = digits(Decimal(summary.gross.get(currency, "0")) + total, currency)


def _failed_before(run: BillRun, step: str) -> set[int]:
    """The accounts whose `step` of the run failed before (their errors go once it succeeds)."""
    return set(BillRunError.objects.filter(run=run, step=step).values_list("account_id", flat=True))


def _clear(run: BillRun, step: str, accounts: Iterable[int], failed_before: set[int]) -> None:
    """Forget the earlier errors of `accounts` (they have now passed the step)."""
    cleared = [pk for pk in accounts if pk in failed_before]
    if cleared:
        BillRunError.objects.filter(run=run, step=step, account_id__in=cleared).delete()


CHUNK = 500  # accounts per transaction of generate


def refresh_statistics_for(step: str) -> None:
    """The planner's statistics of the tables `step` reads (see the module's docstring)."""
    refresh_statistics(*(events.tables_read() if step == "generate" else (Invoice, InvoiceLine, InvoiceTax)))


def generate(actor: Actor, run: BillRun, *, chunk: tuple[int, int] = (0, 1),
             progress: Callable[[int, int], None] | None = None) -> Summary:
    """Each account's draft invoice (see the module's docstring), CHUNK accounts per transaction
    (`services.generate_many`: a handful of queries and bulk writes per chunk); `progress(done,
    total)` after each chunk. The whole run in one process refreshes the statistics first, and
    counts (and closes) the run at the end; a chunk of it leaves both to `generate_parallel`, or to
    a whole `generate` after the chunks."""
    began = time.perf_counter()
    summary = Summary(run.pk, "generate", run.day.isoformat())
    k, n = chunk
    ids = [pk for pk in accounts_of(run).values_list("pk", flat=True) if pk % n == k]
    holding = set(Invoice.objects.filter(bill_run=run).exclude(state=Invoice.State.CANCELLED)
                  .values_list("account_id", flat=True))
    summary.taken, summary.skipped = len(ids), len([pk for pk in ids if pk in holding])
    todo = [pk for pk in ids if pk not in holding]
    if n == 1 and len(todo) > CHUNK:
        refresh_statistics_for("generate")
    growing = GrowingTables(Invoice, InvoiceLine, InvoiceTax) if len(todo) > CHUNK else None
    failed_before = _failed_before(run, "generate")
    versions: dict = {}  # plan versions, read once for the run
    with collected_per_chunk() as collect:
        for start in range(0, len(todo), CHUNK):
            part = todo[start:start + CHUNK]
            accounts = list(BillingAccount.objects.filter(pk__in=part).select_related("customer").order_by("pk"))
            try:
                outcome = services.generate_many(actor, accounts, run.day, bill_run=run, versions=versions)
            except ObolError:  # the chunk as a whole failed: account by account, to keep each one's reason
                outcome = {}
                for account in accounts:
                    try:
                        outcome[account.pk] = services.generate(actor, account, run.day, bill_run=run)
                    except Exception as error:  # noqa: BLE001 - kept against the account; the run goes on
                        outcome[account.pk] = error
            for account_id, found in outcome.items():
                if isinstance(found, Exception):
                    _failed(run, account_id, "generate", found)
                    summary.errors += 1
                elif found is None:
                    summary.nothing_due += 1
                else:
                    summary.done += 1
            made = [pk for pk, found in outcome.items() if isinstance(found, Invoice)]
            if growing is not None:
                growing.added(len(made))
            _add(summary, Invoice.objects.filter(bill_run=run, account_id__in=made).exclude(  # and repairs credit notes
                state=Invoice.State.CANCELLED).values_list("currency", "gross"))
            _clear(run, "generate", [pk for pk in part if not isinstance(outcome.get(pk), Exception)], failed_before)
            if progress:
                progress(summary.skipped + start + len(part), len(ids))
            collect()
    if n == 1:  # a chunk's process never closes the run: see generate_parallel, or generate it whole
        _recount(run)
    summary.seconds = time.perf_counter() - began
    return summary


def generate_parallel(actor: Actor, run: BillRun, workers: int,
                      progress: Callable[[int, int], None] | None = None) -> Summary:
    """`generate` in `workers` processes forked from this one (PostgreSQL: SQLite has one writer),
    the k-th taking `chunk=(k, workers)`; their summaries added up, `seconds` the wall time.
    Forked, a worker starts in milliseconds with this process's set-up (a new interpreter takes a
    second). The statistics are refreshed once, here, and the run counted (and closed, when every
    worker finished) once, after them: a chunk's own process leaves that to whoever runs the whole.
    A worker that fails or is killed is named in the error and leaves its accounts, and the run
    open, to the next `generate` of the run, which resumes it. Not inside a transaction: the
    workers could not see what it has not committed."""
    if connection.vendor != "postgresql":
        raise ValidationFailed("workers: parallel processes need PostgreSQL (SQLite has one writer); use 1",
                               field="workers")
    if connection.in_atomic_block:
        raise ValidationFailed("workers: parallel processes cannot run inside a transaction; call it outside one",
                               field="workers")
    began = time.perf_counter()
    refresh_statistics_for("generate")
    context = multiprocessing.get_context("fork")
    reports = context.Queue()
    connections.close_all()  # each process opens its own
    children = [context.Process(target=_generate_part, args=(actor, run.pk, current_tenant(), (k, workers), reports))
                for k in range(workers)]
    for child in children:
        child.start()
    counts: dict[int, tuple[int, int]] = {}
    parts: dict[int, dict] = {}
    failed: dict[int, str] = {}
    pending = set(range(workers))
    while pending:
        try:
            kind, k, payload = reports.get(timeout=1)
        except queue.Empty:  # a worker killed (kill -9, out of memory) reports nothing
            for k in [k for k in pending if children[k].exitcode not in (None, 0)]:
                failed[k] = f"ended with exit code {children[k].exitcode}"
                pending.discard(k)
            continue
        if kind == "progress":
            counts[k] = payload
            if progress:
                progress(sum(done for done, _ in counts.values()), sum(total for _, total in counts.values()))
            continue
        pending.discard(k)
        if kind == "done":
            parts[k] = payload
        else:
            failed[k] = payload
    for child in children:
        child.join()
    run.refresh_from_db()
    _recount(run, finished=not failed)  # the workers' chunks leave the run open
    if failed:
        raise ObolError("generate: " + "; ".join(f"worker {k} {why}" for k, why in sorted(failed.items())) +
                        "; the other workers' invoices are made: run generate again to resume", code="worker_failed")
    summary = Summary(run.pk, "generate", run.day.isoformat())
    for part in parts.values():
        for name in ("taken", "done", "nothing_due", "errors", "skipped"):
            setattr(summary, name, getattr(summary, name) + part[name])
        _add(summary, [(currency, Decimal(total)) for currency, total in part["gross"].items()])
    summary.seconds = time.perf_counter() - began
    return summary


def _generate_part(actor: Actor, run_id: int, tenant, chunk: tuple[int, int], reports) -> None:
    """A forked worker of `generate_parallel`: its chunk of the run, reported on `reports`."""
    try:
        with tenant_context(tenant):
            summary = generate(actor, BillRun.objects.get(pk=run_id), chunk=chunk,
                               progress=lambda done, total: reports.put(("progress", chunk[0], (done, total))))
        reports.put(("done", chunk[0], asdict(summary)))
    except BaseException as error:
        reports.put(("failed", chunk[0], f"failed: {type(error).__name__}: {error}"))
        raise
    finally:
        connections.close_all()


def _recount(run: BillRun, finished: bool = True) -> None:
    """The run's figures from what is stored (several processes may have worked on it); with
    `finished` (every account was tried) and no errors, the run is generated."""
    invoices = Invoice.objects.filter(bill_run=run).exclude(state=Invoice.State.CANCELLED)
    run.invoices = invoices.count()  # documents: invoices and repairs credit notes
    run.errors = BillRunError.objects.filter(run=run, step="generate").count()
    run.accounts = accounts_of(run).count()
    invoiced = invoices.values("account_id").distinct().count()
    run.nothing_due = max(run.accounts - invoiced - run.errors, 0)
    if finished and run.errors == 0 and run.state == BillRun.State.OPEN:
        run.state, run.finished_at = BillRun.State.GENERATED, clock.now()
    run.save(update_fields=["invoices", "errors", "accounts", "nothing_due", "state", "finished_at"])


def _send(actor: Actor, invoices: list[int]) -> dict[int, Invoice | ObolError]:
    """Each invoice mailed with its PDF (`services.send`, one transaction and mail each); a mail
    the server refused left the invoice issued, and is reported as the invoice's error."""
    outcome: dict[int, Invoice | ObolError] = {}
    for invoice in Invoice.objects.filter(pk__in=invoices).select_related(
            "account__billing_contact").order_by("pk"):
        try:
            outcome[invoice.pk] = services.send(actor, invoice)
        except ObolError as error:
            outcome[invoice.pk] = error
    refused = Invoice.objects.filter(pk__in=[pk for pk, found in outcome.items() if not isinstance(found, ObolError)],
                                     state=Invoice.State.ISSUED).values_list("pk", "number")
    for pk, number in refused:
        outcome[pk] = ObolError(f"invoice {number}: the mail server refused the mail; it stays issued",
                                field="billing_contact", code="mail_refused")
    return outcome


def apply(actor: Actor, run: BillRun, step: str, *, numbers: Sequence[str] = (), accounts: Sequence[str] = (),
          on: date | None = None, progress: Callable[[int, int], None] | None = None) -> Summary:
    """`step` (accept, cancel, issue or send) on the run's invoices that may take it, or on those
    of `accounts` / with the draft ids or numbers in `numbers`. Send takes the issued invoices (not
    those sent already)."""
    if step not in STEPS:
        raise ValidationFailed(f"step: {step!r} is not one of {', '.join(STEPS)}", field="step")
    began = time.perf_counter()
    summary = Summary(run.pk, step, run.day.isoformat())
    allowed = {Invoice.State.ISSUED} if step == "send" else services.TRANSITIONS[step][0]
    invoices = Invoice.objects.filter(bill_run=run, state__in=allowed)
    if accounts:
        invoices = invoices.filter(account__number__in=accounts)
    if numbers:
        ids = [int(n) for n in numbers if n.isdigit()]
        invoices = invoices.filter(Q(number__in=numbers) | Q(pk__in=ids, number=""))
    chosen = list(invoices.order_by("pk").values_list("pk", "account_id"))
    summary.taken = len(chosen)
    if step in ("issue", "cancel") and len(chosen) > CHUNK:  # they read the invoices' lines
        refresh_statistics_for(step)
    accounts = dict(chosen)
    failed_before = _failed_before(run, step)
    with collected_per_chunk() as collect:
        for start in range(0, len(chosen), CHUNK):
            part = [pk for pk, _ in chosen[start:start + CHUNK]]
            if step == "send":
                outcome = _send(actor, part)
            else:
                outcome = services.move_many(actor, part, step, **({"on": on} if step == "issue" else {}))
            for pk, found in outcome.items():
                if isinstance(found, ObolError):
                    _failed(run, accounts[pk], step, found)
                    summary.errors += 1
                else:
                    summary.done += 1
            moved = [found for found in outcome.values() if not isinstance(found, ObolError)]
            _add(summary, [(found.currency, found.gross) for found in moved])
            _clear(run, step, [accounts[found.pk] for found in moved], failed_before)
            if progress:
                progress(start + len(part), len(chosen))
            collect()
    summary.seconds = time.perf_counter() - began
    return summary
