"""graphql_vs_raw_starlette and graphql_cached_vs_raw_starlette: the dashboard query over HTTP.

One uvicorn worker serves the real gateway app (`bench/_graphql_server.py`: create_app as
`cadt-gateway serve --no-worker` builds it, embedded SQLite in a temporary data dir, an embedded
redis-server) with 50 organizations in the database, each with sync state (every fifth backing
off) and two mirrors. The same process serves a raw Starlette route, mounted only for the
benchmark, that runs the same database queries and answers the same bytes (checked before
measuring).

The load generator is wrk in its own process (closed loop, 32 connections, one thread); rounds
alternate raw and GraphQL on the same server, and the reported figure is requests/s, median of
the rounds. Server CPU per request (utime+stime of the server process / requests) is in the
details: it moves less with the other tenants of a shared machine than requests/s does.

- graphql_vs_raw_starlette: the document sent in full; the server runs with
  CADT_RESPONSE_CACHE=off. Target: ratio >= 0.15.
- graphql_cached_vs_raw_starlette: the same query as a persisted operation (APQ hash only) on a
  response-cache hit. Target: ratio >= 0.6.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench._processes import stop
from bench.registry import Options, Result, benchmark
from bench.stats import median
from cadt_gateway.embedded_redis import EmbeddedRedis
from services.db.engine import Database
from services.db.migrate import upgrade_to_head
from services.db.models import Audit, Mirror, Organization, SyncState

ROOT = Path(__file__).resolve().parents[1]
ORGANIZATIONS = 50
MIRRORS_PER_ORGANIZATION = 2
CONNECTIONS = 32
SECONDS, QUICK_SECONDS = 5, 2
WARMUP_SECONDS = 2
UNCACHED_TARGET = 0.15
CACHED_TARGET = 0.6
RAW_PATH = "/bench/raw"

DASHBOARD = (
    "query Dashboard($first: Int) { organizations(first: $first) { edges { node { "
    "orgUid name isHome subscribed "
    "sync { synced syncRemaining backoff { delaySeconds } } "
    "mirrors { storeId urls } } } } }"
)
VARIABLES = {"first": ORGANIZATIONS}
DASHBOARD_HASH = hashlib.sha256(DASHBOARD.encode()).hexdigest()


def _uid(number: int) -> str:
    return f"{number:064x}"


async def seed(database_url: str) -> None:
    """Migrate, then 50 organizations with sync state (every fifth backing off) and mirrors."""
    await asyncio.to_thread(upgrade_to_head, database_url)
    database = Database(database_url)
    now = datetime.now(UTC)
    try:
        async with database.transaction() as session:
            for number in range(ORGANIZATIONS):
                org_uid = _uid(number + 1)
                registry_id = _uid(1000 + number)
                session.add(
                    Organization(
                        org_uid=org_uid,
                        name=f"Registry {number:03d}",
                        registry_id=registry_id,
                        data_model_version_store_id=_uid(2000 + number),
                        file_store_id=_uid(3000 + number),
                        subscribed=number % 3 != 0,
                        synced=number % 2 == 0,
                        sync_remaining=0 if number % 2 == 0 else number,
                        is_home=number == 0,
                        metadata_json=json.dumps({"meta_rank": str(number)}),
                    )
                )
                backing_off = number % 5 == 4
                session.add(
                    SyncState(
                        org_uid=org_uid,
                        registry_id=registry_id,
                        root_history_length=number + 1,
                        datalayer_generation=number,
                        datalayer_target_generation=number + 1,
                        last_synced_at=now,
                        backoff_since=now if backing_off else None,
                        backoff_delay_seconds=60.0 * (number + 1) if backing_off else None,
                        backoff_next_retry_at=now + timedelta(minutes=5) if backing_off else None,
                        backoff_reason=f"generation {number} of {number + 1}"
                        if backing_off
                        else None,
                    )
                )
                session.add(
                    Audit(
                        org_uid=org_uid,
                        registry_id=registry_id,
                        generation=number,
                        root_hash="00" * 32,
                        type="NO CHANGE",
                    )
                )
                for index, store_id in enumerate((org_uid, registry_id)[:MIRRORS_PER_ORGANIZATION]):
                    session.add(
                        Mirror(
                            coin_id=_uid(5000 + number * 10 + index),
                            store_id=store_id,
                            urls_json=json.dumps([f"http://mirror-{index}.example:8575"]),
                            amount=300,
                        )
                    )
    finally:
        await database.dispose()


@dataclass
class Load:
    """One wrk run against one endpoint."""

    requests_per_second: float
    cpu_us_per_request: float
    p50_ms: float
    p99_ms: float
    requests: int


_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = {body}
"""


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def _latency_ms(output: str, label: str) -> float:
    match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


async def wrk(
    url: str, body: bytes, *, seconds: float, script_dir: Path, server: psutil.Process
) -> Load:
    """Closed-loop load with wrk (own process); requests/s and server CPU per request."""
    script = script_dir / f"post-{hashlib.sha1(body).hexdigest()[:12]}.lua"
    script.write_text(_LUA.format(body=_lua_string(body.decode())))
    cpu_before = _cpu_seconds(server)
    process = await asyncio.create_subprocess_exec(
        "wrk",
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    cpu = _cpu_seconds(server) - cpu_before
    output = out.decode()
    if "Non-2xx or 3xx responses" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk saw failed requests against {url}:\n{output}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if rate is None or total is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    requests = int(total.group(1))
    return Load(
        requests_per_second=float(rate.group(1)),
        # Requests still in flight at the end were served too (partly); count them.
        cpu_us_per_request=cpu * 1e6 / (requests + CONNECTIONS),
        p50_ms=_latency_ms(output, "50%"),
        p99_ms=_latency_ms(output, "99%"),
        requests=requests,
    )


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def _start_server(env: dict[str, str]) -> tuple[asyncio.subprocess.Process, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench._graphql_server",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 120)
    if not line.startswith(b"port "):
        raise RuntimeError(f"benchmark server did not start: {line!r}")
    return process, int(line.split()[1])


def _server_env(redis_url: str, data_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    # The caller's CADT_* settings must not leak into a measurement.
    env = {key: value for key, value in os.environ.items() if not key.startswith("CADT_")}
    env.update(
        {
            "CADT_REDIS_URL": redis_url,
            "CADT_DATA_DIR": str(data_dir),
            "CADT_SIMULATOR_SEED": "none",
            "CADT_SIMULATOR_BLOCK_SECONDS": "3600",
            "CADT_LOG_LEVEL": "warning",
            **extra,
        }
    )
    return env


def _graphql_body(persisted: bool) -> bytes:
    payload: dict[str, Any] = {"operationName": "Dashboard", "variables": VARIABLES}
    if persisted:
        payload["extensions"] = {"persistedQuery": {"version": 1, "sha256Hash": DASHBOARD_HASH}}
    else:
        payload["query"] = DASHBOARD
    return json.dumps(payload).encode()


async def _check_identical(base: str, graphql_body: bytes, raw_body: bytes) -> int:
    """Both endpoints answer the same bytes (and the GraphQL answer has no errors)."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        headers = {"content-type": "application/json"}
        graphql = await client.post("/graphql", content=graphql_body, headers=headers)
        raw = await client.post(RAW_PATH, content=raw_body, headers=headers)
    graphql.raise_for_status()
    raw.raise_for_status()
    answer = graphql.json()
    if "errors" in answer:
        raise RuntimeError(f"the dashboard query failed: {answer['errors']}")
    edges = answer["data"]["organizations"]["edges"]
    if len(edges) != ORGANIZATIONS:
        raise RuntimeError(f"expected {ORGANIZATIONS} organizations, got {len(edges)}")
    if graphql.content != raw.content:
        raise RuntimeError(
            "raw and GraphQL answers differ:\n"
            f"graphql: {graphql.content[:300]!r}\nraw:     {raw.content[:300]!r}"
        )
    return len(graphql.content)


async def _register(base: str) -> None:
    """APQ: the hash alone misses once, then the document registers it (as Apollo clients do)."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        miss = await client.post("/graphql", content=_graphql_body(True), headers=_JSON)
        codes = [e.get("extensions", {}).get("code") for e in miss.json().get("errors", [])]
        if codes != ["PERSISTED_QUERY_NOT_FOUND"]:
            raise RuntimeError(f"expected PERSISTED_QUERY_NOT_FOUND, got {miss.text[:300]}")
        payload = json.loads(_graphql_body(True))
        payload["query"] = DASHBOARD
        registered = await client.post("/graphql", json=payload)
        registered.raise_for_status()
        if "errors" in registered.json():
            raise RuntimeError(f"registering the operation failed: {registered.text[:300]}")


_JSON = {"content-type": "application/json"}


async def _run(options: Options, *, cached: bool) -> Result:
    name = "graphql_cached_vs_raw_starlette" if cached else "graphql_vs_raw_starlette"
    rounds = options.rounds_or(5)
    seconds = QUICK_SECONDS if options.quick else SECONDS
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is needed for this benchmark: apt-get install -y wrk")
    graphql_body = _graphql_body(persisted=cached)
    raw_body = _graphql_body(persisted=False)
    samples: dict[str, list[Load]] = {"graphql": [], "raw": []}
    with tempfile.TemporaryDirectory(prefix="cadt-bench-") as temporary:
        base_dir = Path(temporary)
        data_dir = base_dir / "data"
        data_dir.mkdir()
        await seed(f"sqlite+aiosqlite:///{(data_dir / 'cadt.sqlite3').resolve()}")
        embedded = EmbeddedRedis(base_dir / "redis")
        redis_url = await embedded.astart()
        extra = (
            {"CADT_PERSISTED_OPERATIONS": "apq", "CADT_RESPONSE_CACHE": "on"}
            if cached
            else {"CADT_PERSISTED_OPERATIONS": "off", "CADT_RESPONSE_CACHE": "off"}
        )
        process, port = await _start_server(_server_env(redis_url, data_dir, extra))
        try:
            server = psutil.Process(process.pid)
            base = f"http://127.0.0.1:{port}"
            if cached:
                await _register(base)
            size = await _check_identical(base, graphql_body, raw_body)
            urls = {"graphql": f"{base}/graphql", "raw": f"{base}{RAW_PATH}"}
            bodies = {"graphql": graphql_body, "raw": raw_body}
            for kind in ("raw", "graphql"):  # warm-up: imports, caches, connections
                await wrk(
                    urls[kind],
                    bodies[kind],
                    seconds=WARMUP_SECONDS,
                    script_dir=base_dir,
                    server=server,
                )
            for round_number in range(rounds):
                order = ("raw", "graphql") if round_number % 2 == 0 else ("graphql", "raw")
                for kind in order:
                    load = await wrk(
                        urls[kind],
                        bodies[kind],
                        seconds=seconds,
                        script_dir=base_dir,
                        server=server,
                    )
                    samples[kind].append(load)
                    print(
                        f"    round {round_number + 1} {kind:7}:"
                        f" {load.requests_per_second:8.1f} req/s"
                        f"  {load.cpu_us_per_request:7.0f} us CPU/request"
                        f"  p50 {load.p50_ms:6.1f} ms  p99 {load.p99_ms:6.1f} ms",
                        flush=True,
                    )
            await _check_identical(base, graphql_body, raw_body)
        finally:
            await stop(process)
            await embedded.astop()

    graphql, raw = samples["graphql"], samples["raw"]
    paired = [
        g.requests_per_second / r.requests_per_second for g, r in zip(graphql, raw, strict=True)
    ]
    return Result(
        name=name,
        value=round(median([g.requests_per_second for g in graphql]), 1),
        unit="req/s",
        baseline=round(median([r.requests_per_second for r in raw]), 1),
        target=CACHED_TARGET if cached else UNCACHED_TARGET,
        higher_is_better=True,
        details={
            "query": DASHBOARD,
            "variables": VARIABLES,
            "sent_as": "persisted operation (APQ hash), response cache hit"
            if cached
            else "full document, no response cache",
            "response_bytes": size,
            "organizations": ORGANIZATIONS,
            "server": "uvicorn, one worker (httptools, uvloop), embedded SQLite + redis-server",
            "load": f"wrk -t1 -c{CONNECTIONS} -d{seconds}s, POST, keep-alive",
            "rounds": rounds,
            "graphql_per_round_rps": [round(g.requests_per_second, 1) for g in graphql],
            "raw_per_round_rps": [round(r.requests_per_second, 1) for r in raw],
            "paired_ratio_median": round(median(paired), 3),
            "graphql_cpu_us_per_request": round(median([g.cpu_us_per_request for g in graphql])),
            "raw_cpu_us_per_request": round(median([r.cpu_us_per_request for r in raw])),
            "cpu_ratio_raw_over_graphql": round(
                median([r.cpu_us_per_request for r in raw])
                / median([g.cpu_us_per_request for g in graphql]),
                3,
            ),
            "graphql_p50_ms": round(median([g.p50_ms for g in graphql]), 1),
            "raw_p50_ms": round(median([r.p50_ms for r in raw]), 1),
            "graphql_p99_ms": round(median([g.p99_ms for g in graphql]), 1),
            "raw_p99_ms": round(median([r.p99_ms for r in raw]), 1),
        },
    )


@benchmark("graphql_vs_raw_starlette")
async def graphql_vs_raw_starlette(options: Options) -> list[Result]:
    """The dashboard query, full document, no response cache, vs the raw route."""
    return [await _run(options, cached=False)]


@benchmark("graphql_cached_vs_raw_starlette")
async def graphql_cached_vs_raw_starlette(options: Options) -> list[Result]:
    """The dashboard query as a persisted operation on a response-cache hit, vs the raw route."""
    return [await _run(options, cached=True)]
