"""Loading rate tables: the sample German MVNO tariff, idempotence, new versions, broken files,
the catalog's rate table check, the frames in micro-units and the admin pages."""
import shutil
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from obol.catalog import services
from obol.catalog.rate_models import DestinationPrefix, Holiday, Rate, RateTable, RateTableVersion
from obol.catalog.rates import rate_frames
from obol.catalog.tariff_services import load_tariffs
from obol.core.errors import Forbidden, ValidationFailed
from obol.core.models import AuditEvent, StaffProfile
from obol.core.roles import Role

pytestmark = pytest.mark.django_db

SAMPLE = "samples/tariffs/tariffs.yaml"


@pytest.fixture
def sample_text(repo_root) -> str:
    return (repo_root / SAMPLE).read_text()


@pytest.fixture
def sample(in_tenant, system, repo_root, sample_text):
    return load_tariffs(sample_text, source=str(repo_root / SAMPLE), actor=system)


@pytest.fixture
def copy_of_sample(tmp_path, repo_root):
    """The sample in a scratch directory, to be changed by the test."""
    for name in ("tariffs.yaml", "prefixes.csv"):
        shutil.copy(repo_root / "samples/tariffs" / name, tmp_path / name)
    return tmp_path


def voice_rate(number: int, group: str, band: str) -> Rate:
    return Rate.objects.get(version__table__code="voice-national", version__number=number,
                            destination_group__code=group, time_band=band)


def test_the_sample_loads_with_its_tables_prefixes_rates_and_holidays(sample):
    assert str(sample).endswith("calendars 1 created, 0 updated, 0 unchanged; rate tables 4 created, "
                                "0 updated, 0 unchanged; 4 new versions (10804 prefixes)")
    assert sorted(RateTable.objects.values_list("code", "service_kind")) == [
        ("data-national", "data"), ("sms-national", "sms"), ("video-catalogue", "event"),
        ("voice-national", "voice")]
    voice = RateTable.objects.get(code="voice-national").latest_version()
    assert voice.number == 1 and voice.effective_from == date(2025, 1, 1)
    assert voice.prefixes.count() == 5402
    assert DestinationPrefix.objects.get(version=voice, prefix="49151").destination_group.code == "national-mobile"
    assert DestinationPrefix.objects.get(version=voice, prefix="4930").description == "Berlin"
    peak = voice_rate(1, "national-mobile", "peak")
    assert (peak.price, peak.unit, peak.first_increment_s, peak.next_increment_s) == (
        Decimal("0.10"), "minute", 60, 60)
    eu = Rate.objects.get(version=voice, destination_group__code="eu")
    assert (eu.time_band, eu.first_increment_s, eu.next_increment_s) == ("", 30, 1)
    assert Rate.objects.get(version=voice, destination_group__code="premium").connection_fee == Decimal("0.20")
    assert Holiday.objects.get(day=date(2026, 10, 3)).name == "Tag der Deutschen Einheit"
    assert Holiday.objects.count() == 9
    data = Rate.objects.get(version__table__code="data-national")
    assert (data.price, data.tier_model, data.rounding_unit, data.rounding) == (
        None, "graduated", "kilobyte", "session")
    assert [(t.up_to, t.unit_price) for t in data.tiers.all()] == [
        (Decimal(1024), Decimal("0.01")), (None, Decimal("0.005"))]
    assert AuditEvent.objects.filter(action="ratetableversion.create").count() == 4


def test_loading_the_same_file_twice_changes_nothing(sample, system, repo_root, sample_text):
    audit_rows = AuditEvent.objects.count()
    again = load_tariffs(sample_text, source=str(repo_root / SAMPLE), actor=system)
    assert str(again).endswith("calendars 0 created, 0 updated, 1 unchanged; rate tables 0 created, "
                               "0 updated, 4 unchanged; 0 new versions (0 prefixes)")
    assert RateTableVersion.objects.count() == 4 and DestinationPrefix.objects.count() == 10804
    assert AuditEvent.objects.count() == audit_rows


def test_a_changed_price_makes_version_2_from_the_date_and_leaves_version_1(in_tenant, system, copy_of_sample):
    source = copy_of_sample / "tariffs.yaml"
    load_tariffs(source.read_text(), source=str(source), actor=system)
    changed = source.read_text().replace(
        "{group: national-mobile, band: peak, price: 0.10", "{group: national-mobile, band: peak, price: 0.12")
    report = load_tariffs(changed, source=str(source), actor=system, effective_from=date(2026, 2, 1))
    assert report.new_versions == 1 and report.tables.updated == 1
    v1, v2 = RateTableVersion.objects.filter(table__code="voice-national").order_by("number")
    assert (v1.effective_from, v2.number, v2.effective_from) == (date(2025, 1, 1), 2, date(2026, 2, 1))
    assert voice_rate(1, "national-mobile", "peak").price == Decimal("0.10")
    assert voice_rate(2, "national-mobile", "peak").price == Decimal("0.12")
    assert v1.prefixes.count() == v2.prefixes.count() == 5402
    # The frames price a call by the version in force at its start.
    january = rate_frames("voice-national", at=datetime(2026, 1, 31, 12, tzinfo=timezone.utc))
    february = rate_frames("voice-national", at=datetime(2026, 2, 1, 12, tzinfo=timezone.utc))
    peak = (lambda f: f.rates.filter(destination_group="national-mobile", time_band="peak")["price_micros"][0])
    assert (peak(january), peak(february)) == (100_000, 120_000)
    # Going back before version 2 rewrites history: refused, nothing changes.
    with pytest.raises(ValidationFailed, match="would rewrite history: rate table voice-national version 2"):
        load_tariffs(source.read_text(), source=str(source), actor=system, effective_from=date(2026, 1, 20))
    assert RateTableVersion.objects.filter(table__code="voice-national").count() == 2


def test_a_wrong_price_in_force_is_corrected_in_place_by_an_administrator(in_tenant, system, clerk,
                                                                          copy_of_sample, capsys):
    """Version 1 is in force since 2025; its national-mobile peak price should have been 0.12.
    A correction replaces the version's content (no new version), audited with its reason, and
    says which periods to re-price; a clerk may not do it, and a correction needs a reason."""
    source = copy_of_sample / "tariffs.yaml"
    load_tariffs(source.read_text(), source=str(source), actor=system)
    corrected = source.read_text().replace(
        "{group: national-mobile, band: peak, price: 0.10", "{group: national-mobile, band: peak, price: 0.12")
    source.write_text(corrected)
    with pytest.raises(Forbidden):
        load_tariffs(corrected, source=str(source), actor=clerk, correction="price list typo")
    with pytest.raises(ValidationFailed, match="say why"):
        load_tariffs(corrected, source=str(source), actor=system, correction=" ")
    assert voice_rate(1, "national-mobile", "peak").price == Decimal("0.10")
    call_command("tariffs", "load", str(source), "--correct", "price list typo")
    out = capsys.readouterr().out
    assert "corrected rate table voice-national version 1 (in force from 2025-01-01)" in out
    assert "obol usage rerate --from 2025-01-01" in out
    assert RateTableVersion.objects.filter(table__code="voice-national").count() == 1
    assert voice_rate(1, "national-mobile", "peak").price == Decimal("0.12")
    assert DestinationPrefix.objects.filter(version__table__code="voice-national").count() == 5402
    event = AuditEvent.objects.get(action="ratetableversion.correct")
    assert event.reason.startswith("price list typo")
    peak = rate_frames("voice-national", at=datetime(2026, 1, 31, 12, tzinfo=timezone.utc)).rates.filter(
        destination_group="national-mobile", time_band="peak")["price_micros"][0]
    assert peak == 120_000
    # the other tables did not change: nothing else is corrected, loading it again changes nothing
    again = load_tariffs(corrected, source=str(source), actor=system, correction="price list typo")
    assert again.corrected == [] and AuditEvent.objects.filter(action="ratetableversion.correct").count() == 1


def test_a_new_version_may_not_start_in_the_past(in_tenant, system, copy_of_sample):
    source = copy_of_sample / "tariffs.yaml"
    load_tariffs(source.read_text(), source=str(source), actor=system)
    changed = source.read_text().replace("price: 3.99, unit: play", "price: 4.99, unit: play")
    with pytest.raises(ValidationFailed, match=r"would reprice days already past.*2026-01-15.*not 2026-01-10"):
        load_tariffs(changed, source=str(source), actor=system, effective_from=date(2026, 1, 10))


def test_a_broken_prefix_line_is_named_and_nothing_is_loaded(in_tenant, system, copy_of_sample):
    csv_file = copy_of_sample / "prefixes.csv"
    lines = csv_file.read_text().splitlines()
    lines[1233] = "49x1,national-mobile,typo"  # line 1234 of the file
    lines[1999] = "4930,national-fixed,again"  # line 2000: 4930 is on line 3 already
    lines[2999] = "4999,nowhere,"
    csv_file.write_text("\n".join(lines) + "\n")
    source = copy_of_sample / "tariffs.yaml"
    with pytest.raises(ValidationFailed) as caught:
        load_tariffs(source.read_text(), source=str(source), actor=system)
    message = caught.value.message.splitlines()
    assert f"{csv_file}: line 1234: prefix: '49x1' is not digits (1 to 20 of 0-9, as destinations are numbered)" \
        in message
    assert f"{csv_file}: line 2000: prefix: duplicate prefix '4930' (also line 3)" in message
    assert f"{csv_file}: line 3000: destination_group: unknown destination group 'nowhere'" in message
    assert RateTable.objects.count() == 0 and DestinationPrefix.objects.count() == 0


@pytest.mark.parametrize(("change", "problem"), [
    ("{group: world, price: 0.99", "tables[0].rates[9].group: unknown destination group 'mars'"),
    ("{group: national-mobile, band: peak,", "tables[0].rates[4].band: unknown time band 'night'"),
    ("first_increment_s: 30", "tables[0].rates[8].first_increment_s: Input should be greater than 0"),
    ("price: 0.09, unit: minute", "tables[0].rates[0].price: 0.0912345 has more than 6 decimals"),
    ('from: "20:00", to: "24:00"', "tables[0].bands: no band covers mon from 23:00: the weekly bands must cover every day"),
])
def test_a_broken_table_is_refused_with_its_path(in_tenant, system, copy_of_sample, change, problem):
    source = copy_of_sample / "tariffs.yaml"
    broken = {
        "{group: world, price: 0.99": "{group: mars, price: 0.99",
        "{group: national-mobile, band: peak,": "{group: national-mobile, band: night,",
        "first_increment_s: 30": "first_increment_s: 0",
        "price: 0.09, unit: minute": "price: 0.0912345, unit: minute",
        'from: "20:00", to: "24:00"': 'from: "20:00", to: "23:00"',
    }[change]
    text = source.read_text()
    assert change in text
    with pytest.raises(ValidationFailed) as caught:
        load_tariffs(text.replace(change, broken, 1), source=str(source), actor=system)
    assert problem in caught.value.message
    assert caught.value.message.startswith(f"{source}: ")
    assert RateTable.objects.count() == 0


def test_usage_charges_must_name_an_existing_rate_table_once_there_are_any(in_tenant, system, demo_text, sample):
    services.load_catalog(demo_text, source="catalog.yaml", actor=system)  # all four codes exist
    broken = demo_text.replace("rate_table: video-catalogue}", "rate_table: video-catalog}", 1)
    with pytest.raises(ValidationFailed) as caught:
        services.load_catalog(broken, source="catalog.yaml", actor=system, effective_from=date(2026, 2, 1))
    assert caught.value.message == "catalog.yaml: plans[2].charges[3].rate_table: unknown rate table 'video-catalog'"


def test_without_rate_tables_a_catalog_loads_as_before(in_tenant, system, demo_text):
    broken = demo_text.replace("rate_table: video-catalogue}", "rate_table: video-catalog}", 1)
    assert services.load_catalog(broken, source="catalog.yaml", actor=system).new_versions > 0


def test_rate_frames_are_exact_micro_units(sample):
    frames = rate_frames("voice-national", at=datetime(2026, 1, 15, tzinfo=timezone.utc))
    assert frames.currency == "EUR" and frames.prefixes.height == 5402
    mobile = frames.rates.filter(destination_group="national-mobile").sort("time_band")
    assert mobile.select("time_band", "price_micros").rows() == [
        ("holiday", 50_000), ("offpeak", 70_000), ("peak", 100_000), ("weekend", 50_000)]
    # A rate for every band is one row per band.
    eu = frames.rates.filter(destination_group="eu")
    assert sorted(eu["time_band"]) == ["holiday", "offpeak", "peak", "weekend"]
    assert set(eu["first_increment_s"]) == {30} and set(eu["next_increment_s"]) == {1}
    premium = frames.rates.filter(destination_group="premium").row(0, named=True)
    assert (premium["price_micros"], premium["connection_fee_micros"]) == (1_990_000, 200_000)
    assert frames.rates.filter(destination_group="world")["minimum_charge_micros"][0] == 990_000
    assert frames.bands.height == 5 and frames.holidays.height == 9
    assert frames.prefixes.filter(prefix="4930").row(0, named=True)["prefix_len"] == 4
    data = rate_frames("data-national")
    assert data.versions["default_group"].to_list() == ["national-data"]
    assert data.rates.select("time_band", "price_micros", "tier_model").rows() == [("all", None, "graduated")]
    assert data.tiers.select("up_to_micros", "unit_price_micros").rows() == [
        (1_024_000_000, 10_000), (None, 5_000)]


def test_the_command_loads_the_sample(tenant, repo_root, capsys):
    call_command("tariffs", "load", str(repo_root / SAMPLE), "--effective-from", "2026-01-15")
    assert "4 new versions (10804 prefixes)" in capsys.readouterr().out


def test_the_admin_pages_open_and_a_version_in_force_is_read_only(client, tenant, sample):
    user = get_user_model().objects.create_user("anna", password="x", is_staff=True)
    StaffProfile.objects.create(user=user, tenant=tenant, role=Role.CLERK)
    client.force_login(user)
    version = RateTable.objects.get(code="voice-national").latest_version()
    for model in ("ratetable", "ratetableversion", "rate", "destinationprefix", "holidaycalendar"):
        assert client.get(reverse(f"admin:catalog_{model}_changelist")).status_code == 200, model
    search = client.get(reverse("admin:catalog_destinationprefix_changelist"), {"q": "4930"})
    assert "Berlin" in search.content.decode()
    page = client.get(reverse("admin:catalog_ratetableversion_change", args=[version.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    rate = voice_rate(1, "national-mobile", "peak")
    assert client.post(reverse("admin:catalog_rate_change", args=[rate.pk]), {"price": "0.01"}).status_code == 403
    rate.refresh_from_db()
    assert rate.price == Decimal("0.10")
