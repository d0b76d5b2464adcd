"""The planner's statistics of tables a mass process grows (PostgreSQL's pg_class, SQLite's
sqlite_stat1): `refresh_statistics` brings them up to date, and `GrowingTables` does so again once
the rows added outnumber those they know."""
import pytest
from django.db import connection

from obol.core.bulk import GrowingTables, refresh_statistics
from obol.core.models import Counter
from obol.core.tenancy import tenant_context

pytestmark = pytest.mark.django_db


def rows_known() -> int:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'core_counter'")
            return int(cursor.fetchone()[0])
        cursor.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = 'core_counter'")
        return int(cursor.fetchone()[0].split()[0])


def rows_stored() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM core_counter")
        return cursor.fetchone()[0]


def add(tenant, first: int, count: int) -> None:
    with tenant_context(tenant):
        Counter.objects.bulk_create([Counter(tenant=tenant, series=f"s{n}") for n in range(first, first + count)])


def test_refresh_counts_the_rows_bulk_writes_added(tenant):
    add(tenant, 0, 300)
    refresh_statistics(Counter)
    assert rows_known() == rows_stored() >= 300


def test_a_growing_table_is_refreshed_once_it_has_doubled(tenant):
    add(tenant, 0, 200)
    refresh_statistics(Counter)
    before = rows_known()
    growing = GrowingTables(Counter)
    add(tenant, 200, before)
    growing.added(before)  # as many rows as it had: not yet doubled
    assert rows_known() == before
    add(tenant, 200 + before, 1)
    growing.added(1)
    assert rows_known() == rows_stored() == 2 * before + 1
