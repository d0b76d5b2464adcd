"""The vectorised engine equals the per-record reference on random tariffs, records, allowances
and prior usage; and invariants a billing clerk relies on. Pure: no database."""
from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obol.usage.rating import rate
from tests.usage.rating_reference import (
    allowances_frame,
    frames,
    prior_frame,
    rate_row,
    records_frame,
    reference_rate,
)

GROUPS = ["g1", "g2", "g3"]
KINDS = {"voice": "minute", "data": "megabyte", "sms": "sms"}
T0 = datetime(2025, 12, 25, tzinfo=UTC)
# small prices make exact halves of a micro-unit (the rounding rule matters), large ones the usual
PRICES = st.sampled_from([1, 3, 5, 15, 30, 45, 90, 512, 100_000]) | st.integers(0, 2_000_000)
BOUNDS = st.integers(1, 1_000) | st.integers(1, 400_000_000)
# whole rate units (k minutes, k MB, k SMS): with 60 s increments, whole-MB quantities and prior usage
# in whole units, a record's usage then ends exactly on a tier bound (the `<=` / `<` edges)
EXACT_BOUNDS = st.integers(1, 12).map(lambda k: k * 1_000_000)
MB = 1024 * 1024
SPAN_S = 100 * 86400
UNIT = {"voice": 60, "data": MB, "sms": 1}
QUANTITIES = {
    "voice": st.integers(0, 700) | st.integers(1, 10).map(lambda m: m * 60),
    "data": st.integers(0, 5_000_000) | st.integers(1, 4).map(lambda m: m * MB),
    "sms": st.integers(0, 700) | st.integers(1, 3),
}


@st.composite
def bands(draw):
    if draw(st.booleans()):
        return [], ["all"]
    split = draw(st.integers(1, 23)) * 3600 + draw(st.sampled_from([0, 1799]))
    windows = [("low", "12345", 0, split, None), ("high", "12345", split, 86400, None), ("weekend", "67", 0, 86400, None)]
    names = ["low", "high", "weekend"]
    if draw(st.booleans()):
        start = draw(st.integers(0, 20)) * 3600
        windows.append(("holiday", "", start, start + draw(st.integers(1, 4)) * 3600, "cal"))
        names.append("holiday")
    return windows, names


@st.composite
def tiers(draw, unit):
    model = draw(st.sampled_from([None, None, "graduated", "volume"]))
    if model is None:
        return None, []
    count = draw(st.integers(1, 3))
    exact = draw(st.booleans())
    raw = EXACT_BOUNDS if exact else BOUNDS.map(lambda b: b * (1_000_000 if unit != "megabyte" else 1))
    bounds = sorted(draw(st.lists(raw, min_size=count - 1, max_size=count - 1, unique=True)))
    prices = draw(st.lists(PRICES, min_size=count, max_size=count))
    return model, [(b, p) for b, p in zip(bounds + [None], prices, strict=True)]


@st.composite
def table(draw, code, kind, next_id):
    versions = []
    day = date(2025, 12, 20)
    for vid in range(draw(st.integers(1, 2))):
        # the first version mostly before every record; a second one from a day inside the span
        day = day + timedelta(days=draw(st.sampled_from([0, 0, 0, 10]) if vid == 0 else st.integers(1, 60)))
        windows, names = draw(bands())
        version = {"id": next_id * 10 + vid, "from": day, "bands": windows, "rates": []}
        if kind == "voice" or draw(st.booleans()):
            prefixes = draw(st.dictionaries(st.text("12345", min_size=1, max_size=3), st.sampled_from(GROUPS),
                                            min_size=3, max_size=12))
            version["prefixes"] = prefixes
            used = sorted(set(prefixes.values())) or GROUPS[:1]
        else:
            version["default_group"] = "g1"
            used = ["g1"]
        for group in used:
            for band in names:
                if draw(st.integers(0, 9)) == 0:
                    continue                   # a missing rate: no_rate
                model, steps = draw(tiers(KINDS[kind]))
                first = draw(st.sampled_from([None, 1, 30, 60]))
                version["rates"].append(rate_row(
                    next_id * 1000 + len(version["rates"]) + vid * 100, group, band,
                    None if model else draw(PRICES), KINDS[kind],
                    first, draw(st.sampled_from([None, 1, 6, 60])) if first else None,
                    draw(st.sampled_from([0, 0, 30_000])), draw(st.sampled_from([0, 0, 20_000])),
                    draw(st.sampled_from([None, "kilobyte", "megabyte"])) if kind == "data" else None,
                    model, steps))
        versions.append(version)
    holidays = [("cal", date(2026, 1, 1), "new year"), ("cal", date(2026, 2, 2), "x")]
    return frames(code, versions, kind=kind, holidays=holidays)


@st.composite
def scenario(draw):
    # voice always, and most records are calls (increments, allowances split mid-call, minimum, fee)
    kinds = ["voice", *draw(st.lists(st.sampled_from(["data", "sms"]), max_size=2, unique=True))]
    tariffs = {f"t-{kind}": draw(table(f"t-{kind}", kind, i + 1)) for i, kind in enumerate(kinds)}
    records = []
    for n in range(draw(st.integers(0, 60))):
        kind = draw(st.sampled_from(["voice"] * 3 + kinds))
        code = draw(st.sampled_from([f"t-{kind}"] * 15 + ["missing"]))
        records.append({
            "record_key": f"r{n:03d}", "subscription_id": draw(st.integers(1, 3)),
            "account_id": 0, "service": kind, "service_kind": kind, "rate_table": code,
            "start": T0 + timedelta(seconds=draw(st.integers(0, SPAN_S))),
            "quantity": draw(QUANTITIES[kind]),
            "destination": draw(st.text("12345", min_size=1, max_size=6) | st.just("")),
        })
    for r in records:
        r["account_id"] = 100 + r["subscription_id"]
    pockets = []
    # many pockets competing for one subscription's records: same and different priorities, expiry
    # dates, destination groups; small balances run out in the middle of a record
    for pid in range(draw(st.integers(0, 9))):
        start = draw(st.sampled_from([None, None, 0]) | st.integers(0, SPAN_S))
        pockets.append({
            "pocket_id": pid + 1, "subscription_id": draw(st.sampled_from([1, 1, 1, 2, 3])),
            "service": draw(st.sampled_from(["voice", "voice", *kinds])),
            "remaining": draw(st.integers(0, 300) | st.integers(0, 1500) if pid % 2 else st.integers(0, 3_000_000)),
            "priority": draw(st.sampled_from([1, 1, 100])),
            "valid_from": None if start is None else T0 + timedelta(seconds=start),
            "valid_until": draw(st.sampled_from([None, None]) | st.integers(0, SPAN_S).map(
                lambda s: T0 + timedelta(seconds=s))),
            "destination_groups": draw(st.lists(st.sampled_from(GROUPS), max_size=2, unique=True)),
        })
    prior = [{"subscription_id": s, "service": k, "rate_table": f"t-{k}",
              "quantity_before": draw(st.integers(0, 2000) | st.integers(0, 300_000_000)
                                      | st.integers(0, 12).map(lambda u, k=k: u * UNIT[k]))}
             for s in (1, 2) for k in kinds if draw(st.booleans())]
    return tariffs, records, pockets, prior


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenario(), st.sampled_from(["half_up", "half_even"]), st.sampled_from(["Europe/Berlin", "UTC"]))
def test_engine_equals_the_per_record_reference(case, rounding, tz):
    tariffs, records, pockets, prior = case
    args = (records_frame(records), tariffs, allowances_frame(pockets), prior_frame(prior))
    result = rate(*args, tz=tz, rounding=rounding)
    expected_rated, expected_takes, expected_unrated = reference_rate(*args, tz=tz, rounding=rounding)

    columns = ["destination_group", "time_band", "tariff_version_id", "included", "charged", "billed",
               "price_micros", "currency"]
    got = {row["record_key"]: {c: row[c] for c in columns} for row in result.rated.iter_rows(named=True)}
    assert got == expected_rated
    assert dict(result.unrated.select("record_key", "reason").iter_rows()) == expected_unrated
    assert sorted(result.takes.rows()) == sorted(expected_takes)
    # every record in exactly one of rated / unrated, inputs unchanged
    assert sorted(result.rated["record_key"].to_list() + result.unrated["record_key"].to_list()) == \
        sorted(r["record_key"] for r in records)
    # money and units conserved: included + charged = quantity, takes sum to included, never overdraw a pocket
    assert all(r["included"] + r["charged"] == r["quantity"] for r in result.rated.iter_rows(named=True))
    taken = {}
    for _key, pocket_id, quantity in result.takes.rows():
        taken[pocket_id] = taken.get(pocket_id, 0) + quantity
    assert all(taken.get(p["pocket_id"], 0) <= p["remaining"] for p in pockets)
    assert result.takes["quantity"].sum() == result.rated["included"].sum()
