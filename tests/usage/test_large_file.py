"""A 200,000-line CSV goes through the importer in one vectorised pass (no timing is asserted)."""
import polars as pl

from obol.usage.importers import get_importer


def test_200k_line_csv_counts(tmp_path, monkeypatch):
    n = 200_000
    frame = pl.DataFrame({"i": pl.int_range(0, n, eager=True)}).select(
        pl.format("R{}", pl.col("i")).alias("id"),
        pl.format("4915{}", (pl.col("i") % 1000 + 1_000_000)).alias("msisdn"),
        pl.when(pl.col("i") % 10 == 0).then(pl.lit("SMS")).otherwise(pl.lit("VOICE")).alias("kind"),
        pl.lit("4420794600").alias("dest"),
        (pl.datetime(2026, 3, 1) + pl.duration(seconds=pl.col("i"))).dt.strftime("%Y-%m-%d %H:%M:%S").alias("t"),
        (pl.col("i") % 100).cast(pl.Utf8).alias("secs"),
    )
    path = tmp_path / "big.csv"
    frame.write_csv(path)
    with open(path, "a") as handle:
        handle.write("broken,line\n")
    # guard: the per-row Python fallback (bisecting) must not run on a file with one bad line among 200k
    from obol.usage.importers import lines
    calls = []
    original = lines.parse_or_isolate
    monkeypatch.setattr(lines, "parse_or_isolate", lambda *a: calls.append(1) or original(*a))

    batch = get_importer("csv").read(path, profile={
        "columns": {"id": "id", "identifier": "msisdn", "service": "kind", "destination": "dest", "start": "t",
                    "duration": "secs"},
        "service_values": {"SMS": "sms", "VOICE": "voice"}})
    r = batch.records
    assert r.height == n and len(calls) == 2  # the header line and the body: no bisecting
    voice = [i for i in range(n) if i % 10]
    assert r.filter(service="voice").height == len(voice) == 180_000
    assert r["duration_s"].sum() == sum(i % 100 for i in voice)
    assert r["events"].sum() == 20_000
    assert r["record_key"].n_unique() == n
    assert batch.errors.select("line", "reason").rows() == [(n + 2, "malformed_line")]
