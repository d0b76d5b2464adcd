"""Back-office admin: alerts (read-only, filtered by kind, severity and acknowledged, with an
"acknowledge" action and their deliveries inline) and the tenant's alert settings (editable)."""
from django.contrib import admin, messages
from django.db import models

from obol.core import tenancy
from obol.core.actors import Actor
from obol.core.admin import TenantInlineMixin, TenantScopedAdmin
from obol.core.errors import ObolError
from obol.notifications import services
from obol.notifications.models import Alert, AlertSettings, Delivery


class DeliveryInline(TenantInlineMixin, admin.TabularInline):
    model = Delivery
    extra = 0
    fields = readonly_fields = ["channel", "target", "state", "attempts", "last_error", "next_attempt_at",
                                "sent_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.action(description="Acknowledge the selected alerts", permissions=["change"])
def acknowledge(modeladmin, request, queryset):
    try:
        count = services.acknowledge(Actor.for_user(request.user), queryset, reason="acknowledged in the back office")
    except ObolError as error:
        modeladmin.message_user(request, error.message, messages.ERROR)
    else:
        modeladmin.message_user(request, f"{count} alert(s) acknowledged", messages.SUCCESS)


@admin.register(Alert)
class AlertAdmin(TenantScopedAdmin):
    list_display = ["created_at", "kind", "severity", "subject", "reference", "occurrences", "acknowledged"]
    list_filter = ["kind", "severity", ("acknowledged_at", admin.EmptyFieldListFilter)]
    search_fields = ["subject", "reference", "message"]
    date_hierarchy = "created_at"
    readonly_fields = ["kind", "severity", "subject", "message", "details", "reference", "created_at",
                       "occurrences", "last_raised_at", "acknowledged_at", "acknowledged_by"]
    inlines = [DeliveryInline]
    actions = [acknowledge]

    @admin.display(boolean=True, description="acknowledged", ordering="acknowledged_at")
    def acknowledged(self, alert):
        return alert.acknowledged_at is not None

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # The list may acknowledge (an action needs 'change'); an alert itself is never edited.
        return obj is None and super().has_change_permission(request)


@admin.register(AlertSettings)
class AlertSettingsAdmin(TenantScopedAdmin):
    list_display = ["__str__", "email_enabled", "email_recipients", "webhook_enabled", "webhook_url",
                    "suspense_threshold_percent"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def has_add_permission(self, request):
        # One row per tenant: once it exists it is changed, not added again (platform staff pick
        # the tenant on the form, where the unique check names it).
        scope = tenancy.current_scope()
        if scope is not tenancy.ALL_TENANTS and AlertSettings.objects.exists():
            return False
        return super().has_add_permission(request)
