"""One scoping mechanism: tenant-owned rows are only ever seen inside a tenant's scope."""
import pytest
from django.db import transaction
from django.db.models import Exists

from obol.core.errors import NotFound, TenantNotSet
from obol.core.tenancy import all_tenants, tenant_context
from obol.customers.models import Customer, Reseller

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_tenants(tenant, other_tenant):
    with tenant_context(tenant):
        Customer.objects.create(number="C-1", name="Acme's customer")
    with tenant_context(other_tenant):
        Customer.objects.create(number="C-1", name="Globex's customer")
    return tenant, other_tenant


def test_reads_see_only_the_tenant_in_scope(two_tenants):
    acme, globex = two_tenants
    with tenant_context(acme):
        assert list(Customer.objects.values_list("name", flat=True)) == ["Acme's customer"]
    with tenant_context(globex):
        assert Customer.objects.get(number="C-1").name == "Globex's customer"
    with all_tenants():
        assert Customer.objects.count() == 2


def test_forgetting_the_scope_fails_loudly(two_tenants):
    with pytest.raises(TenantNotSet, match="tenant_context"):
        list(Customer.objects.all())
    with pytest.raises(TenantNotSet):
        Customer.objects.count()
    with pytest.raises(TenantNotSet):
        Customer.objects.filter(name__startswith="A").update(name="x")
    with pytest.raises(TenantNotSet):
        Customer(number="C-9", name="Nobody").save()


def test_a_queryset_built_before_the_scope_is_scoped_when_it_runs(two_tenants):
    acme, globex = two_tenants
    pending = Customer.objects.filter(number="C-1")  # e.g. a form field declared at import time
    with tenant_context(globex):
        assert [c.name for c in pending.all()] == ["Globex's customer"]
        assert pending.count() == 1
    with tenant_context(acme):
        assert [c.name for c in pending.iterator()] == ["Acme's customer"]


def test_saving_another_tenants_row_is_refused(two_tenants):
    acme, globex = two_tenants
    with all_tenants():
        foreign = Customer.objects.get(tenant=globex)
    with tenant_context(acme):
        foreign.name = "Taken over"
        with pytest.raises(NotFound):
            foreign.save()
    with tenant_context(globex):
        assert Customer.objects.get().name == "Globex's customer"


def test_new_rows_get_the_tenant_in_scope(tenant):
    with tenant_context(tenant):
        customer = Customer.objects.create(number="C-2", name="New")
    assert customer.tenant_id == tenant.pk


def test_pending_querysets_combined_or_nested_take_the_scope(two_tenants):
    acme, globex = two_tenants
    pending = Customer.objects.order_by()
    with tenant_context(acme):
        assert [c.name for c in pending.union(Customer.objects.order_by())] == ["Acme's customer"]
        assert [c.name for c in Customer.objects.order_by().union(pending)] == ["Acme's customer"]
        inner = Customer.objects.filter(name__startswith="G")
        assert Customer.objects.filter(Exists(inner)).count() == 0  # Globex's row is not visible


def test_bulk_create_fills_and_checks_the_tenant(two_tenants):
    acme, globex = two_tenants
    with tenant_context(acme):
        Customer.objects.bulk_create([Customer(number="C-2", name="Bulk")])
        assert Customer.objects.count() == 2
        with pytest.raises(NotFound):
            Customer.objects.bulk_create([Customer(tenant=globex, number="C-3", name="Smuggled")])
    with tenant_context(globex):
        assert Customer.objects.count() == 1


def test_a_reference_into_another_tenant_is_refused(two_tenants):
    acme, globex = two_tenants
    with tenant_context(globex):
        globex_reseller = Reseller.objects.create(code="r", name="Globex reseller")
    with all_tenants():  # even platform work cannot link across tenants
        customer = Customer.objects.get(tenant=acme)
        customer.reseller_id = globex_reseller.pk
        with pytest.raises(NotFound, match="reseller"), transaction.atomic():
            customer.save()
        assert Customer.objects.get(pk=customer.pk).reseller_id is None
