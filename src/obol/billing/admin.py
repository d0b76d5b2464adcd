"""Back office views of billing: VAT rates and the tenant's invoicing settings (editable); invoices
with their lines and VAT breakdown (read-only: only billing.services changes an invoice)."""
from django.contrib import admin

from obol.billing.models import BillingSettings, BillRun, BillRunError, Invoice, InvoiceLine, InvoiceTax, TaxRate
from obol.core.admin import ReadOnlyAdminMixin, TenantInlineMixin, TenantScopedAdmin


@admin.register(TaxRate)
class TaxRateAdmin(TenantScopedAdmin):
    list_display = ["country", "category", "rate", "code", "valid_from", "valid_to"]
    list_filter = ["country", "category"]


@admin.register(BillingSettings)
class BillingSettingsAdmin(TenantScopedAdmin):
    list_display = ["tenant", "number_pattern", "credit_note_pattern", "prices_include_tax"]


class InvoiceLineInline(ReadOnlyAdminMixin, TenantInlineMixin, admin.TabularInline):
    model = InvoiceLine
    fields = ["position", "name", "label", "service_start", "service_end", "amount", "tax_rate", "reverses"]
    extra = 0


class InvoiceTaxInline(ReadOnlyAdminMixin, TenantInlineMixin, admin.TabularInline):
    model = InvoiceTax
    fields = ["code", "rate", "taxable", "tax"]
    extra = 0


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["__str__", "kind", "state", "account", "invoice_date", "issue_date", "due_date", "gross",
                    "open_amount", "currency"]
    list_filter = ["state", "kind", "currency", "bill_run"]
    search_fields = ["number", "account__number", "account__customer__name"]
    date_hierarchy = "invoice_date"
    inlines = [InvoiceLineInline, InvoiceTaxInline]


class BillRunErrorInline(ReadOnlyAdminMixin, TenantInlineMixin, admin.TabularInline):
    model = BillRunError
    fields = ["account", "step", "code", "field", "message", "created_at"]
    extra = 0


@admin.register(BillRun)
class BillRunAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["__str__", "day", "state", "accounts", "invoices", "nothing_due", "errors", "created_by",
                    "created_at", "finished_at"]
    list_filter = ["state"]
    date_hierarchy = "day"
    inlines = [BillRunErrorInline]
