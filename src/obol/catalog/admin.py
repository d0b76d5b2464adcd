"""Back-office admin of the catalog.

History is never rewritten: a plan version in force (effective from today or earlier) is shown
read-only with its charges, tiers and allowances. To change prices, staff copy the version
("Create a new version from this one"), edit the copy, which starts tomorrow or later, and
it takes over on its date. After every edit the version is checked against the rules of the
catalog file format and its content fingerprint is refreshed, so a later file load compares
against what is really there.
"""
from __future__ import annotations

from datetime import date

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect

from obol.catalog import services, tariff_services
from obol.catalog.rate_models import (
    DestinationGroup,
    DestinationPrefix,
    Holiday,
    HolidayCalendar,
    Rate,
    RateTable,
    RateTableVersion,
    RateTier,
    TimeBand,
)
from obol.catalog.models import Allowance, Charge, ChargeTier, PricePlan, PricePlanVersion, Product, Service
from obol.core import clock
from obol.core.actors import Actor
from obol.core.admin import TenantInlineMixin, TenantScopedAdmin
from obol.core.errors import ObolError


def _today(obj) -> date:
    return clock.today(obj.tenant.timezone)


def _in_force(version: PricePlanVersion | RateTableVersion | None) -> bool:
    return version is not None and version.pk is not None and version.is_in_force(_today(version))


def _version_of(obj) -> PricePlanVersion | RateTableVersion | None:
    """The plan or rate table version a row belongs to (the row itself for a version)."""
    if obj is None or isinstance(obj, (PricePlanVersion, RateTableVersion)):
        return obj
    if isinstance(obj, RateTier):
        return obj.rate.version
    return obj.version


class _VersionContentInline(TenantInlineMixin, admin.TabularInline):
    """Rows of a version (charges, allowances, tiers): read-only once the version is in force."""

    extra = 0

    def has_add_permission(self, request, obj=None):
        return super().has_add_permission(request, obj) and not _in_force(_version_of(obj))

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and not _in_force(_version_of(obj))

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not _in_force(_version_of(obj))


class _FrozenWhenInForce(TenantScopedAdmin):
    """Admin of a (plan or rate table) version or of one of its rows: read-only once in force."""

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and not _in_force(_version_of(obj))

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not _in_force(_version_of(obj))


class _EditsVersionContent(_FrozenWhenInForce):
    """A plan version or one of its rows: checked against the file format's rules and
    re-fingerprinted after every save (TenantScopedAdmin audits the rows)."""

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        version = _version_of(form.instance)
        services.check_version(version)
        services.refresh_content_hash(version)

    def delete_model(self, request, obj):
        version = _version_of(obj)
        super().delete_model(request, obj)
        if version is not obj:
            services.refresh_content_hash(version)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # The admin saves inside one transaction: a refusal from check_version rolls the whole save back.
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ObolError as exc:
            self.message_user(request, f"Nothing was saved: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "version":
            kwargs["queryset"] = PricePlanVersion.objects.filter(
                effective_from__gt=clock.today()).select_related("plan")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


# --- products and services -------------------------------------------------------------------


@admin.register(Product)
class ProductAdmin(TenantScopedAdmin):
    list_display = ["code", "name", "tax_category"]
    search_fields = ["code", "name"]

    def get_readonly_fields(self, request, obj=None):
        return ["code"] if obj else []


@admin.register(Service)
class ServiceAdmin(TenantScopedAdmin):
    list_display = ["code", "name", "kind", "unit"]
    list_filter = ["kind"]
    search_fields = ["code", "name"]

    def get_readonly_fields(self, request, obj=None):
        # Usage and allowances already count in the service's unit: it does not change.
        return ["code", "kind", "unit"] if obj else []


# --- plans and versions ----------------------------------------------------------------------


class VersionInline(admin.TabularInline):
    model = PricePlanVersion
    fields = ["number", "effective_from", "bill_during_suspension", "in_force"]
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False
    ordering = ["-effective_from"]

    @admin.display(boolean=True, description="in force")
    def in_force(self, version):
        return _in_force(version)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(PricePlan)
class PricePlanAdmin(TenantScopedAdmin):
    list_display = ["code", "name", "currency", "reseller", "active"]
    list_filter = ["active", "currency"]
    search_fields = ["code", "name"]
    inlines = [VersionInline]

    def get_readonly_fields(self, request, obj=None):
        # The versions' prices are in the plan's currency: it does not change.
        return ["code", "currency"] if obj else []


class ChargeInline(_VersionContentInline):
    model = Charge
    fields = ["position", "code", "name", "kind", "product", "service", "price", "period", "billing",
              "prorate", "event", "model", "package_size", "rate_table", "tax_category"]
    show_change_link = True  # tiers are edited on the charge's page


class AllowanceInline(_VersionContentInline):
    model = Allowance
    fields = ["position", "service", "amount", "unit", "period", "prorate", "rollover_cap"]


class VersionForm(forms.ModelForm):
    class Meta:
        model = PricePlanVersion
        fields = ["effective_from", "bill_during_suspension"]  # + plan when adding (see get_fields)

    def clean(self):
        data = super().clean()
        plan = data.get("plan") or getattr(self.instance, "plan", None)
        day = data.get("effective_from")
        if plan is None or day is None:
            return data
        today = _today(plan)
        if day <= today:
            self.add_error("effective_from",
                           f"Must be after today ({today}): a version in force is never changed.")
        others = plan.versions.exclude(pk=self.instance.pk)
        if self.instance.pk:
            earlier = others.filter(number__lt=self.instance.number).order_by("-number").first()
            later = others.filter(number__gt=self.instance.number).order_by("number").first()
        else:
            earlier, later = others.order_by("-number").first(), None
        if earlier and day <= earlier.effective_from:
            self.add_error("effective_from", f"Must be after {earlier.effective_from}, "
                                             f"when version {earlier.number} takes effect.")
        if later and day >= later.effective_from:
            self.add_error("effective_from", f"Must be before {later.effective_from}, "
                                             f"when version {later.number} takes effect.")
        return data


@admin.register(PricePlanVersion)
class PricePlanVersionAdmin(_EditsVersionContent):
    form = VersionForm
    list_display = ["plan", "number", "effective_from", "in_force", "bill_during_suspension"]
    list_filter = ["plan"]
    list_select_related = ["plan", "tenant"]
    inlines = [ChargeInline, AllowanceInline]
    actions = ["copy_version"]

    @admin.display(boolean=True, description="in force")
    def in_force(self, version):
        return _in_force(version)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["plan", "effective_from", "bill_during_suspension"]
        return ["plan", "number", "effective_from", "bill_during_suspension", "content_hash", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return ["plan", "number", "content_hash", "created_at"] if obj else []

    def save_model(self, request, obj, form, change):
        if not change:
            obj.tenant_id = obj.plan.tenant_id
            numbers = obj.plan.versions.order_by("-number").values_list("number", flat=True)
            obj.number = (numbers.first() or 0) + 1
        super().save_model(request, obj, form, change)

    def has_copy_permission(self, request):
        return self.has_add_permission(request)

    @admin.action(description="Create a new version from this one", permissions=["copy"])
    def copy_version(self, request, queryset):
        actor = Actor.for_user(request.user)
        for version in queryset.select_related("plan"):
            try:
                copy = services.copy_version(version, actor=actor)
            except ObolError as exc:
                self.message_user(request, f"{version}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"Created {copy}: edit it before it takes effect.",
                                  messages.SUCCESS)


class TierInline(_VersionContentInline):
    model = ChargeTier
    fields = ["position", "up_to", "unit_price", "flat_fee"]


@admin.register(Charge)
class ChargeAdmin(_EditsVersionContent):
    list_display = ["version", "position", "code", "name", "kind", "price"]
    list_filter = ["kind", "version__plan"]
    list_select_related = ["version__plan"]
    search_fields = ["code", "name"]
    inlines = [TierInline]

    def get_readonly_fields(self, request, obj=None):
        return ["version"] if obj else []


@admin.register(Allowance)
class AllowanceAdmin(_EditsVersionContent):
    list_display = ["version", "position", "service", "amount", "unit", "period"]
    list_filter = ["version__plan", "service"]
    list_select_related = ["version__plan", "service"]

    def get_readonly_fields(self, request, obj=None):
        return ["version"] if obj else []


# --- rate tables (tariffs) -------------------------------------------------------------------
# A rate table version in force is read-only, as a plan version is; a version that starts later
# may be edited and is re-fingerprinted after every save. Prefixes (tens of thousands a version)
# have their own paginated, searchable list instead of an inline.



class _EditsRateVersionContent(_FrozenWhenInForce):
    """A rate table version or one of its rows: re-fingerprinted after every save."""

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        tariff_services.refresh_content_hash(_version_of(form.instance))


class HolidayInline(TenantInlineMixin, admin.TabularInline):
    model = Holiday
    fields = ["day", "name"]
    extra = 0


@admin.register(HolidayCalendar)
class HolidayCalendarAdmin(TenantScopedAdmin):
    list_display = ["code", "name"]
    search_fields = ["code", "name"]
    inlines = [HolidayInline]


class RateTableVersionInline(admin.TabularInline):
    model = RateTableVersion
    fields = ["number", "effective_from", "in_force"]
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False
    ordering = ["-effective_from"]

    @admin.display(boolean=True, description="in force")
    def in_force(self, version):
        return _in_force(version)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(RateTable)
class RateTableAdmin(TenantScopedAdmin):
    list_display = ["code", "name", "service_kind", "currency"]
    list_filter = ["service_kind"]
    search_fields = ["code", "name"]
    inlines = [RateTableVersionInline]

    def get_readonly_fields(self, request, obj=None):
        # Versions are priced in the currency, for the kind of service: neither changes.
        return ["code", "currency", "service_kind"] if obj else []


class DestinationGroupInline(_VersionContentInline):
    model = DestinationGroup
    fields = ["code", "name"]


class TimeBandInline(_VersionContentInline):
    model = TimeBand
    fields = ["position", "name", "days", "starts", "ends", "calendar"]


class RateInline(_VersionContentInline):
    model = Rate
    fields = ["position", "destination_group", "time_band", "price", "unit", "first_increment_s",
              "next_increment_s", "minimum_charge", "connection_fee", "rounding_unit", "rounding", "tier_model"]
    show_change_link = True  # tiers are edited on the rate's page


@admin.register(RateTableVersion)
class RateTableVersionAdmin(_EditsRateVersionContent):
    list_display = ["table", "number", "effective_from", "in_force", "prefix_count"]
    list_filter = ["table"]
    list_select_related = ["table", "tenant"]
    fields = ["table", "number", "effective_from", "content_hash", "created_at"]
    inlines = [DestinationGroupInline, TimeBandInline, RateInline]

    @admin.display(boolean=True, description="in force")
    def in_force(self, version):
        return _in_force(version)

    @admin.display(description="prefixes")
    def prefix_count(self, version):
        return version.prefixes.count()

    def has_add_permission(self, request):
        return False  # versions come from `obol tariffs load`

    def get_readonly_fields(self, request, obj=None):
        return ["table", "number", "effective_from", "content_hash", "created_at"]


class RateTierInline(_VersionContentInline):
    model = RateTier
    fields = ["position", "up_to", "unit_price"]


@admin.register(Rate)
class RateAdmin(_EditsRateVersionContent):
    list_display = ["version", "position", "destination_group", "time_band", "price", "unit"]
    list_filter = ["version__table", "time_band"]
    list_select_related = ["version__table", "destination_group"]
    inlines = [RateTierInline]

    def has_add_permission(self, request):
        return False

    def get_readonly_fields(self, request, obj=None):
        return ["version"] if obj else []


@admin.register(DestinationPrefix)
class DestinationPrefixAdmin(_EditsRateVersionContent):
    list_display = ["prefix", "destination_group", "description", "version"]
    list_filter = ["version__table"]
    list_select_related = ["version__table", "destination_group"]
    search_fields = ["prefix", "description", "destination_group__code"]
    list_per_page = 100
    show_full_result_count = False  # counting 50,000 prefixes on every page is wasted work

    def has_add_permission(self, request):
        return False

    def get_readonly_fields(self, request, obj=None):
        return ["version"] if obj else []
