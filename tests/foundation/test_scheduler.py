"""The interval scheduler enqueues each periodic job once per interval across workers."""

from __future__ import annotations

import asyncio
import contextlib

from jobs.scheduler import Periodic, claim_and_enqueue, run_scheduler


class RecordingQueue:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    async def enqueue(self, function: str, *args: object, job_id: str | None = None) -> str | None:
        self.calls.append((function, job_id))
        return job_id


async def test_two_workers_claim_one_bucket_once(redis_client):
    queue = RecordingQueue()
    task = Periodic("sync_registries", lambda s: 5.0)
    won = await asyncio.gather(
        claim_and_enqueue(redis_client, queue, task, 5.0, 1000.0),
        claim_and_enqueue(redis_client, queue, task, 5.0, 1001.0),
    )
    assert sorted(won) == [False, True]
    assert queue.calls == [("sync_registries", "sync_registries:200")]
    assert await claim_and_enqueue(redis_client, queue, task, 5.0, 1005.0)
    assert queue.calls[-1] == ("sync_registries", "sync_registries:201")


async def test_loop_enqueues_every_interval_on_an_injected_clock(redis_client, make_settings):
    queue = RecordingQueue()
    now = [100.0]
    steps = 0

    async def fake_sleep(seconds: float) -> None:
        nonlocal steps
        steps += 1
        now[0] += seconds
        if steps >= 10:
            raise asyncio.CancelledError

    tasks = [Periodic("a", lambda s: 1.0), Periodic("b", lambda s: 4.0, run_at_start=False)]
    with contextlib.suppress(asyncio.CancelledError):
        await run_scheduler(
            redis=redis_client,
            queue=queue,
            tasks=tasks,
            settings=make_settings(),
            clock=lambda: now[0],
            sleep=fake_sleep,
        )
    a_runs = [job for name, job in queue.calls if name == "a"]
    b_runs = [job for name, job in queue.calls if name == "b"]
    assert a_runs[:3] == ["a:100", "a:101", "a:102"]
    assert len(a_runs) == len(set(a_runs))
    assert b_runs and b_runs[0] == "b:26"  # first run one interval after start
