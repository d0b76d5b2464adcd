"""The tariff file format: YAML (plus CSV prefix lists) in, checked pydantic models out.

`parse_tariffs` reads a whole tariff document; a table's `prefixes:` may name a CSV file
(relative to the YAML file) with the columns prefix,destination_group[,description]. Nothing here
touches the database; `tariff_services.py` writes. Problems have the catalog's shape, naming the
file, the path (for CSV files the line) and the reason:

    samples/tariffs/tariffs.yaml: tables[0].rates[2].band: unknown time band 'night'
    samples/tariffs/prefixes.csv: line 1234: prefix: '49x1' is not digits

Prices are exact decimals with at most 6 decimals, so that they are whole micro-units
(1 EUR = 1_000_000) in the rating frames. The format is described in docs/tariffs-format.md.
"""
from __future__ import annotations

import csv
import io
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from obol.catalog.loader import (
    Amount,
    Code,
    CurrencyCode,
    Name,
    PositiveAmount,
    Problem,
    Spec,
    UnitCode,
    _document,
    _problems,
    invalid,
    join_path,
    tier_problems,
)
from obol.core.errors import ValidationFailed
from obol.core.units import get_unit

FORMAT_VERSION = 1
MICRO_DECIMALS = 6  # prices are whole micro-units of the currency
MAX_PROBLEMS = 50  # a broken 50,000-line CSV file is reported by its first problems
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAY = 86400


def _micro(value: Decimal) -> Decimal:
    if value != 0 and value.normalize().as_tuple().exponent < -MICRO_DECIMALS:
        raise ValueError(f"{value} has more than {MICRO_DECIMALS} decimals (prices are whole micro-units)")
    return value


def _digits(value) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not re.fullmatch(r"[0-9]{1,20}", text):
        raise ValueError(f"{value!r} is not digits (1 to 20 of 0-9, as destinations are numbered)")
    return text


def seconds_of_day(value, *, end: bool = False) -> int:
    """'08:00' or '08:00:30' -> seconds after midnight; '24:00' only as an end."""
    text = str(value)
    match = re.fullmatch(r"([0-9]{1,2}):([0-5][0-9])(?::([0-5][0-9]))?", text)
    if not match:
        raise ValueError(f"{value!r} is not a time of day (HH:MM or HH:MM:SS)")
    seconds = int(match[1]) * 3600 + int(match[2]) * 60 + int(match[3] or 0)
    if seconds > FULL_DAY or (seconds == FULL_DAY and not end):
        raise ValueError(f"{value!r} is not a time of day" + ("" if end else " (24:00 only ends a band)"))
    return seconds


def weekdays(value) -> str:
    """['mon', 'tue'] or 'mon-fri' or 'sat,sun' -> ISO weekday digits '12345'."""
    if value is None:
        return ""
    parts = value if isinstance(value, list) else str(value).split(",")
    days: set[int] = set()
    for part in parts:
        part = str(part).strip().lower()
        first, _, last = part.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise ValueError(f"{part!r} is not a day or a range of days ({', '.join(DAY_NAMES)}; e.g. mon-fri)")
        start, stop = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
        if stop < start:
            raise ValueError(f"{part!r}: a range of days runs from Monday to Sunday")
        days.update(range(start + 1, stop + 2))
    return "".join(str(day) for day in sorted(days))


Price = Annotated[Amount, AfterValidator(_micro)]
Digits = Annotated[str, BeforeValidator(_digits)]
Kind = Literal["voice", "sms", "mms", "data", "event"]


class HolidaySpec(Spec):
    date: date
    name: Name


class CalendarSpec(Spec):
    code: Code
    name: Name
    holidays: list[HolidaySpec] = []


class GroupSpec(Spec):
    code: Code
    name: Name


class PrefixSpec(Spec):
    prefix: Digits
    group: Code
    description: str = ""


class BandSpec(Spec):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: Code
    days: Annotated[str, BeforeValidator(weekdays)] = ""
    starts: Annotated[int, BeforeValidator(seconds_of_day)] = Field(0, alias="from")
    ends: Annotated[int, BeforeValidator(lambda v: seconds_of_day(v, end=True))] = Field(FULL_DAY, alias="to")
    calendar: Code | None = None


class RateTierSpec(Spec):
    up_to: PositiveAmount | None = None
    unit_price: Price


class RateSpec(Spec):
    group: Code
    band: Code | None = None  # None: every band of the version
    price: Price | None = None
    unit: UnitCode
    first_increment_s: Annotated[int, Field(gt=0)] | None = None
    next_increment_s: Annotated[int, Field(gt=0)] | None = None
    minimum_charge: Price = Decimal(0)
    connection_fee: Price = Decimal(0)
    rounding_unit: UnitCode | None = None
    rounding: Literal["record", "session"] | None = None
    tier_model: Literal["graduated", "volume"] | None = None
    tiers: list[RateTierSpec] | None = None


class TableSpec(Spec):
    code: Code
    name: Name
    currency: CurrencyCode | None = None  # default: the document's, else the tenant's
    service: Kind
    groups: list[GroupSpec]
    prefixes: str | list[PrefixSpec]
    bands: list[BandSpec] = []
    rates: list[RateSpec]


class TariffsSpec(Spec):
    tariffs: int
    effective_from: date | None = None
    currency: CurrencyCode | None = None
    calendars: list[CalendarSpec] = []
    tables: list[TableSpec] = []

    @field_validator("tariffs", mode="before")
    @classmethod
    def _known_version(cls, value):
        if type(value) is not int or value != FORMAT_VERSION:
            raise ValueError(f"unsupported format version {value!r}: this Obol reads 'tariffs: {FORMAT_VERSION}'")
        return value


# --- prefix lists in CSV ---------------------------------------------------------------------


def read_prefix_csv(text: str, *, source: str) -> tuple[list[PrefixSpec], list[int], list[Problem]]:
    """prefix,destination_group[,description] with a header line. Returns the good rows, their line
    numbers, and a problem (path `line N: column`) for every bad line."""
    rows = csv.reader(io.StringIO(text))
    header = [name.strip().lower() for name in next(rows, [])]
    if header[:2] != ["prefix", "destination_group"] or header[2:] not in ([], ["description"]):
        return [], [], [("line 1", "the header must be prefix,destination_group[,description], "
                                   f"not {','.join(header)!r}")]
    prefixes, numbers, problems = [], [], []
    for number, row in enumerate(rows, start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        where = f"line {number}"
        if len(row) not in (2, len(header)):
            problems.append((where, f"expected {len(header)} columns, found {len(row)}"))
            continue
        values = {"prefix": row[0].strip(), "group": row[1].strip(), "description": row[2] if len(row) > 2 else ""}
        try:
            prefixes.append(PrefixSpec.model_validate(values))
            numbers.append(number)
        except ValidationError as exc:
            for path, reason in _problems(exc):
                problems.append((f"{where}: {'destination_group' if path == 'group' else path}", reason))
    return prefixes, numbers, problems


def _capped(problems: list[Problem]) -> list[Problem]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS], ("", f"... and {len(problems) - MAX_PROBLEMS} more problems")]


# --- checks pydantic cannot express ----------------------------------------------------------


def _duplicates(items, key, what: str, prefix: str) -> list[Problem]:
    first: dict = {}
    problems = []
    for index, item in enumerate(items):
        value = key(item)
        if value in first:
            problems.append((f"{prefix}[{index}]", f"duplicate {what} {value!r} (also {prefix}[{first[value]}])"))
        first.setdefault(value, index)
    return problems


def _overlaps(windows: list[tuple[int, int, str]], what: str) -> list[str]:
    """Overlaps of (start, end, path) windows on one day."""
    reasons = []
    ordered = sorted(windows)
    for (start, end, path), (next_start, _, next_path) in zip(ordered, ordered[1:]):
        if next_start < end:
            reasons.append(f"overlaps {path} on {what}")
    return reasons


def _clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}" + (f":{seconds % 60:02d}" if seconds % 60 else "")


def band_problems(bands: list[BandSpec]) -> list[Problem]:
    """Weekly windows (no calendar) must cover the week exactly once; holiday windows of one calendar
    must not overlap. Holiday windows take precedence on the calendar's days."""
    problems = []
    for index, band in enumerate(bands):
        where = f"bands[{index}]"
        if band.ends <= band.starts:
            problems.append((f"{where}.to", f"{_clock(band.ends)} must be after from ({_clock(band.starts)})"))
        if band.calendar and band.days:
            problems.append((f"{where}.days", "a holiday band applies on its calendar's days, not on weekdays"))
        if not band.calendar and not band.days:
            problems.append((f"{where}.days", "missing: the weekdays of the band (e.g. mon-fri), or a calendar"))
    if problems or not bands:
        return problems
    for day in range(1, 8):
        windows = [(b.starts, b.ends, f"bands[{i}]") for i, b in enumerate(bands)
                   if not b.calendar and str(day) in b.days]
        name = DAY_NAMES[day - 1]
        problems += [(path, reason) for (_, _, path), reason in
                     zip(sorted(windows)[1:], _overlaps(windows, name))]
        covered = 0
        for start, end, _ in sorted(windows):
            if start > covered:
                break
            covered = max(covered, end)
        if covered < FULL_DAY:
            problems.append(("bands", f"no band covers {name} from {_clock(covered)}: "
                                      "the weekly bands must cover every day from 00:00 to 24:00"))
    for calendar in sorted({b.calendar for b in bands if b.calendar}):
        windows = [(b.starts, b.ends, f"bands[{i}]") for i, b in enumerate(bands) if b.calendar == calendar]
        problems += [(path, reason) for (_, _, path), reason in
                     zip(sorted(windows)[1:], _overlaps(windows, f"holidays of {calendar}"))]
    return problems


_UNITS_OF_KIND = {"voice": ("minute", "second"), "sms": ("sms",), "mms": ("mms",),
                  "data": ("kilobyte", "megabyte", "gigabyte"), "event": ("event", "play")}


def rate_problems(table: TableSpec, rate: RateSpec) -> list[Problem]:
    problems = []
    allowed = _UNITS_OF_KIND[table.service]
    if rate.unit not in allowed:
        problems.append(("unit", f"a {table.service} table prices per {' or '.join(allowed)}, not per {rate.unit}"))
    if table.service != "voice":
        for name in ("first_increment_s", "next_increment_s"):
            if getattr(rate, name) is not None:
                problems.append((name, f"only voice is charged in time increments, not {table.service}"))
    if table.service != "data":
        for name in ("rounding_unit", "rounding"):
            if getattr(rate, name) is not None:
                problems.append((name, f"only data volume is rounded, not {table.service}"))
    elif rate.rounding_unit is not None and get_unit(rate.rounding_unit).dimension != "data":
        problems.append(("rounding_unit", f"{rate.rounding_unit} is not a data volume (kilobyte, megabyte)"))
    if rate.tier_model:
        if rate.price is not None:
            problems.append(("price", f"a {rate.tier_model} rate is priced by its tiers, not by price"))
        if rate.tiers is None:
            problems.append(("tiers", f"a {rate.tier_model} rate needs tiers"))
        else:
            problems += [(join_path("tiers", p), r) for p, r in tier_problems(rate.tiers)]
    else:
        if rate.price is None:
            problems.append(("price", "missing (required unless the rate has a tier_model and tiers)"))
        if rate.tiers is not None:
            problems.append(("tiers", "tiers need a tier_model (graduated or volume)"))
    return problems


def table_problems(table: TableSpec, prefixes: list[PrefixSpec], *, prefix_source: str = "",
                   lines: list[int] | None = None, calendars: set[str]) -> list[Problem]:
    """Problems of one table, paths relative to the table; prefix problems of an inline list name
    `prefixes[i]`, of a CSV file the file and line (`prefix_source: line N`, `lines[i]` for prefixes[i])."""
    problems = _duplicates(table.groups, lambda g: g.code, "destination group", "groups")
    groups = {g.code for g in table.groups}
    problems += band_problems(table.bands)
    bands = {b.name for b in table.bands}
    for index, band in enumerate(table.bands):
        if band.calendar and band.calendar not in calendars:
            problems.append((f"bands[{index}].calendar", f"unknown holiday calendar {band.calendar!r}"))
    priced: set[tuple[str, str | None]] = set()
    for index, rate in enumerate(table.rates):
        where = f"rates[{index}]"
        problems += [(join_path(where, p), r) for p, r in rate_problems(table, rate)]
        if rate.group not in groups:
            problems.append((f"{where}.group", f"unknown destination group {rate.group!r}"))
        if rate.band is not None and rate.band not in bands:
            known = ", ".join(sorted(bands)) or "none: this table has no bands"
            problems.append((f"{where}.band", f"unknown time band {rate.band!r} ({known})"))
        if (rate.group, rate.band) in priced:
            problems.append((where, f"a second rate for group {rate.group!r} and band {rate.band or 'any'!r}"))
        priced.add((rate.group, rate.band))
    if not table.rates:
        problems.append(("rates", "needs at least one rate"))
    if not prefixes and not isinstance(table.prefixes, str) and len(table.groups) != 1:
        problems.append(("prefixes", "a table without prefixes (data, events) has exactly one destination group, "
                                     f"not {len(table.groups)}"))
    inline = not isinstance(table.prefixes, str)
    seen: dict[str, int] = {}
    used_groups: set[str] = set()
    for index, prefix in enumerate(prefixes):
        where = f"prefixes[{index}]" if inline else f"{prefix_source}: line {lines[index]}"
        if prefix.group not in groups:
            problems.append((f"{where}.group" if inline else f"{where}: destination_group",
                             f"unknown destination group {prefix.group!r}"))
        if prefix.prefix in seen:
            other = f"prefixes[{seen[prefix.prefix]}]" if inline else f"line {lines[seen[prefix.prefix]]}"
            problems.append((f"{where}.prefix" if inline else f"{where}: prefix",
                             f"duplicate prefix {prefix.prefix!r} (also {other})"))
        seen.setdefault(prefix.prefix, index)
        used_groups.add(prefix.group)
    if not prefixes:
        used_groups = groups
    for group in sorted(used_groups & groups):
        for band in sorted(bands) or [None]:
            if (group, band) not in priced and (group, None) not in priced:
                problems.append(("rates", f"no rate for group {group!r}" + (f" in band {band!r}" if band else "")
                                 + ": its destinations would have no tariff"))
    return problems


# --- entry point -----------------------------------------------------------------------------


class ParsedTable:
    """A checked table with its prefix list (read from the CSV file when it names one)."""

    def __init__(self, spec: TableSpec, prefixes: list[PrefixSpec]):
        self.spec, self.prefixes = spec, prefixes


Located = tuple[str, str, str]  # (file, path, reason)


def invalid_files(problems: list[Located]) -> ValidationFailed:
    """One error for problems in several files (the YAML document and its CSV prefix lists)."""
    problems = list(dict.fromkeys(problems))  # two tables reading one CSV file: each problem once
    capped = problems[:MAX_PROBLEMS]
    lines = [f"{source}: {path}: {reason}" if path else f"{source}: {reason}" for source, path, reason in capped]
    if len(problems) > MAX_PROBLEMS:
        lines.append(f"... and {len(problems) - MAX_PROBLEMS} more problems")
    return ValidationFailed("\n".join(lines), field=capped[0][1] or None, code="invalid_catalog")


def parse_tariffs(document: dict | str, *, source: str, base_dir: Path | None = None,
                  known_calendars: frozenset[str] = frozenset()) -> tuple[TariffsSpec, list[ParsedTable]]:
    """A tariff document as checked models (the spec and its tables with their prefix lists), or
    ValidationFailed naming every problem. CSV prefix files are read relative to `base_dir`
    (default: the directory of `source`) and named in problems as that path."""
    data = _document(document, source, f"a mapping that starts with 'tariffs: {FORMAT_VERSION}'")
    try:
        spec = TariffsSpec.model_validate(data)
    except ValidationError as exc:
        raise invalid(source, _capped(_problems(exc))) from None
    base = base_dir if base_dir is not None else Path(source).parent
    problems: list[Located] = []
    found = _duplicates(spec.calendars, lambda c: c.code, "calendar", "calendars")
    found += _duplicates(spec.tables, lambda t: t.code, "rate table", "tables")
    for index, calendar in enumerate(spec.calendars):
        found += [(join_path(f"calendars[{index}]", p), r)
                  for p, r in _duplicates(calendar.holidays, lambda h: h.date, "holiday", "holidays")]
    problems += [(source, p, r) for p, r in found]
    calendars = set(known_calendars) | {c.code for c in spec.calendars}
    tables = []
    for index, table in enumerate(spec.tables):
        where = f"tables[{index}]"
        prefix_source = ""
        if isinstance(table.prefixes, str):
            prefix_source = str(base / table.prefixes)
            try:
                text = (base / table.prefixes).read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as exc:
                problems.append((source, f"{where}.prefixes", f"cannot read {prefix_source}: {exc}"))
                continue
            prefixes, lines, bad_lines = read_prefix_csv(text, source=prefix_source)
            problems += [(prefix_source, path, reason) for path, reason in bad_lines]
        else:
            prefixes, lines = table.prefixes, None
        found = table_problems(table, prefixes, prefix_source=prefix_source, lines=lines, calendars=calendars)
        for path, reason in found:
            if prefix_source and path.startswith(prefix_source + ": "):
                problems.append((prefix_source, path.removeprefix(prefix_source + ": "), reason))
            else:
                problems.append((source, join_path(where, path), reason))
        tables.append(ParsedTable(table, prefixes))
    if problems:
        raise invalid_files(problems)
    return spec, tables
