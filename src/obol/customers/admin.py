from django.contrib import admin

from obol.core.admin import TenantInlineMixin, TenantScopedAdmin
from obol.customers.models import Address, BillingAccount, Contact, Customer, Reseller


@admin.register(Reseller)
class ResellerAdmin(TenantScopedAdmin):
    list_display = ["code", "name", "active"]
    search_fields = ["code", "name"]


class ContactInline(TenantInlineMixin, admin.TabularInline):
    model = Contact
    extra = 0


class AddressInline(TenantInlineMixin, admin.StackedInline):
    model = Address
    extra = 0


class AccountInline(admin.TabularInline):
    model = BillingAccount
    extra = 0
    fields = ["number", "name", "currency", "mode", "bill_cycle_day", "status"]
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Customer)
class CustomerAdmin(TenantScopedAdmin):
    list_display = ["number", "name", "kind", "country", "email", "reseller"]
    list_filter = ["kind", "country", "reseller"]
    search_fields = ["number", "name", "email", "tax_id", "external_ref"]
    inlines = [ContactInline, AddressInline, AccountInline]


@admin.register(BillingAccount)
class BillingAccountAdmin(TenantScopedAdmin):
    list_display = ["number", "name", "customer", "currency", "mode", "bill_period", "bill_cycle_day", "segment",
                    "credit_limit",
                    "omit_from_dunning", "status"]
    list_filter = ["mode", "currency", "status", "omit_from_dunning", "reseller", "bill_period", "bill_cycle_day",
                   "segment"]
    search_fields = ["number", "name", "customer__name", "customer__number"]
    raw_id_fields = ["customer", "parent", "billing_contact"]
    list_select_related = ["customer"]
