from django.core.management.base import BaseCommand

from obol.api.auth import create_api_key
from obol.api.models import ApiKey
from obol.core import clock
from obol.core.actors import Actor
from obol.core.management.base import reported_errors, tenant_from_option
from obol.core.roles import Role
from obol.core.tenancy import tenant_context


class Command(BaseCommand):
    help = "Create, list and revoke API keys of a tenant. The key is printed once and stored only hashed."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a key and print it")
        create.add_argument("--tenant")
        create.add_argument("--name", required=True)
        create.add_argument("--role", choices=[r.value for r in Role], default=Role.CLERK)
        listing = sub.add_parser("list", help="list keys (prefixes only)")
        listing.add_argument("--tenant")
        revoke = sub.add_parser("revoke", help="revoke a key by its prefix")
        revoke.add_argument("prefix")
        revoke.add_argument("--tenant")

    def handle(self, *args, action, **options):
        tenant = tenant_from_option(options["tenant"])
        with tenant_context(tenant), reported_errors():
            if action == "create":
                row, key = create_api_key(Actor.process("apikey create"), options["name"], options["role"])
                self.stdout.write(key)
                self.stderr.write(f"API key {row.prefix} ({row.role}) for {tenant.code}; store it now, it is not shown again")
            elif action == "list":
                for row in ApiKey.objects.order_by("created_at"):
                    state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
                    self.stdout.write(f"{row.prefix}\t{row.name}\t{row.role}\t{state}")
            else:
                updated = ApiKey.objects.filter(prefix=options["prefix"], revoked_at__isnull=True).update(
                    revoked_at=clock.now()
                )
                self.stdout.write(f"revoked {updated} key(s)")
