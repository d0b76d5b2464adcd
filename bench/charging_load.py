"""Load generator of real-time charging (issue 5): C concurrent clients, each looping
start -> update -> terminate (3 requests per cycle) against a running Obol server.

Raw keep-alive HTTP/1.1 over asyncio streams on uvloop (no HTTP client library: it would cost more
CPU per request than the server under test and measure itself). A server that answers
`Connection: close` (gunicorn's sync workers do) is reconnected for the next request; the
reconnections are counted.

- spread mode: client i uses subscribers i, i+C, i+2C, ... of the list in turn, so no two clients
  share an account; hot mode: every client charges the first subscriber (one account).
- warm-up seconds (not counted), then `seconds` measured: ops/s (completed requests of all three
  kinds per second), latency p50/p95/p99 per request, answers by code, transport errors, and the
  generator's own CPU seconds (it shares the machine with the server and PostgreSQL).
- after the window each client finishes its cycle (not counted), so no session is left open
  unless a transport error broke a cycle (`abandoned`).

    python bench/charging_load.py --url http://127.0.0.1:8000 --key KEY --clients 8 \\
        --subscribers 491600000001,491600000002 --seconds 10 [--warmup 2] [--hot]

As a module: `run(url, key, subscribers, clients=8, seconds=10, ...)` returns a dict.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

OPS = ("start", "update", "terminate")


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.1 as expected."""


@dataclass
class Stats:
    window: tuple[float, float] = (0.0, 0.0)  # monotonic [begin, end) of the measured window
    latencies: list[float] = field(default_factory=list)  # seconds, requests completed in the window
    by_op: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPS})
    codes: dict[str, int] = field(default_factory=dict)  # in the window
    codes_all: dict[str, int] = field(default_factory=dict)  # whole run (warm-up and wind-down too)
    statuses: dict[int, int] = field(default_factory=dict)  # in the window
    cycles: int = 0  # completed in the window
    cycles_all: int = 0
    requests_all: int = 0
    charged: Decimal = Decimal(0)  # sum of every terminate answer's `charged`, whole run
    transport_errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    first_error: str = ""
    connects: int = 0
    abandoned: int = 0  # cycles cut by a transport error after a session was opened

    def inside(self, t: float) -> bool:
        return self.window[0] <= t < self.window[1]


class Connection:
    """One keep-alive HTTP/1.1 connection; reopened when the server closes it."""

    def __init__(self, host: str, port: int, key: str, stats: Stats):
        self.host, self.port, self.stats = host, port, stats
        self.head = (f"Host: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
                     "Content-Type: application/json\r\nAccept: application/json\r\n").encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.stats.connects += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def post(self, path: str, body: dict) -> tuple[int, dict]:
        if self.writer is None:
            await self.open()
        payload = json.dumps(body, separators=(",", ":")).encode()
        self.writer.write(b"POST " + path.encode() + b" HTTP/1.1\r\n" + self.head
                          + b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise ProtocolError(f"bad status line {lines[0]!r}")
        status = int(parts[1])
        length, chunked, close = None, False, parts[0] == "HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value
            elif name == "connection":
                close = value == "close" or (close and value != "keep-alive")
        if chunked:
            data = await self._chunks()
        elif length is not None:
            data = await self.reader.readexactly(length)
        else:  # no length: the body runs to the end of the connection
            data, close = await self.reader.read(), True
        if close:
            self.close()
        try:
            answer = json.loads(data) if data else {}
        except ValueError as exc:
            raise ProtocolError(f"HTTP {status}: body is not JSON: {data[:200]!r}") from exc
        return status, answer

    async def _chunks(self) -> bytes:
        out = bytearray()
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return bytes(out)
            out += await self.reader.readexactly(size)
            await self.reader.readexactly(2)


def _code(status: int, answer: dict) -> str:
    code = answer.get("code")
    if isinstance(code, str):
        return code
    error = answer.get("error")
    if isinstance(error, dict) and error.get("code"):
        return f"error:{error['code']}"
    return f"http_{status}"


def destination(rng: random.Random) -> str:
    """A German mobile number, 4917 and 8 digits (national-mobile in the sample tariffs)."""
    return f"4917{rng.randrange(10 ** 8):08d}"


async def _client(index: int, conn: Connection, subscribers: list[str], stats: Stats, stop_at: float, run_id: str,
                  requested: int, used_update: int, used_terminate: int) -> None:
    rng = random.Random(index)
    base = "/api/v1/charging/sessions"
    counter = 0
    turn = 0

    async def call(op: str, path: str, body: dict) -> tuple[int, dict] | None:
        nonlocal counter
        counter += 1
        body["request_id"] = f"{run_id}-{index}-{counter}"
        began = time.perf_counter()
        try:
            status, answer = await conn.post(path, body)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ProtocolError, ValueError) as exc:
            stats.transport_errors += 1
            kind = type(exc).__name__
            stats.error_kinds[kind] = stats.error_kinds.get(kind, 0) + 1
            stats.first_error = stats.first_error or f"{op}: {kind}: {exc}"[:300]
            conn.close()
            await asyncio.sleep(0.01)
            return None
        done = time.perf_counter()
        code = _code(status, answer)
        stats.requests_all += 1
        stats.codes_all[code] = stats.codes_all.get(code, 0) + 1
        if stats.inside(done):
            stats.latencies.append(done - began)
            stats.by_op[op].append(done - began)
            stats.codes[code] = stats.codes.get(code, 0) + 1
            stats.statuses[status] = stats.statuses.get(status, 0) + 1
        return status, answer

    while time.perf_counter() < stop_at:
        subscriber = subscribers[turn % len(subscribers)]
        turn += 1
        started = await call("start", base, {"subscriber": subscriber, "service": "voice",
                                             "destination": destination(rng), "requested": requested})
        if started is None or not started[1].get("session_id"):
            if started is not None:
                await asyncio.sleep(0.001)  # a refusal: do not spin
            continue
        session = f"{base}/{started[1]['session_id']}"
        if await call("update", f"{session}/update", {"used": used_update, "requested": requested}) is None:
            stats.abandoned += 1
            continue
        ended = await call("terminate", f"{session}/terminate", {"used": used_terminate})
        if ended is None:
            stats.abandoned += 1
            continue
        if ended[1].get("code") == "ok" and ended[1].get("charged") is not None:
            stats.charged += Decimal(ended[1]["charged"])
        stats.cycles_all += 1
        if stats.inside(time.perf_counter()):
            stats.cycles += 1
    conn.close()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat (Linux), or None."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted seconds, in milliseconds."""
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1] * 1000


def _latency(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"p50": _percentile(ordered, 50), "p95": _percentile(ordered, 95), "p99": _percentile(ordered, 99),
            "max": ordered[-1] * 1000 if ordered else float("nan"),
            "mean": sum(ordered) / len(ordered) * 1000 if ordered else float("nan")}


async def _run(url: str, key: str, subscribers: list[str], clients: int, seconds: float, warmup: float,
               hot: bool, requested: int, used_update: int, used_terminate: int) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if not subscribers:
        raise ValueError("subscribers: at least one is needed")
    if hot:
        lists = [[subscribers[0]]] * clients
    else:
        if len(subscribers) < clients:
            raise ValueError(f"spread mode needs at least one subscriber per client ({len(subscribers)} < {clients})")
        lists = [subscribers[i::clients] for i in range(clients)]
    stats = Stats()
    begin = time.perf_counter()
    stats.window = (begin + warmup, begin + warmup + seconds)
    run_id = uuid.uuid4().hex[:12]
    conns = [Connection(host, port, key, stats) for _ in range(clients)]
    measured: dict = {}

    async def mark_window() -> None:
        await asyncio.sleep(max(0.0, stats.window[0] - time.perf_counter()))
        measured["cpu0"], measured["ticks0"] = _cpu(), _machine_ticks()
        await asyncio.sleep(max(0.0, stats.window[1] - time.perf_counter()))
        measured["cpu1"], measured["ticks1"] = _cpu(), _machine_ticks()

    marker = asyncio.create_task(mark_window())
    await asyncio.gather(*(_client(i, conns[i], lists[i], stats, stats.window[1], run_id, requested, used_update,
                                   used_terminate) for i in range(clients)))
    await marker
    ops = len(stats.latencies)
    cpu = measured["cpu1"] - measured["cpu0"]
    busy = None
    if measured["ticks0"] and measured["ticks1"]:
        d_busy = measured["ticks1"][0] - measured["ticks0"][0]
        d_total = measured["ticks1"][1] - measured["ticks0"][1]
        busy = d_busy / d_total if d_total else None
    return {
        "clients": clients, "mode": "hot" if hot else "spread",
        "accounts": 1 if hot else min(len(subscribers), sum(len(x) for x in lists)),
        "warmup_s": warmup, "seconds": seconds, "ops": ops, "ops_per_s": ops / seconds,
        "cycles": stats.cycles, "cycles_per_s": stats.cycles / seconds,
        "latency_ms": _latency(stats.latencies), "latency_ms_by_op": {op: _latency(v) for op, v in stats.by_op.items()},
        "codes": dict(sorted(stats.codes.items())), "statuses": dict(sorted(stats.statuses.items())),
        "codes_all": dict(sorted(stats.codes_all.items())), "requests_all": stats.requests_all,
        "cycles_all": stats.cycles_all, "charged_all": str(stats.charged),
        "transport_errors": stats.transport_errors, "error_kinds": stats.error_kinds,
        "first_error": stats.first_error,
        "connects": stats.connects, "abandoned_cycles": stats.abandoned,
        "generator_cpu_s": cpu, "generator_cpu_share": cpu / seconds,  # of one core
        "machine_busy": busy,  # share of all CPUs busy during the window (everything, not only the server)
    }


def run(url: str, key: str, subscribers: list[str], clients: int = 8, seconds: float = 10.0, warmup: float = 2.0,
        hot: bool = False, requested: int = 60, used_update: int = 60, used_terminate: int = 30) -> dict:
    """Drive start/update/terminate cycles for warmup + seconds; return the measured figures."""
    args = (url, key, list(subscribers), clients, seconds, warmup, hot, requested, used_update, used_terminate)
    try:
        import uvloop
    except ImportError:  # plain asyncio still works, only slower
        return asyncio.run(_run(*args))
    return uvloop.run(_run(*args))


def describe(result: dict) -> str:
    lat = result["latency_ms"]
    others = {c: n for c, n in result["codes"].items() if c != "ok"}
    return (f"{result['clients']:>3} clients {result['mode']:<6} {result['ops_per_s']:>8,.0f} ops/s  "
            f"p50 {lat['p50']:6.1f}  p95 {lat['p95']:6.1f}  p99 {lat['p99']:6.1f} ms  "
            f"non-ok {others or 0}  transport errors {result['transport_errors']}  "
            f"generator CPU {result['generator_cpu_share']:.0%} of a core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True, help="API key (Authorization: Bearer)")
    parser.add_argument("--subscribers", required=True, help="comma-separated MSISDNs, or @FILE with one a line")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--hot", action="store_true", help="every client on the first subscriber (one account)")
    parser.add_argument("--requested", type=int, default=60)
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    args = parser.parse_args()
    if args.subscribers.startswith("@"):
        subscribers = Path(args.subscribers[1:]).read_text().split()
    else:
        subscribers = [s for s in args.subscribers.split(",") if s]
    result = run(args.url, args.key, subscribers, clients=args.clients, seconds=args.seconds, warmup=args.warmup,
                 hot=args.hot, requested=args.requested)
    print(json.dumps(result, indent=1) if args.json else describe(result))


if __name__ == "__main__":
    main()
