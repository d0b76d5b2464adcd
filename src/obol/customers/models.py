"""The CRM side: resellers, customers (people and companies), their contacts and addresses,
and billing accounts (what is invoiced and later holds pockets)."""
from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from obol.core import clock
from obol.core.errors import ValidationFailed
from obol.core.fields import ExactDecimalField, UnitField
from obol.core.periods import Cycle
from obol.core.tenancy import TenantOwned
from obol.core.validation import as_django_error
from obol.customers.taxid import normalise_tax_id


class Reseller(TenantOwned):
    """A wholesale partner inside a tenant, selling to its own customers."""

    code = models.SlugField(max_length=40)
    name = models.CharField(max_length=200)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="reseller_code_per_tenant")]

    def __str__(self) -> str:
        return self.name


class Customer(TenantOwned):
    class Kind(models.TextChoices):
        PERSON = "person", "Person"
        COMPANY = "company", "Company"

    number = models.CharField(max_length=40, help_text="Customer number, unique in the tenant")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.PERSON)
    name = models.CharField(max_length=200, help_text="Full name of the person, or the company's name")
    legal_name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=32, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2")
    tax_id = models.CharField(max_length=40, blank=True, help_text="VAT or tax number, validated for the country")
    language = models.CharField(max_length=8, blank=True)
    reseller = models.ForeignKey(Reseller, null=True, blank=True, on_delete=models.PROTECT, related_name="customers")
    external_ref = models.CharField(max_length=80, blank=True)
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["tenant", "number"], name="customer_number_per_tenant")]
        indexes = [models.Index(fields=["tenant", "name"])]

    def __str__(self) -> str:
        return f"{self.number} {self.name}"

    def clean(self):
        self.country = (self.country or "").upper()
        try:
            self.tax_id = normalise_tax_id(self.country, self.tax_id)
        except ValidationFailed as error:
            raise as_django_error(error) from None


class Contact(TenantOwned):
    class Role(models.TextChoices):
        PRIMARY = "primary", "Primary"
        BILLING = "billing", "Billing"
        TECHNICAL = "technical", "Technical"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="contacts")
    role = models.CharField(max_length=12, choices=Role.choices, default=Role.PRIMARY)
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.role})"


class Address(TenantOwned):
    class Kind(models.TextChoices):
        BILLING = "billing", "Billing"
        SERVICE = "service", "Service"
        LEGAL = "legal", "Legal"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="addresses")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.BILLING)
    line1 = models.CharField(max_length=200)
    line2 = models.CharField(max_length=200, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    city = models.CharField(max_length=100)
    region = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=2)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "addresses"

    def __str__(self) -> str:
        return f"{self.line1}, {self.postal_code} {self.city}, {self.country}"

    def clean(self):
        self.country = (self.country or "").upper()


class BillingAccount(TenantOwned):
    """What is invoiced. A customer may have several; a child account may be paid by its parent."""

    class Mode(models.TextChoices):
        PREPAID = "prepaid", "Prepaid"
        POSTPAID = "postpaid", "Postpaid"
        HYBRID = "hybrid", "Hybrid"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        CLOSED = "closed", "Closed"

    class BillPeriod(models.TextChoices):
        WEEK = "week", "Weekly"
        MONTH = "month", "Monthly"
        QUARTER = "quarter", "Quarterly"
        YEAR = "year", "Yearly"

    number = models.CharField(max_length=40, help_text="Account number, unique in the tenant")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="accounts")
    name = models.CharField(max_length=200, blank=True)
    currency = UnitField(money_only=True)
    bill_cycle_day = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(31)],
        help_text="Day of the month the cycle starts (31 means the last day of shorter months)",
    )
    bill_period = models.CharField(
        max_length=7, choices=BillPeriod.choices, default=BillPeriod.MONTH,
        help_text="How often the account is invoiced; charges billed in advance are billed up to the next bill date",
    )
    bill_cycle_month = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(12)],
        help_text="Quarterly and yearly: the month (1-12) a quarter or year starts in",
    )
    bill_weekday = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(6)],
        help_text="Weekly: the day the week starts, 0 (Monday) to 6 (Sunday)",
    )
    itemised_usage = models.BooleanField(default=False,
                                         help_text="Invoices list every rated call and session of their usage lines")
    segment = models.CharField(max_length=40, blank=True, db_index=True,
                               help_text="A label to group accounts by (residential, business, ...); bill runs filter on it")
    payment_terms_days = models.PositiveSmallIntegerField(default=14)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.POSTPAID)
    credit_limit = ExactDecimalField(null=True, blank=True, help_text="In the account's currency; empty: no limit")
    language = models.CharField(max_length=8, blank=True)
    reseller = models.ForeignKey(Reseller, null=True, blank=True, on_delete=models.PROTECT, related_name="accounts")
    omit_from_dunning = models.BooleanField(default=False)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children",
        help_text="The account that pays this account's invoices",
    )
    billing_contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["number"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "number"], name="account_number_per_tenant"),
            models.CheckConstraint(
                condition=models.Q(bill_cycle_day__gte=1) & models.Q(bill_cycle_day__lte=31),
                name="account_bill_cycle_day_1_31",
            ),
            models.CheckConstraint(
                condition=models.Q(bill_cycle_month__gte=1) & models.Q(bill_cycle_month__lte=12)
                & models.Q(bill_weekday__lte=6),
                name="account_bill_cycle_month_weekday",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.name}".strip()

    @property
    def cycle(self) -> Cycle:
        """The account's bill cycle: its period, cycle day, month (quarters, years), weekday (weeks)."""
        return Cycle(self.bill_period, day=self.bill_cycle_day, month=self.bill_cycle_month, weekday=self.bill_weekday)

    def clean(self):
        try:
            self._check_rules()
        except ValidationFailed as error:
            raise as_django_error(error) from None

    def _check_rules(self) -> None:
        if self.pk is not None and self.subscriptions.exists():
            stored = BillingAccount._base_manager.filter(pk=self.pk).values_list("currency", flat=True).first()
            if stored != self.currency:
                raise ValidationFailed("currency: cannot change once the account has subscriptions", field="currency")
        if self.credit_limit is not None and self.credit_limit < 0:
            raise ValidationFailed("credit_limit: must not be negative", field="credit_limit")
        if self.billing_contact is not None and self.billing_contact.customer_id != self.customer_id:
            raise ValidationFailed("billing_contact: belongs to another customer", field="billing_contact")
        parent = self.parent
        if parent is None:
            return
        if parent.currency != self.currency:
            raise ValidationFailed(
                f"parent: account {parent.number} bills in {parent.currency}, this account in {self.currency}",
                field="parent",
            )
        seen = {self.pk}
        while parent is not None:
            if parent.pk in seen:
                raise ValidationFailed("parent: accounts would pay for each other in a circle", field="parent")
            seen.add(parent.pk)
            parent = parent.parent
