"""Use cases of the CRM side. Each runs in one transaction, checks the actor, validates, and
leaves an audit row."""
from __future__ import annotations

from django.db import transaction

from obol.core import audit
from obol.core.actors import Actor
from obol.core.errors import ValidationFailed
from obol.core.numbering import next_number
from obol.core.tenancy import current_tenant
from obol.core.validation import full_clean
from obol.customers.models import Address, BillingAccount, Contact, Customer, Reseller

CUSTOMER_FIELDS = ("kind", "name", "legal_name", "email", "phone", "country", "tax_id", "language", "reseller",
                   "external_ref")
ACCOUNT_FIELDS = ("name", "currency", "bill_cycle_day", "bill_period", "bill_cycle_month", "bill_weekday", "segment",
                  "itemised_usage",
                  "payment_terms_days", "mode", "credit_limit", "language",
                  "reseller", "omit_from_dunning", "parent", "billing_contact", "status")


def _snapshot(obj, fields) -> dict:
    return {f: getattr(obj, f) for f in fields}


def _apply(obj, data: dict, allowed: tuple[str, ...]) -> None:
    for name, value in data.items():
        if name not in allowed:
            raise ValidationFailed(f"{name}: cannot be set here", field=name)
        setattr(obj, name, value)


@transaction.atomic
def create_customer(actor: Actor, *, number: str | None = None, contacts=(), addresses=(), **data) -> Customer:
    actor.require_write()
    customer = Customer(tenant=current_tenant(), number=number or next_number("customer", "C-"))
    _apply(customer, data, CUSTOMER_FIELDS)
    full_clean(customer)
    customer.save()
    for contact in contacts:
        add_contact(actor, customer, **contact)
    for address in addresses:
        add_address(actor, customer, **address)
    audit.record(actor, "customer.create", customer, _snapshot(customer, ("number", *CUSTOMER_FIELDS)))
    return customer


def _update(actor: Actor, obj, action: str, fields: tuple[str, ...], changes: dict, reason: str):
    """Change `fields` of a customer or an account: validated, saved, audited as {field: [old, new]}."""
    actor.require_write()
    before = _snapshot(obj, fields)
    _apply(obj, changes, fields)
    full_clean(obj)
    obj.save()
    audit.record(actor, action, obj,
                 audit.diff(before, _snapshot(obj, fields)), reason)
    return obj


@transaction.atomic
def update_customer(actor: Actor, customer: Customer, reason: str = "", **changes) -> Customer:
    return _update(actor, customer, "customer.update", CUSTOMER_FIELDS, changes, reason)


@transaction.atomic
def add_contact(actor: Actor, customer: Customer, **data) -> Contact:
    actor.require_write()
    contact = Contact(tenant_id=customer.tenant_id, customer=customer, **data)
    full_clean(contact)
    contact.save()
    audit.record(actor, "contact.create", contact, data)
    return contact


@transaction.atomic
def add_address(actor: Actor, customer: Customer, **data) -> Address:
    actor.require_write()
    address = Address(tenant_id=customer.tenant_id, customer=customer, **data)
    full_clean(address)
    address.save()
    audit.record(actor, "address.create", address, data)
    return address


@transaction.atomic
def open_account(actor: Actor, customer: Customer, *, number: str | None = None, **data) -> BillingAccount:
    actor.require_write()
    tenant = current_tenant()
    account = BillingAccount(
        tenant=tenant,
        customer=customer,
        number=number or next_number("account", "A-"),
        currency=tenant.default_currency,
        language=customer.language or tenant.default_language,
        reseller=customer.reseller,
    )
    _apply(account, data, ACCOUNT_FIELDS)
    full_clean(account)
    account.save()
    audit.record(actor, "account.create", account, _snapshot(account, ("number", *ACCOUNT_FIELDS)))
    return account


@transaction.atomic
def update_account(actor: Actor, account: BillingAccount, reason: str = "", **changes) -> BillingAccount:
    return _update(actor, account, "account.update", ACCOUNT_FIELDS, changes, reason)


@transaction.atomic
def create_reseller(actor: Actor, *, code: str, name: str) -> Reseller:
    actor.require_write()
    reseller = Reseller(tenant=current_tenant(), code=code, name=name)
    full_clean(reseller)
    reseller.save()
    audit.record(actor, "reseller.create", reseller, {"code": code, "name": name})
    return reseller
