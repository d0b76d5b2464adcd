"""`obol billrun`: bill runs from the command line (see billing/billrun.py).

    obol billrun start --date 2026-12-01 [--all | --cycle-day 1] [--reseller R] [--segment S] [--accounts A-1,A-2]
                       [--workers 4] [--json]          # records the run and generates its drafts
    obol billrun generate RUN [--workers 4] [--json]  # again: resumes a run stopped anywhere
    obol billrun accept|cancel|issue RUN [--invoices 12,FV/2026/000001] [--accounts A-1] [--on DATE] [--json]
    obol billrun show RUN [--json]                    # figures and errors
    obol billrun list
"""
from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from obol.billing import billrun
from obol.billing.models import BillRun, BillRunError
from obol.core.actors import Actor
from obol.core.errors import ObolError
from obol.core.management.base import day_option, reported_errors, tenant_from_option
from obol.core.tenancy import tenant_context


class PerSecond(ProgressColumn):
    def render(self, task):
        return Text(f"{task.speed:,.1f}/s" if task.speed else "", style="progress.data.speed")


def _list(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def _chunk(text: str | None) -> tuple[int, int]:
    if not text:
        return (0, 1)
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise CommandError(f"--chunk: {text!r} is not K/N") from None
    if not 0 <= k < n:
        raise CommandError(f"--chunk: {text!r} needs 0 <= K < N")
    return (k, n)


class Command(BaseCommand):
    help = "Bill runs: generate invoices for the accounts due on a day, then accept, cancel or issue them."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        start = sub.add_parser("start", help="record a bill run and generate its draft invoices")
        start.add_argument("--date", required=True, metavar="YYYY-MM-DD")
        start.add_argument("--all", action="store_true", help="every account, whatever its cycle day")
        start.add_argument("--cycle-day", type=int, help="only accounts with this cycle day")
        start.add_argument("--reseller", help="only this reseller's accounts")
        start.add_argument("--segment", default="", help="only accounts of this segment")
        start.add_argument("--accounts", help="only these account numbers (comma-separated)")
        gen = sub.add_parser("generate", help="generate a run's drafts again (resumes a stopped run)")
        gen.add_argument("run", type=int)
        gen.add_argument("--chunk", help="K/N: every N-th account from the K-th (for parallel processes)")
        for parser_ in (start, gen):
            parser_.add_argument("--workers", type=int, default=1, help="processes sharing the run (PostgreSQL)")
        for step in billrun.STEPS:
            move = sub.add_parser(step, help=f"{step} the run's invoices (all, or a selection)")
            move.add_argument("run", type=int)
            move.add_argument("--invoices", help="draft ids or invoice numbers (comma-separated)")
            move.add_argument("--accounts", help="the invoices of these account numbers")
            if step == "issue":
                move.add_argument("--on", metavar="YYYY-MM-DD", help="issue date (default: today)")
        show = sub.add_parser("show", help="a run's figures and errors")
        show.add_argument("run", type=int)
        sub.add_parser("list", help="the latest runs")
        for parser_ in sub.choices.values():
            parser_.add_argument("--tenant")
            parser_.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, action, **options):
        tenant = tenant_from_option(options.get("tenant"))
        self.tenant, self.as_json = tenant, options["json"]
        self.actor = Actor.process(f"billrun {action}")
        with tenant_context(tenant), reported_errors():
            getattr(self, f"do_{action}")(**options)

    def _run(self, number: int) -> BillRun:
        run = BillRun.objects.filter(pk=number).first()
        if run is None:
            raise CommandError(f"no bill run {number}")
        return run

    def _progress(self, label: str):
        return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), PerSecond(), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=Console(file=sys.stderr), disable=self.as_json)

    def _print(self, summary) -> None:
        self.stdout.write(json.dumps(summary.as_dict()) if self.as_json else str(summary))

    def do_start(self, date=None, all=False, cycle_day=None, reseller=None, segment="", accounts=None, workers=1,  # noqa: A002
                 **_):
        run = billrun.start(self.actor, day_option(date, "--date"), every_account=all, cycle_day=cycle_day,
                            reseller=reseller, segment=segment, accounts=_list(accounts))
        if not self.as_json:
            self.stdout.write(f"bill run {run.pk} of {run.day}: {run.accounts} accounts")
        self.do_generate(run.pk, workers=workers)

    def do_generate(self, run, chunk=None, workers=1, **_):
        found = self._run(run)
        if workers > 1:
            return self._parallel(found, workers)
        with self._progress("invoices") as progress:
            task = progress.add_task("", total=None)
            summary = billrun.generate(self.actor, found, chunk=_chunk(chunk),
                                       progress=lambda done, total: progress.update(task, completed=done, total=total))
        self._print(summary)
        if summary.errors:
            self._errors(found, "generate")
            raise CommandError(f"{summary.errors} account(s) failed; the others are done. Fix them, then run "
                               f"`obol billrun generate {found.pk}` again")

    def _parallel(self, run: BillRun, workers: int) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("--workers: parallel processes need PostgreSQL (SQLite has one writer); use 1")
        with self._progress(f"invoices ({workers} workers)") as progress:
            task = progress.add_task("", total=None)
            try:
                summary = billrun.generate_parallel(
                    self.actor, run, workers,
                    progress=lambda done, total: progress.update(task, completed=done, total=total))
            except ObolError as error:
                raise CommandError(error.message) from None
        out = {**summary.as_dict(), "workers": workers}
        self.stdout.write(json.dumps(out) if self.as_json else f"{summary} with {workers} workers")
        if summary.errors:
            self._errors(run, "generate")
            raise CommandError(f"{summary.errors} account(s) failed; the others are done. Fix them, then run "
                               f"`obol billrun generate {run.pk}` again")

    def _move(self, step, run, invoices=None, accounts=None, on=None, **_):
        found = self._run(run)
        with self._progress(step) as progress:
            task = progress.add_task("", total=None)
            summary = billrun.apply(self.actor, found, step, numbers=_list(invoices), accounts=_list(accounts),
                                    on=day_option(on, "--on"),
                                    progress=lambda done, total: progress.update(task, completed=done, total=total))
        self._print(summary)
        if summary.errors:
            self._errors(found, step)
            raise CommandError(f"{summary.errors} invoice(s) could not {step}; the others did")

    def do_accept(self, **options):
        self._move("accept", **options)

    def do_cancel(self, **options):
        self._move("cancel", **options)

    def do_issue(self, **options):
        self._move("issue", **options)

    def do_send(self, **options):
        self._move("send", **options)

    def _errors(self, run: BillRun, step: str) -> None:
        for failure in BillRunError.objects.filter(run=run, step=step).select_related("account")[:50]:
            self.stderr.write(f"account {failure.account.number}: {failure.code}: {failure.message}")

    def do_show(self, run, **_):
        found = self._run(run)
        failures = [{"account": f.account.number, "step": f.step, "code": f.code, "field": f.field,
                     "message": f.message} for f in BillRunError.objects.filter(run=found).select_related("account")]
        data = {"run": found.pk, "day": found.day.isoformat(), "state": found.state, "accounts": found.accounts,
                "invoices": found.invoices, "nothing_due": found.nothing_due, "errors": failures}
        if self.as_json:
            self.stdout.write(json.dumps(data))
            return
        self.stdout.write(f"bill run {found.pk} of {found.day}: {found.state}; {found.accounts} accounts, "
                          f"{found.invoices} invoices, {found.nothing_due} with nothing due, {len(failures)} errors")
        for failure in failures:
            self.stdout.write(f"  {failure['account']} ({failure['step']}): {failure['code']}: {failure['message']}")

    def do_list(self, **_):
        runs = list(BillRun.objects.order_by("-pk")[:20])
        if self.as_json:
            self.stdout.write(json.dumps([{"run": r.pk, "day": r.day.isoformat(), "state": r.state,
                                           "accounts": r.accounts, "invoices": r.invoices} for r in runs]))
            return
        for r in runs:
            self.stdout.write(f"{r.pk:>6}  {r.day}  {r.state:<9}  {r.accounts:>7} accounts  {r.invoices:>7} invoices")
