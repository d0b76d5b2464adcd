"""Back-office admin: pockets and their ledger (read-only: balances change through services)."""
from django.contrib import admin

from obol.balances.models import LedgerEntry, Pocket
from obol.core.admin import ReadOnlyAdminMixin, TenantScopedAdmin


class EntryInline(admin.TabularInline):
    model = LedgerEntry
    extra = 0
    fields = ["at", "kind", "amount", "balance_after", "service", "reason", "reference", "actor_label"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Pocket)
class PocketAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["id", "account", "label", "source", "balance", "unit", "display_unit", "priority",
                    "valid_from", "valid_until"]
    list_filter = ["source", "unit"]
    search_fields = ["account__number", "account__name", "label", "grant_key"]
    list_select_related = ["account"]
    inlines = [EntryInline]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["at", "pocket", "kind", "amount", "balance_after", "service", "reference", "actor_label"]
    list_filter = ["kind"]
    search_fields = ["reference", "reason", "pocket__account__number"]
    date_hierarchy = "at"
    list_select_related = ["pocket"]
