"""One scoping mechanism: tenant-owned rows are only ever seen inside a tenant's scope."""
import pytest

from obol.core.errors import NotFound, TenantNotSet
from obol.core.tenancy import all_tenants, tenant_context
from obol.customers.models import Customer

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
