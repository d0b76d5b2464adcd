"""Subscriptions in the back office. State, plan and quantity change only through the lifecycle
services (the timeline is the truth), so those fields are read-only and the changes are actions."""
from django import forms
from django.contrib import admin, messages

from obol.core.actors import Actor
from obol.core.admin import TenantScopedAdmin
from obol.core.clock import today
from obol.core.errors import ObolError
from obol.subscriptions import services
from obol.subscriptions.models import Subscription, SubscriptionChange, UsageIdentifier


class ChangeInline(admin.TabularInline):
    model = SubscriptionChange
    extra = 0
    fields = ["seq", "kind", "effective_date", "status", "plan", "quantity", "reason", "recorded_at"]
    readonly_fields = fields
    can_delete = False
    verbose_name_plural = "timeline"

    def has_add_permission(self, request, obj=None):
        return False


class IdentifierInline(admin.TabularInline):
    model = UsageIdentifier
    extra = 0
    fields = ["kind", "value", "valid_from", "valid_to"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class SubscribeForm(forms.ModelForm):
    class Meta:
        model = Subscription
        fields = ["account", "plan", "quantity", "start_date"]

    def clean(self):
        data = super().clean()
        if all(data.get(f) is not None for f in self.Meta.fields):
            try:
                services.check_subscribable(data["account"], data["plan"], data["start_date"], data["quantity"])
            except ObolError as error:
                raise forms.ValidationError(error.message) from error
        return data


def _transition_action(name: str):
    def action(modeladmin, request, queryset):
        actor = Actor.for_user(request.user)
        done = 0
        for subscription in queryset:
            day = today(subscription.tenant.timezone)
            try:
                services.transition(actor, subscription, name, day, reason="back office action")
                done += 1
            except ObolError as error:
                messages.error(request, f"{subscription.number}: {error.message}")
        if done:
            messages.success(request, f"{name}: {done} subscription(s), effective today")

    action.__name__ = f"{name}_today"
    action.short_description = f"{name.capitalize()} selected subscriptions from today"
    action.allowed_permissions = ("change",)
    return action


@admin.register(Subscription)
class SubscriptionAdmin(TenantScopedAdmin):
    list_display = ["number", "account", "plan", "quantity", "status", "start_date", "end_date"]
    list_filter = ["status", "plan"]
    search_fields = ["number", "account__number", "account__customer__name", "identifiers__value"]
    list_select_related = ["account", "plan"]
    inlines = [ChangeInline, IdentifierInline]
    actions = [_transition_action(n) for n in ("activate", "suspend", "resume", "terminate")]
    raw_id_fields = ["account"]

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = SubscribeForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["number", "account", "plan", "quantity", "status", "start_date", "end_date", "created_at"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return SubscribeForm.Meta.fields
        return self.get_readonly_fields(request, obj)

    def save_model(self, request, obj, form, change):
        if change:
            return
        created = services.subscribe(
            Actor.for_user(request.user), form.cleaned_data["account"], form.cleaned_data["plan"],
            start_date=form.cleaned_data["start_date"], quantity=form.cleaned_data["quantity"],
            reason="back office",
        )
        obj.pk = created.pk
        obj.number = created.number

    def save_formset(self, request, form, formset, change):
        pass  # the inlines are read-only
