"""Invoices through their life: generate (a draft from the charge calculation), accept, cancel,
issue (a gapless number from the tenant's series, the due date, the open amount), send (the PDF by
e-mail to the account's billing contact, after commit). One
transaction each; every transition is in the audit trail; an issued invoice never changes.
"""
from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Q

from obol.balances.batch import lock_accounts
from obol.billing import charges, documents, events, journal, tax
from obol.billing.models import (
    BillingSettings,
    BillRun,
    Invoice,
    InvoiceLine,
    InvoiceTax,
    InvoiceTemplate,
    TaxRate,
)
from obol.core import audit, clock, numbering
from obol.core.actors import Actor
from obol.core.bulk import filter_in, insert_models, insert_values, update_columns
from obol.core.errors import IllegalTransition, NotFound, ObolError, ValidationFailed
from obol.core.money import Amount, display
from obol.core.rounding import RoundingPlace, round_amount
from obol.core.tenancy import current_tenant
from obol.customers.models import BillingAccount

State = Invoice.State
# transition -> (states it may start from, state it leads to)
TRANSITIONS = {
    "accept": ({State.DRAFT}, State.ACCEPTED),
    "cancel": ({State.DRAFT, State.ACCEPTED}, State.CANCELLED),
    "issue": ({State.ACCEPTED}, State.ISSUED),
    "send": ({State.ISSUED, State.SENT}, State.SENT),
}
_FIELD = re.compile(r"\{(yyyy|mm|dd|seq)(?::(0?\d+))?\}")


def settings() -> BillingSettings:
    found = BillingSettings.objects.first()
    return found if found is not None else BillingSettings(tenant=current_tenant())


def format_number(pattern: str, day: date, seq: int) -> str:
    """`INV/{yyyy}/{mm}/{seq:06}` on 2026-11-26, 42 -> `INV/2026/11/000042`."""
    def field(match: re.Match) -> str:
        name, width = match.group(1), match.group(2)
        value = {"yyyy": day.year, "mm": day.month, "dd": day.day, "seq": seq}[name]
        if name in ("mm", "dd") and width is None:
            width = "02"
        return f"{value:{width}d}" if width else str(value)

    if "{seq" not in pattern:
        raise ValidationFailed(f"number_pattern: {pattern!r} has no {{seq}}", field="number_pattern")
    return _FIELD.sub(field, pattern)


def number_series(pattern: str, kind: str, day: date) -> str:
    """The counter a number comes from: it restarts with each day, month or year the pattern names."""
    scope = (f"{day:%Y-%m-%d}" if "{dd" in pattern else f"{day:%Y-%m}" if "{mm" in pattern
             else f"{day:%Y}" if "{yyyy" in pattern else "all")
    return f"{kind}:{pattern}:{scope}"


def _country(account: BillingAccount) -> str:
    return account.customer.country or current_tenant().country


def _known_rates() -> list[tax.TaxRate]:
    return [tax.TaxRate(r.country, r.category, r.rate, r.code, r.valid_from, r.valid_to)
            for r in TaxRate.objects.all()]


_LINE_COLUMNS = ("tenant_id", "invoice_id", "position", "subscription_id", "charge_code", "kind", "name", "label",
                 "amount", "service_start", "service_end", "period_start", "period_end", "per_period", "tax_category",
                 "revenue_account", "tax_code", "tax_rate", "reverses_id", "credits_id", "quantity", "included", "unit")
_TAX_COLUMNS = ("tenant_id", "invoice_id", "code", "rate", "taxable", "tax")


@dataclass
class _Draft:
    """An invoice about to be written: the row (unsaved), its lines and VAT rows as values in
    _LINE_COLUMNS / _TAX_COLUMNS order without the invoice id (known once the invoice is inserted)."""

    invoice: Invoice
    lines: list[tuple]
    taxes: list[tuple]


def _draft(account: BillingAccount, target: date, lines: list[charges.Line], known: list[tax.TaxRate],
           bill_run: BillRun | None, prices_include_tax: bool, rule: str, credited: Invoice | None = None,
           reversed_: dict[str, InvoiceLine] | None = None) -> _Draft:
    """The invoice of `lines`, with its VAT worked out per rate category (EN 16931); with
    `credited`, a credit note of that invoice (its VAT never more than the invoice charged). A line
    that reverses an invoiced one (`reversed_`: those lines by id) takes back VAT at the rate that
    line charged, whatever the rate is now."""
    country = _country(account)
    rates = {category: tax.rate_for(known, country, category, target)
             for category in {line.tax_category for line in lines if not (reversed_ or {}).get(line.reverses)}}

    def rate_of(line: charges.Line) -> tax.TaxRate:
        earlier = (reversed_ or {}).get(line.reverses) if line.reverses else None
        if earlier is not None:
            return tax.TaxRate("", earlier.tax_category, earlier.tax_rate, earlier.tax_code)
        return rates[line.tax_category]

    line_rates = [rate_of(line) for line in lines]
    totals = tax.breakdown([(line.amount, rate) for line, rate in zip(lines, line_rates, strict=True)],
                           account.currency, rule, prices_include_tax=prices_include_tax)
    if credited is not None:
        totals = _credited_vat(credited, None, totals)
    invoice = Invoice(tenant_id=account.tenant_id, account_id=account.pk, invoice_date=target,  # ids: no lookups
                      currency=account.currency, prices_include_tax=prices_include_tax,
                      bill_run_id=bill_run.pk if bill_run else None, net=totals.net, tax=totals.tax,
                      gross=totals.gross, kind=Invoice.Kind.CREDIT_NOTE if credited else Invoice.Kind.INVOICE)
    if credited is not None:
        invoice.credited = credited
    rows = [(n, int(line.subscription) if line.subscription else None, line.code, line.kind, line.name, line.label,
             line.amount, line.start,
             line.end, line.period.start if line.period else None, line.period.end if line.period else None,
             line.per_period, line.tax_category, line.revenue_account, rate.code, rate.rate,
             int(line.reverses) if line.reverses else None,
             int(line.reverses) if credited and line.reverses else None, line.quantity, line.included, line.unit)
            for n, (line, rate) in enumerate(zip(lines, line_rates, strict=True), start=1)]
    return _Draft(invoice, rows, [(t.code, t.rate, t.taxable, t.tax) for t in totals.subtotals])


def _write(drafts: list[_Draft]) -> None:
    """Bulk inserts: the invoices (their ids come back), then their lines and VAT rows."""
    insert_models([d.invoice for d in drafts])
    insert_values(InvoiceLine, _LINE_COLUMNS, [(d.invoice.tenant_id, d.invoice.pk, *row)
                                               for d in drafts for row in d.lines])
    insert_values(InvoiceTax, _TAX_COLUMNS, [(d.invoice.tenant_id, d.invoice.pk, *row)
                                             for d in drafts for row in d.taxes])


@transaction.atomic
def generate_many(actor: Actor, accounts: list[BillingAccount], target: date, bill_run: BillRun | None = None,
                  versions: dict | None = None) -> dict[int, Invoice | None | ObolError]:
    """`generate` for many accounts in one transaction, with a handful of queries and bulk writes
    whatever their number. Returns per account id: its draft, None (nothing due) or the error that
    kept it from being invoiced (the others are written all the same)."""
    actor.require_write()
    lock_accounts([account.pk for account in accounts])
    outcome: dict[int, Invoice | None | ObolError] = {}
    drafts = {d.account_id: d for d in Invoice.objects.filter(  # one-off drafts are not the day's invoice
        account__in=accounts, invoice_date=target, kind=Invoice.Kind.INVOICE, state=State.DRAFT).exclude(
        lines__kind=ADHOC)}
    stamp = [d for d in drafts.values() if bill_run is not None and d.bill_run_id is None]
    for draft in stamp:
        draft.bill_run = bill_run
    Invoice.objects.bulk_update(stamp, ["bill_run"])
    outcome.update(drafts)
    todo = [account for account in accounts if account.pk not in drafts]
    found = events.events_of(todo, target, versions)
    config = settings()
    known, rule, include = _known_rates(), current_tenant().rounding, config.prices_include_tax
    proposed = {}
    for account in todo:
        try:
            proposed[account.pk] = charges.calculate(found[account.pk], target, account.currency, rule,
                                                     until=account.cycle.period_containing(target).end)
        except ObolError as error:
            outcome[account.pk] = error
    reversed_ = _reversed_lines(proposed)
    issued = {pk: row.invoice for pk, row in reversed_.items() if row.invoice.kind == Invoice.Kind.INVOICE
              and row.invoice.state in (State.ISSUED, State.SENT)} if config.repairs == "credit_note" else {}
    made: list[_Draft] = []
    for account in todo:
        if account.pk not in proposed:
            continue
        try:
            lines, notes = _split_repairs(proposed[account.pk], issued)
            documents_ = [_draft(account, target, lines, known, bill_run, include, rule, reversed_=reversed_)] \
                if lines else []
            documents_ += [_draft(account, target, part, known, bill_run, include, rule, credited=invoice,
                                  reversed_=reversed_) for invoice, part in notes]
        except ObolError as error:
            outcome[account.pk] = error
            continue
        made += documents_
        outcome[account.pk] = documents_[0].invoice if documents_ else None  # the invoice, else its credit note
    _write(made)
    audit.record_many(actor, "invoice.generated", [
        (d.invoice, {"lines": len(d.lines), "gross": d.invoice.gross, "invoice_date": target,
                     **({"credits": d.invoice.credited.number, "repairs": True} if d.invoice.credited else {})})
        for d in made])
    return outcome


def _reversed_lines(proposed: dict[int, list[charges.Line]]) -> dict[str, InvoiceLine]:
    """{line id: the invoiced line, with its invoice} for the lines the proposed ones reverse."""
    ids = {int(line.reverses) for lines in proposed.values() for line in lines if line.reverses}
    rows = filter_in(InvoiceLine.objects.select_related("invoice"), "pk", ids) if ids else ()
    return {str(row.pk): row for row in rows}


def _split_repairs(lines: list[charges.Line], issued: dict[str, Invoice]):
    """With repairs as credit notes: the lines that correct lines of issued invoices (credits, and
    the discount they had taken back) go on one credit note per invoice; the rest stays on the
    invoice. (lines, [(invoice, its corrections)])."""
    notes: dict[int, tuple[Invoice, list[charges.Line]]] = {}
    kept = []
    for line in lines:
        invoice = issued.get(line.reverses) if line.reverses else None
        if invoice is None:
            kept.append(line)
        else:
            notes.setdefault(invoice.pk, (invoice, []))[1].append(line)
    return kept, [notes[pk] for pk in sorted(notes)]


def generate(actor: Actor, account: BillingAccount, target: date, bill_run: BillRun | None = None) -> Invoice | None:
    """A draft invoice of what `account` owes on `target` (charges and repairs), or None when
    nothing is due. Run again for the same day, it returns the same draft: the lines of every
    invoice not cancelled count as invoiced."""
    found = generate_many(actor, [account], target, bill_run)[account.pk]
    if isinstance(found, ObolError):
        raise found
    return found


ADHOC = "adhoc"  # a one-off invoice's lines: the charge calculation leaves them alone


@transaction.atomic
def one_off(actor: Actor, account: BillingAccount, items: list[tuple[str, Decimal, str]], on: date,
            reason: str = "") -> Invoice:
    """A draft invoice of ad-hoc charges `(name, amount, tax category)` dated `on` (a technician's
    visit, a replaced device), with VAT per rate category; accepted and issued like any invoice.
    Bill runs do not see its lines, and its amounts are exact as given (rounded to the currency)."""
    actor.require_write()
    if not items:
        raise ValidationFailed("items: a one-off invoice needs at least one charge", field="items")
    rule = current_tenant().rounding
    end = on + timedelta(days=1)
    lines = []
    for n, (name, amount, category) in enumerate(items):  # counted from 0, as the API's request checks count
        if not name:
            raise ValidationFailed(f"items[{n}].name: a charge needs a name", field=f"items[{n}].name")
        rounded = round_amount(Amount(amount, account.currency), RoundingPlace.INVOICE_LINE, rule).value
        if rounded != Decimal(amount):
            raise ValidationFailed(f"items[{n}].amount: {amount} has more decimals than {account.currency}",
                                   field=f"items[{n}].amount")
        lines.append(charges.Line("", ADHOC, name, ADHOC, rounded, on, end, tax_category=category or "standard"))
    draft = _draft(account, on, lines, _known_rates(), None, settings().prices_include_tax, rule)
    _write([draft])
    audit.record(actor, "invoice.generated", draft.invoice, {"one_off": True, "lines": len(lines),
                                                             "gross": draft.invoice.gross}, reason)
    return draft.invoice


def _move(invoice: Invoice, transition: str) -> tuple[Invoice, str]:
    """The invoice locked, in the state `transition` leads to (not saved), and its state before."""
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    allowed, target = TRANSITIONS[transition]
    if invoice.state not in allowed:
        raise IllegalTransition(f"invoice {invoice} is {invoice.state}; cannot {transition} it (allowed from: "
                                f"{', '.join(sorted(allowed))})", field="state")
    before = invoice.state
    invoice.state = target
    return invoice, before


ACTIONS = {"accept": "invoice.accepted", "cancel": "invoice.cancelled", "issue": "invoice.issued"}


def _apply_credit(note: Invoice) -> None:
    """An issued credit note lowers what is open on the invoice it corrects; what the invoice no
    longer owes (it was paid) stays open on the note, as credit the customer has."""
    credited = Invoice.objects.select_for_update().get(pk=note.credited_id)
    applied = min(credited.open_amount, -note.gross) if credited.open_amount > 0 else Decimal(0)
    credited.open_amount -= applied
    credited.save(update_fields=["open_amount"])
    note.open_amount = note.gross + applied


def _number(invoices: list[Invoice], day: date, config: BillingSettings) -> None:
    """Numbers for invoices being issued, in their order: one block per series from its counter,
    which stays locked until the transaction ends (gapless, never twice)."""
    for kind in (Invoice.Kind.INVOICE, Invoice.Kind.CREDIT_NOTE):
        mine = [invoice for invoice in invoices if invoice.kind == kind]
        if not mine:
            continue
        pattern = config.number_pattern if kind == Invoice.Kind.INVOICE else config.credit_note_pattern
        first = numbering.next_values(number_series(pattern, kind, day), len(mine))
        for n, invoice in enumerate(mine):
            invoice.number = format_number(pattern, day, first + n)


@transaction.atomic
def move_many(actor: Actor, invoices: Sequence[Invoice | int], transition: str, *, on: date | None = None,
              reason: str = "") -> dict[int, Invoice | ObolError]:
    """accept, cancel or issue many invoices (or their ids) in one transaction, a handful of
    statements whatever their number. Issuing gives each its number (see `_number`), issue and due dates, open amount
    and journal entry; an issued invoice never changes after. Returns per invoice id the invoice
    moved, or why it could not move (the others move all the same)."""
    actor.require_write()
    allowed, target = TRANSITIONS[transition]
    ids = [i if isinstance(i, int) else i.pk for i in invoices]
    locked = Invoice.objects.select_for_update(of=("self",)).filter(pk__in=ids).order_by("pk")
    locked = list(locked.select_related("account") if transition == "issue" else locked)  # terms, language
    outcome: dict[int, Invoice | ObolError] = {}
    moving, before = [], {}
    repaired = _repaired_by(locked) if transition == "cancel" else {}
    for invoice in locked:
        if invoice.state not in allowed:
            outcome[invoice.pk] = IllegalTransition(
                f"invoice {invoice} is {invoice.state}; cannot {transition} it (allowed from: "
                f"{', '.join(sorted(allowed))})", field="state")
            continue
        if invoice.pk in repaired:
            outcome[invoice.pk] = IllegalTransition(
                f"invoice {invoice}: invoice {repaired[invoice.pk]} repairs its lines; cancel that one first",
                field="state")
            continue
        before[invoice.pk] = invoice.state
        invoice.state = target
        moving.append(invoice)
    fields = ["state"]
    if transition == "issue" and moving:
        day, config, now = on or clock.today(), settings(), clock.now()
        later = _issued_after(day, {invoice.kind for invoice in moving})
        if later:  # numbers follow dates: nothing is issued before what the series already issued
            for invoice in [i for i in moving if i.kind in later]:
                outcome[invoice.pk] = IllegalTransition(
                    f"invoice {invoice}: issue date {day} is before {later[invoice.kind]}, already issued in its "
                    "series; issue it on that day or later", field="on")
            moving = [invoice for invoice in moving if invoice.kind not in later]
    if transition == "issue" and moving:
        _number(moving, day, config)
        templates: dict[str, InvoiceTemplate | None] = {}
        for invoice in moving:
            language = documents.language_of(invoice)
            if language not in templates:
                templates[language] = documents.template_row(language)
            invoice.template = templates[language]
            invoice.issue_date, invoice.issued_at = day, now
            invoice.due_date = day + timedelta(days=invoice.account.payment_terms_days)
            invoice.open_amount = invoice.gross
            if invoice.kind == Invoice.Kind.CREDIT_NOTE and invoice.credited_id:
                _apply_credit(invoice)
        journal.post_many(moving, config)
        fields += ["number", "issue_date", "due_date", "open_amount", "issued_at", "template_id"]
    update_columns(Invoice, fields, {invoice.pk: [getattr(invoice, name) for name in fields] for invoice in moving})
    audit.record_many(actor, ACTIONS[transition], [
        (invoice, {"state": [before[invoice.pk], invoice.state]} | (
            {"number": invoice.number, "due_date": invoice.due_date, "gross": invoice.gross}
            if transition == "issue" else {})) for invoice in moving], reason)
    outcome.update({invoice.pk: invoice for invoice in moving})
    return outcome


def _issued_after(day: date, kinds: set[str]) -> dict[str, str]:
    """For each kind (invoice, credit note): the latest invoice of its series issued after `day`."""
    found = {}
    for kind in kinds:
        latest = (Invoice.objects.filter(kind=kind, issue_date__gt=day, state__in=documents.ISSUED)
                  .order_by("-issue_date").first())
        if latest is not None:
            found[kind] = f"{latest.number} of {latest.issue_date}"
    return found


def _repaired_by(invoices: list[Invoice]) -> dict[int, str]:
    """Invoices whose lines another invoice (not cancelled) repairs: {invoice id: the other's name}."""
    found = {}
    for row in InvoiceLine.objects.filter(reverses__invoice__in=invoices).exclude(
            invoice__state=State.CANCELLED).exclude(invoice__in=invoices).select_related("invoice", "reverses"):
        found[row.reverses.invoice_id] = str(row.invoice)
    return found


def _one(actor: Actor, invoice: Invoice, transition: str, **options) -> Invoice:
    found = move_many(actor, [invoice], transition, **options).get(invoice.pk)
    if found is None:
        raise NotFound(f"invoice {invoice.pk} not found")
    if isinstance(found, ObolError):
        raise found
    return found


def accept(actor: Actor, invoice: Invoice, reason: str = "") -> Invoice:
    return _one(actor, invoice, "accept", reason=reason)


def cancel(actor: Actor, invoice: Invoice, reason: str = "") -> Invoice:
    return _one(actor, invoice, "cancel", reason=reason)


def issue(actor: Actor, invoice: Invoice, on: date | None = None) -> Invoice:
    """Give an accepted invoice its number, issue and due dates and open amount (`move_many`)."""
    return _one(actor, invoice, "issue", on=on)


log = logging.getLogger(__name__)


def _mail(invoice: Invoice, address: str, pdf: bytes, tenant) -> None:
    if invoice.kind == Invoice.Kind.CREDIT_NOTE:
        subject = f"{tenant.name}: credit note {invoice.number}"
        body = (f"Please find attached credit note {invoice.number} of {invoice.issue_date} over "
                f"{display(-invoice.gross, invoice.currency)}, correcting invoice {invoice.credited}.")
    else:
        subject = f"{tenant.name}: invoice {invoice.number}"
        body = (f"Please find attached invoice {invoice.number} of {invoice.issue_date} over "
                f"{display(invoice.gross, invoice.currency)}, due on {invoice.due_date}.")
    message = EmailMessage(subject=subject, body=body,
                           to=[address])
    message.attach(f"{invoice.number.replace('/', '-')}.pdf", pdf, "application/pdf")
    message.send()


@transaction.atomic
def send(actor: Actor, invoice: Invoice, to: str | None = None) -> Invoice:
    """E-mail an issued invoice's PDF (the stored one) to `to` or the account's billing contact.
    The mail leaves after the transaction commits; if the mail server refuses it, the invoice goes
    back to issued and the failure is in its history."""
    actor.require_write()
    invoice, before = _move(invoice, "send")
    contact = invoice.account.billing_contact
    address = to or (contact.email if contact is not None else "")
    if not address:
        raise ValidationFailed(f"billing_contact: account {invoice.account.number} has no billing contact with an "
                               "e-mail address", field="billing_contact")
    pdf = documents.pdf_of(invoice)
    invoice.save(update_fields=["state"])
    audit.record(actor, "invoice.sent", invoice, {"state": [before, invoice.state], "to": address})
    tenant = current_tenant()

    def deliver():
        try:
            _mail(invoice, address, pdf, tenant)
        except OSError as error:
            log.warning("invoice %s: mail to %s failed: %s", invoice.number, address, error)
            with transaction.atomic():
                Invoice.objects.filter(pk=invoice.pk).update(state=before)
                audit.record(actor, "invoice.send_failed", invoice, {"to": address, "error": str(error)[:500]})

    transaction.on_commit(deliver)
    return invoice


def _credited_vat(invoice: Invoice, note: Invoice, totals: tax.Totals) -> tax.Totals:
    """The note's VAT per rate such that all the invoice's credit notes together never take back
    more VAT than the invoice charged: each rate's VAT is that of everything credited so far, less
    what earlier notes took (two notes of 12.50 at 19% take 2.38 and 2.37, not 2.38 twice)."""
    earlier = InvoiceTax.objects.filter(invoice__credited=invoice, invoice__kind=Invoice.Kind.CREDIT_NOTE).exclude(
        invoice=note).exclude(invoice__state=State.CANCELLED)
    charged = {(row.code, row.rate): row for row in invoice.taxes.all()}
    rows = []
    for sub in totals.subtotals:
        prior = [row for row in earlier if (row.code, row.rate) == (sub.code, sub.rate)]
        taxable = sum((row.taxable for row in prior), Decimal(0)) + sub.taxable
        prior_tax = sum((row.tax for row in prior), Decimal(0))
        original = charged.get((sub.code, sub.rate))
        if original is not None and -taxable == original.taxable:
            vat = -original.tax - prior_tax  # everything credited: exactly the VAT charged
        else:
            whole = tax.breakdown([(taxable, tax.TaxRate("", "", sub.rate, sub.code))], invoice.currency,
                                  current_tenant().rounding, prices_include_tax=False)
            vat = whole.tax - prior_tax
        rows.append(tax.TaxSubtotal(sub.code, sub.rate, sub.taxable, vat))
    return totals if invoice.prices_include_tax else tax.Totals(tuple(rows))


def _days_left(line: InvoiceLine, amount: Decimal, taken: list[tuple[date, date]], currency: str):
    """A whole credit note's reversal of a recurring line: (amount, start, end) for the days the
    line still bills after earlier reversals, `amount` shared by days (the last part takes the
    rest). Other lines (one-time, usage, discounts) are reversed over their own days."""
    whole = [(amount, line.service_start, line.service_end)]
    if line.kind != charges.RECURRING or not taken:
        return whole
    left = charges.subtract_days([(line.service_start, line.service_end)], taken)
    if len(left) <= 1:
        return [(amount, *left[0])] if left else whole
    days = sum((end - start).days for start, end in left)
    parts, rest = [], amount
    for n, (start, end) in enumerate(left):
        part = rest if n == len(left) - 1 else round_amount(
            Amount(amount * (end - start).days / days, currency), RoundingPlace.INVOICE_LINE,
            current_tenant().rounding).value
        parts.append((part, start, end))
        rest -= part
    return parts


def _negated_units(line: InvoiceLine, amount: Decimal) -> dict:
    """A usage line's units taken back with it (the share its amount is of the line's)."""
    if line.quantity is None or not line.amount:
        return {}
    share, places = amount / line.amount, Decimal("0.000001")
    return {"quantity": -(line.quantity * share).quantize(places).normalize(),
            "included": -((line.included or Decimal(0)) * share).quantize(places).normalize(), "unit": line.unit}


@transaction.atomic
def credit_note(actor: Actor, invoice: Invoice, amounts: dict[int, Decimal] | None = None,
                reason: str = "") -> Invoice:
    """A draft credit note against an issued invoice (accept and issue it like an invoice; it is
    numbered from the credit note series).

    - Without `amounts`: the whole invoice. Every line is reversed, so its days count as not
      invoiced and the next bill run charges them again if they are still due (cancel and re-bill).
    - With `amounts` ({invoice line id: amount to credit}): those amounts, as adjustments that the
      charge calculation leaves alone (a goodwill or price correction).
    A line is never credited beyond what is left of it after earlier credit notes and the repairs
    later invoices made to it; a whole credit note takes what is left.
    """
    actor.require_write()
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.kind != Invoice.Kind.INVOICE or invoice.state not in (State.ISSUED, State.SENT):
        raise IllegalTransition(f"invoice {invoice} is {invoice.state}: only an issued invoice is credited",
                                field="state")
    lines = {line.pk: line for line in invoice.lines.all()}
    # what is left of each line: less earlier credit notes' lines and later invoices' repairs
    credited: dict[int, Decimal] = defaultdict(Decimal)
    taken_days: dict[int, list[tuple[date, date]]] = defaultdict(list)
    for row in InvoiceLine.objects.filter(Q(credits__in=lines) | Q(reverses__in=lines)).exclude(
            invoice__state=State.CANCELLED):
        credited[row.credits_id or row.reverses_id] += row.amount
        if row.reverses_id:
            taken_days[row.reverses_id].append((row.service_start, row.service_end))
    wanted = ({pk: line.amount + credited[pk] for pk, line in lines.items() if line.amount + credited[pk] != 0}
              if amounts is None else dict(amounts))
    if not wanted:
        raise ValidationFailed(f"invoice {invoice}: nothing is left to credit", field="amounts")
    rows = []
    for pk, amount in wanted.items():
        line = lines.get(pk)
        if line is None:
            raise ValidationFailed(f"amounts: line {pk} is not a line of invoice {invoice}", field="amounts")
        left = line.amount + credited.get(pk, Decimal(0))
        if amount == 0 or (amount > 0) != (line.amount > 0) or abs(amount) > abs(left):
            raise ValidationFailed(f"amounts: line {line.position} ({line.name}) can be credited up to "
                                   f"{display(left, invoice.currency)}, not {display(amount, invoice.currency)}",
                                   field="amounts")
        rows.append((line, amount))
    charged = sum((line.amount for line in lines.values()), Decimal(0))  # as the lines state it (net or gross)
    left_total = charged + sum(credited.values(), Decimal(0))
    if amounts is not None and charged > 0 and sum(amounts.values(), Decimal(0)) > left_total:
        raise ValidationFailed(f"amounts: invoice {invoice} has {display(left_total, invoice.currency)} left to "
                               f"credit (its discounts and earlier credits counted), not "
                               f"{display(sum(amounts.values(), Decimal(0)), invoice.currency)}", field="amounts")
    if amounts is None:  # a reversal takes back the days still invoiced, so a repair cancelled later stays right
        rows = [(line, part, start, end) for line, amount in rows
                for part, start, end in _days_left(line, amount, taken_days[line.pk], invoice.currency)]
    else:
        rows = [(line, amount, line.service_start, line.service_end) for line, amount in rows]
    note = Invoice.objects.create(account=invoice.account, kind=Invoice.Kind.CREDIT_NOTE, credited=invoice,
                                  invoice_date=clock.today(), currency=invoice.currency,
                                  prices_include_tax=invoice.prices_include_tax)
    InvoiceLine.objects.bulk_create([
        InvoiceLine(tenant_id=note.tenant_id, invoice=note, position=n, subscription_id=line.subscription_id,
                    charge_code=line.charge_code, kind=line.kind if amounts is None else "adjustment",
                    name=line.name, label=line.label, amount=-amount, service_start=start, service_end=end,
                    period_start=line.period_start, period_end=line.period_end, per_period=line.per_period,
                    tax_category=line.tax_category, tax_code=line.tax_code, tax_rate=line.tax_rate,
                    reverses=line if amounts is None else None, credits=line, revenue_account=line.revenue_account,
                    **(_negated_units(line, amount) if amounts is None else {}))
        for n, (line, amount, start, end) in enumerate(rows, start=1)])
    totals = _credited_vat(invoice, note, tax.breakdown(
        [(-amount, tax.TaxRate("", line.tax_category, line.tax_rate, line.tax_code)) for line, amount, _, _ in rows],
        note.currency, current_tenant().rounding, prices_include_tax=note.prices_include_tax))
    InvoiceTax.objects.bulk_create([InvoiceTax(tenant_id=note.tenant_id, invoice=note, code=s.code, rate=s.rate,
                                               taxable=s.taxable, tax=s.tax) for s in totals.subtotals])
    note.net, note.tax, note.gross = totals.net, totals.tax, totals.gross
    note.save(update_fields=["net", "tax", "gross"])
    audit.record(actor, "credit_note.created", note, {"credits": invoice.number, "gross": note.gross,
                                                      "full": amounts is None}, reason)
    return note
