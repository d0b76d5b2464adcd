"""Back office views of real-time charging: settings per tenant (editable), sessions, answered
requests and low-balance events (read-only: they are written by the charging service only)."""
from django.contrib import admin

from obol.charging.models import ChargingRequest, ChargingSession, ChargingSettings, LowBalanceEvent
from obol.core.admin import ReadOnlyAdminMixin, TenantScopedAdmin


@admin.register(ChargingSettings)
class ChargingSettingsAdmin(TenantScopedAdmin):
    list_display = ["tenant", "grant_validity_s", "max_grant_s", "low_balance_threshold",
                    "stop_open_sessions_when_suspended"]


@admin.register(ChargingSession)
class ChargingSessionAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["key", "state", "identifier", "service_kind", "destination", "started_at", "used", "granted",
                    "charged", "shortfall", "expires_at"]
    list_filter = ["state", "service_kind"]
    search_fields = ["key", "identifier", "account__number"]
    date_hierarchy = "started_at"


@admin.register(ChargingRequest)
class ChargingRequestAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["request_id", "operation", "code", "session", "created_at"]
    list_filter = ["operation", "code"]
    search_fields = ["request_id"]


@admin.register(LowBalanceEvent)
class LowBalanceEventAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["account", "balance", "threshold", "currency", "created_at", "notified_at"]
