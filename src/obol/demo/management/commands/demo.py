from pathlib import Path

from django.core.management.base import BaseCommand

from obol.core.management.base import reported_errors
from obol.demo.loader import API_KEY, PASSWORD, SAMPLES, STAFF, load_demo


class Command(BaseCommand):
    help = "Load the demo tenant (catalog, 50 customers, staff users, an API key). Safe to run again."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        load = sub.add_parser("load", help="load samples/demo into the demo tenant")
        load.add_argument("--dir", type=Path, default=SAMPLES)

    def handle(self, *args, action, **options):
        with reported_errors():
            report = load_demo(options["dir"])
        self.stdout.write(
            f"demo tenant: {report.customers_created} customers created, {report.customers_present} already there; "
            f"tariffs: {report.tariffs}; catalog: {report.catalog}; {report.invoices_issued} invoices issued"
        )


def credentials() -> str:
    users = ", ".join(f"{name} ({role.label.lower()})" for name, role in STAFF)
    return f"staff users {users}, password {PASSWORD!r}; API key {API_KEY}"
