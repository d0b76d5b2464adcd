from django.core.management.base import BaseCommand, CommandError

from obol.balances import promotions, services
from obol.core.actors import Actor
from obol.core.management.base import tenant_from_option
from obol.core.models import Tenant
from obol.core.tenancy import all_tenants, tenant_context


class Command(BaseCommand):
    help = "Check and maintain pockets: verify the ledger, expire pockets whose validity ended."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify", help="every balance equals the sum of its ledger entries")
        verify.add_argument("--tenant", help="one tenant (default: all)")
        expire = sub.add_parser("expire", help="zero pockets whose validity ended (daily job)")
        expire.add_argument("--tenant", help="one tenant (default: all)")
        promotions = sub.add_parser("grant-promotions", help="grant the promotion pockets that are due (daily job)")
        promotions.add_argument("--tenant", help="one tenant (default: all)")

    def handle(self, *args, action, **options):
        if action == "grant-promotions":
            return self._grant_promotions(options.get("tenant"))
        scope = tenant_context(tenant_from_option(options["tenant"])) if options.get("tenant") else all_tenants()
        with scope:
            if action == "verify":
                mismatches = services.verify()
                for mismatch in mismatches:
                    self.stderr.write(str(mismatch))
                if mismatches:
                    raise CommandError(f"{len(mismatches)} pocket(s) do not match their ledger")
                self.stdout.write("every pocket balance equals the sum of its ledger entries")
            elif action == "expire":
                count = services.expire_pockets(Actor.process("balances expire"))
                self.stdout.write(f"{count} pocket(s) expired")

    def _grant_promotions(self, tenant_code):
        tenants = [tenant_from_option(tenant_code)] if tenant_code else list(Tenant.objects.all())
        problems = 0
        for tenant in tenants:
            with tenant_context(tenant):
                run = promotions.grant_due_promotions(Actor.process("balances grant-promotions"))
            self.stdout.write(f"{tenant.code}: {run.granted} pocket(s) granted, {run.ended} application(s) ended")
            for problem in run.problems:
                self.stderr.write(f"{tenant.code}: {problem}")
            problems += len(run.problems)
        if problems:
            raise CommandError(f"{problems} promotion application(s) could not be granted")
