"""The floor of real-time charging on this machine: the least work any HTTP credit-control server must
do, driven by the same load generator as `bench/charging.py` (issue 5). Not Obol's code; nothing is
asserted. docs/charging-performance.md quotes its figures.

    .venv/bin/python bench/charging_floor.py [--seconds 10] [--accounts 1000] [--modes http,db,db2,db3,db4,db5]
        [--obol-dsn postgresql://postgres@127.0.0.1:5432/obol_chbench]

Each mode is a bare ASGI function under uvicorn (2 workers, uvloop, httptools, no access log),
answering the same URLs and JSON as Obol's charging routes, with a bearer key compared in memory
and subscribers mapped by a dict:

- http: no database at all; parses the request JSON and answers a fixed grant. The ceiling of HTTP,
  uvicorn and the generator sharing the two cores.
- The database modes keep the least a charging server must keep, on asyncpg: the account's pocket
  row (balance, money held), the session row (inserted at start with its unique request id,
  rewritten at update and terminate, which check the last request id), and at terminate one
  ledger entry and one rated record; each table has its primary key and one index by account.
  No rules beyond one flat price per started minute, no allowances, no audit, no events.
  - db: one statement per operation, the grant worked out in SQL (rules in SQL: not allowed to
    Obol, whose rules live in Python once).
  - db2: the rules in Python, as Obol's lean path: BEGIN, one statement locking and reading, the
    writes as one statement, COMMIT.
  - db3: the rules in Python without a transaction held open: one read, then one statement that
    writes only if the account's sequence number is still the one read (optimistic).
  - db4: db3 with each account's state kept in the process after a write, so that an operation is
    one statement while nobody else writes the account (a failed check reads again).
- db5: the lean path's shape on Obol's own tables with Obol's own write statements (the session,
  the answer rows, the ledger entry, the pocket, the rated record; every index and constraint), but
  no rules: a fixed grant, a flat price, reads of only what the writes need. It needs a database
  kept by `bench/charging.py --keep` (`--obol-dsn`). What Obol's storage alone costs.

The load is bench/charging_load.py's: cycles of start (asks 60 s), update (used 60, asks 60),
terminate (used 30); 1, 8 and 64 clients over distinct accounts, then 64 clients on one account.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

DATABASE = "obol_chfloor"
SERVER_URL = "postgresql://postgres@127.0.0.1:5432"
KEY = "floor-key"
MSISDN_BASE = 491_600_000_000
PRICE_PER_MINUTE = "0.10"

SCHEMA = """
CREATE TABLE pocket (account bigint PRIMARY KEY, balance numeric(20, 6) NOT NULL, held numeric(20, 6) NOT NULL,
    seq bigint NOT NULL DEFAULT 0)
    WITH (fillfactor = 70);
CREATE TABLE session (id uuid PRIMARY KEY, account bigint NOT NULL, start_request text NOT NULL UNIQUE,
    last_request text NOT NULL, granted integer NOT NULL, used integer NOT NULL DEFAULT 0,
    state smallint NOT NULL DEFAULT 0) WITH (fillfactor = 70);
CREATE INDEX session_account ON session (account);
CREATE TABLE ledger (id bigserial PRIMARY KEY, account bigint NOT NULL, amount numeric(20, 6) NOT NULL,
    reference text NOT NULL);
CREATE INDEX ledger_account ON ledger (account);
CREATE TABLE rated (id bigserial PRIMARY KEY, account bigint NOT NULL, quantity integer NOT NULL,
    amount numeric(20, 6) NOT NULL, reference text NOT NULL);
CREATE INDEX rated_account ON rated (account);
"""

# $1 account, $2 session id, $3 request id, $4 requested seconds, $5 price per started minute
START = """
WITH p AS (SELECT account, balance - held AS free FROM pocket WHERE account = $1 FOR UPDATE),
g AS (SELECT LEAST($4::int, (floor(free / $5) * 60)::int) AS granted FROM p),
s AS (INSERT INTO session (id, account, start_request, last_request, granted)
      SELECT $2, $1, $3, $3, granted FROM g WHERE granted > 0 ON CONFLICT (start_request) DO NOTHING
      RETURNING granted),
u AS (UPDATE pocket SET held = held + ceil(s.granted / 60.0) * $5 FROM s WHERE pocket.account = $1)
SELECT granted FROM s
"""
# $1 session id, $2 request id, $3 used seconds, $4 requested seconds, $5 price
UPDATE = """
WITH p AS (SELECT account, balance - held AS free FROM pocket
           WHERE account = (SELECT account FROM session WHERE id = $1) FOR UPDATE),
o AS (SELECT granted, used FROM session WHERE id = $1 AND state = 0 AND last_request <> $2),
g AS (SELECT LEAST($4::int, (floor((free + ceil(o.granted / 60.0) * $5) / $5) * 60)::int) AS granted,
             ceil(o.granted / 60.0) * $5 AS old_hold FROM p, o),
s AS (UPDATE session SET used = session.used + $3, granted = g.granted, last_request = $2 FROM g
      WHERE id = $1 RETURNING g.granted, g.old_hold),
u AS (UPDATE pocket SET held = held - s.old_hold + ceil(s.granted / 60.0) * $5 FROM s, p
      WHERE pocket.account = p.account)
SELECT granted FROM s
"""
# $1 session id, $2 request id, $3 used seconds, $4 price
TERMINATE = """
WITH p AS (SELECT account FROM pocket WHERE account = (SELECT account FROM session WHERE id = $1) FOR UPDATE),
o AS (SELECT used + $3 AS used, ceil(granted / 60.0) * $4 AS hold, ceil((used + $3) / 60.0) * $4 AS cost
      FROM session WHERE id = $1 AND state = 0 AND last_request <> $2),
s AS (UPDATE session SET used = o.used, state = 1, last_request = $2 FROM o WHERE id = $1 RETURNING o.cost),
u AS (UPDATE pocket SET balance = balance - o.cost, held = held - o.hold FROM o, p WHERE pocket.account = p.account),
l AS (INSERT INTO ledger (account, amount, reference) SELECT p.account, -o.cost, $1::text FROM p, o),
r AS (INSERT INTO rated (account, quantity, amount, reference) SELECT p.account, o.used, o.cost, $1::text FROM p, o)
SELECT cost FROM s
"""

# db2: the rules in Python. The same writes, but the grant and the cost are worked out by the server
# between a read under the lock and the writes: BEGIN, one statement locking and reading the pocket
# and the session, the writes as one statement, COMMIT.
LOCK_ACCOUNT = "SELECT balance, held FROM pocket WHERE account = $1 FOR UPDATE"
LOCK_SESSION = """
SELECT p.account, p.balance, p.held, s.granted, s.used, s.state, s.last_request
FROM session s JOIN pocket p ON p.account = s.account WHERE s.id = $1 FOR UPDATE
"""
WRITE_START = """
WITH s AS (INSERT INTO session (id, account, start_request, last_request, granted) VALUES ($2, $1, $3, $3, $4))
UPDATE pocket SET held = held + $5 WHERE account = $1
"""
WRITE_UPDATE = """
WITH s AS (UPDATE session SET used = used + $3, granted = $4, last_request = $5 WHERE id = $2)
UPDATE pocket SET held = held + $6 WHERE account = $1
"""
WRITE_TERMINATE = """
WITH s AS (UPDATE session SET used = $3, state = 1, last_request = $4 WHERE id = $2),
l AS (INSERT INTO ledger (account, amount, reference) VALUES ($1, -$5::numeric, $2::text)),
r AS (INSERT INTO rated (account, quantity, amount, reference) VALUES ($1, $3, $5, $2::text))
UPDATE pocket SET balance = balance - $5, held = held - $6 WHERE account = $1
"""


def _minutes(seconds: int):
    return -(-seconds // 60)


async def _db2_op(kind: str, session: str | None, body: dict) -> tuple[int, dict]:
    from decimal import Decimal
    price = Decimal(PRICE_PER_MINUTE)
    async with _pool.acquire() as conn:
        async with conn.transaction():
            if kind == "start":
                account = int(body["subscriber"]) - MSISDN_BASE
                balance, held = await conn.fetchrow(LOCK_ACCOUNT, account)
                granted = min(int(body["requested"]), int((balance - held) // price) * 60)
                if granted <= 0:
                    return 402, {"code": "no_credit"}
                sid = uuid.uuid4()
                await conn.execute(WRITE_START, account, sid, body["request_id"], granted, _minutes(granted) * price)
                return 201, {"code": "ok", "session_id": str(sid), "granted": granted}
            sid = uuid.UUID(session)
            row = await conn.fetchrow(LOCK_SESSION, sid)
            if row is None or row["state"] != 0:
                return 404, {"code": "unknown_session"}
            account, balance, held, granted, used, _, last = row
            old_hold = _minutes(granted) * price
            if last == body["request_id"]:
                return 200, {"code": "ok", "granted": granted}
            if kind == "update":
                new = min(int(body["requested"]), int((balance - held + old_hold) // price) * 60)
                await conn.execute(WRITE_UPDATE, account, sid, int(body["used"]), new, body["request_id"],
                                   _minutes(new) * price - old_hold)
                return 200, {"code": "ok", "granted": new}
            total = used + int(body["used"])
            cost = _minutes(total) * price
            await conn.execute(WRITE_TERMINATE, account, sid, total, body["request_id"], cost, old_hold)
            return 200, {"code": "ok", "charged": str(cost.quantize(Decimal("0.01")))}

# db3: the rules in Python without a transaction held open: one read (no lock), then one statement
# that writes only if the account's sequence number is still the one read (optimistic; a conflict is
# read and decided again).
READ_ACCOUNT = "SELECT balance, held, seq FROM pocket WHERE account = $1"
READ_SESSION = """
SELECT p.account, p.balance, p.held, p.seq, s.granted, s.used, s.state, s.last_request
FROM session s JOIN pocket p ON p.account = s.account WHERE s.id = $1
"""
GATE = "WITH c AS (UPDATE pocket SET seq = seq + 1, held = held + $6 WHERE account = $1 AND seq = $7 RETURNING 1)"
GATED_START = GATE + """,
s AS (INSERT INTO session (id, account, start_request, last_request, granted) SELECT $2, $1, $3, $3, $4 FROM c)
SELECT count(*) FROM c WHERE $5::int IS NULL OR true
"""
GATED_UPDATE = GATE + """,
s AS (UPDATE session SET used = used + $3, granted = $4, last_request = $5 FROM c WHERE id = $2)
SELECT count(*) FROM c
"""
GATED_TERMINATE = """
WITH c AS (UPDATE pocket SET seq = seq + 1, held = held - $6, balance = balance - $5 WHERE account = $1 AND seq = $7
           RETURNING 1),
s AS (UPDATE session SET used = $3, state = 1, last_request = $4 FROM c WHERE id = $2),
l AS (INSERT INTO ledger (account, amount, reference) SELECT $1, -$5::numeric, $2::text FROM c),
r AS (INSERT INTO rated (account, quantity, amount, reference) SELECT $1, $3, $5, $2::text FROM c)
SELECT count(*) FROM c
"""


async def _db3_op(kind: str, session: str | None, body: dict) -> tuple[int, dict]:
    from decimal import Decimal
    price = Decimal(PRICE_PER_MINUTE)
    async with _pool.acquire() as conn:
        while True:  # until the write finds the sequence number it read
            if kind == "start":
                account = int(body["subscriber"]) - MSISDN_BASE
                balance, held, seq = await conn.fetchrow(READ_ACCOUNT, account)
                granted = min(int(body["requested"]), int((balance - held) // price) * 60)
                if granted <= 0:
                    return 402, {"code": "no_credit"}
                sid = uuid.uuid4()
                if await conn.fetchval(GATED_START, account, sid, body["request_id"], granted, None,
                                       _minutes(granted) * price, seq):
                    return 201, {"code": "ok", "session_id": str(sid), "granted": granted}
                continue
            sid = uuid.UUID(session)
            row = await conn.fetchrow(READ_SESSION, sid)
            if row is None or row["state"] != 0:
                return 404, {"code": "unknown_session"}
            account, balance, held, seq, granted, used, _, last = row
            old_hold = _minutes(granted) * price
            if last == body["request_id"]:
                return 200, {"code": "ok", "granted": granted}
            if kind == "update":
                new = min(int(body["requested"]), int((balance - held + old_hold) // price) * 60)
                if await conn.fetchval(GATED_UPDATE, account, sid, int(body["used"]), new, body["request_id"],
                                       _minutes(new) * price - old_hold, seq):
                    return 200, {"code": "ok", "granted": new}
                continue
            total = used + int(body["used"])
            cost = _minutes(total) * price
            if await conn.fetchval(GATED_TERMINATE, account, sid, total, body["request_id"], cost, old_hold, seq):
                return 200, {"code": "ok", "charged": str(cost.quantize(Decimal("0.01")))}

# db4: db3 with the account's state kept in the process after each write (the write returns it), so
# an operation is one statement when nobody else wrote meanwhile; a failed gate reads again.
GATED_START_4 = GATE + """,
s AS (INSERT INTO session (id, account, start_request, last_request, granted) SELECT $2, $1, $3, $3, $4 FROM c)
SELECT balance, held, seq FROM pocket, c WHERE account = $1 AND $5::int IS NULL
"""
_state: dict = {}  # account -> [balance, held, seq] after this process's last write
_sessions: dict = {}  # session -> [account, granted, used, last request]


async def _db4_op(kind: str, session: str | None, body: dict) -> tuple[int, dict]:
    from decimal import Decimal
    price = Decimal(PRICE_PER_MINUTE)
    async with _pool.acquire() as conn:
        if kind == "start":
            account = int(body["subscriber"]) - MSISDN_BASE
            while True:
                state = _state.get(account)
                if state is None:
                    state = _state[account] = list(await conn.fetchrow(READ_ACCOUNT, account))
                balance, held, seq = state
                granted = min(int(body["requested"]), int((balance - held) // price) * 60)
                if granted <= 0:
                    return 402, {"code": "no_credit"}
                sid = uuid.uuid4()
                hold = _minutes(granted) * price
                if await conn.fetchval(GATED_START, account, sid, body["request_id"], granted, None, hold, seq):
                    _state[account] = [balance, held + hold, seq + 1]
                    _sessions[sid] = [account, granted, 0, body["request_id"]]
                    return 201, {"code": "ok", "session_id": str(sid), "granted": granted}
                _state.pop(account, None)
        sid = uuid.UUID(session)
        while True:
            known = _sessions.get(sid)
            if known is None or known[0] not in _state:
                row = await conn.fetchrow(READ_SESSION, sid)
                if row is None or row["state"] != 0:
                    return 404, {"code": "unknown_session"}
                account, balance, held, seq, granted, used, _, last = row
                _state[account] = [balance, held, seq]
                known = _sessions[sid] = [account, granted, used, last]
            account, granted, used, last = known
            balance, held, seq = _state[account]
            old_hold = _minutes(granted) * price
            if last == body["request_id"]:
                return 200, {"code": "ok", "granted": granted}
            if kind == "update":
                new = min(int(body["requested"]), int((balance - held + old_hold) // price) * 60)
                delta = _minutes(new) * price - old_hold
                if await conn.fetchval(GATED_UPDATE, account, sid, int(body["used"]), new, body["request_id"], delta,
                                       seq):
                    _state[account] = [balance, held + delta, seq + 1]
                    _sessions[sid] = [account, new, used + int(body["used"]), body["request_id"]]
                    return 200, {"code": "ok", "granted": new}
            else:
                total = used + int(body["used"])
                cost = _minutes(total) * price
                if await conn.fetchval(GATED_TERMINATE, account, sid, total, body["request_id"], cost, old_hold, seq):
                    _state[account] = [balance - cost, held - old_hold, seq + 1]
                    _sessions.pop(sid, None)
                    return 200, {"code": "ok", "charged": str(cost.quantize(Decimal("0.01")))}
            _state.pop(account, None)  # somebody else wrote: read again

# db5: the lean path's shape on Obol's own tables, with Obol's own write statements
# (`obol.charging.fast`: the session, the answer rows, the ledger entry, the pocket, the rated
# record, every index and constraint), but no rules: a fixed grant of 60 s, 0.10 EUR per started
# minute from the account's one money pocket, and reads of only what those writes need. Needs a
# database populated by `bench/charging.py --keep` (FLOOR_OBOL_DSN).
_obol: dict = {}


async def _db5_setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "obol.settings")
    os.environ["OBOL_DATABASE_URL"] = os.environ["FLOOR_OBOL_DSN"]
    from obol.charging import fast
    _obol["fast"] = fast
    async with _pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT i.value, s.account_id, s.id, p.id, p.tenant_id FROM subscriptions_usageidentifier i "
            "JOIN subscriptions_subscription s ON s.id = i.subscription_id "
            "JOIN balances_pocket p ON p.account_id = s.account_id AND p.source = 'topup'")
    _obol["subscribers"] = {value: tuple(rest) for value, *rest in rows}


def _answer5(fast, tenant: int, request_id: str, operation: str, answer: dict) -> dict:
    return {"tenant": tenant, "request": request_id, "operation": operation, "fingerprint": "f" * 64,
            "code": answer["code"], "answer": answer, "now": datetime.now(UTC)}


async def _db5_op(kind: str, session: str | None, body: dict) -> tuple[int, dict]:
    from decimal import Decimal
    fast = _obol["fast"]
    price = Decimal(PRICE_PER_MINUTE)
    now = datetime.now(UTC)
    async with _pool.acquire() as raw:
        conn = fast._Conn(raw)
        await raw.execute("BEGIN")
        try:
            if kind == "start":
                account, subscription, pocket, tenant = _obol["subscribers"][body["subscriber"]]
                params = {"tenant": tenant, "account": account}
                await conn.run(fast._LOCK, params)
                await raw.fetchval("SELECT balance FROM balances_pocket WHERE id = $1", pocket)
                key = uuid.uuid4()
                answer = {"code": "ok", "session_id": str(key), "granted": 60, "used": 0,
                          "valid_until": (now + timedelta(seconds=300)).isoformat()}
                await fast._write(conn, fast._NEW_SESSION, {
                    **params, **_answer5(fast, tenant, body["request_id"], "start", answer), "key": key,
                    "subscription": subscription, "identifier": body["subscriber"], "kind": "voice",
                    "service": "voice", "destination": body.get("destination", ""), "at": now,
                    "terms": {"rate_table": "floor"}, "granted": 60, "holds": {str(pocket): "0.10"},
                    "until": now + timedelta(seconds=300)})
                return 201, answer
            key = uuid.UUID(session)
            row = await raw.fetchrow("SELECT s.id, s.used, s.tenant_id, s.account_id, s.subscription_id, p.id, "
                                     "p.balance FROM charging_chargingsession s JOIN balances_pocket p "
                                     "ON p.account_id = s.account_id AND p.source = 'topup' WHERE s.key = $1", key)
            if row is None:
                return 404, {"code": "unknown_session"}
            pk, used, tenant, account, subscription, pocket, balance = row
            params = {"tenant": tenant, "key": key}
            await conn.run(fast._LOCK_BY_SESSION, params)
            total = used + int(body["used"])
            if kind == "update":
                answer = {"code": "ok", "session_id": session, "granted": 60, "used": total}
                await fast._write(conn, fast._REGRANT, {
                    **_answer5(fast, tenant, body["request_id"], "update", answer), "session": pk, "used": total,
                    "granted": 60, "holds": {str(pocket): "0.10"}, "until": now + timedelta(seconds=300)})
                return 200, answer
            cost = _minutes(total) * price
            answer = {"code": "ok", "session_id": session, "used": total, "charged": str(cost), "currency": "EUR"}
            await fast._write(conn, fast._TERMINATE, {
                **_answer5(fast, tenant, body["request_id"], "terminate", answer), "session": pk, "used": total,
                "money": cost, "included": 0, "shortfall": Decimal(0), "pockets": [pocket],
                "balances": [balance - cost], "ledger_pockets": [pocket], "amounts": [-cost],
                "afters": [balance - cost], "at": now, "service": "voice", "record_key": f"charging:{key}",
                "actor_kind": "process", "actor_id": "", "actor_label": "floor", "account_id": account,
                "subscription_id": subscription, "rate_table": "floor", "cycle_start": now.date(), "start": now,
                "quantity": total, "destination": "", "destination_group": "national-mobile", "time_band": "peak",
                "charged": int(cost * 1_000_000), "billed": total, "price_micros": 100_000, "currency": "EUR",
                "uncovered": False, "takes": "", "accrued_micros": 0, "record_key_": None})
            return 200, answer
        finally:
            if raw.is_in_transaction():
                await raw.execute("ROLLBACK")


# --- the floor servers (ASGI) -------------------------------------------------------------------------

def _answer(status: int, body: dict) -> tuple[dict, dict]:
    data = json.dumps(body, separators=(",", ":")).encode()
    return ({"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]},
            {"type": "http.response.body", "body": data})


async def _read(receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def _authorised(scope) -> bool:
    return any(name == b"authorization" and value == b"Bearer " + KEY.encode() for name, value in scope["headers"])


_pool = None
_statements: dict[str, object] = {}


async def _db_op(kind: str, session: str | None, body: dict) -> tuple[int, dict]:
    from decimal import Decimal
    price = Decimal(PRICE_PER_MINUTE)
    async with _pool.acquire() as conn:
        if kind == "start":
            account = int(body["subscriber"]) - MSISDN_BASE
            sid = uuid.uuid4()
            granted = await conn.fetchval(START, account, sid, body["request_id"], int(body["requested"]), price)
            if granted is None:
                return 402, {"code": "no_credit"}
            return 201, {"code": "ok", "session_id": str(sid), "granted": granted}
        sid = uuid.UUID(session)
        if kind == "update":
            granted = await conn.fetchval(UPDATE, sid, body["request_id"], int(body["used"]), int(body["requested"]),
                                          price)
            return (200, {"code": "ok", "granted": granted}) if granted is not None else (404, {"code": "unknown_session"})
        cost = await conn.fetchval(TERMINATE, sid, body["request_id"], int(body["used"]), price)
        if cost is None:
            return 404, {"code": "unknown_session"}
        return 200, {"code": "ok", "charged": str(cost.quantize(Decimal("0.01")))}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                global _pool
                if os.environ.get("FLOOR_MODE") in ("db", "db2", "db3", "db4", "db5"):
                    import asyncpg
                    if os.environ["FLOOR_MODE"] == "db5":
                        from obol.charging import fast
                        _pool = await asyncpg.create_pool(os.environ["FLOOR_OBOL_DSN"], min_size=2, max_size=8,
                                                          init=fast._json_codecs, reset=fast._no_reset)
                        await _db5_setup()
                    else:
                        _pool = await asyncpg.create_pool(os.environ["FLOOR_DSN"], min_size=4, max_size=40)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _pool is not None:
                    await _pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = json.loads(await _read(receive) or b"{}")
    if not _authorised(scope):
        status, answer = 401, {"code": "unauthorised"}
    else:
        parts = scope["path"].rstrip("/").split("/")  # /api/v1/charging/sessions[/{id}/{op}]
        kind = "start" if parts[-1] == "sessions" else parts[-1]
        session = parts[-2] if kind in ("update", "terminate") else None
        if _pool is None:  # http: a fixed answer; the probe's unknown session is still unknown
            if session == "00000000-0000-4000-8000-000000000000":
                status, answer = 404, {"code": "unknown_session"}
            elif kind == "start":
                status, answer = 201, {"code": "ok", "session_id": str(uuid.uuid4()), "granted": 60}
            else:
                status, answer = 200, {"code": "ok", "granted": 60, "charged": "0.10"}
        else:
            op = {"db": _db_op, "db2": _db2_op, "db3": _db3_op, "db4": _db4_op, "db5": _db5_op}[os.environ["FLOOR_MODE"]]
            status, answer = await op(kind, session, body)
    start, end = _answer(status, answer)
    await send(start)
    await send(end)


# --- the bench ------------------------------------------------------------------------------------------

def _psql(sql: str, database: str = "postgres") -> None:
    subprocess.run(["psql", f"{SERVER_URL}/{database}", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True,
                   capture_output=True)


def main() -> None:
    from bench import charging, charging_load

    parser = argparse.ArgumentParser(description="the floor of real-time charging over HTTP")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--modes", default="http,db,db2,db3,db4")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--obol-dsn", help="db5: a database populated by bench/charging.py --keep "
                                           "(postgresql://postgres@127.0.0.1:5432/obol_chbench)")
    args = parser.parse_args()
    dsn = f"{SERVER_URL}/{DATABASE}"
    _psql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    _psql(f"CREATE DATABASE {DATABASE}")
    _psql(SCHEMA, DATABASE)
    _psql(f"INSERT INTO pocket SELECT a, 1000000, 0 FROM generate_series(1, {args.accounts}) a", DATABASE)
    msisdns = [str(MSISDN_BASE + i) for i in range(1, args.accounts + 1)]
    print(f"floor: {os.cpu_count()} CPU; server, PostgreSQL and generator share the machine; "
          f"uvicorn {args.workers} workers, uvloop, httptools")
    print(charging.HEADER)
    for mode in [m for m in args.modes.split(",") if m]:
        port = charging.free_port()
        argv = [str(charging.BIN / "uvicorn"), "charging_floor:app", "--app-dir", str(ROOT / "bench"),
                "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers), "--loop", "uvloop",
                "--http", "httptools", "--no-access-log", "--no-proxy-headers", "--log-level", "warning"]
        if mode == "db5" and not args.obol_dsn:
            print("db5: skipped (needs --obol-dsn of a database kept by bench/charging.py --keep)")
            continue
        env = {**os.environ, "FLOOR_MODE": mode, "FLOOR_DSN": dsn, "FLOOR_OBOL_DSN": args.obol_dsn or ""}
        base = f"http://127.0.0.1:{port}"
        with charging.Server(argv, env, base, KEY).start() as server:
            for name, clients, hot in charging.SCENARIOS:
                cpu0, pg0 = charging.server_cpu(server.process.pid), charging.postgres_cpu()
                r = charging_load.run(base, KEY, msisdns, clients=clients, seconds=args.seconds,
                                      warmup=args.warmup, hot=hot)
                n = max(1, r["requests_all"])
                r["server_ms_per_op"] = (charging.server_cpu(server.process.pid) - cpu0) / n * 1000
                r["postgres_ms_per_op"] = (charging.postgres_cpu() - pg0) / n * 1000
                print(charging.row(mode, name, r), flush=True)
            log = server.output()
        if "Traceback" in log:
            print(f"  {mode}: server log has a traceback: {log[-1500:]}")
    time.sleep(0.5)
    _psql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


if __name__ == "__main__":
    main()
