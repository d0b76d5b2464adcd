"""What the usage mass process keeps: the files it read, the rated records, and suspense.

Rated records carry money as integer micro-units (1 EUR = 1,000,000: rating keeps 6 decimals),
which is exact and what the vectorised engine computes in.
"""
from __future__ import annotations

from django.db import models

from obol.core import clock
from obol.core.fields import UnitField
from obol.core.tenancy import TenantOwned


class UsageFile(TenantOwned):
    class State(models.TextChoices):
        IMPORTING = "importing", "Importing"
        DONE = "done", "Done"
        FAILED = "failed", "Could not be read"

    name = models.CharField(max_length=300)
    checksum = models.CharField(max_length=64, help_text="SHA-256 of the file's bytes")
    size = models.BigIntegerField()
    format = models.CharField(max_length=20)
    state = models.CharField(max_length=10, choices=State.choices, default=State.IMPORTING)
    read = models.BigIntegerField(default=0, help_text="Lines read (records + bad lines + skipped)")
    rated = models.BigIntegerField(default=0)
    suspended = models.BigIntegerField(default=0)
    duplicates = models.BigIntegerField(default=0)
    skipped = models.BigIntegerField(default=0, help_text="Read on purpose but not charged (unanswered calls)")
    chunks_done = models.IntegerField(default=0, help_text="Chunks committed (a rerun resumes after them)")
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(default=clock.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [models.UniqueConstraint(fields=["tenant", "checksum"], name="usage_file_checksum_per_tenant")]

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"


class RatedRecord(TenantOwned):
    """One rated usage record. The table takes millions of rows a day in bulk (COPY), so its
    references are not database-checked foreign keys (a deferred check per row doubled the cost of
    a chunk's commit on PostgreSQL): mediation writes only ids it read from the database, and
    Django still refuses to delete a tenant, account, subscription or file that rated records
    point to (on_delete=PROTECT is enforced by the ORM)."""

    tenant = models.ForeignKey("core.Tenant", on_delete=models.PROTECT, related_name="+", db_constraint=False,
                               db_index=False)  # the unique (tenant, record_key) index leads with it
    record_key = models.CharField(max_length=200)
    file = models.ForeignKey(UsageFile, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                             db_constraint=False)
    line = models.BigIntegerField(null=True, blank=True)
    # indexed by (account, start) below, not on their own: each index costs every bulk insert
    account = models.ForeignKey("customers.BillingAccount", on_delete=models.PROTECT, related_name="+",
                                db_constraint=False, db_index=False)
    subscription = models.ForeignKey("subscriptions.Subscription", on_delete=models.PROTECT, related_name="+",
                                     db_constraint=False, db_index=False)
    service = models.CharField(max_length=60)
    rate_table = models.CharField(max_length=60, blank=True)
    cycle_start = models.DateField(null=True, blank=True, help_text="First day of the account's bill cycle period")
    start = models.DateTimeField()
    quantity = models.BigIntegerField(help_text="Seconds, bytes or events")
    destination = models.CharField(max_length=40, blank=True)
    destination_group = models.CharField(max_length=60, blank=True)
    time_band = models.CharField(max_length=40, blank=True)
    included = models.BigIntegerField(default=0, help_text="Paid by allowances")
    charged = models.BigIntegerField(default=0)
    billed = models.BigIntegerField(default=0, help_text="Charged quantity after increments / rounding")
    price_micros = models.BigIntegerField(default=0, help_text="Price in millionths of the currency")
    accrued_micros = models.BigIntegerField(default=0, help_text=(
        "The part of the price that accrued to the unbilled-usage pocket (postpaid; hybrid beyond its money "
        "pockets; prepaid overdraft), in millionths: what postpaid and hybrid invoices bill"))
    currency = UnitField(money_only=True)
    uncovered = models.BooleanField(default=False, help_text="Prepaid: the money pockets did not cover it")
    takes = models.TextField(blank=True, help_text=(
        "Allowance units it took, as pocket:quantity;... (the ledger books them per pocket and batch)"))
    rated_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["start"]
        constraints = [models.UniqueConstraint(fields=["tenant", "record_key"], name="rated_record_key_per_tenant")]
        # one index besides the key: every query (history, summaries, tiers, billing) is by account and time
        indexes = [models.Index(fields=["account", "start"])]

    def __str__(self) -> str:
        return self.record_key


class SuspendedRecord(TenantOwned):
    class State(models.TextChoices):
        OPEN = "open", "Open"
        RECYCLED = "recycled", "Rated after recycling"
        DROPPED = "dropped", "Dropped"

    file = models.ForeignKey(UsageFile, null=True, blank=True, on_delete=models.PROTECT, related_name="suspense")
    line = models.BigIntegerField(null=True, blank=True)
    record_key = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=40, db_index=True)
    field = models.CharField(max_length=60, blank=True)
    message = models.TextField()
    raw = models.TextField(blank=True)
    record = models.JSONField(null=True, blank=True, help_text="The parsed record, to recycle without the file")
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    created_at = models.DateTimeField(default=clock.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["file", "line"]
        constraints = [models.UniqueConstraint(fields=["file", "line"], name="suspense_once_per_file_line")]

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"
