"""Rate tables (tariffs): the prices of usage by destination prefix, time band and increments.

A `RateTable` (code unique per tenant, one currency, one service kind) has versions. A version's
content (destination groups, prefixes, time bands, rates, tiers) is fingerprinted; a change to
it makes a new version effective from a date, and versions in force are never rewritten (as for
`PricePlanVersion`). `effective_from` is a date in the tenant's time zone: a usage record is
priced by the version in force on the local date of its start time.

Holiday calendars belong to the tenant, not to a version: several tables share them.
The file format and the matching rules are in docs/tariffs-format.md.
"""
from __future__ import annotations

from datetime import date

from django.db import models

from obol.core import clock
from obol.core.fields import ExactDecimalField, UnitField
from obol.core.tenancy import TenantOwned

__all__ = ["HolidayCalendar", "Holiday", "RateTable", "RateTableVersion", "DestinationGroup",
           "DestinationPrefix", "TimeBand", "Rate", "RateTier"]


class HolidayCalendar(TenantOwned):
    code = models.SlugField(max_length=60)
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["code"]
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="holiday_calendar_code_per_tenant")]

    def __str__(self) -> str:
        return self.name


class Holiday(TenantOwned):
    calendar = models.ForeignKey(HolidayCalendar, on_delete=models.CASCADE, related_name="holidays")
    day = models.DateField()
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["calendar", "day"]
        constraints = [models.UniqueConstraint(fields=["calendar", "day"], name="holiday_day_per_calendar")]

    def __str__(self) -> str:
        return f"{self.day} {self.name}"


class RateTable(TenantOwned):
    class Kind(models.TextChoices):
        VOICE = "voice", "Voice"
        SMS = "sms", "SMS"
        MMS = "mms", "MMS"
        DATA = "data", "Data"
        EVENT = "event", "Generic event"

    code = models.SlugField(max_length=60)
    name = models.CharField(max_length=200)
    currency = UnitField(money_only=True)
    service_kind = models.CharField(max_length=8, choices=Kind.choices)

    class Meta:
        ordering = ["code"]
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="rate_table_code_per_tenant")]

    def __str__(self) -> str:
        return self.name

    def version_at(self, day: date) -> RateTableVersion | None:
        return self.versions.filter(effective_from__lte=day).order_by("-effective_from").first()

    def latest_version(self) -> RateTableVersion | None:
        return self.versions.order_by("-effective_from").first()


class RateTableVersion(TenantOwned):
    table = models.ForeignKey(RateTable, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    effective_from = models.DateField(help_text="First day (in the tenant's time zone) this version prices")
    content_hash = models.CharField(max_length=64, help_text="Fingerprint of the priced content, for idempotent loads")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["table", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["table", "number"], name="rate_table_version_number"),
            models.UniqueConstraint(fields=["table", "effective_from"], name="rate_table_version_effective_from"),
        ]

    def __str__(self) -> str:
        return f"{self.table.code} v{self.number} (from {self.effective_from})"

    def is_in_force(self, today: date | None = None) -> bool:
        return self.effective_from <= (today or clock.today())


class DestinationGroup(TenantOwned):
    """Destinations priced alike (national-mobile, EU, premium), per version."""

    version = models.ForeignKey(RateTableVersion, on_delete=models.CASCADE, related_name="groups")
    code = models.SlugField(max_length=60)
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["version", "code"]
        constraints = [models.UniqueConstraint(fields=["version", "code"], name="destination_group_per_version")]

    def __str__(self) -> str:
        return self.code


class DestinationPrefix(TenantOwned):
    """A digit prefix of destination numbers; the longest matching prefix decides the group."""

    version = models.ForeignKey(RateTableVersion, on_delete=models.CASCADE, related_name="prefixes")
    prefix = models.CharField(max_length=20)
    destination_group = models.ForeignKey(DestinationGroup, on_delete=models.CASCADE, related_name="prefixes")
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["version", "prefix"]
        constraints = [models.UniqueConstraint(fields=["version", "prefix"], name="destination_prefix_per_version")]
        verbose_name_plural = "destination prefixes"

    def __str__(self) -> str:
        return f"{self.prefix} → {self.destination_group.code}"


class TimeBand(TenantOwned):
    """One window of a time band: on `days` (ISO weekdays, "12345" = Mon–Fri) from `starts` to `ends`
    (local time, seconds after midnight, end exclusive; 86400 = midnight at the end of the day).
    A window with a holiday calendar applies on that calendar's days instead, whatever the weekday."""

    version = models.ForeignKey(RateTableVersion, on_delete=models.CASCADE, related_name="bands")
    position = models.PositiveSmallIntegerField(default=0)
    name = models.SlugField(max_length=40)
    days = models.CharField(max_length=7, blank=True, help_text="ISO weekdays 1 (Mon) to 7 (Sun), e.g. 12345")
    starts = models.PositiveIntegerField(default=0, help_text="Seconds after local midnight")
    ends = models.PositiveIntegerField(default=86400, help_text="Seconds after local midnight (exclusive)")
    calendar = models.ForeignKey(HolidayCalendar, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+")

    class Meta:
        ordering = ["version", "position"]

    def __str__(self) -> str:
        return self.name


class Rate(TenantOwned):
    class Rounding(models.TextChoices):
        RECORD = "record", "Per record"
        SESSION = "session", "Per session"

    class TierModel(models.TextChoices):
        GRADUATED = "graduated", "Graduated over the cycle"
        VOLUME = "volume", "Volume over the cycle"

    version = models.ForeignKey(RateTableVersion, on_delete=models.CASCADE, related_name="rates")
    position = models.PositiveSmallIntegerField(default=0)
    destination_group = models.ForeignKey(DestinationGroup, on_delete=models.CASCADE, related_name="rates")
    time_band = models.SlugField(max_length=40, blank=True, help_text="Empty: every band")
    price = ExactDecimalField(null=True, blank=True, help_text="In the table's currency per `unit` (empty: priced by tiers)")
    unit = UnitField(help_text="minute, second, sms, mms, event, play, kilobyte, megabyte, gigabyte")
    first_increment_s = models.PositiveIntegerField(null=True, blank=True)
    next_increment_s = models.PositiveIntegerField(null=True, blank=True)
    minimum_charge = ExactDecimalField(default=0)
    connection_fee = ExactDecimalField(default=0)
    rounding_unit = UnitField(blank=True, help_text="Data: volume rounded up to this unit (kilobyte, megabyte)")
    rounding = models.CharField(max_length=8, choices=Rounding.choices, blank=True)
    tier_model = models.CharField(max_length=10, choices=TierModel.choices, blank=True)

    class Meta:
        ordering = ["version", "position"]
        constraints = [models.UniqueConstraint(fields=["version", "destination_group", "time_band"],
                                               name="rate_per_group_and_band")]

    def __str__(self) -> str:
        return f"{self.destination_group.code} {self.time_band or 'any band'}: {self.price}/{self.unit}"


class RateTier(TenantOwned):
    """Over the billing cycle's usage of the rate: units up to `up_to` (empty: no end) at `unit_price`."""

    rate = models.ForeignKey(Rate, on_delete=models.CASCADE, related_name="tiers")
    position = models.PositiveSmallIntegerField(default=0)
    up_to = ExactDecimalField(null=True, blank=True)
    unit_price = ExactDecimalField()

    class Meta:
        ordering = ["rate", "position"]

    def __str__(self) -> str:
        return f"up to {self.up_to if self.up_to is not None else '∞'}: {self.unit_price}"
