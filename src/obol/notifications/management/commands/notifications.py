from django.core.management.base import BaseCommand, CommandError

from obol.core.management.base import tenant_from_option
from obol.core.tenancy import all_tenants, tenant_context
from obol.notifications import services


class Command(BaseCommand):
    help = "Alert deliveries: send the pending ones and retry the failed ones (cron job)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        send = sub.add_parser("send", help="send pending deliveries and retry failed ones that are due")
        send.add_argument("--tenant", help="one tenant (default: all)")
        send.add_argument("--limit", type=int, default=500, help="at most this many deliveries (default 500)")

    def handle(self, *args, action, **options):
        if options["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        scope = tenant_context(tenant_from_option(options["tenant"])) if options.get("tenant") else all_tenants()
        with scope:
            report = services.send_pending(limit=options["limit"])
        self.stdout.write(f"{report.sent} delivery(ies) sent, {report.failed} failed")
        if report.failed:  # not an error of the command: failures are recorded and retried with backoff
            self.stderr.write(f"{report.failed} delivery(ies) failed: see Alerts in the admin")
