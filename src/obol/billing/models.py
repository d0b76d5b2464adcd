"""Invoices and what they need: VAT rates, invoices and credit notes with their lines and VAT
breakdown.

An invoice is `draft` when generated, then `accepted` (approved) or `cancelled`; an accepted
invoice is `issued`, which gives it its number from the tenant's series, its due date and its open
amount, and from then on it never changes (corrections are credit notes); then `sent`. Every
transition leaves an audit row. A line keeps what the charge calculation needs to repair it later:
the subscription and charge, the service days, the period and what a whole period cost; a credit
names the line it reverses.
"""
from __future__ import annotations

from django.db import models

from obol.core import clock
from obol.core.fields import ExactDecimalField, UnitField
from obol.core.tenancy import TenantOwned


class TaxRate(TenantOwned):
    """A VAT rate of a country and a product tax category, in force from `valid_from` until
    `valid_to` (excluded; empty: open)."""

    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2")
    category = models.CharField(max_length=40, default="standard", help_text="The catalog's tax category")
    rate = ExactDecimalField(help_text="Percent: 23 means 23%")
    code = models.CharField(max_length=4, default="S", help_text="EN 16931 VAT category code (S, Z, E, AE, K, G, O)")
    valid_from = models.DateField()
    valid_to = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["country", "category", "valid_from"]
        constraints = [models.UniqueConstraint(fields=["tenant", "country", "category", "valid_from"],
                                               name="tax_rate_from_per_category")]

    def __str__(self) -> str:
        return f"{self.country} {self.category} {self.rate}% from {self.valid_from}"


class BillRun(TenantOwned):
    """A mass (or single-account) invoicing process for one day: which accounts it takes, and how
    far it got. Its steps (generate, accept, cancel, issue) may run again at any time: each
    account and each invoice is its own transaction, so a run stopped anywhere resumes where it
    stopped, and an account never gets two invoices."""

    class State(models.TextChoices):
        OPEN = "open", "Generating"
        GENERATED = "generated", "Generated"

    day = models.DateField(help_text="The date the charges are calculated for")
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    every_account = models.BooleanField(default=False, help_text="Every account, whatever its cycle day")
    cycle_day = models.PositiveSmallIntegerField(null=True, blank=True,
                                                 help_text="Only accounts with this cycle day (default: those due)")
    reseller = models.ForeignKey("customers.Reseller", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+")
    segment = models.CharField(max_length=40, blank=True, help_text="Only accounts of this segment")
    account_numbers = models.JSONField(default=list, blank=True, help_text="Only these accounts")
    accounts = models.PositiveIntegerField(default=0, help_text="Accounts taken")
    invoices = models.PositiveIntegerField(default=0, help_text="Invoices generated")
    nothing_due = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    created_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=clock.now, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-day", "-pk"]

    def __str__(self) -> str:
        return f"bill run {self.pk} of {self.day}"


class BillRunError(TenantOwned):
    """Why a step of a bill run failed for one account (it is tried again when the step runs again)."""

    run = models.ForeignKey(BillRun, on_delete=models.CASCADE, related_name="failures")
    account = models.ForeignKey("customers.BillingAccount", on_delete=models.PROTECT, related_name="+")
    step = models.CharField(max_length=10)
    code = models.CharField(max_length=40)
    field = models.CharField(max_length=60, blank=True)
    message = models.TextField()
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["run", "account"]
        constraints = [models.UniqueConstraint(fields=["run", "account", "step"], name="bill_run_error_per_step")]


class Invoice(TenantOwned):
    class Kind(models.TextChoices):
        INVOICE = "invoice", "Invoice"
        CREDIT_NOTE = "credit_note", "Credit note"

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACCEPTED = "accepted", "Accepted"
        CANCELLED = "cancelled", "Cancelled"
        ISSUED = "issued", "Issued"
        SENT = "sent", "Sent"

    account = models.ForeignKey("customers.BillingAccount", on_delete=models.PROTECT, related_name="invoices")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.INVOICE)
    state = models.CharField(max_length=10, choices=State.choices, default=State.DRAFT)
    number = models.CharField(max_length=60, blank=True, help_text="Assigned at issue, from the tenant's series")
    invoice_date = models.DateField(help_text="The date the charges were calculated for (the bill run's date)")
    issue_date = models.DateField(null=True, blank=True)
    due_date = models.DateField(null=True, blank=True)
    currency = UnitField(money_only=True)
    prices_include_tax = models.BooleanField(default=False)
    net = ExactDecimalField(default=0)
    tax = ExactDecimalField(default=0)
    gross = ExactDecimalField(default=0)
    open_amount = ExactDecimalField(default=0, help_text="What is still to be paid (set at issue)")
    credited = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="credit_notes",
                                 help_text="A credit note: the invoice it corrects")
    bill_run = models.ForeignKey(BillRun, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    template = models.ForeignKey("InvoiceTemplate", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                 help_text="The document template in force at issue (empty: the built-in one)")
    created_at = models.DateTimeField(default=clock.now, editable=False)
    issued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-invoice_date", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "number"], condition=~models.Q(number=""),
                                    name="invoice_number_per_tenant"),
        ]
        indexes = [models.Index(fields=["account", "state"]), models.Index(fields=["tenant", "state", "invoice_date"])]

    def __str__(self) -> str:
        kind = dict(self.Kind.choices).get(self.kind, self.kind)  # get_kind_display: ten times the time (bulk audit)
        return self.number or f"{kind} draft #{self.pk}"


class InvoiceLine(TenantOwned):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    subscription = models.ForeignKey("subscriptions.Subscription", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")
    charge_code = models.CharField(max_length=120)
    kind = models.CharField(max_length=12, help_text="recurring | one_time | usage | discount | adhoc | adjustment")
    name = models.CharField(max_length=200)
    label = models.CharField(max_length=200, blank=True, help_text="The plan or quantity the line was priced at")
    amount = ExactDecimalField(help_text="Rounded per line; negative for a credit")
    service_start = models.DateField()
    service_end = models.DateField(help_text="Excluded")
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True)
    per_period = ExactDecimalField(null=True, blank=True, help_text="What a whole period cost at this price")
    quantity = ExactDecimalField(null=True, blank=True, help_text="Usage: the units billed, in `unit`")
    included = ExactDecimalField(null=True, blank=True, help_text="Usage: the units allowances paid, in `unit`")
    unit = models.CharField(max_length=20, blank=True)
    tax_category = models.CharField(max_length=40, default="standard")
    revenue_account = models.CharField(max_length=20, blank=True, help_text="Empty: the tenant's default")
    tax_code = models.CharField(max_length=4, default="S")
    tax_rate = ExactDecimalField(default=0)
    reverses = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                 help_text="The line whose service days this line takes back "
                                           "(repairs, full credit notes)")
    credits = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                help_text="A credit note's line: the invoice line it credits")

    class Meta:
        ordering = ["invoice", "position"]
        indexes = [models.Index(fields=["subscription", "charge_code"])]

    def __str__(self) -> str:
        return f"{self.name} {self.service_start}–{self.service_end}: {self.amount}"


class InvoiceTax(TenantOwned):
    """One row of an invoice's VAT breakdown (EN 16931 BG-23)."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="taxes")
    code = models.CharField(max_length=4)
    rate = ExactDecimalField()
    taxable = ExactDecimalField()
    tax = ExactDecimalField()

    class Meta:
        ordering = ["invoice", "-rate"]


class BillingSettings(TenantOwned):
    """How a tenant invoices."""

    number_pattern = models.CharField(
        max_length=80, default="INV/{yyyy}/{seq:06}",
        help_text="Invoice numbers: {yyyy} {mm} {dd} of the issue date, {seq} (with a width, e.g. {seq:06}); "
                  "the sequence restarts with each year (or month) the pattern names")
    credit_note_pattern = models.CharField(max_length=80, default="CN/{yyyy}/{seq:06}")
    prices_include_tax = models.BooleanField(default=False)
    repairs = models.CharField(
        max_length=12, choices=[("next_invoice", "On the next invoice"), ("credit_note", "As a credit note")],
        default="next_invoice",
        help_text="Where credits for what an issued invoice billed and is no longer due go (a back-dated termination)")
    receivables_account = models.CharField(max_length=20, default="1200")
    revenue_account = models.CharField(max_length=20, default="4000", help_text="For products without their own")
    vat_account = models.CharField(max_length=20, default="2200",
                                   help_text="VAT owed; the journal adds the rate (2200:19)")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="billing_settings_one_per_tenant")]


class InvoiceTemplate(TenantOwned):
    """The HTML and CSS an invoice document is made from, per language ("" for any), versioned:
    a change is a new version; the highest version of a language is in force. Django template
    language; the context is described in docs/billing.md."""

    language = models.CharField(max_length=8, blank=True, help_text="e.g. de; empty: every language without its own")
    version = models.PositiveIntegerField(editable=False)
    html = models.TextField()
    css = models.TextField(blank=True)
    note = models.CharField(max_length=200, blank=True, help_text="What changed")
    created_by = models.CharField(max_length=200, blank=True, editable=False)
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["language", "-version"]
        constraints = [models.UniqueConstraint(fields=["tenant", "language", "version"],
                                               name="invoice_template_version")]

    def __str__(self) -> str:
        return f"invoice template {self.language or '*'} v{self.version}"


class InvoiceDocument(TenantOwned):
    """The PDF of an issued invoice, rendered once and kept: it is what was sent, byte for byte."""

    invoice = models.OneToOneField(Invoice, on_delete=models.PROTECT, related_name="document")
    pdf = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    template_version = models.PositiveIntegerField(help_text="0: the built-in template")
    created_at = models.DateTimeField(default=clock.now, editable=False)

    def __str__(self) -> str:
        return f"PDF of {self.invoice}"


class JournalEntry(TenantOwned):
    """A posting of the receivables ledger (double entry): one per issued invoice or credit note."""

    day = models.DateField()
    invoice = models.OneToOneField(Invoice, on_delete=models.PROTECT, related_name="journal_entry")
    description = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["day", "pk"]
        indexes = [models.Index(fields=["tenant", "day"])]

    def __str__(self) -> str:
        return self.description


class JournalLine(TenantOwned):
    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="lines")
    account = models.CharField(max_length=30)
    debit = ExactDecimalField(default=0)
    credit = ExactDecimalField(default=0)
    currency = UnitField(money_only=True)

    class Meta:
        ordering = ["entry", "pk"]
