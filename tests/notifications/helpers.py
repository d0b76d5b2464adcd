"""Shared steps of the alert tests."""
from __future__ import annotations

from obol.core.actors import Actor
from obol.notifications import services
from obol.notifications.models import Alert

IMPORTER = Actor.process("usage import")


def raise_unparseable(capture, reference="cdr-2026-03-01.csv", **extra):
    """Raise a file_unparseable alert and run what is queued for after the commit."""
    with capture(execute=True):
        return services.raise_alert(
            IMPORTER, kind=Alert.Kind.FILE_UNPARSEABLE, reference=reference,
            subject=f"{reference} cannot be parsed",
            message=f"The usage file {reference} could not be read: line 17 has 9 columns, 12 expected.",
            details={"line": 17, "columns": 9, "expected": 12}, **extra)
