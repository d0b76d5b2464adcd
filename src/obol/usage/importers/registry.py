"""The importers by name, and a guess of a file's format from its first line."""
from __future__ import annotations

import csv
import re
from pathlib import Path

from obol.core.errors import ValidationFailed
from obol.usage.importers.asterisk import NOT_CHARGED, AsteriskImporter
from obol.usage.importers.base import Importer
from obol.usage.importers.csv_profile import CsvProfileImporter
from obol.usage.importers.freeswitch import FreeSwitchImporter
from obol.usage.importers.jsonl import JsonLinesImporter

IMPORTERS: dict[str, Importer] = {i.name: i for i in (
    CsvProfileImporter(), JsonLinesImporter(), AsteriskImporter(), FreeSwitchImporter())}

_UUID = re.compile(r'^"?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"?$')
_DISPOSITIONS = {"ANSWERED", *NOT_CHARGED}


def get_importer(name: str) -> Importer:
    try:
        return IMPORTERS[name]
    except KeyError:
        raise ValidationFailed(f"format: {name!r} is not a usage format ({', '.join(IMPORTERS)})",
                               field="format", code="unknown_format") from None


def detect(path: Path) -> str | None:
    """The format name guessed from the first non-blank line, or None (a profile CSV cannot be
    recognised: its profile names it)."""
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        first = next((line.strip() for line in handle if line.strip()), "")
    if first.startswith("{"):
        return "jsonl"
    fields = next(csv.reader([first]), [])  # one line: the stdlib reader is enough
    if len(fields) == 15 and _UUID.match(fields[10].strip()):
        return "freeswitch"
    if 16 <= len(fields) <= 18 and fields[14].strip().upper() in _DISPOSITIONS:
        return "asterisk"
    return None
