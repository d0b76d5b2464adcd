"""The demo tenant from samples/demo: staff users, an API key, the catalog, 50 customers with
accounts and subscriptions, German VAT rates, and the accounts' invoices up to today (issued).
Loading it again adds nothing that is already there (invoices only for what fell due since)."""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from obol.api.auth import create_api_key
from obol.api.models import ApiKey
from obol.balances import services as balances
from obol.billing import billrun
from obol.billing.models import BillRun, TaxRate
from obol.catalog.models import PricePlan
from obol.catalog.services import load_catalog
from obol.catalog.tariff_services import load_tariffs
from obol.core import clock
from obol.core.actors import Actor
from obol.core.models import StaffProfile, Tenant
from obol.core.money import Amount
from obol.core.roles import Role
from obol.core.tenancy import tenant_context
from obol.customers import services as customers
from obol.customers.models import BillingAccount, Customer
from obol.subscriptions import services as subscriptions

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "demo"
TENANT_CODE = "demo"
PASSWORD = "obol-demo"
STAFF = [("admin", Role.ADMIN), ("clerk", Role.CLERK), ("viewer", Role.READONLY)]
# A fixed key so the README can show a working curl line; it exists only in the demo tenant.
API_KEY = "obol_demo0000_demo-key-for-local-use-only-not-secret"


@dataclass
class DemoReport:
    customers_created: int = 0
    customers_present: int = 0
    invoices_issued: int = 0
    catalog: str = ""
    tariffs: str = ""
    notes: list[str] = field(default_factory=list)


def _staff(tenant: Tenant) -> None:
    users = get_user_model()
    for username, role in STAFF:
        user, created = users.objects.get_or_create(username=username, defaults={"is_staff": True})
        if created:
            user.set_password(PASSWORD)
            user.save()
        StaffProfile.objects.get_or_create(user=user, defaults={"tenant": tenant, "role": role})


def _customer(actor: Actor, row: dict, plans: dict[str, PricePlan]) -> None:
    customer = customers.create_customer(
        actor, number=row["number"], kind=row["kind"], name=row["name"], email=row["email"], phone=row["phone"],
        country=row["country"], tax_id=row["tax_id"], language="de",
        contacts=[{"role": "billing", "name": row["name"], "email": row["email"], "phone": row["phone"]}],
        addresses=[{"kind": "billing", "line1": row["street"], "postal_code": row["postal_code"],
                    "city": row["city"], "country": row["country"]}],
    )
    account = customers.open_account(
        actor, customer, number=row["number"].replace("DEMO", "ACC"), name=row["name"], currency="EUR",
        mode=row["mode"], bill_cycle_day=int(row["bill_cycle_day"]),
        billing_contact=customer.contacts.get(), credit_limit=None if row["mode"] == "prepaid" else 500,
    )
    identifiers = [{"kind": "msisdn", "value": row["msisdn"]}] if row["msisdn"] else []
    if row["username"]:
        identifiers.append({"kind": "username", "value": row["username"]})
    subscriptions.subscribe(
        actor, account, plans[row["plan"]], start_date=date.fromisoformat(row["start_date"]),
        quantity=int(row["quantity"]), identifiers_=identifiers, reason="demo data",
    )
    if row["mode"] == "prepaid":
        balances.top_up(actor, account, Amount("15.00", "EUR"), reference=f"demo-topup-{row['number']}",
                        reason="demo opening credit")


@transaction.atomic
def load_demo(directory: Path = SAMPLES) -> DemoReport:
    report = DemoReport()
    tenant, _ = Tenant.objects.get_or_create(
        code=TENANT_CODE,
        defaults={"name": "Obol Demo Telecom", "country": "DE", "timezone": "Europe/Berlin",
                  "default_currency": "EUR", "default_language": "de"},
    )
    _seller(tenant)
    _staff(tenant)
    actor = Actor.process("demo load")
    with tenant_context(tenant):
        if not ApiKey.objects.filter(prefix="demo0000").exists():
            create_api_key(actor, "demo key", Role.ADMIN, key=API_KEY)
        tariffs_file = directory.parent / "tariffs" / "tariffs.yaml"
        report.tariffs = str(load_tariffs(tariffs_file.read_text(), source=str(tariffs_file), actor=actor))
        catalog_file = directory / "catalog.yaml"
        report.catalog = str(load_catalog(catalog_file.read_text(), source=str(catalog_file), actor=actor))
        plans = {plan.code: plan for plan in PricePlan.objects.all()}
        existing = set(Customer.objects.values_list("number", flat=True))
        with open(directory / "customers.csv", newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row["number"] in existing:
                    report.customers_present += 1
                    continue
                _customer(actor, row, plans)
                report.customers_created += 1
        _vat(tenant)
        report.invoices_issued = _invoices(actor, clock.today())
    return report


# The demo operator's identity on its invoices (EN 16931 seller), so that its e-invoices export.
SELLER = {"legal_name": "Obol Demo Telecom GmbH", "vat_id": "DE136695976", "registration_id": "HRB 123456 B",
          "street": "Friedrichstraße 123", "postcode": "10117", "city": "Berlin",
          "email": "rechnung@demo-telecom.example", "iban": "DE89370400440532013000"}


def _seller(tenant: Tenant) -> None:
    """Fills in what is still blank (a tenant loaded by an older demo had none of it)."""
    blank = {name: value for name, value in SELLER.items() if not getattr(tenant, name)}
    if blank:
        for name, value in blank.items():
            setattr(tenant, name, value)
        tenant.full_clean()
        tenant.save(update_fields=list(blank))


def _vat(tenant: Tenant) -> None:
    for category, rate in (("standard", "19"), ("reduced", "7")):
        TaxRate.objects.get_or_create(tenant=tenant, country="DE", category=category, valid_from=date(2007, 1, 1),
                                      defaults={"rate": rate})


def _invoices(actor: Actor, today: date) -> int:
    """A bill run of every account for today (the one of an earlier load, resumed): its invoices
    accepted and issued."""
    run = BillRun.objects.filter(day=today, every_account=True).first() or billrun.start(actor, today,
                                                                                        every_account=True)
    billrun.generate(actor, run)
    billrun.apply(actor, run, "accept")
    return billrun.apply(actor, run, "issue", on=today).done
