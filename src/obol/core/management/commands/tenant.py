from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from obol.core.management.base import reported_errors, tenant_from_option
from obol.core.models import StaffProfile, Tenant
from obol.core.roles import Role
from obol.core.validation import full_clean


class Command(BaseCommand):
    help = "Create tenants (operators) and their staff users."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a tenant")
        create.add_argument("code")
        create.add_argument("name")
        create.add_argument("--currency", default="EUR")
        create.add_argument("--country", default="")
        create.add_argument("--timezone", default="UTC")
        create.add_argument("--rounding", choices=["half_up", "half_even"], default="half_up")
        staff = sub.add_parser("staff", help="create or update a staff user of a tenant")
        staff.add_argument("username")
        staff.add_argument("--tenant")
        staff.add_argument("--role", choices=[r.value for r in Role], default=Role.READONLY)
        staff.add_argument("--password", required=True)
        sub.add_parser("list", help="list tenants")

    @transaction.atomic
    def handle(self, *args, action, **options):
        if action == "create":
            if Tenant.objects.filter(code=options["code"]).exists():
                raise CommandError(f"tenant {options['code']!r} exists already")
            tenant = Tenant(
                code=options["code"], name=options["name"], default_currency=options["currency"].upper(),
                country=options["country"], timezone=options["timezone"], rounding=options["rounding"],
            )
            with reported_errors():
                full_clean(tenant)
            tenant.save()
            self.stdout.write(f"created tenant {tenant.code} ({tenant.name})")
        elif action == "staff":
            tenant = tenant_from_option(options["tenant"])
            user, _ = get_user_model().objects.get_or_create(username=options["username"])
            user.is_staff = True
            user.set_password(options["password"])
            user.save()
            StaffProfile.objects.update_or_create(user=user, defaults={"tenant": tenant, "role": options["role"]})
            self.stdout.write(f"staff user {user.username}: {options['role']} at {tenant.code}")
        else:
            for tenant in Tenant.objects.all():
                self.stdout.write(f"{tenant.code}\t{tenant.name}\t{tenant.default_currency}\t{tenant.timezone}")
