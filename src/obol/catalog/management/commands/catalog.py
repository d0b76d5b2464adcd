"""`obol catalog load FILE [--tenant CODE] [--effective-from YYYY-MM-DD]`: load a catalog file."""
from __future__ import annotations


from django.core.management.base import BaseCommand

from obol.catalog.services import load_catalog
from obol.core.actors import Actor
from obol.core.management.base import day_option, read_document, reported_errors, tenant_from_option
from obol.core.tenancy import tenant_context


class Command(BaseCommand):
    help = "Manage the price catalog."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        load = actions.add_parser(
            "load", help="Load a catalog YAML file (all or nothing; loading it again changes nothing)")
        load.add_argument("file", help="the catalog file (format: docs/catalog-format.md)")
        load.add_argument("--tenant", help="tenant code (default: the only tenant)")
        load.add_argument(
            "--effective-from", dest="effective_from", metavar="YYYY-MM-DD",
            help="first day of new plan versions (default: the file's effective_from, else today)")

    def handle(self, *args, action: str, **options):
        if action == "load":
            self.load(options["file"], tenant_code=options.get("tenant"),
                      effective_from=options.get("effective_from"))

    def load(self, file: str, *, tenant_code: str | None, effective_from: str | None) -> None:
        day = day_option(effective_from)
        text = read_document(file)
        tenant = tenant_from_option(tenant_code)
        with tenant_context(tenant), reported_errors():
            report = load_catalog(text, source=file, actor=Actor.process("catalog load"), effective_from=day)
        self.stdout.write(str(report))
