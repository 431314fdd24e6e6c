"""lock_roundtrip: acquire + update_status + release of the org-operation lock vs raw SET NX + DEL.

Both run against the real Redis at 127.0.0.1:6379 (CADT_BENCH_REDIS_URL overrides; database 13
by default, never the test database). The lock's events go to a bench-only channel that no
gateway listens to, so a running node or test suite on the same Redis sees none of them; the
PUBLISH still happens inside each script, as in production.

Target: the full round trip costs at most 3x the raw two-command round trip.
"""

from __future__ import annotations

import os
import time
import uuid

from redis.asyncio import Redis

import services.oplock
from bench.registry import Options, Result, benchmark
from bench.stats import median, percentile
from services.oplock import HOLDER_KEY, OrgOperationLock

REDIS_URL = os.environ.get("CADT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
BENCH_CHANNEL = "cadt-bench:events:operation"
RAW_KEY = "cadt-bench:raw-lock"
ITERATIONS = 2000
TARGET_RATIO = 3.0


async def _ours(lock: OrgOperationLock) -> float:
    started = time.perf_counter()
    token = await lock.try_acquire("V2 organization creation")
    assert token is not None
    await lock.update_status(token, "Creating stores on blockchain")
    await lock.release(token)
    return time.perf_counter() - started


async def _raw(redis: Redis) -> float:
    started = time.perf_counter()
    assert await redis.set(RAW_KEY, uuid.uuid4().hex, nx=True, px=3_600_000)
    await redis.delete(RAW_KEY)
    return time.perf_counter() - started


@benchmark("lock_roundtrip")
async def lock_roundtrip(options: Options) -> list[Result]:
    """Median seconds per lock round trip against the raw Redis round trip, interleaved."""
    rounds = options.rounds_or(5)
    iterations = 200 if options.quick else ITERATIONS
    # Bench-only channel (see the module docstring), restored for the benchmarks that follow.
    channel, services.oplock.OPERATION_CHANNEL = services.oplock.OPERATION_CHANNEL, BENCH_CHANNEL
    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.delete(HOLDER_KEY, RAW_KEY)
        lock = OrgOperationLock(redis, ttl_seconds=3600)
        for _ in range(50):  # load the scripts (EVALSHA afterwards), warm the connection
            await _ours(lock)
            await _raw(redis)
        ours: list[list[float]] = []
        raw: list[list[float]] = []
        for round_number in range(rounds):
            ours.append([])
            raw.append([])
            for iteration in range(iterations):
                # Interleaved one by one, in alternating order: a burst of load from other
                # processes hits both sides alike, and medians of single round trips ignore it.
                if (round_number + iteration) % 2:
                    raw[-1].append(await _raw(redis))
                    ours[-1].append(await _ours(lock))
                else:
                    ours[-1].append(await _ours(lock))
                    raw[-1].append(await _raw(redis))
        await redis.delete(HOLDER_KEY, RAW_KEY)
    finally:
        services.oplock.OPERATION_CHANNEL = channel
        await redis.aclose()
    all_ours = [sample for samples in ours for sample in samples]
    all_raw = [sample for samples in raw for sample in samples]
    return [
        Result(
            name="lock_roundtrip",
            value=round(median(all_ours) * 1e6, 1),
            unit="us",
            baseline=round(median(all_raw) * 1e6, 1),
            target=TARGET_RATIO,
            details={
                "what": "acquire + update_status + release (3 Lua calls, 3 PUBLISH)",
                "baseline_is": "SET NX PX + DEL (2 commands)",
                "statistic": "median of single round trips, interleaved one by one",
                "redis": REDIS_URL.rsplit("@", 1)[-1],
                "rounds": rounds,
                "iterations_per_round": iterations,
                "ours_median_per_round_us": [round(median(r) * 1e6, 1) for r in ours],
                "raw_median_per_round_us": [round(median(r) * 1e6, 1) for r in raw],
                "ours_p90_us": round(percentile(all_ours, 90) * 1e6, 1),
                "raw_p90_us": round(percentile(all_raw, 90) * 1e6, 1),
            },
        )
    ]
