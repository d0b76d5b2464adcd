"""Named locks: per transaction, for check-then-insert rules that no unique constraint can
express, and per mass process, so that one file or run is never processed twice at once."""
from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

from obol.core.errors import Conflict
from obol.core.tenancy import current_tenant


def serialise(*name: object) -> None:
    """Hold a lock named by (tenant, *name) until the current transaction ends, so concurrent
    transactions doing the same check queue one behind the other. PostgreSQL: an advisory
    transaction lock; SQLite has one writer at a time anyway, so nothing is needed there."""
    if connection.vendor != "postgresql":
        return
    key = ":".join(str(part) for part in (current_tenant().pk, *name))
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest, "big", signed=True)])


@contextmanager
def exclusive(*name: object) -> Iterator[None]:
    """Hold a lock named by (tenant, *name) for a whole mass process (across its transactions), or
    raise Conflict at once if another process holds it. PostgreSQL: a session advisory lock;
    SQLite (one machine): an exclusive lock on a file in the data directory."""
    key = ":".join(str(part) for part in (current_tenant().pk, *name))
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    busy = Conflict(f"{' '.join(str(p) for p in name)} is being processed by another run; try again when it ends",
                    code="busy")
    if connection.vendor == "postgresql":
        number = int.from_bytes(digest, "big", signed=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [number])
            if not cursor.fetchone()[0]:
                raise busy
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [number])
        return
    folder = Path(settings.DATA_DIR) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{digest.hex()}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
