"""Admin for tenants, staff and the audit trail, and `TenantScopedAdmin`, the base every
tenant-owned model's admin uses: rows come through the tenant-scoped manager, new rows get
the staff user's tenant, and every save or delete leaves an audit row."""
from __future__ import annotations

from django import forms
from django.contrib import admin
from django.forms.models import BaseInlineFormSet

from obol.core import audit, tenancy
from obol.core.actors import Actor
from obol.core.models import AuditEvent, StaffProfile, Tenant


def _is_platform(request) -> bool:
    return tenancy.current_scope() is tenancy.ALL_TENANTS


class TenantScopedForm(forms.ModelForm):
    """Validates uniqueness per tenant even though the tenant field is not on the form, so a
    duplicate code is a form error rather than a database error."""

    def _get_validation_exclusions(self):
        exclusions = super()._get_validation_exclusions()
        exclusions.discard("tenant")
        return exclusions

    def _post_clean(self):
        scope = tenancy.current_scope()
        if getattr(self.instance, "tenant_id", None) is None and scope not in (None, tenancy.ALL_TENANTS):
            self.instance.tenant = scope
        super()._post_clean()


class TenantScopedAdmin(admin.ModelAdmin):
    form = TenantScopedForm
    def get_exclude(self, request, obj=None):
        excluded = list(super().get_exclude(request, obj) or [])
        if not _is_platform(request):
            excluded.append("tenant")
        return excluded

    def get_list_display(self, request):
        fields = list(super().get_list_display(request))
        return [*fields, "tenant"] if _is_platform(request) else fields

    def save_model(self, request, obj, form, change):
        before = {name: form.initial.get(name) for name in form.changed_data} if change else {}
        super().save_model(request, obj, form, change)
        after = {name: form.cleaned_data.get(name) for name in form.changed_data}
        audit.record(
            Actor.for_user(request.user),
            f"{obj._meta.model_name}.{'change' if change else 'create'}",
            obj,
            audit.diff(before, after) if change else audit.jsonable(after),
            reason="changed in the back office",
        )

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        actor = Actor.for_user(request.user)
        for obj in formset.new_objects:
            audit.record(actor, f"{obj._meta.model_name}.create", obj, reason="added in the back office")
        for obj, changed in formset.changed_objects:
            audit.record(actor, f"{obj._meta.model_name}.change", obj, {"fields": changed},
                         reason="changed in the back office")
        for obj in formset.deleted_objects:
            audit.record(actor, f"{obj._meta.model_name}.delete", obj, reason="deleted in the back office")

    def delete_model(self, request, obj):
        audit.record(Actor.for_user(request.user), f"{obj._meta.model_name}.delete", obj,
                     reason="deleted in the back office")
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


class SameTenantInlineFormSet(BaseInlineFormSet):
    """New inline rows belong to the tenant of the row they are part of (also for platform staff)."""

    def _construct_form(self, i, **kwargs):
        form = super()._construct_form(i, **kwargs)
        if getattr(form.instance, "tenant_id", None) is None and getattr(self.instance, "tenant_id", None):
            form.instance.tenant_id = self.instance.tenant_id
        return form

    def save_new(self, form, commit=True):
        form.instance.tenant_id = self.instance.tenant_id
        return super().save_new(form, commit)


class TenantInlineMixin:
    """For inlines of tenant-owned rows: no tenant field, new rows take the parent's tenant."""

    exclude = ["tenant"]
    formset = SameTenantInlineFormSet


class ReadOnlyAdminMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "country", "vat_id", "default_currency", "timezone", "rounding"]
    search_fields = ["code", "name", "legal_name", "vat_id"]
    fieldsets = [
        (None, {"fields": ["code", "name", "country", "timezone", "default_currency", "default_language",
                           "rounding"]}),
        ("Seller on invoices and e-invoices", {
            "description": "What an EN 16931 e-invoice says about the seller. An e-invoice with standard-rated "
                           "lines needs the VAT identifier; every e-invoice needs the address.",
            "fields": ["legal_name", "vat_id", "registration_id", "street", ("postcode", "city"), "email", "iban"],
        }),
    ]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        scope = tenancy.current_scope()
        return queryset if scope is tenancy.ALL_TENANTS else queryset.filter(pk=getattr(scope, "pk", None))

    def has_add_permission(self, request):
        return request.user.is_superuser

    def save_model(self, request, obj, form, change):
        before = {name: form.initial.get(name) for name in form.changed_data}
        super().save_model(request, obj, form, change)
        after = {name: form.cleaned_data.get(name) for name in form.changed_data}
        audit.record(Actor.for_user(request.user), f"tenant.{'change' if change else 'create'}", obj,
                     audit.diff(before, after), reason="changed in the back office")


@admin.register(StaffProfile)
class StaffProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role"]
    list_filter = ["role"]

    def has_module_permission(self, request):
        return request.user.is_superuser

    has_view_permission = has_change_permission = has_add_permission = has_delete_permission = (
        lambda self, request, obj=None: request.user.is_superuser
    )


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["at", "actor_label", "action", "object_type", "object_repr", "reason"]
    list_filter = ["actor_kind", "object_type", "action"]
    search_fields = ["object_id", "object_repr", "actor_label", "reason"]
    date_hierarchy = "at"
