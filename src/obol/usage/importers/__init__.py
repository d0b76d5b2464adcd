"""Usage importers: one module per file format behind one interface (`base.Importer`).

    batch = get_importer("asterisk").read(path, profile={"time_zone": "Europe/Berlin"})
    batch.records   # RECORD_SCHEMA frame, one row per chargeable record, with line and stable record_key
    batch.errors    # ERROR_SCHEMA frame, one row per bad line (reason, field, message, raw)
    batch.skipped   # {"no_answer": 3, ...} lines read but deliberately not charged
"""
from obol.usage.importers.base import ERROR_SCHEMA, RECORD_SCHEMA, ImportBatch, Importer
from obol.usage.importers.profiles import load_profile
from obol.usage.importers.registry import IMPORTERS, detect, get_importer

__all__ = ["ERROR_SCHEMA", "IMPORTERS", "RECORD_SCHEMA", "ImportBatch", "Importer", "detect", "get_importer",
           "load_profile"]
