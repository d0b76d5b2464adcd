"""`obol catalog load FILE [--tenant CODE] [--effective-from YYYY-MM-DD]`."""
from datetime import date
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from obol import cli
from obol.catalog.models import PricePlan, Service
from obol.core.tenancy import tenant_context

pytestmark = pytest.mark.django_db

DEMO = "samples/demo/catalog.yaml"
BROKEN = "samples/catalog-broken-price.yaml"


@pytest.fixture(autouse=True)
def from_the_repository(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)  # file names as a user types them, relative to the checkout


def run(*args) -> str:
    out = StringIO()
    call_command("catalog", *args, stdout=out)
    return out.getvalue()


def test_load_prints_the_report_and_loads_into_the_only_tenant(tenant):
    out = run("load", DEMO)
    assert out.startswith(f"{DEMO}: services 4 created, 0 updated, 0 unchanged;")
    assert out.strip().endswith("; 6 new plan versions")
    with tenant_context(tenant):
        assert PricePlan.objects.count() == 6
    assert "plans 0 created, 0 updated, 6 unchanged; 0 new plan versions" in run("load", DEMO)


def test_effective_from_makes_a_new_version_from_that_day(tenant, tmp_path):
    run("load", DEMO, "--tenant", "acme")
    changed = tmp_path / "catalog.yaml"
    changed.write_text(Path(DEMO).read_text().replace("price: 19.99", "price: 17.99"))
    out = run("load", str(changed), "--tenant", "acme", "--effective-from", "2026-07-01")
    assert "plans 0 created, 1 updated, 5 unchanged; 1 new plan version" in out
    with tenant_context(tenant):
        plan = PricePlan.objects.get(code="mobile-m")
        fee = plan.version_at(date(2026, 7, 1)).charges.get(code="monthly-fee")
        assert (fee.version.number, fee.price) == (2, Decimal("17.99"))
        assert plan.version_at(date(2026, 6, 30)).charges.get(code="monthly-fee").price == Decimal("19.99")


def test_a_bad_file_is_a_command_error_naming_file_path_and_reason(tenant):
    with pytest.raises(CommandError) as caught:
        run("load", BROKEN)
    assert str(caught.value) == f"{BROKEN}: plans[0].charges[0].price: '9,99' is not a decimal number"
    with tenant_context(tenant):
        assert not Service.objects.exists()


@pytest.mark.django_db(transaction=True)  # the command line closes the database connections when it ends
def test_from_the_command_line_the_error_goes_to_stderr_with_exit_status_1(tenant, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["catalog", "load", BROKEN])
    assert exited.value.code == 1
    captured = capsys.readouterr()
    assert f"{BROKEN}: plans[0].charges[0].price: '9,99' is not a decimal number" in captured.err
    assert captured.out == ""
    with tenant_context(tenant):
        assert not Service.objects.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["load", DEMO], "several tenants exist: name one with --tenant (acme, globex)"),
    (["load", DEMO, "--tenant", "initech"], "no tenant with code 'initech'"),
    (["load", DEMO, "--tenant", "acme", "--effective-from", "1 May"],
     "--effective-from: '1 May' is not a date"),
    (["load", "samples/nowhere.yaml", "--tenant", "acme"], "samples/nowhere.yaml: cannot read"),
])
def test_usage_errors(tenant, other_tenant, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(*args)


def test_without_any_tenant_the_command_says_so(db):
    with pytest.raises(CommandError, match="there is no tenant yet"):
        run("load", DEMO)


def test_the_tenant_named_gets_the_catalog_and_no_other(tenant, other_tenant):
    run("load", DEMO, "--tenant", "globex")
    with tenant_context(other_tenant):
        assert PricePlan.objects.count() == 6
    with tenant_context(tenant):
        assert PricePlan.objects.count() == 0
