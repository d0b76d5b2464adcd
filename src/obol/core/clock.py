"""The clock every service reads. Tests freeze it (`with frozen(...)`) to run lifecycle scenarios;
pure engines never read it: they get dates as arguments."""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

_frozen: ContextVar[datetime | None] = ContextVar("obol_frozen_clock", default=None)


def now() -> datetime:
    return _frozen.get() or datetime.now(timezone.utc)


def today(tz: str | ZoneInfo = "UTC") -> date:
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    return now().astimezone(zone).date()


@contextmanager
def frozen(at: datetime | date):
    if not isinstance(at, datetime):
        at = datetime.combine(at, time(12, 0), tzinfo=timezone.utc)
    elif at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    token = _frozen.set(at)
    try:
        yield at
    finally:
        _frozen.reset(token)
