"""Back office views of billing: VAT rates and the tenant's invoicing settings (editable); invoice
templates (a change saves a new version; preview on the tenant's latest invoice); invoices with their
lines, VAT breakdown and PDF, and bill runs with their errors (read-only: only billing.services
changes an invoice)."""
from django.contrib import admin, messages
from django.db.models import Max
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from obol.billing import documents, einvoice
from obol.billing.models import (
    BillingSettings,
    BillRun,
    BillRunError,
    Invoice,
    InvoiceLine,
    InvoiceTax,
    InvoiceTemplate,
    JournalEntry,
    JournalLine,
    TaxRate,
)
from obol.core.admin import ReadOnlyAdminMixin, TenantInlineMixin, TenantScopedAdmin


@admin.register(TaxRate)
class TaxRateAdmin(TenantScopedAdmin):
    list_display = ["country", "category", "rate", "code", "valid_from", "valid_to"]
    list_filter = ["country", "category"]


@admin.register(BillingSettings)
class BillingSettingsAdmin(TenantScopedAdmin):
    list_display = ["tenant", "number_pattern", "credit_note_pattern", "prices_include_tax", "receivables_account",
                    "revenue_account", "vat_account"]


class InvoiceLineInline(ReadOnlyAdminMixin, TenantInlineMixin, admin.TabularInline):
    model = InvoiceLine
    fields = readonly_fields = ["position", "name", "label", "service_start", "service_end", "amount", "tax_rate",
                                "reverses"]
    extra = 0


class InvoiceTaxInline(ReadOnlyAdminMixin, TenantInlineMixin, admin.TabularInline):
    model = InvoiceTax
    fields = readonly_fields = ["code", "rate", "taxable", "tax"]
    extra = 0


def _pdf_response(pdf: bytes, name: str) -> HttpResponse:
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{name}.pdf"'
    return response


@admin.register(InvoiceTemplate)
class InvoiceTemplateAdmin(TenantScopedAdmin):
    list_display = ["__str__", "language", "version", "note", "created_by", "created_at", "preview"]
    list_filter = ["language"]
    readonly_fields = ["version", "created_by", "created_at"]

    def preview(self, obj):
        return format_html('<a href="{}">PDF preview</a>',
                           reverse("admin:billing_invoicetemplate_preview", args=[obj.pk]))

    def has_delete_permission(self, request, obj=None):
        return False  # the versions are the template's history

    def save_model(self, request, obj, form, change):
        """Every save is a new version: the invoices rendered with the old one keep pointing at it."""
        if change:
            obj.pk = None
            obj._state.adding = True
        latest = (InvoiceTemplate.objects.filter(language=obj.language).aggregate(v=Max("version"))["v"] or 0)
        obj.version = latest + 1
        obj.created_by = request.user.get_username()
        super().save_model(request, obj, form, False)

    def get_urls(self):
        return [path("<int:pk>/preview/", self.admin_site.admin_view(self.preview_view),
                     name="billing_invoicetemplate_preview"), *super().get_urls()]

    def preview_view(self, request, pk):
        template = get_object_or_404(self.get_queryset(request), pk=pk)
        sample = Invoice.objects.filter(tenant_id=template.tenant_id).order_by("-pk").first()
        if sample is None:
            self.message_user(request, "There is no invoice yet to preview the template on.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:billing_invoicetemplate_changelist"))
        html = documents.render_html(sample, documents.Template(template.html, template.css, template.version))
        return _pdf_response(documents.render_pdf(html), f"preview-v{template.version}")


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["__str__", "kind", "state", "account", "invoice_date", "issue_date", "due_date", "gross",
                    "open_amount", "currency", "pdf"]
    list_filter = ["state", "kind", "currency", "bill_run"]
    search_fields = ["number", "account__number", "account__customer__name"]
    date_hierarchy = "invoice_date"
    inlines = [InvoiceLineInline, InvoiceTaxInline]

    def pdf(self, obj):
        links = [format_html('<a href="{}">PDF</a>', reverse("admin:billing_invoice_pdf", args=[obj.pk]))]
        if obj.state in documents.ISSUED:
            links += [format_html('<a href="{}">Factur-X</a>', reverse("admin:billing_invoice_facturx", args=[obj.pk])),
                      format_html('<a href="{}">UBL</a>', reverse("admin:billing_invoice_ubl", args=[obj.pk]))]
        return format_html_join(" · ", "{}", ((link,) for link in links))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [path("<int:pk>/pdf/", view(self.pdf_view), name="billing_invoice_pdf"),
                path("<int:pk>/facturx/", view(self.facturx_view), name="billing_invoice_facturx"),
                path("<int:pk>/ubl/", view(self.ubl_view), name="billing_invoice_ubl"),
                *super().get_urls()]

    def facturx_view(self, request, pk):
        invoice = get_object_or_404(self.get_queryset(request), pk=pk)
        return _pdf_response(einvoice.facturx_pdf(invoice), f"{invoice.number.replace('/', '-')}-factur-x")

    def ubl_view(self, request, pk):
        invoice = get_object_or_404(self.get_queryset(request), pk=pk)
        response = HttpResponse(einvoice.ubl_xml(invoice), content_type="application/xml")
        response["Content-Disposition"] = f'attachment; filename="{invoice.number.replace("/", "-")}-ubl.xml"'
        return response

    def pdf_view(self, request, pk):
        invoice = get_object_or_404(self.get_queryset(request), pk=pk)
        return _pdf_response(documents.pdf_of(invoice), (invoice.number or f"draft-{invoice.pk}").replace("/", "-"))


class BillRunErrorInline(ReadOnlyAdminMixin, TenantInlineMixin, admin.TabularInline):
    model = BillRunError
    fields = readonly_fields = ["account", "step", "code", "field", "message", "created_at"]
    extra = 0


@admin.register(BillRun)
class BillRunAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["__str__", "day", "state", "accounts", "invoices", "nothing_due", "errors", "created_by",
                    "created_at", "finished_at"]
    list_filter = ["state"]
    date_hierarchy = "day"
    inlines = [BillRunErrorInline]


class JournalLineInline(ReadOnlyAdminMixin, TenantInlineMixin, admin.TabularInline):
    model = JournalLine
    fields = readonly_fields = ["account", "debit", "credit", "currency"]
    extra = 0


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["day", "description", "invoice"]
    date_hierarchy = "day"
    search_fields = ["description", "invoice__number"]
    inlines = [JournalLineInline]
