"""subscription_fanout: one lock event fanned out to 1,000 graphql-transport-ws subscribers.

The gateway (the real app under uvicorn, `bench/_fanout_server.py gateway`) and a raw Starlette
WebSocket broadcaster of the same message (`... raw`) each run in their own process, one after
the other, in interleaved rounds. This process opens the subscribers (websockets client, no
compression), then publishes lock events the way a job does (`OrgOperationLock.update_status`
on Redis) and measures, per event, the delay from the publish call to each subscriber's
receipt: p50 and p99 over subscribers, median over events and rounds. Memory per subscriber is
the server's RSS growth while the subscribers connect, divided by their number.

Redis is an embedded redis-server in a temporary directory, so nothing else sees these events.
Keep-alive pings are configured but far apart, so their tasks are counted in memory and they do
not fire during a measurement (the raw side has none).

Targets: p99 <= 2.5x raw; <= 60 KiB per subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect

from bench._processes import stop
from bench.registry import Options, Result, benchmark
from bench.stats import median, percentile
from cadt_gateway.embedded_redis import EmbeddedRedis
from services.oplock import OrgOperationLock

ROOT = Path(__file__).resolve().parents[1]
SUBSCRIBERS = 1000
EVENTS = 5
OPEN_CONCURRENCY = 100
P99_TARGET_RATIO = 2.5
MEMORY_TARGET_KIB = 60.0
QUERY = (
    "subscription { operationProgress { kind operation label status startedAt elapsedSeconds "
    "at error orgUid } }"
)


@dataclass
class Measurement:
    """One server, one round."""

    p50_ms: float
    p99_ms: float
    max_ms: float
    kib_per_subscriber: float
    cpu_us_per_delivery: float
    open_seconds: float
    per_event: list[dict[str, float]] = field(default_factory=list)


class Subscribers:
    """Client sockets and the arrival times of each event at each of them."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.sockets: list[ClientConnection] = []
        self.arrivals: dict[int, list[float]] = {}
        self.complete: dict[int, asyncio.Event] = {}
        self.tasks: list[asyncio.Task[None]] = []

    def expect(self, index: int) -> asyncio.Event:
        """Prepare for event `index`; the returned Event fires once everyone received it."""
        self.arrivals[index] = []
        self.complete[index] = asyncio.Event()
        return self.complete[index]

    async def receive(self, ws: ClientConnection) -> None:
        """Record the arrival time of every message after the subscription was confirmed."""
        seen = 0
        with contextlib.suppress(Exception):
            async for _ in ws:
                now = time.perf_counter()
                arrivals = self.arrivals.get(seen)
                if arrivals is not None:
                    arrivals.append(now)
                    if len(arrivals) == self.count:
                        self.complete[seen].set()
                seen += 1


async def _open(url: str, kind: str) -> ClientConnection:
    ws = await connect(
        url,
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        compression=None,
        open_timeout=120,
        ping_interval=None,
        close_timeout=5,
    )
    if kind == "gateway":
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": QUERY}}))
        snapshot = json.loads(await ws.recv())  # the lock is held: the snapshot confirms it
        assert snapshot["type"] == "next", snapshot
    else:
        assert json.loads(await ws.recv())["type"] == "connection_ack"
    return ws


async def _start_server(kind: str, env: dict[str, str]) -> tuple[asyncio.subprocess.Process, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench._fanout_server",
        kind,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 120)
    if not line.startswith(b"port "):
        raise RuntimeError(f"{kind} server did not start: {line!r}")
    return process, int(line.split()[1])


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def _measure(
    kind: str, *, subscribers: int, events: int, env: dict[str, str], lock: OrgOperationLock
) -> Measurement:
    process, port = await _start_server(kind, env)
    server = psutil.Process(process.pid)
    url = f"ws://127.0.0.1:{port}/graphql"
    clients = Subscribers(subscribers)
    token = await lock.try_acquire("V2 organization creation")
    assert token is not None, "the bench lock is held by someone else"
    try:
        # Warm-up: first requests import and cache lazily; not part of the per-subscriber cost.
        for ws in [await _open(url, kind) for _ in range(5)]:
            await ws.close()
        await asyncio.sleep(0.5)
        rss_before = server.memory_info().rss
        started = time.perf_counter()
        semaphore = asyncio.Semaphore(OPEN_CONCURRENCY)

        async def open_one() -> ClientConnection:
            async with semaphore:
                return await _open(url, kind)

        clients.sockets = list(await asyncio.gather(*(open_one() for _ in range(subscribers))))
        open_seconds = time.perf_counter() - started
        clients.tasks = [asyncio.create_task(clients.receive(ws)) for ws in clients.sockets]
        await asyncio.sleep(1.0)  # let the server settle after the connection storm
        rss_after = server.memory_info().rss

        per_event: list[dict[str, float]] = []
        for index in range(events):
            done = clients.expect(index)
            cpu_before = _cpu_seconds(server)
            published = time.perf_counter()
            await lock.update_status(token, f"Step {index + 1} of {events}")
            try:
                await asyncio.wait_for(done.wait(), 120)
            except TimeoutError:
                got = len(clients.arrivals[index])
                raise RuntimeError(
                    f"{kind}: event {index + 1} reached {got} of {subscribers} subscribers"
                ) from None
            await asyncio.sleep(0.3)  # the server finishes its turn (GC, buffers) before the next
            cpu = _cpu_seconds(server) - cpu_before
            latencies = [(t - published) * 1000 for t in clients.arrivals[index]]
            per_event.append(
                {
                    "p50_ms": percentile(latencies, 50),
                    "p99_ms": percentile(latencies, 99),
                    "max_ms": max(latencies),
                    "server_cpu_ms": cpu * 1000,
                }
            )
        return Measurement(
            p50_ms=median([e["p50_ms"] for e in per_event]),
            p99_ms=median([e["p99_ms"] for e in per_event]),
            max_ms=median([e["max_ms"] for e in per_event]),
            kib_per_subscriber=(rss_after - rss_before) / 1024 / subscribers,
            # Summed over the round: the process CPU clock ticks in 10 ms steps.
            cpu_us_per_delivery=sum(e["server_cpu_ms"] for e in per_event)
            * 1000
            / (subscribers * len(per_event)),
            open_seconds=open_seconds,
            per_event=per_event,
        )
    finally:
        await lock.release(token)
        for task in clients.tasks:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in clients.sockets), return_exceptions=True)
        await stop(process)


def _server_env(redis_url: str, data_dir: Path) -> dict[str, str]:
    # The caller's CADT_* settings must not leak into a measurement.
    env = {key: value for key, value in os.environ.items() if not key.startswith("CADT_")}
    env.update(
        {
            "CADT_REDIS_URL": redis_url,
            "CADT_DATA_DIR": str(data_dir),
            "CADT_SIMULATOR_SEED": "none",
            "CADT_SIMULATOR_BLOCK_SECONDS": "3600",
            "CADT_LOG_LEVEL": "warning",
            "CADT_WS_KEEP_ALIVE_SECONDS": "3600",
            "CADT_WS_CONNECTION_INIT_TIMEOUT_SECONDS": "60",
        }
    )
    return env


def _ensure_file_limit(needed: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


@benchmark("subscription_fanout")
async def subscription_fanout(options: Options) -> list[Result]:
    """Gateway vs raw broadcast: delivery p50/p99 of one event and memory per subscriber."""
    subscribers = 100 if options.quick else SUBSCRIBERS
    rounds = options.rounds_or(5)
    _ensure_file_limit(subscribers * 2 + 256)
    samples: dict[str, list[Measurement]] = {"gateway": [], "raw": []}
    with tempfile.TemporaryDirectory(prefix="cadt-bench-") as temporary:
        base = Path(temporary)
        embedded = EmbeddedRedis(base / "redis")
        redis_url = await embedded.astart()
        redis = Redis.from_url(redis_url)
        try:
            lock = OrgOperationLock(redis, ttl_seconds=3600)
            for round_number in range(rounds):
                order = ("gateway", "raw") if round_number % 2 == 0 else ("raw", "gateway")
                for kind in order:
                    env = _server_env(redis_url, base / f"{kind}-{round_number}")
                    measurement = await _measure(
                        kind, subscribers=subscribers, events=EVENTS, env=env, lock=lock
                    )
                    samples[kind].append(measurement)
                    print(
                        f"    round {round_number + 1} {kind:7}: p50 {measurement.p50_ms:6.1f} ms"
                        f"  p99 {measurement.p99_ms:6.1f} ms"
                        f"  {measurement.kib_per_subscriber:5.1f} KiB/sub"
                        f"  {measurement.cpu_us_per_delivery:5.0f} us CPU/delivery"
                        f"  (opened in {measurement.open_seconds:.1f} s)",
                        flush=True,
                    )
        finally:
            await redis.aclose()
            await embedded.astop()

    gateway, raw = samples["gateway"], samples["raw"]

    def med(runs: list[Measurement], attribute: str) -> float:
        return round(median([getattr(m, attribute) for m in runs]), 2)

    def paired(attribute: str) -> float:
        # Rounds interleave the servers: the ratio within each round cancels slow phases.
        ratios = [
            getattr(g, attribute) / getattr(r, attribute) for g, r in zip(gateway, raw, strict=True)
        ]
        return round(median(ratios), 2)

    common: dict[str, Any] = {
        "subscribers": subscribers,
        "events_per_round": EVENTS,
        "rounds": rounds,
        "server": "uvicorn (websockets-sansio, uvloop), one process each",
        "client": "websockets in one separate process, no compression",
        "gateway_cpu_us_per_delivery": med(gateway, "cpu_us_per_delivery"),
        "raw_cpu_us_per_delivery": med(raw, "cpu_us_per_delivery"),
        "gateway_open_seconds": med(gateway, "open_seconds"),
        "raw_open_seconds": med(raw, "open_seconds"),
    }
    return [
        Result(
            name="subscription_fanout",  # the headline: p99 delivery vs raw
            value=med(gateway, "p99_ms"),
            unit="ms",
            baseline=med(raw, "p99_ms"),
            target=P99_TARGET_RATIO,
            details={
                **common,
                "gateway_per_round_ms": [round(m.p99_ms, 1) for m in gateway],
                "raw_per_round_ms": [round(m.p99_ms, 1) for m in raw],
                "paired_ratio_median": paired("p99_ms"),
                "gateway_max_ms": med(gateway, "max_ms"),
                "raw_max_ms": med(raw, "max_ms"),
            },
        ),
        Result(
            name="subscription_fanout.p50_latency",
            value=med(gateway, "p50_ms"),
            unit="ms",
            baseline=med(raw, "p50_ms"),
            details={
                **common,
                "gateway_per_round_ms": [round(m.p50_ms, 1) for m in gateway],
                "raw_per_round_ms": [round(m.p50_ms, 1) for m in raw],
                "paired_ratio_median": paired("p50_ms"),
            },
        ),
        Result(
            name="subscription_fanout.memory_per_subscriber",
            value=med(gateway, "kib_per_subscriber"),
            unit="KiB",
            baseline=med(raw, "kib_per_subscriber"),
            target=MEMORY_TARGET_KIB,
            target_kind="value",
            details={
                **common,
                "gateway_per_round_kib": [round(m.kib_per_subscriber, 1) for m in gateway],
                "raw_per_round_kib": [round(m.kib_per_subscriber, 1) for m in raw],
                "measured_as": "server RSS growth while the subscribers connect / subscribers",
            },
        ),
    ]
