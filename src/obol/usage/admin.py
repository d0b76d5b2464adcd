"""Back-office admin for usage: the files imported (with their suspense summarised by reason), the
rated records (read-only, prices shown as money) and suspense (read-only, with the actions
"recycle open records" and "drop selected" for staff who may write)."""
import json
from collections import Counter

from django.contrib import admin, messages
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from obol.catalog.rates import from_micros
from obol.core.actors import Actor
from obol.core.admin import ReadOnlyAdminMixin, TenantScopedAdmin
from obol.core.errors import ObolError
from obol.usage import pipeline
from obol.usage.models import RatedRecord, SuspendedRecord, UsageFile



def price_text(micros: int, currency: str) -> str:
    """A price in micro-units as money for display: exact (6 decimals, nothing rounded or stored)."""
    return f"{from_micros(micros):f} {currency}"


@admin.register(UsageFile)
class UsageFileAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["name", "state", "read", "rated", "suspended", "duplicates", "skipped", "started_at",
                    "finished_at", "error"]
    list_filter = ["state", "format"]
    search_fields = ["name", "checksum"]
    date_hierarchy = "started_at"
    fields = readonly_fields = ["name", "format", "size", "checksum", "state", "read", "rated", "suspended",
                                "duplicates", "skipped", "chunks_done", "started_at", "finished_at", "error",
                                "suspense_by_reason"]

    @admin.display(description="suspense by reason")
    def suspense_by_reason(self, usage_file):
        rows = (SuspendedRecord.objects.filter(file=usage_file).values_list("reason", "state")
                .annotate(n=Count("id")).order_by("reason", "state"))
        counts: dict[str, Counter] = {}
        for reason, state, n in rows:
            counts.setdefault(reason, Counter())[state] = n
        if not counts:
            return "none"
        link = reverse("admin:usage_suspendedrecord_changelist")
        return format_html("<ul>{}</ul>", format_html_join(
            "", '<li><a href="{}?file__id__exact={}&amp;reason__exact={}">{}</a>: {} open, {} recycled, {} dropped</li>',
            ((link, usage_file.pk, reason, reason, c["open"], c["recycled"], c["dropped"])
             for reason, c in counts.items())))


@admin.register(RatedRecord)
class RatedRecordAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["record_key", "start", "account", "subscription", "service", "destination", "destination_group",
                    "time_band", "quantity", "included", "billed", "price", "uncovered"]
    list_filter = ["service", "time_band", "destination_group", "uncovered"]
    search_fields = ["record_key", "destination", "account__number"]
    date_hierarchy = "start"
    list_select_related = ["account", "subscription__plan"]
    show_full_result_count = False  # millions of rows: no second COUNT(*) per page
    readonly_fields = ["price"]

    @admin.display(description="price", ordering="price_micros")
    def price(self, record):
        return price_text(record.price_micros, record.currency)


@admin.action(description="Recycle the selected open records", permissions=["change"])
def recycle_open(modeladmin, request, queryset):
    try:
        summary = pipeline.recycle(Actor.for_user(request.user), rows=queryset)
    except ObolError as error:
        modeladmin.message_user(request, error.message, messages.ERROR)
        return
    still = ", ".join(f"{reason} {n}" for reason, n in sorted(summary.still_suspended.items())) or "none"
    modeladmin.message_user(request, f"recycled {summary.tried}: rated {summary.rated}, still suspended: {still}",
                            messages.SUCCESS)


@admin.action(description="Drop selected", permissions=["change"])
def drop_selected(modeladmin, request, queryset):
    try:
        count = pipeline.drop_suspense(Actor.for_user(request.user), queryset)
    except ObolError as error:
        modeladmin.message_user(request, error.message, messages.ERROR)
    else:
        modeladmin.message_user(request, f"{count} suspense record(s) dropped", messages.SUCCESS)


@admin.register(SuspendedRecord)
class SuspendedRecordAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["created_at", "file", "line", "reason", "field", "message", "state", "record_key"]
    list_filter = ["reason", "state", "file"]
    search_fields = ["record_key", "raw", "message"]
    date_hierarchy = "created_at"
    list_select_related = ["file"]
    fields = readonly_fields = ["file", "line", "record_key", "reason", "field", "message", "state", "created_at",
                                "resolved_at", "original_line", "parsed_record"]
    actions = [recycle_open, drop_selected]

    def has_change_permission(self, request, obj=None):
        # The list runs the actions (they need 'change'); a suspense row itself is never edited.
        return obj is None and TenantScopedAdmin.has_change_permission(self, request)

    @admin.display(description="original line")
    def original_line(self, row):
        return format_html("<pre>{}</pre>", row.raw)

    @admin.display(description="parsed record")
    def parsed_record(self, row):
        if row.record is None:
            return "-"
        return format_html("<pre>{}</pre>", json.dumps(row.record, indent=2, sort_keys=True, default=str))
