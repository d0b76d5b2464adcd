"""The lean path of real-time charging: the four charging routes as a bare ASGI app on an asyncpg
connection pool, for the switch-facing hot path (`obol charging serve`).

Why it exists: through Django's request cycle and the ORM a charging operation costs ~25 ms of CPU
and a dozen queries; here each operation is BEGIN, the account's row lock, one statement reading the
rest, one statement of data-modifying CTEs, COMMIT: five short messages, every statement with values
prepared once per connection. Why asyncpg and not psycopg 3 (which Django uses): on this work it
costs about half the client CPU per transaction (docs/charging-performance.md, docs/architecture.md).
What it does not duplicate: the rules.
Grants, prices, the pocket order, the funds other sessions hold, low balance (`charging.grants`),
the place of a call in the tariff (`usage.rating.single`), the mapping of a subscriber
(`charging.service.map_all` / `_map`, mediation's rules), the update decision, answers, codes and
fingerprints (`charging.service`) are the functions the Django routes call. Only the reads and
writes are SQL here, on the same tables: a session opened here can be ended through the Django
routes and the other way round; the sweeper and the late terminate of an expired session (rare)
are delegated to `charging.service` itself.

Cached per process, and why it is safe: API keys (revocation is seen within KEY_TTL_S), the tenant's
time zone, rounding and charging settings (SETTINGS_TTL_S), what every subscriber maps to
(a snapshot per tenant, `service.SNAPSHOT_TTL_S`; the subscription's status and the identifier are
read in each transaction, so a suspension or a moved number counts at once; a new identifier, a
refusal or a request for another time is mapped one by one), the tariff catalog (shared with
`charging.service`, rebuilt every `service.CATALOG_TTL_S`).

PostgreSQL only (`OBOL_DATABASE_URL`); on SQLite the Django routes serve charging.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import hmac
import json
import os
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from decimal import Decimal

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "obol.settings")
import django

django.setup()

import asyncpg
from django.db import connections

from obol.api.models import ApiKey
from obol.balances.engine import AccountState
from obol.balances.models import LedgerEntry, Pocket, Source
from obol.charging import grants, service
from obol.charging.models import ChargingRequest, ChargingSession, LowBalanceEvent
from obol.core import clock, tenancy
from obol.core.actors import Actor
from obol.core.dburl import database_from_url
from obol.core.errors import ObolError
from obol.core.models import Tenant
from obol.core.roles import role_may_write
from obol.customers.models import BillingAccount
from obol.subscriptions.models import Status, Subscription, UsageIdentifier
from obol.usage.models import RatedRecord
from obol.usage.rating.single import Terms, terms

KEY_TTL_S = 30
SETTINGS_TTL_S = 10
POOL_SIZE = int(os.environ.get("OBOL_CHARGING_POOL", "8"))

T_ACCOUNT = BillingAccount._meta.db_table
T_POCKET = Pocket._meta.db_table
T_LEDGER = LedgerEntry._meta.db_table
T_SESSION = ChargingSession._meta.db_table
T_REQUEST = ChargingRequest._meta.db_table
T_RATED = RatedRecord._meta.db_table
T_SUBSCRIPTION = Subscription._meta.db_table
T_LOW = LowBalanceEvent._meta.db_table
T_IDENTIFIER = UsageIdentifier._meta.db_table


class Refused(Exception):
    """An HTTP error before any charging decision (auth, a malformed body)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


# --- per-process caches ----------------------------------------------------------------------------

class _Cache:
    def __init__(self, ttl: float):
        self.ttl, self.items = ttl, {}

    async def get(self, key, load):
        found = self.items.get(key)
        if found is not None and time.monotonic() - found[0] < self.ttl:
            return found[1]
        value = await _orm(load)
        self.items[key] = (time.monotonic(), value)
        return value


# The ORM (cache misses, the rare operations delegated to charging.service) runs in one thread of its
# own, never on the event loop; its database connection is closed with the pool.
_ORM = ThreadPoolExecutor(max_workers=1, thread_name_prefix="obol-orm")


async def _orm(function, *args, **kwargs):
    call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_ORM, call)


_keys, _tenants = _Cache(KEY_TTL_S), _Cache(SETTINGS_TTL_S)


class _Tenant:
    def __init__(self, tenant: Tenant):
        self.tenant = tenant
        with tenancy.tenant_context(tenant):
            self.settings = service.settings()


def _load_key(key: str):
    """(actor, tenant id) of a valid key, or None; the same check as obol.api.auth."""
    try:
        _, prefix, _ = key.split("_", 2)
    except ValueError:
        return None
    with tenancy.all_tenants():
        row = ApiKey.objects.filter(prefix=prefix, revoked_at__isnull=True).first()
    if row is None or not hmac.compare_digest(row.key_hash, hashlib.sha256(key.encode()).hexdigest()):
        return None
    return Actor.for_api_key(row), row.tenant_id


def _load_tenant(tenant_id: int) -> _Tenant:
    with tenancy.all_tenants():
        return _Tenant(Tenant.objects.get(pk=tenant_id))


def _in_tenant(tenant: _Tenant, function, *args, **kwargs):
    with tenancy.tenant_context(tenant.tenant):
        return function(*args, **kwargs)


# --- HTTP ------------------------------------------------------------------------------------------

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    try:
        status, answer = await _handle(scope, body)
    except Refused as refused:
        status, answer = refused.status, {"error": {"code": refused.code, "message": refused.message,
                                                    "field": refused.field}}
    except ObolError as error:
        status, answer = error.status, {"error": {"code": error.code, "message": error.message,
                                                  "field": error.field}}
    payload = json.dumps(answer).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


_pool: asyncpg.Pool | None = None


def _conninfo() -> str:
    url = os.environ.get("OBOL_DATABASE_URL", "")
    config = database_from_url(url) if url else {}
    if config.get("ENGINE") != "django.db.backends.postgresql":
        raise RuntimeError("the lean charging path needs PostgreSQL: set OBOL_DATABASE_URL=postgresql://...")
    return url


async def _json_codecs(conn) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _no_reset(conn) -> None:
    """A connection goes back to the pool as it came: `_connection` ends any transaction, and nothing
    here sets session state (asyncpg's default reset would cost a round trip per operation)."""


async def open_pool(dsn: str | None = None) -> None:
    """dsn: a postgresql:// URL (default: OBOL_DATABASE_URL)."""
    global _pool
    _pool = await asyncpg.create_pool(dsn or _conninfo(), min_size=2, max_size=POOL_SIZE, init=_json_codecs,
                                      reset=_no_reset)


async def close_pool() -> None:
    global _pool
    if _pool is not None:
        await _pool.close()
        _pool = None
    for cache in (_keys, _tenants):
        cache.items.clear()
    service._snapshots.clear()
    service._CATALOGS.clear()
    await _orm(connections.close_all)


async def _lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await open_pool()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await close_pool()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _handle(scope, body: bytes):
    if scope["method"] != "POST":
        raise Refused(405, "method_not_allowed", "the charging routes take POST")
    actor, tenant = await _authenticate(scope)
    try:
        data = json.loads(body or b"{}", parse_float=Decimal)
    except ValueError:
        raise Refused(400, "bad_request", "the body is not JSON") from None
    if not isinstance(data, dict):
        raise Refused(422, "invalid_request", "the body must be a JSON object")
    parts = scope["path"].rstrip("/").split("/")
    if parts[:4] != ["", "api", "v1", "charging"]:
        raise Refused(404, "not_found", "not found")
    rest = parts[4:]
    if rest == ["sessions"]:
        answer = await _start(actor, tenant, data)
        return (201 if answer.code == "ok" else answer.status), answer.as_json()
    if rest == ["events"]:
        answer = await _event(actor, tenant, data)
    elif len(rest) == 3 and rest[0] == "sessions" and rest[2] in ("update", "terminate"):
        answer = await _on_session(actor, tenant, rest[1], rest[2], data)
    else:
        raise Refused(404, "not_found", "not found")
    return answer.status, answer.as_json()


async def _authenticate(scope) -> tuple[Actor, _Tenant]:
    headers = dict(scope["headers"])
    key = headers.get(b"x-api-key", b"").decode()
    bearer = headers.get(b"authorization", b"").decode()
    if bearer.lower().startswith("bearer "):
        key = bearer[7:].strip()
    found = await _keys.get(key, lambda: _load_key(key)) if key else None
    if found is None:
        raise Refused(401, "unauthorized", "a valid API key is required (Authorization: Bearer ...)")
    actor, tenant_id = found
    if not role_may_write(actor.role):
        raise Refused(403, "forbidden", f"{actor.label} has the {actor.role} role and may not change anything")
    return actor, await _tenants.get(tenant_id, lambda: _load_tenant(tenant_id))


def _text(data: dict, name: str, default: str | None = None, limit: int = 200) -> str:
    value = data.get(name, default)
    if not isinstance(value, str) or (default is None and not value) or len(value) > limit:
        raise Refused(422, "invalid_request", f"{name}: a text of up to {limit} characters is required", name)
    return value


def _units(data: dict, name: str, least: int = 0, default: int | None = None) -> int:
    value = data.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise Refused(422, "invalid_request", f"{name}: a whole number of at least {least} is required", name)
    return value


def _moment(data: dict) -> datetime | None:
    value = data.get("at")
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise Refused(422, "invalid_request", "at: not an ISO 8601 date and time", "at") from None
    return moment  # without a zone: settled by _local


# --- what a request is priced by (cached lookups, the service's own rules) ---------------------------

async def _priced_by(tenant: _Tenant, subscriber: str, kind: str, service_kind: str, destination: str,
                     when: datetime) -> tuple[service._Mapped, Terms] | service.Answer:
    mapped = await _mapped(tenant, subscriber, kind, service_kind, when)
    if isinstance(mapped, service.Answer):
        return mapped
    table = (tenant.tenant.pk, mapped.rate_table)
    catalog = service.cached_catalog(*table) or await _orm(_in_tenant, tenant, service._catalog, mapped.rate_table)
    found = terms(catalog, mapped.rate_table, service_kind, destination, when, tenant.tenant.timezone)
    if isinstance(found, str):
        return await _orm(_in_tenant, tenant, service._terms, mapped, service_kind, destination, when)
    if found.tiered:
        return service.Answer("no_tariff", f"rate table {mapped.rate_table} prices {service_kind} by usage tiers, "
                                           "which only batch rating applies", details={"reason": "tiered_rate"})
    return mapped, found


async def _mapped(tenant: _Tenant, subscriber: str, kind: str, service_kind: str, when: datetime):
    """`service.mapped_now` without the ORM on the event loop: the snapshot is taken again (ORM
    thread) when stale, and a subscriber it cannot answer for is mapped by `service._map` there."""
    with tenancy.tenant_context(tenant.tenant):
        fresh = service.snapshot_fresh()
    if not fresh:
        await _orm(_in_tenant, tenant, service.refresh_snapshot)
    found = service.from_snapshot(tenant.tenant.pk, subscriber, kind, service_kind, when)
    if found is not None:
        return found
    return await _orm(_in_tenant, tenant, service._map, subscriber, kind, service_kind, when)


class _Sql:
    """A statement written with %(name)s (or %s) placeholders, numbered as PostgreSQL's $1, $2, ...
    once; `args(params)` puts a dict's (or a tuple's) values in that order."""
    __slots__ = ("source", "text", "names")

    def __init__(self, text: str):
        self.source = text
        names: list = []

        def number(match: re.Match) -> str:
            name = match.group(1) if match.group(1) is not None else len(names)
            if name not in names:
                names.append(name)
            return f"${names.index(name) + 1}"

        self.text, self.names = re.sub(r"%\((\w+)\)s|%s", number, text), names

    def args(self, params) -> list:
        return [params[name] for name in self.names]


# --- reads: the account's row lock, then everything else in one statement --------------------------
# (two statements: what a statement reads after waiting for a lock it took itself could be older
# than the lock; the second statement starts after the lock is held and sees the latest commits)

_LOCK = _Sql(f"SELECT 1 FROM {T_ACCOUNT} WHERE id = %(account)s AND tenant_id = %(tenant)s FOR UPDATE")
_LOCK_BY_SESSION = _Sql(f"SELECT 1 FROM {T_ACCOUNT} WHERE id = (SELECT account_id FROM {T_SESSION} "
                        "WHERE key = %(key)s AND tenant_id = %(tenant)s) FOR UPDATE")
_ACCOUNT_JSON = "json_build_array(id, mode, currency, credit_limit::text, status, number, bill_cycle_day)"
_REQUEST = _Sql(f"SELECT fingerprint, answer FROM {T_REQUEST} WHERE tenant_id = %s AND request_id = %s")
_POCKET_JSON = ("json_agg(json_build_array(id, unit, balance::text, priority, valid_from, valid_until, services, "
                "destination_groups, source, subscription_id))")
# one row: the request's earlier answer, the subscription's status, the usable pockets, other holds
_STATE = _Sql(
    f"SELECT (SELECT {_ACCOUNT_JSON} FROM {T_ACCOUNT} WHERE id = %(account)s), "
    f"(SELECT json_build_array(fingerprint, answer) FROM {T_REQUEST} "
    "        WHERE tenant_id = %(tenant)s AND request_id = %(request)s), "
    f"(SELECT status FROM {T_SUBSCRIPTION} WHERE id = %(subscription)s), "
    f"(SELECT {_POCKET_JSON} FROM {T_POCKET} WHERE account_id = %(account)s "
    "        AND (source = 'postpaid' OR balance <> 0) AND (valid_until IS NULL OR valid_until > %(at)s)), "
    f"(SELECT json_agg(holds) FROM {T_SESSION} WHERE account_id = %(account)s AND state = 'open' "
    "        AND expires_at > %(now)s AND key <> %(key)s), "
    # the snapshot's mapping still holds: the identifier is the subscription's at that moment
    f"EXISTS (SELECT 1 FROM {T_IDENTIFIER} WHERE tenant_id = %(tenant)s AND kind = %(identifier_kind)s "
    "        AND value = %(identifier_value)s AND subscription_id = %(subscription)s AND valid_from <= %(at)s "
    "        AND (valid_to IS NULL OR valid_to > %(at)s))")
# the same for an operation on a session, which also reads the session
_SESSION_STATE = _Sql(
    f"WITH s AS (SELECT id, account_id, subscription_id, service_kind, service, destination, started_at, terms, used, "
    f"                  state FROM {T_SESSION} WHERE key = %(key)s AND tenant_id = %(tenant)s) "
    f"SELECT (SELECT {_ACCOUNT_JSON} FROM {T_ACCOUNT} WHERE id = (SELECT account_id FROM s)), "
    "(SELECT json_build_array(id, account_id, subscription_id, service_kind, service, destination, "
    "               started_at, terms, used, state) FROM s), "
    f"(SELECT json_build_array(fingerprint, answer) FROM {T_REQUEST} "
    "        WHERE tenant_id = %(tenant)s AND request_id = %(request)s), "
    f"(SELECT status FROM {T_SUBSCRIPTION} WHERE id = (SELECT subscription_id FROM s)), "
    f"(SELECT {_POCKET_JSON} FROM {T_POCKET} WHERE account_id = (SELECT account_id FROM s) "
    "        AND (source = 'postpaid' OR balance <> 0) "
    "        AND (valid_until IS NULL OR valid_until > (SELECT started_at FROM s))), "
    f"(SELECT json_agg(holds) FROM {T_SESSION} WHERE account_id = (SELECT account_id FROM s) AND state = 'open' "
    "        AND expires_at > %(now)s AND key <> %(key)s)")


def _account(values: list) -> dict:
    account = dict(zip(("id", "mode", "currency", "credit_limit", "status", "number", "bill_cycle_day"), values,
                       strict=True))
    if account["credit_limit"] is not None:
        account["credit_limit"] = Decimal(account["credit_limit"])
    return account


def _moment_of(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _rows(pockets) -> list[grants.PocketRow]:
    return [grants.PocketRow(pid, unit, Decimal(balance), priority, _moment_of(since), _moment_of(until),
                             tuple(services or ()), tuple(groups or ()), source == Source.POSTPAID, subscription)
            for pid, unit, balance, priority, since, until, services, groups, source, subscription in pockets or ()]


def _funds(tenant: _Tenant, account: dict, rows: list[grants.PocketRow], holds, subscription_id: int,
           service_code: str) -> grants.Funds:
    state = AccountState(mode=account["mode"], currency=account["currency"], credit_limit=account["credit_limit"],
                         unpaid_invoices=Decimal(0),  # as balances.services.unpaid_invoices: no invoices yet
                         rounding=tenant.tenant.rounding, closed=account["status"] == BillingAccount.Status.CLOSED)
    return grants.funds(state, rows, grants.held(holds or []), subscription_id=subscription_id,
                        service=service_code, is_money_unit=service.is_money_unit)


def _replay(found, fingerprint: str, request_id: str) -> service.Answer | None:
    if found is None:
        return None
    if found[0] != fingerprint:
        raise Refused(409, "request_id_reused", f"request_id: {request_id!r} was already used for a different "
                                                "request", "request_id")
    return service.Answer.from_json(found[1])


class _Conn:
    """A pooled asyncpg connection; statements with values are prepared once per connection."""
    __slots__ = ("raw",)

    def __init__(self, raw: asyncpg.Connection):
        self.raw = raw

    async def row(self, sql: _Sql, params):
        return await self.raw.fetchrow(sql.text, *sql.args(params))

    async def run(self, sql: _Sql, params) -> None:
        await self.raw.execute(sql.text, *sql.args(params))

    async def rollback(self) -> None:
        if self.raw.is_in_transaction():
            await self.raw.execute("ROLLBACK")


async def _locked(conn: _Conn, lock: _Sql, state: _Sql, params: dict):
    """The state row, read after BEGIN and the account's row lock."""
    await conn.raw.execute("BEGIN")
    await conn.run(lock, params)
    return await conn.row(state, params)


async def _write(conn: _Conn, statement: _Sql, params) -> None:
    """One statement, then COMMIT."""
    await conn.run(statement, params)
    if conn.raw.is_in_transaction():
        await conn.raw.execute("COMMIT")


@asynccontextmanager
async def _connection():
    """A pooled connection; whatever happens, it goes back with no transaction open."""
    async with _pool.acquire() as raw:
        conn = _Conn(raw)
        try:
            yield conn
        finally:
            await conn.rollback()


# --- writes: one statement per operation (data-modifying CTEs), then COMMIT in the same round trip ---

_REQUEST_COLUMNS = "tenant_id, request_id, operation, fingerprint, session_id, code, answer, created_at"
_INSERT_REQUEST = _Sql(f"INSERT INTO {T_REQUEST} ({_REQUEST_COLUMNS}) VALUES (%(tenant)s, %(request)s, %(operation)s, "
                   "%(fingerprint)s, NULL, %(code)s, %(answer)s, %(now)s)")
_REQUEST_OF_SESSION = (f"INSERT INTO {T_REQUEST} ({_REQUEST_COLUMNS}) SELECT %(tenant)s, %(request)s, "
                       "%(operation)s, %(fingerprint)s, s.id, %(code)s, %(answer)s, %(now)s FROM s")
_NEW_SESSION = _Sql(
    f"WITH s AS (INSERT INTO {T_SESSION} (tenant_id, key, account_id, subscription_id, identifier, service_kind, "
    "service, destination, started_at, terms, used, granted, holds, expires_at, state, charged, included, shortfall, "
    "created_at) VALUES (%(tenant)s, %(key)s, %(account)s, %(subscription)s, %(identifier)s, %(kind)s, "
    "%(service)s, %(destination)s, %(at)s, %(terms)s, 0, %(granted)s, %(holds)s, %(until)s, 'open', 0, 0, 0, "
    f"%(now)s) RETURNING id) {_REQUEST_OF_SESSION}")
_REGRANT = _Sql(f"WITH s AS (UPDATE {T_SESSION} SET used = %(used)s, granted = %(granted)s, holds = %(holds)s, "
            f"expires_at = %(until)s WHERE id = %(session)s RETURNING id) {_REQUEST_OF_SESSION}")
_RATED_COLUMNS = ("record_key", "account_id", "subscription_id", "service", "rate_table", "cycle_start", "start",
                  "quantity", "destination", "destination_group", "time_band", "included", "charged", "billed",
                  "price_micros", "currency", "uncovered", "takes", "accrued_micros")
# the commit of usage: balances, ledger debits, the rated record (and the session's end, the answer)
_BOOK = (
    f"WITH p AS (UPDATE {T_POCKET} SET balance = v.balance FROM unnest(%(pockets)s::bigint[], "
    f"         %(balances)s::numeric[]) AS v(id, balance) WHERE {T_POCKET}.id = v.id RETURNING 1), "
    f"l AS (INSERT INTO {T_LEDGER} (tenant_id, pocket_id, at, kind, amount, balance_after, service, reason, "
    "       reference, actor_kind, actor_id, actor_label) SELECT %(tenant)s, v.pocket, %(at)s, 'debit', v.amount, "
    "       v.after, %(service)s, 'usage (real-time)', %(record_key)s, %(actor_kind)s, %(actor_id)s, "
    "       %(actor_label)s FROM unnest(%(ledger_pockets)s::bigint[], %(amounts)s::numeric[], "
    "       %(afters)s::numeric[]) WITH ORDINALITY AS v(pocket, amount, after, n) ORDER BY n RETURNING 1), "
    f"r AS (INSERT INTO {T_RATED} (tenant_id, {', '.join(_RATED_COLUMNS)}, rated_at) VALUES (%(tenant)s, "
    f"       {', '.join(f'%({c})s' for c in _RATED_COLUMNS)}, %(now)s) RETURNING 1)")
_TERMINATE = _Sql(
    f"{_BOOK}, s AS (UPDATE {T_SESSION} SET used = %(used)s, granted = 0, holds = '{{}}', state = 'terminated', "
    "charged = %(money)s, included = %(included)s, shortfall = %(shortfall)s, ended_at = %(now)s "
    f"WHERE id = %(session)s RETURNING id) {_REQUEST_OF_SESSION}")
_RELEASE = _Sql(  # a terminate with nothing used: no booking
    f"WITH s AS (UPDATE {T_SESSION} SET granted = 0, holds = '{{}}', state = 'terminated', ended_at = %(now)s "
    f"WHERE id = %(session)s RETURNING id) {_REQUEST_OF_SESSION}")
_EVENT = _Sql(f"{_BOOK} {_INSERT_REQUEST.source}")
_OPEN_ACCRUAL = _Sql(f"INSERT INTO {T_POCKET} (tenant_id, account_id, unit, display_unit, balance, granted, source, label, "
                 "priority, valid_from, services, destination_groups, grant_key, created_at) VALUES "
                 "(%s, %s, %s, %s, 0, 0, %s, 'Unbilled usage', 32767, %s, '[]', '[]', %s, %s) RETURNING id")
_LOW = _Sql(f"INSERT INTO {T_LOW} (tenant_id, account_id, balance, threshold, currency, session_id, created_at) "
        f"VALUES (%s, %s, %s, %s, %s, (SELECT id FROM {T_SESSION} WHERE key = %s), %s)")


def _answer_params(tenant: _Tenant, request_id: str, operation: str, fingerprint: str,
                   answer: service.Answer) -> dict:
    return {"tenant": tenant.tenant.pk, "request": request_id, "operation": operation, "fingerprint": fingerprint,
            "code": answer.code, "answer": answer.as_json(), "now": clock.now()}


async def _remember(conn, tenant: _Tenant, request_id: str, operation: str, fingerprint: str,
                    answer: service.Answer) -> service.Answer:
    """Keep a refusal as the request's answer (no session changes)."""
    await _write(conn, _INSERT_REQUEST, _answer_params(tenant, request_id, operation, fingerprint, answer))
    return answer


async def _answer_alone(tenant: _Tenant, request_id: str, operation: str, fingerprint: str,
                        answer: service.Answer) -> service.Answer:
    """Keep a refusal decided before any lock (unknown subscriber, no tariff) as the request's answer."""
    async with _connection() as conn:
        found = await conn.row(_REQUEST, (tenant.tenant.pk, request_id))
        replay = _replay(found, fingerprint, request_id)
        if replay is not None:
            return replay
        return await _remember(conn, tenant, request_id, operation, fingerprint, answer)


class _Queue:
    """Requests of one account wait here, in the process, rather than at the account's row lock:
    PostgreSQL then sees one of them per process at a time, and the lock is held for less (a hot
    account's requests no longer crowd the event loop between the read and the write)."""

    def __init__(self):
        self.locks: dict[int, asyncio.Lock] = {}
        self.accounts: dict[uuid.UUID, int] = {}  # session -> account, for the sessions opened here

    @asynccontextmanager
    async def turn(self, account_id: int | None):
        if account_id is None:
            yield
            return
        lock = self.locks.setdefault(account_id, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and not getattr(lock, "_waiters", None):
                self.locks.pop(account_id, None)

    def opened(self, key: uuid.UUID, account_id: int) -> None:
        if len(self.accounts) > 100_000:  # abandoned sessions: forget them all, the lock still holds
            self.accounts.clear()
        self.accounts[key] = account_id


_queue = _Queue()
_REMAP = object()  # the snapshot's mapping no longer holds: charging.service answers


async def _once(tenant: _Tenant, request_id: str, fingerprint: str, work):
    """`work()` in one transaction; a request id taken meanwhile by a concurrent request (another
    account: the same account waits for the lock) gets that request's answer, or the refusal."""
    try:
        return await work()
    except asyncpg.UniqueViolationError:
        async with _connection() as conn:
            found = await conn.row(_REQUEST, (tenant.tenant.pk, request_id))
        answer = _replay(found, fingerprint, request_id)
        if answer is None:
            raise
        return answer


async def _booking(conn, tenant: _Tenant, actor: Actor, account: dict, rows: list[grants.PocketRow],
                   priced: grants.Cost, *, key: str, subscription_id: int, service_code: str, found: Terms,
                   start: datetime, destination: str, session_key: uuid.UUID | None) -> dict:
    """The parameters of `_BOOK` (as `service._commit` books: debits, balances, the rated record);
    opens the unbilled-usage pocket and records a low-balance event first when needed."""
    now = clock.now()
    balance = {row.id: row.balance for row in rows}
    accrual = next((row.id for row in rows if row.is_accrual), None)
    pockets, amounts, afters = [], [], []
    for take in priced.takes:
        pocket_id = take.pocket_id
        if pocket_id == grants.ACCRUAL:
            if accrual is None:
                row = await conn.row(_OPEN_ACCRUAL, (
                    tenant.tenant.pk, account["id"], account["currency"], account["currency"], Source.POSTPAID, now,
                    f"accrual:{account['id']}", now))
                accrual = row[0]
                balance[accrual] = Decimal(0)
            pocket_id = accrual
        balance[pocket_id] = balance[pocket_id] - take.amount
        pockets.append(pocket_id)
        amounts.append(-take.amount)
        afters.append(balance[pocket_id])
    threshold = tenant.settings.low_balance_threshold
    after = grants.money_after(rows, account["currency"], priced.takes)
    if account["mode"] != BillingAccount.Mode.POSTPAID and grants.low_balance(
            grants.money_left(rows, account["currency"]), after, threshold):
        await conn.run(_LOW, (tenant.tenant.pk, account["id"], after, threshold, account["currency"],
                                  session_key, now))
    record = service.rated_record(account["id"], account["bill_cycle_day"], priced, rows, key=key,
                                  subscription_id=subscription_id, service=service_code, terms=found, start=start,
                                  destination=destination, tz=tenant.tenant.timezone)
    return {**record, "tenant": tenant.tenant.pk, "pockets": pockets, "balances": afters, "ledger_pockets": pockets,
            "amounts": amounts, "afters": afters, "at": start, "record_key": key, "actor_kind": actor.kind,
            "actor_id": actor.id, "actor_label": actor.label[:200], "now": now}


# --- the operations ----------------------------------------------------------------------------------

async def _opening(conn, tenant: _Tenant, operation: str, request_id: str, fingerprint: str, mapped, params: dict):
    """As `service._opening`, in one round trip: the lock and the read, then the checks. Returns the
    answer to give (a replay, a refusal kept), _REMAP, or (account, pocket rows, funds)."""
    account, earlier, status, pockets, holds, held = await _locked(conn, _LOCK, _STATE, params)
    account = _account(account)
    replay = _replay(earlier, fingerprint, request_id)
    if replay is not None:
        return replay
    if not held:  # the identifier moved or ended since the snapshot: map it afresh
        return _REMAP
    if status != Status.ACTIVE:
        return await _remember(conn, tenant, request_id, operation, fingerprint, service.status_refusal(status))
    if account["status"] == BillingAccount.Status.CLOSED:
        return await _remember(conn, tenant, request_id, operation, fingerprint,
                               service.Answer("account_closed", "the account is closed"))
    rows = _rows(pockets)
    return account, rows, _funds(tenant, account, rows, holds, mapped.subscription_id, mapped.service)


async def _usage_request(tenant: _Tenant, data: dict, operation: str, **units):
    """What a start and an event read first: the request's fields, its fingerprint (as the service
    takes it), the subscriber's mapping and the rate. A refusal found here is the answer (kept)."""
    request_id = _text(data, "request_id")
    subscriber = _text(data, "subscriber", limit=service.LIMITS["subscriber"])
    kind, service_kind = _text(data, "identifier_kind", "msisdn"), _text(data, "service")
    destination = _text(data, "destination", "", limit=service.LIMITS["destination"])
    at = _moment(data)
    fingerprint = service.fingerprint(operation, subscriber=subscriber, service=service_kind, **units,
                                      destination=destination, identifier_kind=kind, at=at)
    when = service.local_moment(at, tenant.tenant.timezone) or clock.now()
    priced_by = await _priced_by(tenant, subscriber, kind, service_kind, destination, when)
    if isinstance(priced_by, service.Answer):
        return await _once(tenant, request_id, fingerprint,
                           lambda: _answer_alone(tenant, request_id, operation, fingerprint, priced_by))
    return (request_id, subscriber, kind, service_kind, destination, at, when, fingerprint, *priced_by)


async def _start(actor: Actor, tenant: _Tenant, data: dict) -> service.Answer:
    requested = _units(data, "requested")
    request = await _usage_request(tenant, data, "start", requested=requested)
    if isinstance(request, service.Answer):
        return request
    request_id, subscriber, kind, service_kind, destination, at, when, fingerprint, mapped, found = request
    value, config = service.normalised(kind, subscriber), tenant.settings

    async def work():
        key, now = uuid.uuid4(), clock.now()
        params = {"tenant": tenant.tenant.pk, "account": mapped.account_id, "request": request_id,
                  "subscription": mapped.subscription_id, "at": when, "now": now, "key": key,
                  "identifier_kind": kind, "identifier_value": value}
        async with _connection() as conn:
            opened = await _opening(conn, tenant, "start", request_id, fingerprint, mapped, params)
            if not isinstance(opened, tuple):
                return opened
            account, _, funds = opened
            granted, held = grants.grant(found, 0, service.capped(requested, service_kind, config), funds, at=when,
                                         service=mapped.service, rule=tenant.tenant.rounding)
            if granted == 0 and requested > 0:
                return await _remember(conn, tenant, request_id, "start", fingerprint, service.Answer(
                    "no_credit", f"the funds of account {account['number']} do not cover one more unit",
                    currency=account["currency"]))
            until = now + timedelta(seconds=config.grant_validity_s)
            answer = service.Answer("ok", "", session_id=str(key), granted=granted, valid_until=until, used=0)
            _queue.opened(key, mapped.account_id)
            await _write(conn, _NEW_SESSION, {
                **params, **_answer_params(tenant, request_id, "start", fingerprint, answer),
                "identifier": subscriber, "kind": service_kind, "service": mapped.service,
                "destination": destination, "terms": service.terms_json(found), "granted": granted,
                "holds": held.holds(), "until": until})
            return answer

    async with _queue.turn(mapped.account_id):
        answer = await _once(tenant, request_id, fingerprint, work)
    if answer is _REMAP:  # the service maps the subscriber afresh and answers
        return await _orm(_in_tenant, tenant, service.start, actor, request_id=request_id, subscriber=subscriber,
                          service=service_kind, requested=requested, destination=destination,
                          identifier_kind=kind, at=at)
    return answer


async def _on_session(actor: Actor, tenant: _Tenant, session_id: str, operation: str, data: dict) -> service.Answer:
    request_id, used = _text(data, "request_id"), _units(data, "used")
    requested = _units(data, "requested") if operation == "update" else None
    params = {"used": used, "requested": requested} if operation == "update" else {"used": used}
    fingerprint = service.fingerprint(operation, session=session_id, **params)
    key = service.session_key(session_id)
    if key is None:  # as the service: a request id answered before wins over the unknown session
        async with _connection() as conn:
            found = await conn.row(_REQUEST, (tenant.tenant.pk, request_id))
        return _replay(found, fingerprint, request_id) or service.Answer(
            "unknown_session", f"no charging session {session_id}")

    async def work():
        now = clock.now()
        query = {"tenant": tenant.tenant.pk, "key": key, "request": request_id, "now": now}
        async with _connection() as conn:
            account, session, earlier, status, pockets, holds = await _locked(
                conn, _LOCK_BY_SESSION, _SESSION_STATE, query)
            replay = _replay(earlier, fingerprint, request_id)
            if replay is not None:
                return replay
            if session is None:  # answered, nothing kept: no side effects
                return service.Answer("unknown_session", f"no charging session {session_id}")
            pk, _, subscription_id, service_kind, service_code, destination, started, terms_data, so_far, state = \
                session
            if state != ChargingSession.State.OPEN:
                await conn.rollback()
                return None  # finished or expired: the service answers (and commits a late report)
            account, started = _account(account), datetime.fromisoformat(started)
            rows = _rows(pockets)
            funds = _funds(tenant, account, rows, holds, subscription_id, service_code)
            found, total, rule = Terms(**terms_data), so_far + used, tenant.tenant.rounding
            write = {"session": pk, "used": total}
            if operation == "terminate":
                priced = grants.cost(found, total, funds, at=started, service=service_code, rule=rule, strict=False)
                answer = service.Answer("ok", f"{total} units committed", session_id=str(key), used=total,
                                        charged=priced.price, currency=account["currency"],
                                        details={"included": priced.included, "shortfall": str(priced.shortfall)})
                if total > 0:
                    write.update(await _booking(conn, tenant, actor, account, rows, priced, key=f"charging:{key}",
                                                subscription_id=subscription_id, service_code=service_code,
                                                found=found, start=started, destination=destination,
                                                session_key=key))
                    write.update(money=priced.price, shortfall=priced.shortfall)  # `included`: the record's
                statement = _TERMINATE if total > 0 else _RELEASE
            else:
                code, message, granted, held = service.regrant(
                    found, funds, status, total, requested, kind=service_kind, service=service_code,
                    started=started, config=tenant.settings, rule=rule)
                until = now + timedelta(seconds=tenant.settings.grant_validity_s)
                answer = service.Answer(code, message, session_id=str(key), granted=granted,
                                        valid_until=until if granted else None, used=total)
                write.update(granted=granted, holds=held.holds(), until=until)
                statement = _REGRANT
            await _write(conn, statement, {
                **write, **_answer_params(tenant, request_id, operation, fingerprint, answer)})
            return answer

    async with _queue.turn(_queue.accounts.get(key)):
        answer = await _once(tenant, request_id, fingerprint, work)
    if operation == "terminate":
        _queue.accounts.pop(key, None)
    if answer is None:
        call = service.update if operation == "update" else service.terminate
        return await _orm(_in_tenant, tenant, call, actor, session_id, request_id=request_id, **params)
    return answer


async def _event(actor: Actor, tenant: _Tenant, data: dict) -> service.Answer:
    quantity = _units(data, "quantity", 1, 1)
    request = await _usage_request(tenant, data, "event", quantity=quantity)
    if isinstance(request, service.Answer):
        return request
    request_id, subscriber, kind, service_kind, destination, at, when, fingerprint, mapped, found = request
    value = service.normalised(kind, subscriber)

    async def work():
        params = {"tenant": tenant.tenant.pk, "account": mapped.account_id, "request": request_id,
                  "subscription": mapped.subscription_id, "at": when, "now": clock.now(), "key": uuid.uuid4(),
                  "identifier_kind": kind, "identifier_value": value}
        async with _connection() as conn:
            opened = await _opening(conn, tenant, "event", request_id, fingerprint, mapped, params)
            if not isinstance(opened, tuple):
                return opened
            account, rows, funds = opened
            priced = grants.cost(found, quantity, funds, at=when, service=mapped.service, rule=tenant.tenant.rounding)
            if priced.shortfall > 0:
                return await _remember(conn, tenant, request_id, "event", fingerprint, service.Answer(
                    "no_credit", f"the funds of account {account['number']} do not cover one more unit",
                    currency=account["currency"]))
            answer = service.Answer("ok", f"{quantity} {service_kind} charged", granted=quantity, used=quantity,
                                    charged=priced.price, currency=found.currency,
                                    details={"included": priced.included})
            booking = await _booking(conn, tenant, actor, account, rows, priced, key=service.event_key(request_id),
                                     subscription_id=mapped.subscription_id, service_code=mapped.service,
                                     found=found, start=when, destination=destination, session_key=None)
            await _write(conn, _EVENT, {
                **booking, **_answer_params(tenant, request_id, "event", fingerprint, answer)})
            return answer

    async with _queue.turn(mapped.account_id):
        answer = await _once(tenant, request_id, fingerprint, work)
    if answer is _REMAP:
        return await _orm(_in_tenant, tenant, service.charge_event, actor, request_id=request_id,
                          subscriber=subscriber, service=service_kind, quantity=quantity, destination=destination,
                          identifier_kind=kind, at=at)
    return answer
