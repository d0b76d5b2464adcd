"""Back-office admin: promotions (editable; their terms freeze once applied) and their
applications (read-only: they are made by applying a code or activating a subscription)."""

from django.contrib import admin

from obol.balances.models import Promotion, PromotionApplication
from obol.core.admin import ReadOnlyAdminMixin, TenantInlineMixin, TenantScopedAdmin

_TERMS = [name.removesuffix("_id") for name in Promotion.TERMS]


class ApplicationInline(TenantInlineMixin, admin.TabularInline):
    model = PromotionApplication
    extra = 0
    fields = ["subscription", "account", "applied_at", "start_date", "end_date", "state", "grants_given"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Promotion)
class PromotionAdmin(TenantScopedAdmin):
    list_display = ["code", "name", "kind", "trigger", "plan", "valid_from", "valid_until", "active"]
    list_filter = ["kind", "trigger", "active", "new_customers_only", "reseller"]
    search_fields = ["code", "name"]
    raw_id_fields = ["plan", "reseller"]
    list_select_related = ["plan"]
    inlines = [ApplicationInline]
    fieldsets = [
        (None, {"fields": ["code", "name", "description", "kind", "trigger", "plan", "active"]}),
        (
            "Offer and eligibility",
            {"fields": ["valid_from", "valid_until", "new_customers_only", "reseller", "max_redemptions"]},
        ),
        (
            "Grant (kind: grant)",
            {
                "fields": [
                    "grant_amount",
                    "grant_unit",
                    "multiply_allowance_of",
                    "allowance_factor",
                    "grant_services",
                    "grant_periods",
                    "pocket_validity_days",
                ]
            },
        ),
        (
            "Discount (kind: discount)",
            {
                "fields": [
                    "discount_type",
                    "discount_percent",
                    "discount_amount",
                    "discount_currency",
                    "discount_periods",
                    "charge_kinds",
                    "charge_codes",
                ]
            },
        ),
    ]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.pk is not None and obj.applications.exists():
            return _TERMS  # applied: the terms are what its grants and discounts were made of
        return []


@admin.register(PromotionApplication)
class PromotionApplicationAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = [
        "promotion",
        "subscription",
        "account",
        "applied_at",
        "start_date",
        "end_date",
        "state",
        "grants_given",
    ]
    list_filter = ["state", "promotion__kind"]
    search_fields = ["promotion__code", "subscription__number", "account__number"]
    list_select_related = ["promotion", "subscription", "account"]
    date_hierarchy = "applied_at"
