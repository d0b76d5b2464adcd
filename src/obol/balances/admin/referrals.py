"""Back-office admin: the referral program, customers' codes and the referrals. A referral's state
moves only through the services: staff may refuse one, or credit a qualified one whose customer
has since opened the account its credit needed."""
from django.contrib import admin, messages

from obol.balances import referrals as services
from obol.balances.models import Referral, ReferralCode, ReferralProgram
from obol.core.actors import Actor
from obol.core.admin import ReadOnlyAdminMixin, TenantScopedAdmin
from obol.core.errors import ObolError
from obol.core.roles import role_may_write


@admin.register(ReferralProgram)
class ReferralProgramAdmin(TenantScopedAdmin):
    list_display = ["__str__", "qualifying_event", "referrer_value", "referrer_unit", "referred_value",
                    "referred_unit", "validity_days", "active"]
    list_filter = ["active", "qualifying_event"]
    fields = ["name", "qualifying_event", "referrer_value", "referrer_unit", "referred_value",
              "referred_unit", "validity_days", "active"]


@admin.register(ReferralCode)
class ReferralCodeAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["code", "customer", "created_at"]
    search_fields = ["code", "customer__number", "customer__name"]
    list_select_related = ["customer"]


@admin.register(Referral)
class ReferralAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["code", "referrer", "referred", "state", "qualified_at", "qualified_by", "credited_at",
                    "note"]
    list_filter = ["state", "program"]
    search_fields = ["code", "referrer__number", "referrer__name", "referred__number", "referred__name"]
    list_select_related = ["referrer", "referred"]
    actions = ["credit", "refuse"]

    def get_actions(self, request):
        # The actions change state through the services, which check the staff member's role.
        actions = super().get_actions(request)
        if not role_may_write(Actor.for_user(request.user).role):
            actions.pop("credit", None)
            actions.pop("refuse", None)
        return actions

    def _each(self, request, queryset, action, done: str):
        actor, count = Actor.for_user(request.user), 0
        for referral in queryset:
            try:
                action(actor, referral)
                count += 1
            except ObolError as exc:
                self.message_user(request, f"{referral}: {exc.message}", messages.ERROR)
        if count:
            self.message_user(request, f"{count} referral(s) {done}.", messages.SUCCESS)

    @admin.action(description="Credit the selected qualified referrals")
    def credit(self, request, queryset):
        self._each(request, queryset, services.credit_referral, "credited")

    @admin.action(description="Refuse the selected referrals (not credited yet)")
    def refuse(self, request, queryset):
        def refuse(actor, referral):
            return services.refuse_referral(actor, referral, "refused in the back office")

        self._each(request, queryset, refuse, "refused")
