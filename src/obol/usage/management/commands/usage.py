"""`obol usage import|suspense|recycle`: the usage mass process from the command line."""
import json
import sys
from collections import Counter
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.text import Text

from obol.catalog.rates import from_micros
from obol.core.actors import Actor
from obol.core.management.base import day_option, reported_errors, tenant_from_option
from obol.core.tenancy import tenant_context
from obol.usage import pipeline
from obol.usage.importers import IMPORTERS, detect, load_profile
from obol.usage.models import SuspendedRecord

SUFFIXES = {".csv", ".jsonl", ".json", ".cdr"}


class RecordsPerSecond(ProgressColumn):
    def render(self, task):
        return Text(f"{task.speed:,.0f} records/s" if task.speed else "", style="progress.data.speed")


def _files(paths: list[str]) -> list[Path]:
    found = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES))
        elif path.is_file():
            found.append(path)
        else:
            raise CommandError(f"{name}: no such file or directory")
    return found


class Command(BaseCommand):
    help = "Import usage files (rate them, book allowances and money, keep suspense), list and recycle suspense."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        imp = sub.add_parser("import", help="import files or directories of usage records")
        imp.add_argument("paths", nargs="+")
        imp.add_argument("--tenant")
        imp.add_argument("--format", choices=sorted(IMPORTERS), help="default: detected from the file")
        imp.add_argument("--profile", help="a CSV/format profile (YAML or JSON)")
        imp.add_argument("--force", action="store_true", help="import files seen before again")
        imp.add_argument("--json", action="store_true", help="print the summary as JSON")
        susp = sub.add_parser("suspense", help="open suspense records by reason")
        susp.add_argument("--tenant")
        susp.add_argument("--reason", help="list the records of this reason")
        rr = sub.add_parser("rerate", help="price a period's rated records again (after a tariff correction)")
        rr.add_argument("--tenant")
        rr.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD")
        rr.add_argument("--to", dest="end", required=True, metavar="YYYY-MM-DD", help="exclusive")
        rr.add_argument("--account", help="one account number")
        rec = sub.add_parser("recycle", help="rate open suspense records again after their cause was fixed")
        rec.add_argument("--tenant")
        rec.add_argument("--json", action="store_true")

    def handle(self, *args, action, **options):
        tenant = tenant_from_option(options.get("tenant"))
        with tenant_context(tenant), reported_errors():
            getattr(self, f"do_{action}")(**options)

    def do_import(self, paths, format=None, profile=None, force=False, json=False, **_):  # noqa: A002
        settings = load_profile(Path(profile)) if profile else None
        summaries = []
        console = Console(file=sys.stderr)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RecordsPerSecond(),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=json) as progress:
            files = _files(paths)
            task = progress.add_task("files", total=len(files))
            records = progress.add_task("records stored", total=None)
            for path in files:
                fmt = format or detect(path) or ("csv" if settings else None)
                if fmt is None:
                    raise CommandError(f"{path}: format not recognised; give --format (and --profile for CSV)")
                progress.update(task, description=path.name)
                summaries.append(pipeline.import_file(
                    Actor.process("usage import"), path, fmt=fmt, profile=settings, force=force,
                    progress=lambda n: progress.advance(records, n)))
                progress.advance(task)
        self._report(summaries, json)
        if any(s.state == "failed" for s in summaries):
            raise CommandError("some files could not be imported (see above)")

    def _report(self, summaries, as_json):
        if as_json:
            self.stdout.write(json_dumps([s.as_dict() for s in summaries]))
            return
        for s in summaries:
            if s.state != "done":
                self.stdout.write(f"{s.file}: {s.state}: {s.note}")
                continue
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(s.suspended.items())) or "none"
            self.stdout.write(
                f"{s.file}: read {s.read}, rated {s.rated}, suspended {sum(s.suspended.values())} ({reasons}), "
                f"duplicates {s.duplicates}, skipped {s.skipped}, charged {from_micros(s.charged_micros):f}, "
                f"uncovered prepaid {s.uncovered}")

    def do_suspense(self, reason=None, **_):
        open_rows = SuspendedRecord.objects.filter(state=SuspendedRecord.State.OPEN)
        if reason:
            for row in open_rows.filter(reason=reason).select_related("file")[:1000]:
                self.stdout.write(f"{row.file.name if row.file else '-'}:{row.line}\t{row.reason}\t{row.message}\t"
                                  f"{row.raw}")
            return
        counts = Counter(open_rows.values_list("reason", flat=True))
        for name, count in sorted(counts.items(), key=lambda item: -item[1]):
            self.stdout.write(f"{count}\t{name}")
        if not counts:
            self.stdout.write("no open suspense records")

    def do_rerate(self, start, end, account=None, **_):
        from obol.customers.models import BillingAccount

        account_id = BillingAccount.objects.get_or_404("account", number=account).pk if account else None
        summary = pipeline.rerate(Actor.process("usage rerate"), start=day_option(start, "--from"),
                                  end=day_option(end, "--to"), account_id=account_id)
        self.stdout.write(f"re-rated {summary.records} record(s): {from_micros(summary.price_before_micros):f} -> "
                          f"{from_micros(summary.price_after_micros):f}; without tariff now: {summary.unrated}")

    def do_recycle(self, json=False, **_):  # noqa: A002
        summary = pipeline.recycle(Actor.process("usage recycle"))
        if json:
            self.stdout.write(json_dumps(summary.__dict__))
        else:
            still = ", ".join(f"{r} {n}" for r, n in sorted(summary.still_suspended.items())) or "none"
            self.stdout.write(f"recycled {summary.tried}: rated {summary.rated}, still suspended: {still}")


def json_dumps(data) -> str:
    return json.dumps(data, default=str, indent=2)
