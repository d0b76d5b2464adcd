"""Back-office admin: voucher batches (with issued / redeemed / expired counts; block, unblock and
cancel as actions) and vouchers (read-only: hint, state, redeemed by and when). Batches are
generated with `obol vouchers generate` or the API, the only places that can show their codes."""
from django.contrib import admin, messages

from obol.balances import vouchers
from obol.balances.models import Voucher, VoucherBatch
from obol.core.actors import Actor
from obol.core.admin import ReadOnlyAdminMixin, TenantScopedAdmin
from obol.core.errors import ObolError


def _change_status(modeladmin, request, queryset, change, done: str):
    actor = Actor.for_user(request.user)
    for batch in queryset:
        try:
            change(actor, batch, reason="changed in the back office")
        except ObolError as error:
            modeladmin.message_user(request, f"{batch.name}: {error.message}", messages.ERROR)
        else:
            modeladmin.message_user(request, f"{batch.name}: {done}", messages.SUCCESS)


@admin.action(description="Block the selected batches (their vouchers cannot be redeemed)")
def block(modeladmin, request, queryset):
    _change_status(modeladmin, request, queryset, vouchers.block_batch, "blocked")


@admin.action(description="Unblock the selected batches")
def unblock(modeladmin, request, queryset):
    _change_status(modeladmin, request, queryset, vouchers.unblock_batch, "unblocked")


@admin.action(description="Cancel the selected batches for good")
def cancel(modeladmin, request, queryset):
    _change_status(modeladmin, request, queryset, vouchers.cancel_batch, "cancelled")


@admin.register(VoucherBatch)
class VoucherBatchAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["name", "value", "unit", "status", "expires_at", "validity_days", "issued", "redeemed",
                    "expired", "created_at"]
    list_filter = ["status", "unit"]
    search_fields = ["name"]
    date_hierarchy = "created_at"
    actions = [block, unblock, cancel]

    def get_queryset(self, request):
        return vouchers.with_counts(super().get_queryset(request))

    @admin.display(description="redeemed", ordering="redeemed_count")
    def redeemed(self, batch):
        return vouchers.counts(batch)["redeemed"]

    @admin.display(description="expired unredeemed")
    def expired(self, batch):
        return vouchers.counts(batch)["expired"]


@admin.register(Voucher)
class VoucherAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["hint_text", "batch", "state", "redeemed_at", "account", "pocket", "redeemed_ip"]
    list_filter = ["batch__status", ("redeemed_at", admin.EmptyFieldListFilter)]
    search_fields = ["hint", "batch__name", "account__number"]
    list_select_related = ["batch", "account", "pocket"]
    exclude = ["code_hash"]

    @admin.display(description="code", ordering="hint")
    def hint_text(self, voucher):
        return f"…{voucher.hint}"

    @admin.display(description="state")
    def state(self, voucher):
        return voucher.state()
