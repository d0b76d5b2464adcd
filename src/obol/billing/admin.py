"""Back office views of billing: VAT rates and the tenant's invoicing settings (editable); invoice
templates (a change saves a new version; preview on the tenant's latest invoice); invoices with their
lines, VAT breakdown and PDF, and bill runs with their errors. Invoices are never edited as rows:
staff create a one-off invoice with its own form and take invoices through their life (accept,
cancel, issue, send, credit note) with list actions or the buttons on the invoice page, each of
which calls billing.services."""
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Max
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from obol.billing import documents, einvoice, services
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
from obol.core import clock
from obol.core.actors import Actor
from obol.core.admin import ReadOnlyAdminMixin, TenantInlineMixin, TenantScopedAdmin
from obol.core.errors import ObolError
from obol.customers.models import BillingAccount


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


BACK_OFFICE = "in the back office"

# step -> (button / action label, what the step made of the invoice)
STEPS = {
    "accept": ("Accept", "accepted"),
    "cancel": ("Cancel", "cancelled"),
    "issue": ("Issue today", "issued"),
    "send": ("Send to the billing contact", "sent"),
    "credit_note": ("Credit note of the whole invoice", "credited"),
}


def _may_take(invoice: Invoice, step: str) -> bool:
    if step == "credit_note":
        return invoice.kind == Invoice.Kind.INVOICE and invoice.state in documents.ISSUED
    return invoice.state in services.TRANSITIONS[step][0]


def _take(actor: Actor, invoice: Invoice, step: str) -> Invoice:
    """One step of one invoice through billing.services; the credit note step answers the note."""
    if step == "accept":
        return services.accept(actor, invoice, reason=BACK_OFFICE)
    if step == "cancel":
        return services.cancel(actor, invoice, reason=BACK_OFFICE)
    if step == "issue":
        return services.issue(actor, invoice, on=clock.today())
    if step == "send":
        return services.send(actor, invoice)
    return services.credit_note(actor, invoice, reason=BACK_OFFICE)


def _failure(invoice: Invoice, error: ObolError) -> str:
    """The error, naming the invoice when the service's message does not already."""
    return error.message if str(invoice) in error.message else f"{invoice}: {error.message}"


def _take_all(modeladmin, request, queryset, step: str) -> None:
    actor, done = Actor.for_user(request.user), []
    for invoice in queryset.select_related("account").order_by("invoice_date", "pk"):
        try:
            result = _take(actor, invoice, step)
        except ObolError as error:
            modeladmin.message_user(request, _failure(invoice, error), messages.ERROR)
        else:
            done.append(f"{invoice} → {result}" if step == "credit_note" else str(result))
    if done:
        shown = ", ".join(done[:20]) + (f" and {len(done) - 20} more" if len(done) > 20 else "")
        modeladmin.message_user(request, f"{STEPS[step][1].capitalize()}: {shown}", messages.SUCCESS)


def _action(step: str, description: str):
    @admin.action(description=description, permissions=["billing_step"])
    def action(modeladmin, request, queryset):
        _take_all(modeladmin, request, queryset, step)

    action.__name__ = f"{step}_selected"
    return action


class OneOffForm(forms.Form):
    account = forms.CharField(label="Account number", max_length=40)
    day = forms.DateField(label="Invoice date", widget=forms.DateInput(attrs={"type": "date"}))
    reason = forms.CharField(required=False, max_length=200, help_text="Kept in the invoice's history")

    def clean_account(self):
        number = self.cleaned_data["account"].strip()
        account = BillingAccount.objects.filter(number=number).first()
        if account is None:
            raise forms.ValidationError(f"There is no account {number}.")
        return account


class OneOffLineForm(forms.Form):
    name = forms.CharField(required=False, max_length=200)
    amount = forms.DecimalField(required=False, help_text="Net, in the account's currency")
    tax_category = forms.ChoiceField(choices=[("standard", "standard")], initial="standard", required=False)

    def __init__(self, *args, categories=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tax_category"].choices = [(c, c) for c in categories or ["standard"]]

    def clean(self):
        data = super().clean()
        if data.get("name") and data.get("amount") is None:
            self.add_error("amount", "A charge needs an amount.")
        if data.get("amount") is not None and not data.get("name"):
            self.add_error("name", "A charge needs a name.")
        return data


OneOffLines = forms.formset_factory(OneOffLineForm, extra=4)


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["__str__", "kind", "state", "account", "invoice_date", "issue_date", "due_date", "gross",
                    "open_amount", "currency", "pdf"]
    list_filter = ["state", "kind", "currency", "bill_run"]
    search_fields = ["number", "account__number", "account__customer__name"]
    date_hierarchy = "invoice_date"
    inlines = [InvoiceLineInline, InvoiceTaxInline]
    actions = [
        _action("accept", "Accept the selected draft invoices"),
        _action("cancel", "Cancel the selected draft or accepted invoices"),
        _action("issue", "Issue the selected accepted invoices today"),
        _action("send", "Send the selected issued invoices to their billing contacts"),
        _action("credit_note", "Credit note (draft) of the whole of each selected issued invoice"),
    ]

    def has_billing_step_permission(self, request, obj=None):
        """Taking an invoice a step (and making a one-off invoice): staff who may change billing rows."""
        return request.user.has_perm("billing.change_invoice")

    def pdf(self, obj):
        links = [format_html('<a href="{}">PDF</a>', reverse("admin:billing_invoice_pdf", args=[obj.pk]))]
        if obj.state in documents.ISSUED:
            links += [format_html('<a href="{}">Factur-X</a>', reverse("admin:billing_invoice_facturx", args=[obj.pk])),
                      format_html('<a href="{}">UBL</a>', reverse("admin:billing_invoice_ubl", args=[obj.pk]))]
        return format_html_join(" · ", "{}", ((link,) for link in links))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [path("one-off/", view(self.one_off_view), name="billing_invoice_one_off"),
                path("<int:pk>/pdf/", view(self.pdf_view), name="billing_invoice_pdf"),
                path("<int:pk>/facturx/", view(self.facturx_view), name="billing_invoice_facturx"),
                path("<int:pk>/ubl/", view(self.ubl_view), name="billing_invoice_ubl"),
                path("<int:pk>/step/<str:step>/", view(require_POST(self.step_view)),
                     name="billing_invoice_step"),
                *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra = {"one_off_url": reverse("admin:billing_invoice_one_off")
                 if self.has_billing_step_permission(request) else None}
        return super().changelist_view(request, {**extra, **(extra_context or {})})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        steps = []
        invoice = self.get_object(request, object_id)
        if invoice is not None and self.has_billing_step_permission(request):
            steps = [(reverse("admin:billing_invoice_step", args=[invoice.pk, step]), label)
                     for step, (label, _) in STEPS.items() if _may_take(invoice, step)]
        extra = {"invoice_steps": steps, **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra)

    def step_view(self, request, pk, step):
        """A button of the invoice page: one step through billing.services, then back to the invoice
        (to the new credit note after a credit note)."""
        if step not in STEPS:
            raise Http404(f"no step {step!r}")
        if not self.has_billing_step_permission(request):
            raise PermissionDenied
        invoice = get_object_or_404(self.get_queryset(request), pk=pk)
        target = invoice
        try:
            result = _take(Actor.for_user(request.user), invoice, step)
        except ObolError as error:
            self.message_user(request, _failure(invoice, error), messages.ERROR)
        else:
            if step == "credit_note":
                target = result
                self.message_user(request, f"{invoice}: credit note {result} created as a draft",
                                  messages.SUCCESS)
            else:
                self.message_user(request, f"{result}: {STEPS[step][1]}", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:billing_invoice_change", args=[target.pk]))

    def one_off_view(self, request):
        """A one-off invoice of ad-hoc charges for an account (services.one_off); opens the draft."""
        if not self.has_billing_step_permission(request):
            raise PermissionDenied
        categories = sorted(set(TaxRate.objects.values_list("category", flat=True))) or ["standard"]
        if request.method == "POST":
            form = OneOffForm(request.POST)
            lines = OneOffLines(request.POST, prefix="lines", form_kwargs={"categories": categories})
            if form.is_valid() and lines.is_valid():
                items = [(line["name"], line["amount"], line["tax_category"] or "standard")
                         for line in lines.cleaned_data if line.get("name")]
                try:
                    data = form.cleaned_data
                    invoice = services.one_off(Actor.for_user(request.user), data["account"], items, data["day"],
                                               reason=data["reason"] or f"created {BACK_OFFICE}")
                except ObolError as error:
                    form.add_error(None, error.message)
                else:
                    self.message_user(request, f"{invoice} for account {invoice.account.number} created: "
                                               f"{invoice.gross} {invoice.currency} gross", messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:billing_invoice_change", args=[invoice.pk]))
        else:
            form = OneOffForm(initial={"account": request.GET.get("account", ""), "day": clock.today()})
            lines = OneOffLines(prefix="lines", form_kwargs={"categories": categories})
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "form": form,
                   "lines": lines, "title": "One-off invoice"}
        return TemplateResponse(request, "admin/billing/invoice/one_off.html", context)

    def facturx_view(self, request, pk):
        invoice = get_object_or_404(self.get_queryset(request), pk=pk)
        try:
            pdf = einvoice.facturx_pdf(invoice)
        except einvoice.RulesBroken as error:
            return self._einvoice_refused(request, invoice, error)
        return _pdf_response(pdf, f"{invoice.number.replace('/', '-')}-factur-x")

    def ubl_view(self, request, pk):
        invoice = get_object_or_404(self.get_queryset(request), pk=pk)
        try:
            xml = einvoice.ubl_xml(invoice)
        except einvoice.RulesBroken as error:
            return self._einvoice_refused(request, invoice, error)
        response = HttpResponse(xml, content_type="application/xml")
        response["Content-Disposition"] = f'attachment; filename="{invoice.number.replace("/", "-")}-ubl.xml"'
        return response

    def _einvoice_refused(self, request, invoice, error):
        """An e-invoice that would break EN 16931 is not sent: the invoice's page says which rule and
        what to fill in (most often the seller's identity, on the tenant)."""
        messages.error(request, error.message)
        return HttpResponseRedirect(reverse("admin:billing_invoice_change", args=[invoice.pk]))

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
