"""Tariff use cases: load a tariff document (rate tables, holiday calendars) into the tenant in scope.

One transaction, all or nothing, idempotent like the catalog load: a table's priced content
(groups, prefixes, bands, rates, tiers) is fingerprinted, and only a table whose content differs
from its latest version gets a new version, effective from the given date (not before today,
not on or before the latest version's date). Versions are not modified, with one exception: a
*correction* (`correction="why"`, administrators only) replaces the content of the version in
force on the given day, audited with its reason, for a wrong price found after the version
started; the records it priced are then re-priced with `obol usage rerate`. Table names change in
place; a table's currency and service kind never change. Holiday calendars are tenant data
shared by tables: their names and dates are updated in place. Every change leaves an audit row.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from django.db import transaction
from django.db.models import Max

from obol.catalog import tariff_loader
from obol.catalog.rate_models import (
    DestinationGroup,
    DestinationPrefix,
    Holiday,
    HolidayCalendar,
    Rate,
    RateTable,
    RateTableVersion,
    RateTier,
    TimeBand,
)
from obol.catalog.services import Tally, content_hash
from obol.core import audit, clock
from obol.core.actors import Actor
from obol.core.errors import Forbidden, ValidationFailed
from obol.core.roles import Role
from obol.core.fields import canonical_text
from obol.core.tenancy import current_tenant

BATCH = 5000  # prefixes per INSERT


@dataclass
class TariffReport:
    source: str
    calendars: Tally = field(default_factory=Tally)
    tables: Tally = field(default_factory=Tally)
    new_versions: int = 0
    prefixes: int = 0
    corrected: list[tuple[str, int, date]] = field(default_factory=list)  # (table, version, in force from)

    def __str__(self) -> str:
        text = (f"{self.source}: calendars {self.calendars}; rate tables {self.tables}; "
                f"{self.new_versions} new version{'' if self.new_versions == 1 else 's'} "
                f"({self.prefixes} prefixes)")
        for code, number, since in self.corrected:
            text += (f"\ncorrected rate table {code} version {number} (in force from {since}): re-price the "
                     f"open periods since then with `obol usage rerate --from {since} --to ...`")
        return text


# --- priced content and its fingerprint ------------------------------------------------------


def _number(value):
    return None if value is None else canonical_text(value)


def _content(groups, prefixes, bands, rates) -> dict:
    """A version's priced content in one canonical form. `groups`: [(code, name)], `prefixes`:
    [(prefix, group code, description)], `bands`: [(name, days, starts, ends, calendar code)],
    `rates`: [(rate field dict, [(up_to, unit_price)])]."""
    return {
        "groups": sorted([list(g) for g in groups]),
        "prefixes": sorted([list(p) for p in prefixes]),
        "bands": [list(b) for b in bands],
        "rates": [{**{k: _number(v) if k in ("price", "minimum_charge", "connection_fee") else v
                      for k, v in fields.items()},
                   "tiers": [[_number(up_to), _number(price)] for up_to, price in tiers]}
                  for fields, tiers in rates],
    }


def _rate_fields(table: tariff_loader.TableSpec, spec: tariff_loader.RateSpec) -> dict:
    """A rate's columns with the format's defaults filled in (see docs/tariffs-format.md)."""
    voice, data = table.service == "voice", table.service == "data"
    return {
        "group": spec.group, "band": spec.band or "", "price": spec.price, "unit": spec.unit,
        "first_increment_s": (spec.first_increment_s or 60) if voice else None,
        "next_increment_s": (spec.next_increment_s or spec.first_increment_s or 60) if voice else None,
        "minimum_charge": spec.minimum_charge, "connection_fee": spec.connection_fee,
        "rounding_unit": (spec.rounding_unit or "kilobyte") if data else "",
        "rounding": (spec.rounding or "record") if data else "",
        "tier_model": spec.tier_model or "",
    }


def spec_content(parsed: tariff_loader.ParsedTable) -> dict:
    table = parsed.spec
    return _content(
        [(g.code, g.name) for g in table.groups],
        [(p.prefix, p.group, p.description) for p in parsed.prefixes],
        [(b.name, b.days, b.starts, b.ends, b.calendar or "") for b in table.bands],
        [(_rate_fields(table, r), [(t.up_to, t.unit_price) for t in r.tiers or []]) for r in table.rates],
    )


def version_content(version: RateTableVersion) -> dict:
    """The priced content of a saved version (what `content_hash` fingerprints)."""
    groups = {g.pk: g.code for g in version.groups.all()}
    rates = []
    for rate in version.rates.order_by("position", "pk"):
        fields = {"group": groups[rate.destination_group_id], "band": rate.time_band, "price": rate.price,
                  "unit": rate.unit, "first_increment_s": rate.first_increment_s,
                  "next_increment_s": rate.next_increment_s, "minimum_charge": rate.minimum_charge,
                  "connection_fee": rate.connection_fee, "rounding_unit": rate.rounding_unit,
                  "rounding": rate.rounding, "tier_model": rate.tier_model}
        rates.append((fields, list(rate.tiers.order_by("position", "pk").values_list("up_to", "unit_price"))))
    return _content(
        version.groups.values_list("code", "name"),
        [(p, groups[g], d) for p, g, d in
         version.prefixes.values_list("prefix", "destination_group_id", "description")],
        [(b.name, b.days, b.starts, b.ends, b.calendar.code if b.calendar_id else "")
         for b in version.bands.select_related("calendar").order_by("position", "pk")],
        rates,
    )


def refresh_content_hash(version: RateTableVersion) -> str:
    """Recompute a version's fingerprint after its rows were edited (the admin calls this)."""
    fingerprint = content_hash(version_content(version))
    if fingerprint != version.content_hash:
        version.content_hash = fingerprint
        version.save(update_fields=["content_hash"])
    return fingerprint


# --- writing ---------------------------------------------------------------------------------


def _today() -> date:
    return clock.today(current_tenant().timezone)


class _Writer:
    def __init__(self, *, source: str, actor: Actor, correction: str | None = None):
        self.source, self.actor, self.reason = source, actor, f"tariff load {source}"
        self.correction = correction
        self.corrected: list[tuple[str, int, date]] = []

    def fail(self, path: str, reason: str):
        return tariff_loader.invalid(self.source, [(path, reason)])

    def calendar(self, spec: tariff_loader.CalendarSpec) -> str:
        calendar = HolidayCalendar.objects.filter(code=spec.code).first()
        outcome = "unchanged"
        if calendar is None:
            calendar = HolidayCalendar.objects.create(code=spec.code, name=spec.name)
            audit.record(self.actor, "holidaycalendar.create", calendar, {"code": spec.code, "name": spec.name},
                         self.reason)
            outcome = "created"
        elif calendar.name != spec.name:
            audit.record(self.actor, "holidaycalendar.change", calendar, {"name": [calendar.name, spec.name]},
                         self.reason)
            calendar.name = spec.name
            calendar.save(update_fields=["name"])
            outcome = "updated"
        saved = {h.day: h for h in calendar.holidays.all()}
        wanted = {h.date: h.name for h in spec.holidays}
        added = [Holiday(calendar=calendar, day=day, name=name) for day, name in wanted.items() if day not in saved]
        renamed = [h for day, h in saved.items() if day in wanted and h.name != wanted[day]]
        removed = [h for day, h in saved.items() if day not in wanted]
        for holiday in renamed:
            holiday.name = wanted[holiday.day]
            holiday.save(update_fields=["name"])
        Holiday.objects.bulk_create(added)
        Holiday.objects.filter(pk__in=[h.pk for h in removed]).delete()
        if added or renamed or removed:
            audit.record(self.actor, "holidaycalendar.change", calendar, {
                "added": [f"{h.day} {h.name}" for h in added], "renamed": [f"{h.day} {h.name}" for h in renamed],
                "removed": [f"{h.day} {h.name}" for h in removed]}, self.reason)
            outcome = "updated" if outcome == "unchanged" else outcome
        return outcome

    def table(self, parsed: tariff_loader.ParsedTable, path: str, *, currency: str, day: date):
        """Upsert the table; add a version from `day` when its priced content changed.
        Returns (outcome, the new version or None)."""
        spec = parsed.spec
        table = RateTable.objects.filter(code=spec.code).first()
        outcome = "unchanged"
        if table is None:
            table = RateTable.objects.create(code=spec.code, name=spec.name, currency=currency,
                                             service_kind=spec.service)
            audit.record(self.actor, "ratetable.create", table, {"code": spec.code, "name": spec.name,
                         "currency": currency, "service_kind": spec.service}, self.reason)
            outcome = "created"
        else:
            if table.currency != currency:
                raise self.fail(f"{path}.currency", f"rate table {spec.code} is priced in {table.currency}: "
                                                    f"its currency does not change (not {currency})")
            if table.service_kind != spec.service:
                raise self.fail(f"{path}.service", f"rate table {spec.code} prices {table.service_kind}: "
                                                   f"its service does not change (not {spec.service})")
            if table.name != spec.name:
                audit.record(self.actor, "ratetable.change", table, {"name": [table.name, spec.name]}, self.reason)
                table.name = spec.name
                table.save(update_fields=["name"])
                outcome = "updated"
        content = spec_content(parsed)
        fingerprint = content_hash(content)
        if self.correction is not None and outcome != "created":
            return self._correct(table, parsed, fingerprint, path, day)
        latest = table.latest_version()
        if latest is not None and latest.content_hash == fingerprint:
            return outcome, None
        if latest is not None and day <= latest.effective_from:
            raise self.fail(path, f"would rewrite history: rate table {table.code} version {latest.number} is "
                                  f"already effective from {latest.effective_from}; give an effective_from "
                                  "after that date")
        if latest is not None and day < _today():
            raise self.fail(path, f"would reprice days already past: a new version of rate table {table.code} "
                                  f"may start today ({_today()}) or later, not {day}")
        number = (table.versions.aggregate(highest=Max("number"))["highest"] or 0) + 1
        version = RateTableVersion.objects.create(table=table, number=number, effective_from=day,
                                                  content_hash=fingerprint)
        self._save_rows(version, parsed)
        audit.record(self.actor, "ratetableversion.create", version, {
            "effective_from": day, "content_hash": fingerprint, "groups": len(spec.groups),
            "prefixes": len(parsed.prefixes), "bands": len(spec.bands), "rates": len(spec.rates)}, self.reason)
        return ("updated" if outcome == "unchanged" else outcome), version

    def _correct(self, table: RateTable, parsed: tariff_loader.ParsedTable, fingerprint: str, path: str, day: date):
        """Replace the content of the version in force on `day` (a correction, audited)."""
        version = table.versions.filter(effective_from__lte=day).order_by("-effective_from", "-number").first()
        if version is None:
            raise self.fail(path, f"no version of rate table {table.code} is in force on {day}: nothing to correct")
        if version.content_hash == fingerprint:
            return "unchanged", None
        before = version.content_hash
        for rows in (version.rates, version.bands, version.prefixes, version.groups):  # tiers go with rates
            rows.all().delete()
        self._save_rows(version, parsed)
        version.content_hash = fingerprint
        version.save(update_fields=["content_hash"])
        audit.record(self.actor, "ratetableversion.correct", version, {
            "content_hash": [before, fingerprint], "prefixes": len(parsed.prefixes), "rates": len(parsed.spec.rates)},
            f"{self.correction} ({self.reason})")
        self.corrected.append((table.code, version.number, version.effective_from))
        return "updated", None

    def _save_rows(self, version: RateTableVersion, parsed: tariff_loader.ParsedTable) -> None:
        spec = parsed.spec
        groups = {g.code: DestinationGroup(version=version, code=g.code, name=g.name) for g in spec.groups}
        DestinationGroup.objects.bulk_create(list(groups.values()))
        groups = {g.code: g for g in version.groups.all()}  # with primary keys on every database
        prefixes = [DestinationPrefix(version=version, prefix=p.prefix, destination_group=groups[p.group],
                                      description=p.description) for p in parsed.prefixes]
        DestinationPrefix.objects.bulk_create(prefixes, batch_size=BATCH)
        calendars = {c.code: c for c in HolidayCalendar.objects.all()}
        TimeBand.objects.bulk_create([
            TimeBand(version=version, position=i, name=b.name, days=b.days, starts=b.starts, ends=b.ends,
                     calendar=calendars[b.calendar] if b.calendar else None)
            for i, b in enumerate(spec.bands)])
        for position, rate_spec in enumerate(spec.rates):
            fields = _rate_fields(spec, rate_spec)
            rate = Rate.objects.create(
                version=version, position=position, destination_group=groups[fields.pop("group")],
                time_band=fields.pop("band"), **fields)
            RateTier.objects.bulk_create([RateTier(rate=rate, position=i, up_to=t.up_to, unit_price=t.unit_price)
                                          for i, t in enumerate(rate_spec.tiers or [])])


# --- use cases -------------------------------------------------------------------------------


def load_tariffs(document: dict | str, *, source: str, actor: Actor, effective_from: date | None = None,
                 base_dir: Path | None = None, correction: str | None = None) -> TariffReport:
    """Load a tariff document (YAML text or a parsed dict) into the tenant in scope, all or nothing.

    CSV prefix lists are read relative to `base_dir` (default: the directory of `source`). New
    versions are effective from `effective_from`, else the document's `effective_from`, else today.
    Loading the same document again changes nothing."""
    actor.require_write()
    if correction is not None:
        if actor.role != Role.ADMIN:
            raise Forbidden(f"{actor.label}: only an administrator may correct a rate table version in force")
        if not correction.strip():
            raise ValidationFailed("correction: say why the version in force is corrected", field="correction")
    known = set(HolidayCalendar.objects.values_list("code", flat=True))
    spec, tables = tariff_loader.parse_tariffs(document, source=source, base_dir=base_dir,
                                               known_calendars=frozenset(known))
    tenant = current_tenant()
    day = effective_from or spec.effective_from or _today()
    report = TariffReport(source)
    with transaction.atomic():
        writer = _Writer(source=source, actor=actor, correction=correction)
        for calendar in spec.calendars:
            report.calendars.add(writer.calendar(calendar))
        for index, parsed in enumerate(tables):
            currency = parsed.spec.currency or spec.currency or tenant.default_currency
            outcome, version = writer.table(parsed, f"tables[{index}]", currency=currency, day=day)
            report.tables.add(outcome)
            if version is not None:
                report.new_versions += 1
                report.prefixes += len(parsed.prefixes)
        report.corrected = writer.corrected
    return report
