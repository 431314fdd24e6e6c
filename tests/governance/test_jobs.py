"""The governance jobs: bootstrap follow-up cadence and the periodic job's recovery duties."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

from jobs.governance import follow_up_delay
from services import governance
from services.config import ServiceSettings
from services.db.models import Governance
from tests.governance.conftest import eventually, governance_of, set_meta


def test_follow_ups_double_from_four_polls_and_stop_at_the_interval():
    services: Any = SimpleNamespace(
        poll_interval=2.0, settings=ServiceSettings(governance_sync_task_interval=1800)
    )

    delays = [follow_up_delay(services, n) for n in range(7)]

    assert delays == [8.0, 16.0, 32.0, 64.0, 128.0, 128.0, 128.0]
    services.settings = ServiceSettings(governance_sync_task_interval=30)
    assert [follow_up_delay(services, n) for n in range(3)] == [8.0, 16.0, 30.0]


class RecordingQueue:
    """A JobQueue that only records what was enqueued."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, str | None]] = []

    async def enqueue(self, function: str, *args: object, job_id: str | None = None) -> str | None:
        self.jobs.append((function, job_id))
        return job_id


async def test_a_governance_node_re_enqueues_unconfirmed_pushes(governance_node: Any):
    await set_meta(governance_node, governance.GOVERNANCE_BODY_ID, "ab" * 32)
    await set_meta(governance_node, governance.MAIN_GOVERNANCE_BODY_ID, "cd" * 32)
    async with governance_node.services.db.transaction() as session:
        session.add(Governance(key="pickList", value="{}", confirmed=False))
    queue = RecordingQueue()
    services = dataclasses.replace(governance_node.services, queue=queue)

    outcome = await governance.run_governance_task(services)

    assert outcome.result is governance.SyncResult.OWNER
    assert queue.jobs == [(governance.PUSH_JOB, governance.PUSH_JOB_ID)]


async def test_an_interrupted_creation_is_resumed_by_the_periodic_job(governance_node: Any):
    # A creation recorded by a mutation whose job was lost (e.g. Redis was flushed).
    record = governance.CreationRecord(version="v2", state=governance.CreationState.CREATING_STORES)
    await set_meta(governance_node, governance.CREATION, record.to_json())

    done = await eventually(
        lambda: governance_of(governance_node),
        lambda g: g["creation"]["state"] in ("COMPLETE", "FAILED"),
    )

    assert done["creation"]["state"] == "COMPLETE", done["creation"]
    assert done["isGovernanceBody"] is True
