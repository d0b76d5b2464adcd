from datetime import date

from django.core.management.base import BaseCommand, CommandError

from obol.balances import allowances
from obol.core.actors import Actor
from obol.core.management.base import reported_errors, tenant_from_option
from obol.core.models import Tenant
from obol.core.tenancy import tenant_context


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--date: {text!r} is not a date (YYYY-MM-DD)") from None


class Command(BaseCommand):
    help = "Plan allowances: grant every subscription's allowance pockets for the current periods."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        grant = sub.add_parser("grant", help="grant the allowances of the periods containing the date "
                                             "(daily job; running it again grants nothing twice)")
        grant.add_argument("--date", type=_day, help="YYYY-MM-DD (default: today in each tenant's time zone)")
        grant.add_argument("--tenant", help="one tenant (default: all)")

    def handle(self, *args, action, **options):
        tenants = [tenant_from_option(options["tenant"])] if options.get("tenant") else list(
            Tenant.objects.order_by("code"))
        actor = Actor.process("allowances grant")
        failed = 0
        for tenant in tenants:
            with tenant_context(tenant), reported_errors():
                report = allowances.grant_due(actor, options.get("date"))
            self.stdout.write(f"{tenant.code} {report}")
            for number, reason in report.errors:
                self.stderr.write(f"{tenant.code} subscription {number}: {reason}")
            failed += len(report.errors)
        if failed:
            raise CommandError(f"{failed} subscription(s) could not be granted; the others were")
