"""`obol journal`: the receivables ledger (billing/journal.py).

    obol journal export --from 2026-11-01 --to 2026-12-01 [--out FILE]   # CSV, `to` excluded
    obol journal verify                                                 # every entry balances
"""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from obol.billing import journal
from obol.core.management.base import day_option, reported_errors, tenant_from_option
from obol.core.tenancy import tenant_context


class Command(BaseCommand):
    help = "The receivables ledger: export a period as CSV, or check that every entry balances."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        export = sub.add_parser("export", help="a period's journal lines as CSV")
        export.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD")
        export.add_argument("--to", dest="end", required=True, metavar="YYYY-MM-DD", help="excluded")
        export.add_argument("--out", help="file (default: standard output)")
        sub.add_parser("verify", help="every entry's debits equal its credits")
        for parser_ in sub.choices.values():
            parser_.add_argument("--tenant")

    def handle(self, *args, action, **options):
        tenant = tenant_from_option(options.get("tenant"))
        with tenant_context(tenant), reported_errors():
            if action == "export":
                text = journal.export_csv(day_option(options["start"], "--from"), day_option(options["end"], "--to"))
                if options.get("out"):
                    Path(options["out"]).write_text(text, encoding="utf-8")
                else:
                    self.stdout.write(text, ending="")
                return
            problems = journal.unbalanced()
            for problem in problems:
                self.stderr.write(problem)
            if problems:
                raise CommandError(f"{len(problems)} entries do not balance")
            self.stdout.write("every journal entry balances")
