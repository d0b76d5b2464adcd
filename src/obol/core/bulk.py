"""Set-based helpers for the mass processes: bounded IN lists and one-statement column updates.

The hot paths (batch rating, bill runs) touch hundreds of thousands of rows per run; these keep
that at a few statements instead of a query (or a model save) per row.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
import gc
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import polars as pl
from django.db import connection, transaction
from django.db.models import Field, ForeignObject, Lookup, Model, QuerySet

IN_BATCH = 10_000  # ids per IN list: far below SQLite's variable limit, small enough for the planner


def batches(values: Sequence, size: int = IN_BATCH) -> Iterator[Sequence]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


@Field.register_lookup
class AnyOf(Lookup):
    """`field__any_of=[...]`: the field is one of the values. PostgreSQL: `= ANY(%s)` with the values
    as one array parameter (a 500-value IN list is 500 placeholders the driver parses on every
    query); elsewhere an IN list."""

    lookup_name = "any_of"
    prepare_rhs = False

    def get_db_prep_lookup(self, value, connection):
        field = getattr(self.lhs, "output_field", None)
        prepared = [field.get_db_prep_value(v, connection, prepared=False) for v in value] if field else list(value)
        return "%s", [prepared]

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        (values,) = self.get_db_prep_lookup(self.rhs, connection)[1]
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s)", (*lhs_params, values)
        if not values:
            return "1 = 0", tuple(lhs_params)
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", (*lhs_params, *values)


ForeignObject.register_lookup(AnyOf)


def filter_in(queryset: QuerySet, field: str, values: Iterable, size: int = IN_BATCH) -> Iterator:
    """The rows of `queryset` whose `field` is in `values`, fetched with bounded lists (one array
    parameter each on PostgreSQL, `AnyOf`)."""
    ordered = sorted(set(values))
    for part in batches(ordered, size):
        yield from queryset.filter(**{f"{field}__any_of": list(part)})


def update_column(model: type[Model], field_name: str, values: Mapping[Any, Any]) -> None:
    """Set one column of many rows by primary key ({pk: value}): `update_columns` with one column.
    The caller holds the rows' locks; no signals, no `save()`: for bulk writes of caches such as
    pocket balances."""
    update_columns(model, [field_name], {key: (value,) for key, value in values.items()})


_AS_IS = {"CharField", "TextField", "SlugField", "EmailField", "IntegerField", "BigIntegerField", "SmallIntegerField",
          "PositiveIntegerField", "PositiveBigIntegerField", "PositiveSmallIntegerField", "AutoField", "BigAutoField",
          "BooleanField"}


@contextmanager
def collected_per_chunk() -> Iterator[Callable[[], Any]]:
    """For a mass process's loop over chunks. Python's cycle collector otherwise runs whenever 700
    more objects were made than freed, and its full runs walk every object alive (the framework's,
    the run's caches): a fifth of a bill run's generate, measured. Inside, what is alive is frozen
    (never walked), automatic collection is off, and the caller calls the given `collect` after
    each chunk, where the chunk's own cycles, if any, go. Restored on the way out (the freeze only
    where nothing was frozen before)."""
    enabled, frozen_before = gc.isenabled(), gc.get_freeze_count()
    gc.freeze()
    gc.disable()
    try:
        yield gc.collect
    finally:
        if not frozen_before:  # Python thaws all or nothing: what was frozen before (a server's own
            gc.unfreeze()      # freeze, an outer loop's) stays frozen, with what this call froze
        if enabled:
            gc.enable()


def refresh_statistics(*models: type[Model]) -> None:
    """The query planner's statistics of the models' tables, brought up to date (ANALYZE). A mass
    process calls it before it reads tables that bulk writes have just grown (the day's rated
    records, the drafts of the step before): until they are refreshed, the planner goes by the
    smaller table (PostgreSQL, until autovacuum catches up) or by no figures at all (SQLite keeps
    none unless asked), and reads every row of the tenant for each chunk through the tenant's index
    instead of the few it needs through the account's. PostgreSQL samples at most some 30,000 rows
    a table (tens of milliseconds); SQLite reads the whole table (about 25 ms per 100,000 rows; a
    sample misjudges the tenant's share), so it does so only for a table that has grown by a
    quarter since its statistics were taken."""
    if not models:
        return
    tables = [connection.ops.quote_name(model._meta.db_table) for model in models]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE " + ", ".join(tables))
        elif connection.vendor == "sqlite":
            for model, table in zip(models, tables, strict=True):
                known = _rows_known(model)
                if known:  # read again only once it has grown by a quarter (its largest rowid: no scan)
                    cursor.execute(f"SELECT max(rowid) FROM {table}")
                    if (cursor.fetchone()[0] or 0) < known * 1.25:
                        continue
                cursor.execute(f"ANALYZE {table}")


def _rows_known(model: type[Model]) -> int:
    """The rows of the model's table as the planner's statistics have them (0: none known)."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass",
                           [connection.ops.quote_name(table)])
        elif connection.vendor == "sqlite":
            cursor.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
            if not cursor.fetchone()[0]:
                return 0
            cursor.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = %s", [table])
        else:
            return 0
        found = cursor.fetchone()
    if not found or found[0] is None:
        return 0
    return max(int(float(str(found[0]).split()[0])), 0)


class GrowingTables:
    """For a mass process that reads tables while it grows them (a bill run reads the accounts'
    invoices while it writes new ones): `added(rows)` after each chunk refreshes the tables'
    statistics (`refresh_statistics`) whenever the rows added since the last refresh outnumber
    those the statistics know of the first table, that is when it has doubled. The first bill run
    of a tenant thus refreshes after 1, 2, 4, 8... chunks, and a run on a large table never."""

    def __init__(self, *models: type[Model]):
        self.models, self.since = models, 0
        self.known = _rows_known(models[0])

    def added(self, rows: int) -> None:
        self.since += rows
        if self.since > self.known:
            refresh_statistics(*self.models)
            self.since, self.known = 0, _rows_known(self.models[0])


def _converter(field) -> Callable[[Sequence], Sequence] | None:
    """How a column of `field`'s values goes to the database (a function of the column), or None
    where they go as they are (text and whole numbers, and the ids of foreign keys): exact decimals
    checked as the field checks them and, on SQLite, in their one text form; dates and moments as
    they are on PostgreSQL and as text on SQLite; anything else through the field's own conversion.
    The same values as the field's, without its per-value call chain; amounts, dates and a step's
    moment repeat in a bulk write, and are converted once per distinct value (`_distinct`)."""
    target = field.target_field if field.is_relation else field
    kind = target.get_internal_type()
    sqlite = connection.vendor == "sqlite"
    if kind in _AS_IS:
        return None

    def own(value):
        return None if value is None else field.get_db_prep_save(value, connection)

    if kind == "ExactDecimalField":
        return _exact(field, sqlite)
    if kind == "DateTimeField" and not sqlite:  # an aware datetime goes as it is (psycopg keeps its zone)
        return lambda column: [value if type(value) is datetime and value.tzinfo is not None else own(value)
                               for value in column]
    if kind == "DateTimeField":  # SQLite: text in UTC
        return _moments(own)
    if kind == "DateField" and sqlite:
        return _distinct(lambda value: value.isoformat() if type(value) is date else own(value))
    if kind == "DateField":
        return lambda column: [value if type(value) is date else own(value) for value in column]
    return lambda column: list(map(own, column))


def _distinct(one: Callable[[Any], Any]) -> Callable[[Sequence], list]:
    """A column converter that calls `one` once per distinct value where the column holds one type
    (equal values of one type convert alike: a date, an amount; `_exact` keeps each decimal's own
    scale). A column of mixed types (1.5 or True among Decimals, which Python calls equal to them)
    has each value converted, and refused, as itself."""
    def convert(column: Sequence) -> list:
        kinds = set(map(type, column))
        kinds.discard(type(None))
        if len(kinds) > 1:
            return [None if value is None else one(value) for value in column]
        known: dict = {None: None}
        for value in set(column).difference(known):
            known[value] = one(value)
        return list(map(known.__getitem__, column))
    return convert


def _moments(one: Callable[[Any], Any]) -> Callable[[Sequence], list]:
    """`_distinct` for date-times: a step stamps its rows with one moment. By value and fold: the
    two 2:30s of a night the clocks go back are equal to Python, and an hour apart."""
    def convert(column: Sequence) -> list:
        known: dict = {}

        def moment(value):
            if value is None:
                return None
            key = (type(value), value, getattr(value, "fold", 0))
            found = known.get(key, known)
            if found is known:
                found = known[key] = one(value)
            return found
        return list(map(moment, column))
    return convert


def _exact(field, sqlite: bool) -> Callable[[Sequence], Sequence]:
    """Exact decimals, each distinct amount checked once (equal decimals are equally storable and
    have one text form): SQLite gets the text form, PostgreSQL the decimals as they are (numeric
    keeps their scale: 15.00, not 15)."""
    from obol.core.fields import canonical_text, check_storable

    def one(value):
        if type(value) is not Decimal:
            return field.get_db_prep_save(value, connection)
        checked = check_storable(value, field.name)
        return canonical_text(checked) if sqlite else True  # True: the decimal itself

    distinct = _distinct(one)
    if sqlite:
        return distinct

    def convert(column: Sequence) -> Sequence:
        out = distinct(column)
        return column if all(found is True or found is None for found in out) else [
            value if found is True else found for value, found in zip(column, out, strict=True)]
    return convert


def _converted(fields: Sequence[Field], rows: Iterable[Sequence]) -> list[tuple]:
    """The rows with each value converted for its field (`_converter`), column by column: the
    columns that go as they are are not touched."""
    rows = rows if isinstance(rows, list) else list(rows)
    if not rows:
        return []
    columns = list(zip(*rows, strict=True))
    if len(columns) != len(fields):
        raise ValueError(f"rows of {len(columns)} values for {len(fields)} columns")
    converters = [_converter(field) for field in fields]
    return list(zip(*[column if to is None else to(column) for to, column in zip(converters, columns, strict=True)]))


def _prepared(model: type[Model], columns: Sequence[str], rows: Iterable[Sequence]):
    fields = [model._meta.get_field(column) for column in columns]
    return fields, _converted(fields, rows)


RETURNING_BATCH = 1000  # rows per INSERT ... RETURNING: one statement, well within both databases' parameter limits


def insert_returning(model: type[Model], columns: Sequence[str], rows: Sequence[Sequence]) -> list[int]:
    """Insert rows as `insert_values` does and give back their primary keys in the order of `rows`:
    for rows that others will refer to, without a model object each. PostgreSQL: the ids drawn from
    the table's sequence in one statement, the rows in by COPY. SQLite: multi-row INSERT ...
    RETURNING (ids in the order of the rows, as Django's bulk_create relies on)."""
    fields, prepared = _prepared(model, columns, rows)
    if not prepared:
        return []
    table, pk = model._meta.db_table, model._meta.pk.column
    names = ", ".join(f'"{field.column}"' for field in fields)
    one = f"({', '.join(['%s'] * len(fields))})"
    ids: list[int] = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # ids from the table's sequence in one statement, then COPY
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                           [f'"{table}"', pk, len(prepared)])
            ids = [row[0] for row in cursor.fetchall()]
            with cursor.cursor.copy(f'COPY "{table}" ("{pk}", {names}) FROM STDIN') as copy:
                for key, row in zip(ids, prepared, strict=True):
                    copy.write_row((key, *row))
            return ids
        for part in batches(prepared, RETURNING_BATCH):
            cursor.execute(f'INSERT INTO "{table}" ({names}) VALUES {", ".join([one] * len(part))} RETURNING "{pk}"',
                           [value for row in part for value in row])
            ids += [row[0] for row in cursor.fetchall()]
    return ids


def insert_models(objects: Sequence[Model]) -> None:
    """Insert unsaved model objects of one model (defaults already set by their constructor) with
    `insert_returning`, and give each its primary key: bulk_create's result without its per-value
    compilation. No signals, no validation, no tenant stamping: the caller sets every field."""
    if not objects:
        return
    model = type(objects[0])
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    ids = insert_returning(model, [field.attname for field in fields],
                           [[getattr(obj, field.attname) for field in fields] for obj in objects])
    for obj, pk in zip(objects, ids, strict=True):
        obj.pk = pk
        obj._state.adding, obj._state.db = False, connection.alias


def update_columns(model: type[Model], columns: Sequence[str], values: Mapping[Any, Sequence]) -> None:
    """Set several columns of many rows by primary key ({pk: (value, ...)} in `columns` order) in
    one statement on PostgreSQL (UPDATE ... FROM unnest) and one executemany on SQLite; each value
    through its field's conversion (`_converter`, as `insert_values`). The caller holds the rows' locks."""
    if not values:
        return
    fields = [model._meta.get_field(column) for column in columns]
    pks = list(values)
    prepared = _converted(fields, [values[key] for key in pks])
    table, pk = model._meta.db_table, model._meta.pk.column
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            arrays = [f"%s::{field.db_type(connection)}[]" for field in fields]
            sets = ", ".join(f'"{field.column}" = v.c{n}' for n, field in enumerate(fields))
            names = ", ".join(f"c{n}" for n in range(len(fields)))
            cursor.execute(f'UPDATE "{table}" SET {sets} FROM unnest(%s::bigint[], {", ".join(arrays)}) '
                           f'AS v(id, {names}) WHERE "{table}"."{pk}" = v.id',
                           [pks, *[[row[n] for row in prepared] for n in range(len(fields))]])
        else:
            sets = ", ".join(f'"{field.column}" = ?' for field in fields)
            connection.connection.executemany(f'UPDATE "{table}" SET {sets} WHERE "{pk}" = ?',
                                              [(*row, key) for row, key in zip(prepared, pks, strict=True)])


def insert_values(model: type[Model], columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Insert rows given as values in `columns` (attribute names: `invoice_id`, not `invoice`), each
    value through its field's own database conversion (exact decimals stay exact, JSON is JSON),
    without a model object per row: COPY on PostgreSQL, one executemany on SQLite. No ids come back,
    no signals, no validation: for the mass processes' bulk writes of rows nothing refers to yet."""
    fields, prepared = _prepared(model, columns, rows)
    if not prepared:
        return
    table = model._meta.db_table
    names = ", ".join(f'"{field.column}"' for field in fields)
    if connection.vendor == "postgresql":  # COPY: one stream, psycopg adapts each value as for a query
        with connection.cursor() as cursor, cursor.cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
            for row in prepared:
                copy.write_row(row)
        return
    connection.ensure_connection()
    connection.connection.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(fields))})',
                                      prepared)


def _sqlite_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Dates and times as Django writes them to SQLite (naive UTC 'YYYY-MM-DD HH:MM:SS[.ffffff]',
    'YYYY-MM-DD'), so that the ORM's text comparisons see the same format; booleans as 0/1."""
    changes = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Datetime):
            utc = pl.col(name).dt.convert_time_zone("UTC") if dtype.time_zone else pl.col(name)
            changes.append(pl.when(utc.dt.microsecond() == 0).then(utc.dt.strftime("%Y-%m-%d %H:%M:%S"))
                           .otherwise(utc.dt.strftime("%Y-%m-%d %H:%M:%S.%6f")).alias(name))
        elif dtype == pl.Date:
            changes.append(pl.col(name).dt.strftime("%Y-%m-%d"))
        elif dtype == pl.Boolean:
            changes.append(pl.col(name).cast(pl.Int8))
    return frame.with_columns(changes) if changes else frame


def insert_frame(model: type[Model], frame: pl.DataFrame) -> None:
    """Insert the rows of a Polars frame (columns named as the table's columns) without a Python
    object per row: COPY on PostgreSQL, one executemany on the raw SQLite connection. The caller
    gives database-ready values (ids, integers, text, dates and aware datetimes); no validation,
    no signals: for the mass processes' bulk writes."""
    _insert(model._meta.db_table, frame)


def _insert(table: str, frame: pl.DataFrame) -> None:
    if frame.is_empty():
        return
    columns = ", ".join(f'"{c}"' for c in frame.columns)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor, cursor.cursor.copy(
                f'COPY "{table}" ({columns}) FROM STDIN WITH (FORMAT csv)') as copy:
            for part in frame.iter_slices(100_000):
                copy.write(part.write_csv(include_header=False, datetime_format="%Y-%m-%dT%H:%M:%S%.f%z"))
        return
    connection.ensure_connection()
    placeholders = ", ".join("?" * frame.width)
    connection.connection.executemany(f'INSERT INTO "{table}" ({columns}) VALUES ({placeholders})',
                                      _sqlite_text(frame).iter_rows())


_SQL_TYPES = {pl.Int64: "bigint", pl.Utf8: "varchar(200)"}


@contextmanager
def temporary_table(name: str, frame: pl.DataFrame) -> Iterator[str]:
    """The frame's rows as a temporary table `name` (Int64, Utf8 and aware Datetime columns) for
    the block, inside one transaction: a set of keys or bounds to join with, whatever its size,
    instead of IN lists. Yields the name."""
    def sql_type(dtype) -> str:
        if isinstance(dtype, pl.Datetime):
            return "timestamp with time zone" if connection.vendor == "postgresql" else "datetime"
        return _SQL_TYPES[dtype]

    columns = ", ".join(f'"{c}" {sql_type(t)}' for c, t in frame.schema.items())
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE IF EXISTS "{name}"')
        cursor.execute(f'CREATE TEMPORARY TABLE "{name}" ({columns})')
        try:
            _insert(name, frame)
            yield name
        finally:
            cursor.execute(f'DROP TABLE "{name}"')


def query_frame(sql: str, params: Sequence, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """The rows of a raw query as a frame with `schema`, without the ORM's per-value converters:
    for the mass processes' reads of hundreds of thousands of rows. SQLite gives naive UTC
    datetimes (Django's converters): they get their zone here."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if connection.vendor == "postgresql":
        return pl.DataFrame(rows, orient="row", schema=schema)
    stamps = {name: dtype for name, dtype in schema.items() if isinstance(dtype, pl.Datetime) and dtype.time_zone}
    naive = {name: (pl.Datetime(dtype.time_unit) if name in stamps else dtype) for name, dtype in schema.items()}
    return pl.DataFrame(rows, orient="row", schema=naive).with_columns(
        pl.col(name).dt.replace_time_zone(dtype.time_zone) for name, dtype in stamps.items())
