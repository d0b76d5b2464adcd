"""The receivables ledger in double entry: issuing an invoice debits receivables with its gross and
credits revenue (per product revenue account, net) and VAT (per rate); a credit note posts the
same with the sides swapped (its amounts are negative). Each entry balances: debits = credits.
The payments issue will add cash. `export_csv` gives a period's lines for the accounting system.

Accounts come from `BillingSettings`: receivables (default 1200), the default revenue account
(4000) for products without their own, and the VAT account with the rate appended (2200:19).
With prices including tax, each VAT row's net is spread over its lines in proportion to their
amounts (`tax.line_nets`), and the lines' nets go to their revenue accounts.
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import date
from decimal import Decimal

from obol.billing import tax
from obol.billing.models import Invoice, InvoiceLine, InvoiceTax, JournalEntry, JournalLine
from obol.core import clock
from obol.core.bulk import filter_in, insert_returning, insert_values
from obol.core.money import digits
from obol.core.tenancy import current_tenant

ZERO = Decimal(0)


def _revenue(invoice: Invoice, lines: list[tuple], taxes: list[tuple], default_account: str) -> dict[str, Decimal]:
    """Net revenue per account from the invoice's lines `(amount, revenue account, VAT code, rate)`:
    their amounts, or with prices including tax their nets (`tax.line_nets`)."""
    amounts = [amount for amount, *_ in lines]
    if invoice.prices_include_tax:
        totals = tax.Totals(tuple(tax.TaxSubtotal(*row) for row in taxes))
        amounts = tax.line_nets([(amount, code, rate) for amount, _, code, rate in lines], totals, invoice.currency,
                                current_tenant().rounding)
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    for (_, account, _, _), amount in zip(lines, amounts, strict=True):
        revenue[account or default_account] += amount
    return revenue


def _postings(invoice: Invoice, lines: list[tuple], taxes: list[tuple], settings) -> list[tuple[str, Decimal]]:
    """(account, amount) of an invoice's entry: negative amounts are debits."""
    amounts: list[tuple[str, Decimal]] = [(settings.receivables_account, -invoice.gross)]
    amounts += sorted(_revenue(invoice, lines, taxes, settings.revenue_account).items())
    amounts += [(f"{settings.vat_account}:{rate.normalize():f}", vat) for _, rate, _, vat in taxes]
    return [(account, amount) for account, amount in amounts if amount != 0]


def post_many(invoices: list[Invoice], settings) -> int:
    """The entries of invoices and credit notes being issued (inside the issuing transaction): one
    bulk insert of entries, one of lines; how many entries. An entry that would not balance stops
    the issue."""
    ids = [invoice.pk for invoice in invoices]
    lines: dict[int, list[tuple]] = defaultdict(list)
    for invoice_id, *row in filter_in(InvoiceLine.objects.order_by("position").values_list(
            "invoice_id", "amount", "revenue_account", "tax_code", "tax_rate"), "invoice_id", ids):
        lines[invoice_id].append(tuple(row))
    taxes: dict[int, list[tuple]] = defaultdict(list)
    for invoice_id, *row in filter_in(InvoiceTax.objects.order_by("-rate").values_list(
            "invoice_id", "code", "rate", "taxable", "tax"), "invoice_id", ids):
        taxes[invoice_id].append(tuple(row))
    entries, rows, now = [], [], clock.now()
    for invoice in invoices:
        kind = "Credit note" if invoice.kind == Invoice.Kind.CREDIT_NOTE else "Invoice"
        description = f"{kind} {invoice.number} to {invoice.account.number}"
        posted = [(account, -amount if amount < 0 else ZERO, amount if amount > 0 else ZERO)
                  for account, amount in _postings(invoice, lines[invoice.pk], taxes[invoice.pk], settings)]
        debits, credits = sum((d for _, d, _ in posted), ZERO), sum((c for _, _, c in posted), ZERO)
        if debits != credits:  # a bug, never bad input: stop the issue rather than post it
            raise AssertionError(f"{description}: debits {debits} != credits {credits}")
        entries.append((invoice.tenant_id, invoice.issue_date, invoice.pk, description, now))
        rows.append((invoice, posted))
    keys = insert_returning(JournalEntry, ["tenant_id", "day", "invoice_id", "description", "created_at"], entries)
    insert_values(JournalLine, ["tenant_id", "entry_id", "account", "debit", "credit", "currency"],
                  [(invoice.tenant_id, key, account, debit, credit, invoice.currency)
                   for key, (invoice, posted) in zip(keys, rows, strict=True) for account, debit, credit in posted])
    return len(keys)


def unbalanced() -> list[str]:
    """Entries whose debits and credits differ (none, unless something wrote around `post`)."""
    sums: dict[int, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for entry_id, debit, credit in JournalLine.objects.values_list("entry_id", "debit", "credit"):
        sums[entry_id][0] += debit
        sums[entry_id][1] += credit
    return [f"entry {pk}: debits {d} != credits {c}" for pk, (d, c) in sorted(sums.items()) if d != c]


def export_csv(start: date, end: date) -> str:
    """The journal lines of entries dated from `start` to `end` (excluded), as CSV."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["date", "entry", "document", "account", "debit", "credit", "currency", "description"])
    lines = (JournalLine.objects.filter(entry__day__gte=start, entry__day__lt=end)
             .select_related("entry__invoice").order_by("entry__day", "entry_id", "pk"))
    for line in lines:
        writer.writerow([line.entry.day.isoformat(), line.entry_id, line.entry.invoice.number, line.account,
                         digits(line.debit, line.currency) if line.debit else "",
                         digits(line.credit, line.currency) if line.credit else "",
                         line.currency, line.entry.description])
    return out.getvalue()
