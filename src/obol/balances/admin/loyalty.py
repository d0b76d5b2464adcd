"""Back-office admin: the loyalty rule per currency and the rewards points buy (the catalog of
rewards). Points balances are pockets, shown with the account's pockets."""
from django.contrib import admin

from obol.balances.models import LoyaltyReward, LoyaltyRule
from obol.core.admin import TenantScopedAdmin


@admin.register(LoyaltyRule)
class LoyaltyRuleAdmin(TenantScopedAdmin):
    list_display = ["__str__", "currency", "points", "per_amount", "active"]
    list_filter = ["active", "currency"]
    fields = ["name", "currency", "points", "per_amount", "active"]


@admin.register(LoyaltyReward)
class LoyaltyRewardAdmin(TenantScopedAdmin):
    list_display = ["code", "name", "cost", "grant_value", "grant_unit", "validity_days", "active"]
    list_filter = ["active", "grant_unit"]
    search_fields = ["code", "name"]
    fields = ["code", "name", "cost", "grant_value", "grant_unit", "validity_days", "services", "active"]

    def get_readonly_fields(self, request, obj=None):
        # Redemptions name the reward by its code (ledger reasons, API answers): it does not change.
        return ["code"] if obj else []
