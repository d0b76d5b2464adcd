"""The seller's identity on the tenant (what an EN 16931 invoice says about the seller): all of it
may be blank; what is filled in is checked and kept in its compact form, and a wrong value is
refused naming the field, in the model, the admin and `obol tenant seller`."""
import pytest
from django.core.management import CommandError, call_command

from obol.core.errors import ValidationFailed
from obol.core.models import AuditEvent, Tenant
from obol.core.tenancy import tenant_context
from obol.core.validation import full_clean

pytestmark = pytest.mark.django_db


def test_blank_is_allowed_and_what_is_given_is_compacted(tenant):
    full_clean(tenant)  # name and country only, as the tenants of the other tests
    tenant.vat_id, tenant.iban = "de 136.695.976", "de89 3704 0044 0532 0130 00"
    full_clean(tenant)
    assert (tenant.vat_id, tenant.iban) == ("DE136695976", "DE89370400440532013000")
    assert tenant.seller_name == "Acme Telecom"
    tenant.legal_name = "Acme Telecom GmbH"
    assert tenant.seller_name == "Acme Telecom GmbH"
    tenant.vat_id = "CHE-123.456.789"  # outside the EU only the prefix is checked
    full_clean(tenant)
    assert tenant.vat_id == "CHE123456789"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("vat_id", "136695976", "vat_id: VAT identifier '136695976' must start with its 2-letter country prefix "
                            "followed by the number (e.g. DE136695976)"),
    ("vat_id", "DE123456789", "vat_id: VAT identifier 'DE123456789' is not a valid DE VAT number "
                              "(the number's checksum or check digit is invalid)"),
    # the last digit changed: 3214282912345698765432161182 mod 97 is not 1
    ("iban", "DE89370400440532013001", "iban: IBAN 'DE89370400440532013001' is not valid (ISO 13616: the number's "
                                       "checksum or check digit is invalid)"),
    ("email", "billing@", "email: Enter a valid email address."),
    ("country", "D1", "country: country 'D1' is not an ISO 3166-1 alpha-2 code (e.g. DE)"),
])
def test_a_wrong_value_is_refused_naming_the_field(tenant, field, value, message):
    setattr(tenant, field, value)
    with pytest.raises(ValidationFailed) as refused:
        full_clean(tenant)
    assert (refused.value.field, refused.value.message) == (field, message)


def test_the_admin_edits_the_seller_and_says_which_field_is_wrong(staff, tenant):
    url = f"/admin/core/tenant/{tenant.pk}/change/"
    page = staff.get(url)
    assert "Seller on invoices and e-invoices" in page.content.decode()
    form = {"code": "acme", "name": "Acme Telecom", "country": "DE", "timezone": "UTC", "default_currency": "EUR",
            "default_language": "en", "rounding": "half_up", "legal_name": "Acme Telecom GmbH",
            "vat_id": "DE 136 695 976", "registration_id": "HRB 12345 Berlin", "street": "Friedrichstraße 10",
            "postcode": "10117", "city": "Berlin", "email": "billing@acme.example", "iban": "DE89370400440532013001"}
    refused = staff.post(url, form)
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors["iban"] == [
        "IBAN 'DE89370400440532013001' is not valid (ISO 13616: the number's checksum or check digit is invalid)"]
    assert Tenant.objects.get(pk=tenant.pk).vat_id == ""
    assert staff.post(url, {**form, "iban": "DE89 3704 0044 0532 0130 00"}).status_code == 302
    tenant.refresh_from_db()
    assert (tenant.vat_id, tenant.iban, tenant.city) == ("DE136695976", "DE89370400440532013000", "Berlin")
    with tenant_context(tenant):
        assert AuditEvent.objects.filter(action="tenant.change").exists()


def test_the_command_sets_the_seller(tenant, capsys):
    call_command("tenant", "seller", "--tenant", "acme", "--legal-name", "Acme Telecom GmbH", "--vat-id",
                 "DE136695976", "--street", "Friedrichstraße 10", "--postcode", "10117", "--city", "Berlin")
    tenant.refresh_from_db()
    assert (tenant.legal_name, tenant.vat_id, tenant.postcode) == ("Acme Telecom GmbH", "DE136695976", "10117")
    assert "vat_id\tDE136695976" in capsys.readouterr().out
    with tenant_context(tenant):
        assert AuditEvent.objects.get(action="tenant.change").changes["vat_id"] == ["", "DE136695976"]
    with pytest.raises(CommandError, match="iban: IBAN 'DE00123' is not valid"):
        call_command("tenant", "seller", "--tenant", "acme", "--iban", "DE00 123")
    tenant.refresh_from_db()
    assert tenant.iban == ""
    call_command("tenant", "create", "nova", "Nova Mobile", "--country", "ch", "--vat-id", "CHE-123.456.789",
                 "--city", "Zürich")
    assert Tenant.objects.get(code="nova").vat_id == "CHE123456789"
