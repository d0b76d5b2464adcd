"""JSON Lines: one JSON object per line, with the record field names or a mapping to other keys.

Default keys: id, service, identifier, destination, start (ISO 8601, with or without offset),
time_zone, duration_s, volume_bytes, events. Numbers may be JSON numbers or strings.
Profile options: source (default "jsonl"), keys {field: json key}, service (when absent),
identifier_kind, country_code, time_format (default "iso"), time_zone, ambiguous_time,
duration_unit (default s), volume_unit (default B).
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from obol.usage.importers.assemble import Spec, assemble, malformed
from obol.usage.importers.base import ImportBatch
from obol.usage.importers.lines import parse_or_isolate, read_lines
from obol.usage.importers.profiles import options

KEYS = {"id": "id", "service": "service", "identifier": "identifier", "destination": "destination",
        "start": "start", "time_zone": "time_zone", "duration": "duration_s", "volume": "volume_bytes",
        "events": "events"}

DEFAULTS = {
    "source": "jsonl", "keys": {}, "service": "", "identifier_kind": "msisdn", "country_code": None,
    "time_format": "iso", "time_zone": "UTC", "ambiguous_time": "earliest", "duration_unit": "s",
    "volume_unit": "B",
}


class JsonLinesImporter:
    name = "jsonl"

    def read(self, path: Path, *, profile: dict | None = None) -> ImportBatch:
        path = Path(path)
        opts = options(profile, DEFAULTS)
        keys = {**KEYS, **(opts["keys"] or {})}
        spec = Spec(source=opts["source"], file=path.name, identifier_kind=opts["identifier_kind"],
                    time_format=opts["time_format"], time_zone=opts["time_zone"],
                    ambiguous_time=opts["ambiguous_time"], duration_unit=opts["duration_unit"],
                    volume_unit=opts["volume_unit"],
                    country_code=str(opts["country_code"]) if opts["country_code"] is not None else None)
        struct = pl.Struct({key: pl.Utf8 for key in dict.fromkeys(keys.values())})

        lines = read_lines(path)
        objects = pl.col("raw").str.strip_chars()
        looks_like_object = objects.str.starts_with("{") & objects.str.ends_with("}")
        not_objects = lines.filter(~looks_like_object)
        candidates = lines.filter(looks_like_object)

        def parse(chunk: pl.DataFrame) -> pl.DataFrame:
            return chunk.select(pl.col("raw").str.json_decode(struct).alias("_j")).unnest("_j")

        parsed, refused = parse_or_isolate(candidates, parse)
        good = candidates.join(refused, on="line", how="anti") if refused.height else candidates
        rows = pl.concat([good, parsed], how="horizontal")
        service = pl.coalesce(pl.col(keys["service"]), pl.lit(opts["service"]))
        staged = rows.select(
            "line", "raw", pl.col(keys["id"]).alias("native_id"), service.alias("service"),
            *(pl.col(keys[f]).alias(f) for f in ("identifier", "destination", "start", "time_zone",
                                                 "duration", "volume", "events")))
        bad = pl.concat([
            not_objects.with_columns(pl.lit("not a JSON object").alias("message")),
            refused.with_columns(pl.lit("not valid JSON").alias("message")),
        ], how="vertical")
        return assemble(staged, spec, rejected=[malformed(bad)], path=path)
