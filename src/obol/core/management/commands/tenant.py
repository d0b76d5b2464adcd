from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from obol.core import audit
from obol.core.actors import Actor
from obol.core.management.base import reported_errors, tenant_from_option
from obol.core.models import StaffProfile, Tenant
from obol.core.tenancy import tenant_context
from obol.core.roles import Role
from obol.core.validation import full_clean


# The seller's identity on invoices and e-invoices (EN 16931 BG-4): option -> Tenant field.
SELLER_OPTIONS = {"legal_name": "registered name (BT-27)", "vat_id": "VAT identifier with country prefix (BT-31)",
                  "registration_id": "company registration id (BT-30)", "street": "street and number",
                  "postcode": "postcode", "city": "city", "email": "contact e-mail (BT-34, BT-43)",
                  "iban": "IBAN customers pay into (BT-84)"}


def _seller_options(parser):
    for name, help_text in SELLER_OPTIONS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, help=help_text)


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
        _seller_options(create)
        seller = sub.add_parser("seller", help="set the seller's identity on invoices (EN 16931 seller)")
        seller.add_argument("--tenant")
        _seller_options(seller)
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
                **{name: options[name] for name in SELLER_OPTIONS if options.get(name) is not None},
            )
            with reported_errors():
                full_clean(tenant)
            tenant.save()
            self.stdout.write(f"created tenant {tenant.code} ({tenant.name})")
        elif action == "seller":
            tenant = tenant_from_option(options["tenant"])
            given = {name: options[name] for name in SELLER_OPTIONS if options.get(name) is not None}
            before = {name: getattr(tenant, name) for name in given}
            for name, value in given.items():
                setattr(tenant, name, value)
            with reported_errors():
                full_clean(tenant)
            tenant.save()
            changes = {name: [before[name], getattr(tenant, name)] for name in given
                       if before[name] != getattr(tenant, name)}
            with tenant_context(tenant):
                audit.record(Actor.process("obol tenant seller"), "tenant.change", tenant, changes,
                             reason="seller identity set on the command line")
            for name in SELLER_OPTIONS:
                self.stdout.write(f"{name}\t{getattr(tenant, name)}")
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
