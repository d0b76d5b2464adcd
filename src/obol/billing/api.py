"""REST routes for invoices: list and read them (lines, VAT rows, totals, the invoice a credit note
corrects), make a one-off invoice or generate an account's invoice on demand, take an invoice
through its life (accept, cancel, issue, send), credit it, and fetch its PDF. Every change goes
through billing.services; a refused step answers the API's one error shape (a step the invoice's
state does not allow is a 409 `illegal_transition`)."""
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from django.http import HttpResponse
from ninja import Field, Query, Router, Schema
from ninja.pagination import LimitOffsetPagination, paginate

from obol.api.idempotency import idempotent
from obol.api.schemas import ERRORS
from obol.billing import documents, services
from obol.billing.models import Invoice
from obol.core import clock
from obol.core.errors import ValidationFailed
from obol.core.fields import numeric_order
from obol.customers.models import BillingAccount

router = Router(tags=["billing"])

InvoiceState = Literal["draft", "accepted", "cancelled", "issued", "sent"]
InvoiceKind = Literal["invoice", "credit_note"]


class InvoiceLineOut(Schema):
    id: int
    position: int
    kind: str = Field(..., description="recurring | one_time | adjustment | adhoc")
    name: str
    label: str
    charge_code: str
    subscription_id: int | None
    service_start: date
    service_end: date = Field(..., description="Excluded")
    period_start: date | None
    period_end: date | None
    amount: Decimal = Field(..., description="Net, rounded per line; negative for a credit")
    tax_category: str
    tax_code: str = Field(..., description="EN 16931 VAT category code")
    tax_rate: Decimal = Field(..., description="Percent")
    reverses_id: int | None = Field(None, description="The line whose service days this line takes back")
    credits_id: int | None = Field(None, description="A credit note's line: the invoice line it credits")


class InvoiceTaxOut(Schema):
    code: str
    rate: Decimal
    taxable: Decimal
    tax: Decimal


class InvoiceRef(Schema):
    id: int
    number: str
    state: str
    gross: Decimal


class InvoiceSummaryOut(Schema):
    id: int
    kind: str
    state: str
    number: str = Field(..., description="Empty until issued")
    account: str = Field(..., alias="account.number", description="The billing account's number")
    account_id: int
    invoice_date: date
    issue_date: date | None
    due_date: date | None
    currency: str
    net: Decimal
    tax: Decimal
    gross: Decimal
    open_amount: Decimal = Field(..., description="What is still to be paid (set at issue)")
    credited_id: int | None = Field(None, description="A credit note: the invoice it corrects")
    bill_run_id: int | None
    created_at: datetime
    issued_at: datetime | None


class InvoiceOut(InvoiceSummaryOut):
    prices_include_tax: bool
    credited: InvoiceRef | None = Field(None, description="A credit note: the invoice it corrects")
    lines: list[InvoiceLineOut] = Field(..., alias="lines.all")
    taxes: list[InvoiceTaxOut] = Field(..., description="VAT breakdown, one row per rate, highest rate first")
    credit_notes: list[InvoiceRef] = Field(..., description="The credit notes that correct it, oldest first")

    @staticmethod
    def resolve_taxes(invoice: Invoice):
        return invoice.taxes.order_by(numeric_order("rate", descending=True), "code")

    @staticmethod
    def resolve_credit_notes(invoice: Invoice):
        return invoice.credit_notes.order_by("pk")


class GenerateOut(Schema):
    nothing_due: bool
    message: str
    invoice: InvoiceOut | None = Field(None, description="The draft; null when nothing is due")


class InvoiceFilter(Schema):
    account: str | None = Field(None, description="Billing account number")
    state: InvoiceState | None = None
    kind: InvoiceKind | None = None
    number: str | None = Field(None, description="The invoice number, exactly")
    from_: date | None = Field(None, alias="from", description="Invoice date on or after this day")
    to: date | None = Field(None, description="Invoice date before this day (excluded)")
    min_gross: Decimal | None = None
    max_gross: Decimal | None = None


class OneOffItemIn(Schema):
    name: str
    amount: Decimal = Field(..., description="Decimal string in the account's currency, at most its decimals")
    tax_category: str = Field("standard", description="The catalog's tax category (standard, reduced, ...)")


class OneOffIn(Schema):
    items: list[OneOffItemIn]
    day: date | None = Field(None, alias="date", description="The invoice date; default: today")
    reason: str = ""


class GenerateIn(Schema):
    day: date | None = Field(None, alias="date",
                             description="The target date the charges are calculated for; default: today")


class ReasonIn(Schema):
    reason: str = ""


class IssueIn(Schema):
    on: date | None = Field(None, description="The issue date; default: today")


class SendIn(Schema):
    to: str | None = Field(None, description="Default: the account's billing contact")


class CreditNoteIn(Schema):
    amounts: dict[int, Decimal] | None = Field(
        None, description="{invoice line id: amount to credit}; omitted: the whole invoice")
    reason: str = ""


def _invoice(invoice_id: int) -> Invoice:
    return Invoice.objects.select_related("account", "credited").get_or_404("invoice", pk=invoice_id)


def _account(number: str) -> BillingAccount:
    return BillingAccount.objects.get_or_404(f"account {number!r}", number=number)


def _writer(request):
    """The caller, refused unless its role may change things (every step below writes)."""
    request.actor.require_write()
    return request.actor


@router.get("/billing/invoices", response=list[InvoiceSummaryOut],
            summary="List invoices and credit notes, newest invoice date first")
@paginate(LimitOffsetPagination)
def list_invoices(request, filters: Query[InvoiceFilter]):
    invoices = Invoice.objects.select_related("account")
    if filters.from_ is not None and filters.to is not None and filters.to <= filters.from_:
        raise ValidationFailed("to: must be after from", field="to")
    lookups = {"account__number": filters.account, "state": filters.state, "kind": filters.kind,
               "number": filters.number, "invoice_date__gte": filters.from_, "invoice_date__lt": filters.to,
               "gross__gte": filters.min_gross, "gross__lte": filters.max_gross}
    return invoices.filter(**{k: v for k, v in lookups.items() if v is not None})


@router.get("/billing/invoices/{invoice_id}", response={200: InvoiceOut, **ERRORS},
            summary="An invoice with its lines, VAT breakdown and totals")
def get_invoice(request, invoice_id: int):
    return _invoice(invoice_id)


@router.get("/billing/invoices/{invoice_id}/pdf", response={**ERRORS}, summary="The invoice's PDF",
            description="An issued invoice's stored PDF (the same bytes every time); a draft's is a "
                        "fresh preview.",
            openapi_extra={"responses": {200: {"description": "The PDF", "content": {
                "application/pdf": {"schema": {"type": "string", "format": "binary"}}}}}})
def invoice_pdf(request, invoice_id: int):
    invoice = _invoice(invoice_id)
    response = HttpResponse(documents.pdf_of(invoice), content_type="application/pdf")
    name = (invoice.number or f"draft-{invoice.pk}").replace("/", "-")
    response["Content-Disposition"] = f'inline; filename="{name}.pdf"'
    return response


@router.post("/billing/accounts/{account_number}/one-off-invoices", response={201: InvoiceOut, **ERRORS},
             summary="A draft one-off invoice of ad-hoc charges (a technician's visit, a device)")
@idempotent(InvoiceOut)
def create_one_off(request, account_number: str, payload: OneOffIn):
    actor = _writer(request)
    invoice = services.one_off(actor, _account(account_number),
                               [(item.name, item.amount, item.tax_category) for item in payload.items],
                               payload.day or clock.today(), reason=payload.reason)
    return _invoice(invoice.pk)


@router.post("/billing/accounts/{account_number}/invoices", response={200: GenerateOut, **ERRORS},
             summary="Generate the account's invoice of what is due on a date (e.g. at termination)",
             description="Answers the draft, or `nothing_due: true` with a null invoice. Run again for the "
                         "same date, it answers the same draft.")
@idempotent(GenerateOut, status=200)
def generate_invoice(request, account_number: str, payload: GenerateIn = None):
    actor = _writer(request)
    account = _account(account_number)
    target = (payload.day if payload else None) or clock.today()
    invoice = services.generate(actor, account, target)
    if invoice is None:
        return {"nothing_due": True, "invoice": None,
                "message": f"account {account.number}: nothing is due on {target}"}
    return {"nothing_due": False, "invoice": _invoice(invoice.pk),
            "message": f"account {account.number}: draft {invoice} of {target}"}


def _step_route(step: str, body: type[Schema], summary: str, run):
    @router.post(f"/billing/invoices/{{invoice_id}}/{step}", response={200: InvoiceOut, **ERRORS},
                 summary=summary, operation_id=f"{step}_invoice")
    @idempotent(InvoiceOut, status=200)
    def operation(request, invoice_id: int, payload: body = None):
        actor = _writer(request)
        return _invoice(run(actor, _invoice(invoice_id), payload or body()).pk)

    return operation


_step_route("accept", ReasonIn, "Accept a draft invoice",
            lambda actor, invoice, p: services.accept(actor, invoice, reason=p.reason))
_step_route("cancel", ReasonIn, "Cancel a draft or accepted invoice (its lines count as not invoiced)",
            lambda actor, invoice, p: services.cancel(actor, invoice, reason=p.reason))
_step_route("issue", IssueIn, "Issue an accepted invoice: its number, issue and due dates, open amount",
            lambda actor, invoice, p: services.issue(actor, invoice, on=p.on))
_step_route("send", SendIn, "E-mail an issued invoice's PDF to the billing contact (or `to`)",
            lambda actor, invoice, p: services.send(actor, invoice, to=p.to))


@router.post("/billing/invoices/{invoice_id}/credit-notes", response={201: InvoiceOut, **ERRORS},
             summary="A draft credit note of an issued invoice: whole, or {line id: amount}")
@idempotent(InvoiceOut)
def create_credit_note(request, invoice_id: int, payload: CreditNoteIn = None):
    actor = _writer(request)
    payload = payload or CreditNoteIn()
    note = services.credit_note(actor, _invoice(invoice_id), payload.amounts, reason=payload.reason)
    return _invoice(note.pk)
