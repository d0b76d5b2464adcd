"""`obol charging sweep`: commit and release the sessions whose grant expired (run every minute)."""
from django.core.management.base import BaseCommand

from obol.charging import service
from obol.core.actors import Actor
from obol.core.management.base import tenant_from_option
from obol.core.models import Tenant
from obol.core.tenancy import tenant_context


class Command(BaseCommand):
    help = "Real-time charging maintenance: sweep expired sessions."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sweep = sub.add_parser("sweep", help="commit what expired sessions reported used and release their holds")
        sweep.add_argument("--tenant", help="one tenant (default: all)")

    def handle(self, *args, action, **options):
        tenants = [tenant_from_option(options["tenant"])] if options.get("tenant") else list(Tenant.objects.all())
        for tenant in tenants:
            with tenant_context(tenant):
                swept = service.sweep(Actor.process("charging sweep"))
            self.stdout.write(f"{tenant.code}: {swept} expired session(s) swept")
