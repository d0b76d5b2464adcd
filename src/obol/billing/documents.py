"""Invoice documents: HTML from the tenant's template (or the built-in one), PDF by WeasyPrint.

- The template in force is the tenant's highest version for the invoice's language (the account's,
  else the tenant's), else its highest version for every language (""), else the built-in one in
  `document_defaults/`. Staff change it in the admin; each change is a new version.
- Templates use Django's template language on a bare engine (no file loaders, autoescaped). The
  context: `invoice`, `lines` (each with `amount_text`, `tax_rate_text`, `last_day`), `taxes`
  (each with `rate_text`, `taxable_text`, `tax_text`), `net`, `gross`, `account`, `customer`,
  `address`, `tenant`, `title`, `language`.
- Nothing is fetched from the network: WeasyPrint may only read `data:` URLs, so a template that
  names a remote stylesheet or image is rendered without it.
- Issuing records the template version in force (`Invoice.template`). The PDF of an issued invoice
  is rendered with that version the first time it is asked for, and stored with its SHA-256
  (`InvoiceDocument`): asking again returns the same bytes, whatever the template has become since.
  A draft is rendered each time with the template in force and not stored (a preview).
- Many at once: `store_pdfs(invoices, workers=N)` renders the issued ones that have no PDF yet in N
  forked processes, and stores them as `pdf_of` would.
- Speed (docs/billing-performance.md): a template is compiled once per process, and the documents of
  one template share a WeasyPrint font configuration (per thread: Pango's is not thread-safe), so
  fonts are looked up and shaped once, not for every document.
"""
from __future__ import annotations

import functools
import gc
import hashlib
import multiprocessing
import os
import threading
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from django.db import transaction
from django.template import Context, Engine

from obol.billing.models import Invoice, InvoiceDocument, InvoiceTemplate
from obol.billing.usage_charges import USAGE, usage_code
from obol.core.money import Amount, digits
from obol.core.rounding import RoundingPlace, round_amount
from obol.core.tenancy import current_tenant
from obol.usage.models import RatedRecord

DEFAULTS = Path(__file__).resolve().parent / "document_defaults"
_ENGINE = Engine(autoescape=True, libraries={}, builtins=["django.template.defaultfilters",
                                                          "django.template.defaulttags"])
ISSUED = {Invoice.State.ISSUED, Invoice.State.SENT}


@dataclass(frozen=True)
class Template:
    html: str
    css: str
    version: int  # 0: built-in


@functools.cache
def builtin() -> Template:
    return Template((DEFAULTS / "invoice.html").read_text(encoding="utf-8"),
                    (DEFAULTS / "invoice.css").read_text(encoding="utf-8"), 0)


def language_of(invoice: Invoice) -> str:
    return invoice.account.language or current_tenant().default_language or ""


def template_row(language: str) -> InvoiceTemplate | None:
    """The tenant's template in force for `language` (None: the built-in one)."""
    for wanted in ([language, ""] if language else [""]):
        found = InvoiceTemplate.objects.filter(language=wanted).order_by("-version").first()
        if found is not None:
            return found
    return None


def _template(row: InvoiceTemplate | None) -> Template:
    return builtin() if row is None else Template(row.html, row.css, row.version)


def template_for(language: str) -> Template:
    return _template(template_row(language))


def last_day(line) -> date:
    """The last day of a line's service (its end is excluded)."""
    return line.service_end - timedelta(days=1)


def context(invoice: Invoice, language: str) -> dict:
    currency = invoice.currency
    lines = list(invoice.lines.all())  # by position (the model's ordering); prefetched by store_pdfs
    for line in lines:
        line.amount_text = digits(line.amount, currency)
        line.tax_rate_text = f"{line.tax_rate.normalize():f}"
        line.last_day = last_day(line)
    taxes = list(invoice.taxes.all())
    for row in taxes:
        row.rate_text = f"{row.rate.normalize():f}"
        row.taxable_text, row.tax_text = digits(row.taxable, currency), digits(row.tax, currency)
    customer = invoice.account.customer
    calls, more_calls = itemised_calls(invoice, lines)
    return {
        "invoice": invoice, "lines": lines, "taxes": taxes, "account": invoice.account, "customer": customer,
        "calls": calls, "more_calls": more_calls,
        "address": customer.addresses.first(),
        "tenant": current_tenant(), "net": digits(invoice.net, currency), "gross": digits(invoice.gross, currency),
        "title": "Credit note" if invoice.kind == Invoice.Kind.CREDIT_NOTE else "Invoice", "language": language,
    }


MAX_CALLS = 5000  # an itemised list longer than this ends with how many more there are


def itemised_calls(invoice: Invoice, lines: list) -> tuple[list[dict], int]:
    """The rated records behind the invoice's usage lines, in time order, when its account asked
    for itemised usage (`BillingAccount.itemised_usage`): each with its start in the tenant's time
    zone, service, destination, units and price; and how many more there are past MAX_CALLS."""
    usage = [line for line in lines if line.kind == USAGE and line.amount > 0 and not line.reverses_id]
    if invoice.kind != Invoice.Kind.INVOICE or not invoice.account.itemised_usage or not usage:
        return [], 0
    keys = {(line.subscription_id, line.charge_code, line.service_start) for line in usage}
    zone, rule = ZoneInfo(current_tenant().timezone), current_tenant().rounding
    records = RatedRecord.objects.filter(account_id=invoice.account_id, uncovered=False,
                                         cycle_start__in={start for _, _, start in keys}).order_by("start", "pk")
    calls, more = [], 0
    for r in records.values_list("start", "subscription_id", "service", "destination", "destination_group",
                                 "quantity", "included", "price_micros", "cycle_start").iterator():
        start, subscription_id, service, destination, group, quantity, included, micros, period = r
        if (subscription_id, usage_code(service, group), period) not in keys:  # not one of this invoice's usage lines
            continue
        if len(calls) == MAX_CALLS:
            more += 1
            continue
        calls.append({"start": start.astimezone(zone), "service": service, "destination": destination,
                      "group": group, "quantity": quantity, "included": included,
                      "amount_text": digits(round_amount(Amount(Decimal(micros).scaleb(-6), invoice.currency),
                                                         RoundingPlace.DISPLAY, rule).value, invoice.currency)})
    return calls, more


@functools.lru_cache(maxsize=32)
def _compiled(html: str):
    return _ENGINE.from_string(html)


def render_html(invoice: Invoice, template: Template | None = None) -> str:
    language = language_of(invoice)
    template = template or template_for(language)
    html = _compiled(template.html).render(Context(context(invoice, language)))
    return html.replace("</head>", f"<style>{template.css}</style></head>", 1) if template.css else html


_local = threading.local()


def _fonts_for(template: Template):
    """The WeasyPrint font configuration of `template`'s documents in this thread (the last few
    templates'). One configuration per template: fonts a template's CSS declares never reach another's."""
    from weasyprint.text.fonts import FontConfiguration
    kept = _local.__dict__.setdefault("fonts", {})
    fonts = kept.pop(template, None) or FontConfiguration()
    kept[template] = fonts  # the most recent last
    while len(kept) > 8:
        del kept[next(iter(kept))]
    return fonts


def render_pdf(html: str, template: Template | None = None) -> bytes:
    """The PDF of `html` (from render_html). Given the template it came from, the fonts loaded and
    shaped for that template's earlier documents are used again: the same bytes in half the time."""
    from weasyprint import HTML  # imported on use: it loads Pango
    from weasyprint.urls import URLFetcher
    fonts = _fonts_for(template) if template is not None else None
    return HTML(string=html, url_fetcher=URLFetcher(allowed_protocols={"data"})).write_pdf(font_config=fonts)


def _store(rendered: list[tuple[int, int, bytes]]) -> None:
    """Keep the PDFs of issued invoices, (invoice id, template version, pdf) each. One already kept
    (rendered at the same time elsewhere) stays as it is: that one is the document."""
    with transaction.atomic():
        InvoiceDocument.objects.bulk_create(
            [InvoiceDocument(invoice_id=pk, pdf=pdf, sha256=hashlib.sha256(pdf).hexdigest(),
                             template_version=version) for pk, version, pdf in rendered],
            ignore_conflicts=True)


def pdf_of(invoice: Invoice) -> bytes:
    """The invoice's PDF: stored for an issued invoice (rendered and stored the first time), a
    fresh preview for a draft."""
    if invoice.state not in ISSUED:
        return render_pdf(render_html(invoice))
    stored = InvoiceDocument.objects.filter(invoice=invoice).first()
    if stored is None:
        template = _template(invoice.template)  # the one in force when it was issued: versions never change
        _store([(invoice.pk, template.version, render_pdf(render_html(invoice, template), template))])
        stored = InvoiceDocument.objects.get(invoice=invoice)
    return bytes(stored.pdf)


BATCH = 200  # invoices read at a time by store_pdfs
TASK = 8  # documents a worker renders at a time


def store_pdfs(invoices, workers: int | None = None) -> int:
    """Render and store the PDFs of the issued invoices among `invoices` (objects or ids) that have
    none yet, each with the template recorded at its issue, as `pdf_of` does one at a time; drafts
    and invoices already stored are left alone. Returns how many it rendered.

    `workers` processes render at a time (default: one per core). They are forked, and only turn
    HTML into PDF: this process reads the invoices (BATCH at a time, prefetched), makes the HTML and
    stores the PDFs, so the workers never touch the database."""
    ids = [getattr(invoice, "pk", invoice) for invoice in invoices]
    workers = max(1, workers or os.cpu_count() or 1)
    done = 0
    for rendered in _rendered(_tasks(ids), workers):
        _store(rendered)
        done += len(rendered)
    return done


def _tasks(ids: list[int]):
    """Lists of (invoice id, template, html) of the issued invoices without a PDF, TASK at a time."""
    templates = {}
    for start in range(0, len(ids), BATCH):
        task = []
        for invoice in (Invoice.objects.filter(pk__in=ids[start:start + BATCH], state__in=ISSUED,
                                               document__isnull=True)
                        .select_related("account__customer", "template", "credited")
                        .prefetch_related("lines", "taxes", "account__customer__addresses").order_by("pk")):
            if invoice.template_id not in templates:
                templates[invoice.template_id] = _template(invoice.template)
            template = templates[invoice.template_id]
            task.append((invoice.pk, template, render_html(invoice, template)))
            if len(task) == TASK:
                yield task
                task = []
        if task:
            yield task


def _render(task) -> list[tuple[int, int, bytes]]:
    return [(pk, template.version, render_pdf(html, template)) for pk, template, html in task]


def _worker_start() -> None:
    """A worker collects garbage once per task, not each time a document's thousands of objects
    trip the collector, and never walks what the fork brought along (which would also copy it page
    by page): 53 ms of CPU a document instead of 69, measured."""
    gc.freeze()
    gc.disable()


def _render_in_worker(task) -> list[tuple[int, int, bytes]]:
    rendered = _render(task)
    gc.collect()
    return rendered


def _rendered(tasks, workers: int):
    """The tasks' PDFs, in order: in this process, or in `workers` forked processes with up to two
    tasks each waiting, while this process makes the next tasks' HTML."""
    if workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield from map(_render, tasks)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                             initializer=_worker_start) as pool:
        waiting = deque()
        for task in tasks:
            waiting.append(pool.submit(_render_in_worker, task))
            if len(waiting) > 2 * workers:
                yield waiting.popleft().result()
        while waiting:
            yield waiting.popleft().result()
