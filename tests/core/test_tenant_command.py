"""`obol tenant` and `obol apikey`: what an operator types when setting up."""
import pytest
from django.core.management import CommandError, call_command

from obol.api.auth import authenticate_key
from obol.core.models import StaffProfile, Tenant

pytestmark = pytest.mark.django_db


def test_create_a_tenant_a_staff_user_and_an_api_key(capsys):
    call_command("tenant", "create", "nova", "Nova Mobile", "--currency", "chf", "--country", "ch",
                 "--timezone", "Europe/Zurich", "--rounding", "half_even")
    tenant = Tenant.objects.get(code="nova")
    assert (tenant.default_currency, tenant.country, tenant.rounding) == ("CHF", "CH", "half_even")
    call_command("tenant", "staff", "eva", "--tenant", "nova", "--role", "clerk", "--password", "s3cret-pass")
    assert StaffProfile.objects.get(user__username="eva").role == "clerk"
    capsys.readouterr()
    call_command("apikey", "create", "--tenant", "nova", "--name", "crm", "--role", "readonly")
    key = capsys.readouterr().out.strip()
    row = authenticate_key(key)
    assert row is not None and row.tenant == tenant and row.role == "readonly"
    assert key not in row.key_hash


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--timezone", "Mars/Base", "not an IANA time zone"), ("--currency", "minute", "not an ISO 4217")],
)
def test_bad_tenant_settings_are_refused(option, value, message):
    with pytest.raises(CommandError, match=message):
        call_command("tenant", "create", "bad", "Bad", option, value)
    assert not Tenant.objects.filter(code="bad").exists()
