"""Referral use cases: every customer's code, signups with a code, the qualifying events and
the credit.

- `referral_code_for(customer)`: the customer's code, made on first request.
- `register_signup(actor, referred, code)`: a new customer signed up with `code` (pending).
- Qualifying events, as the tenant's active program at signup says: the first activation of any
  subscription of the referred customer (the `subscription_activated` signal, connected here and
  loaded by the balances app's `ready()`), or `on_first_invoice_paid(...)`, which the payments code
  calls when the referred customer's first invoice is paid.
- The credit goes to the customer's first active billing account (lowest id) in the credit's
  currency (any active account for non-money units), as a pocket with source referral and the
  grant key `referral:<id>:referrer` / `referral:<id>:referred`: the same event twice, or two
  events, credit once. A customer without such an account leaves the referral qualified with a
  note; `credit_referral` grants the rest later.
"""
from __future__ import annotations

import secrets
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.dispatch import receiver

from obol.balances.models import Referral, ReferralCode, ReferralProgram, Source
from obol.balances.services import open_pocket
from obol.core import audit, clock
from obol.core.actors import Actor
from obol.core.errors import Conflict, ValidationFailed
from obol.core.money import Amount
from obol.customers.models import BillingAccount, Customer
from obol.subscriptions.signals import subscription_activated

# No 0/O, 1/I/L: a code is read aloud and typed from paper. 31^8 is about 8.5e11 codes.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
FIELD = "referral_code"

State = Referral.State
Event = ReferralProgram.Event


def _new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(code: str) -> str:
    return "".join((code or "").split()).upper()


def referral_code_for(customer: Customer) -> ReferralCode:
    """The customer's referral code, made (unique in the tenant, random) on first request."""
    existing = ReferralCode.objects.filter(customer=customer).first()
    if existing is not None:
        return existing
    for _ in range(10):
        try:
            with transaction.atomic():
                return ReferralCode.objects.create(tenant_id=customer.tenant_id, customer=customer,
                                                   code=_new_code())
        except IntegrityError:
            existing = ReferralCode.objects.filter(customer=customer).first()
            if existing is not None:  # made concurrently for the same customer
                return existing
    raise Conflict("referral_code: no free code found; try again", field=FIELD)  # pragma: no cover


@transaction.atomic
def register_signup(actor: Actor, referred_customer: Customer, code: str) -> Referral:
    """Record that `referred_customer` signed up with `code`. Refused: no active program, an
    unknown code (another tenant's codes are unknown), the customer's own code, a customer who
    was already referred."""
    actor.require_write()
    program = ReferralProgram.objects.filter(active=True).first()
    if program is None:
        raise ValidationFailed("referral_code: there is no referral program open for signups", field=FIELD,
                               code="no_referral_program")
    owner = ReferralCode.objects.filter(code=normalise_code(code)).select_related("customer").first()
    if owner is None:
        raise ValidationFailed(f"referral_code: {code!r} is not a referral code", field=FIELD,
                               code="unknown_referral_code")
    if owner.customer_id == referred_customer.pk:
        raise ValidationFailed("referral_code: a customer cannot refer themselves", field=FIELD,
                               code="self_referral")
    already = Conflict(f"referral_code: customer {referred_customer.number} was already referred",
                       field=FIELD, code="already_referred")
    if Referral.objects.filter(referred=referred_customer).exists():
        raise already
    try:
        with transaction.atomic():
            referral = Referral.objects.create(
                tenant_id=referred_customer.tenant_id, program=program, referrer=owner.customer,
                referred=referred_customer, code=owner.code)
    except IntegrityError:  # registered concurrently
        raise already from None
    audit.record(actor, "referral.register", referral,
                 {"referrer": owner.customer.number, "referred": referred_customer.number, "code": owner.code,
                  "program": program.pk})
    return referral


def _locked_referral(customer: Customer) -> Referral | None:
    return Referral.objects.select_for_update().select_related("program").filter(referred=customer).first()


def _qualify(actor: Actor, customer: Customer, event: str, qualified_by: str) -> Referral | None:
    referral = _locked_referral(customer)
    if referral is None or referral.state != State.PENDING or referral.program.qualifying_event != event:
        return None
    referral.state, referral.qualified_at, referral.qualified_by = State.QUALIFIED, clock.now(), qualified_by
    referral.save(update_fields=["state", "qualified_at", "qualified_by"])
    audit.record(actor, "referral.qualify", referral, {"state": [State.PENDING, State.QUALIFIED],
                                                       "event": event, "by": qualified_by})
    return _credit(actor, referral)


def account_for_credit(customer: Customer, amount: Amount) -> BillingAccount | None:
    """Where a customer's credit goes: the first active account (lowest id) in the credit's
    currency; for units that are not money, the first active account."""
    accounts = BillingAccount.objects.filter(customer=customer, status=BillingAccount.Status.ACTIVE)
    if amount.unit.is_money:
        accounts = accounts.filter(currency=amount.unit.code)
    return accounts.order_by("pk").first()


def _credit(actor: Actor, referral: Referral) -> Referral:
    program = referral.program
    valid_until = clock.now() + timedelta(days=program.validity_days) if program.validity_days else None
    granted, missing = {}, []
    for role, customer, amount in (("referrer", referral.referrer, program.referrer_credit),
                                   ("referred", referral.referred, program.referred_credit)):
        if amount is None:
            continue
        account = account_for_credit(customer, amount)
        if account is None:
            missing.append(f"customer {customer.number} has no active account for {amount.unit.code}")
            continue
        other = referral.referred if role == "referrer" else referral.referrer
        pocket, created = open_pocket(
            actor, account, amount, source=Source.REFERRAL, label=f"Referral bonus ({other.number})",
            valid_until=valid_until, grant_key=f"referral:{referral.pk}:{role}",
            reason=f"referral {referral.code}: {role} credit", reference=f"referral:{referral.pk}")
        if created:
            granted[role] = {"account": account.number, "amount": str(amount), "pocket": pocket.pk}
    before = referral.state
    if missing:
        referral.note = "; ".join(missing)
    else:
        referral.state, referral.credited_at, referral.note = State.CREDITED, clock.now(), ""
    referral.save(update_fields=["state", "credited_at", "note"])
    if granted or before != referral.state:
        audit.record(actor, "referral.credit", referral, {"state": [before, referral.state], **granted},
                     referral.note)
    return referral


@transaction.atomic
def on_first_invoice_paid(actor: Actor, customer: Customer, *, invoice_reference: str) -> Referral | None:
    """The payments code calls this when `customer`'s first invoice is paid. When the customer was
    referred under a program that qualifies on the first paid invoice, the referral is credited;
    calling it again (or for a later invoice) credits nothing more. Returns the referral it
    qualified, or None."""
    actor.require_write()
    return _qualify(actor, customer, Event.FIRST_INVOICE_PAID, f"invoice:{invoice_reference}")


@receiver(subscription_activated, dispatch_uid="obol.balances.referrals.first_activation")
def on_subscription_activated(sender, *, subscription, actor, first_for_customer=False, **kwargs):
    """The first subscription a referred customer activates qualifies the referral (programs that
    qualify on first activation). Runs inside the activation's transaction."""
    if first_for_customer:
        _qualify(actor, subscription.account.customer, Event.FIRST_ACTIVATION,
                 f"subscription:{subscription.number}")


@transaction.atomic
def credit_referral(actor: Actor, referral: Referral) -> Referral:
    """Grant what a qualified referral still lacks (a customer opened the account it needed)."""
    actor.require_write()
    referral = Referral.objects.select_for_update().select_related("program").get(pk=referral.pk)
    if referral.state != State.QUALIFIED:
        raise Conflict(f"state: the referral is {referral.state}; only a qualified one is credited",
                       field="state", code="illegal_transition")
    return _credit(actor, referral)


@transaction.atomic
def refuse_referral(actor: Actor, referral: Referral, reason: str) -> Referral:
    """Refuse a referral that is not credited yet (fraud, a duplicate person): it never credits."""
    actor.require_write()
    if not (reason or "").strip():
        raise ValidationFailed("reason: refusing a referral needs a reason", field="reason")
    referral = Referral.objects.select_for_update().get(pk=referral.pk)
    if referral.state in (State.CREDITED, State.REFUSED):
        raise Conflict(f"state: the referral is already {referral.state}", field="state",
                       code="illegal_transition")
    before = referral.state
    referral.state, referral.note = State.REFUSED, reason
    referral.save(update_fields=["state", "note"])
    audit.record(actor, "referral.refuse", referral, {"state": [before, State.REFUSED]}, reason)
    return referral
