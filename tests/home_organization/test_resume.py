"""A creation survives its worker: stopped mid-way it resumes, killed it is recovered after the TTL.

Both end with exactly one home organization and no store created twice (the simulator's count
of stores owned by the node's key is exactly four).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.creation_state import CreationRecord, CreationState, meta_key
from services.db.models import Organization, utcnow
from services.fencing import read_meta, write_meta
from services.oplock import OrgOperationLock
from tests.home_organization.conftest import (
    create,
    eventually,
    organization_rows,
    owned_store_count,
    record_of,
    recorded_events,
    running_node,
    wait_lock_free,
)


async def test_a_creation_stopped_mid_way_resumes_on_the_next_node(
    fast_settings: Any, simulator: Any, database: Any, redis_client: Any
) -> None:
    settings = fast_settings()
    # store creations take a while, so the stop lands while they are in flight
    simulator.state.faults.latency["create_data_store"] = 0.3
    async with running_node(settings) as first:
        # count the create_data_store calls in flight (the node runs in this event loop)
        datalayer = first.services.datalayer
        original = datalayer.create_data_store
        in_flight: list[int] = []

        async def counting(**kwargs: Any) -> Any:
            in_flight.append(1)
            return await original(**kwargs)

        datalayer.create_data_store = counting
        result = await create(first, "Resumed Org")
        assert result["__typename"] == "OperationAccepted"

        async def all_creating() -> bool:
            return len(in_flight) == 4

        await eventually(all_creating, within=10)
        at_stop = await record_of(first.services)
        assert at_stop is not None and at_stop.state is CreationState.STORES_CREATING
        assert not any(store.id for store in at_stop.stores.values())
        token = (await first.services.lock.holder()).token
    # the first node is gone: its job was cancelled while Chia was creating the stores
    lock = OrgOperationLock(redis_client, ttl_seconds=3600)
    holder = await lock.holder()
    assert holder is not None and holder.token == token  # kept for the re-run of the job
    async with database.session() as session:
        stopped = CreationRecord.from_json(await read_meta(session, meta_key("v2")))
    # the four creations in flight were finished and saved during the stop, none lost
    assert {store.id for store in stopped.stores.values()} == set(simulator.state.stores)
    assert owned_store_count(simulator) == 4

    simulator.state.faults.latency.clear()
    async with running_node(settings) as second:
        # arq runs the cancelled job again; the same token carries on
        await wait_lock_free(second.services)
        rows = await organization_rows(second.services)
        assert [(row.name, row.is_home) for row in rows] == [("Resumed Org", True)]
        assert await record_of(second.services) is None
    assert owned_store_count(simulator) == 4
    assert set(simulator.state.stores) == {
        rows[0].org_uid,
        rows[0].registry_id,
        rows[0].data_model_version_store_id,
        rows[0].file_store_id,
    }


async def test_a_killed_creation_is_recovered_after_the_lock_ttl(
    start_node: Any, fast_settings: Any, simulator: Any, database: Any, redis_client: Any
) -> None:
    # given: a worker died in STORES_CREATING holding the lock; it had saved two store ids
    # and Chia had created a third store whose id it never saved
    dead = OrgOperationLock(redis_client, ttl_seconds=3600)
    dead_token = await dead.try_acquire("V2 organization creation")
    key = simulator.state.key(0)
    saved = [simulator.state.create_store(key, 0)[0] for _ in range(2)]
    unsaved, _ = simulator.state.create_store(key, 0)
    started = utcnow() - timedelta(seconds=5)
    record = CreationRecord(
        state=CreationState.STORES_CREATING,
        name="Recovered Org",
        icon=None,
        data_version="v2",
        api_version="v2",
        started_at=started,
        updated_at=started,
    )
    record.stores["orgUid"].id, record.stores["registry"].id = saved
    async with database.transaction() as session:
        await write_meta(session, meta_key("v2"), record.to_json())
        session.add(Organization(org_uid="PENDING", data_model_version="v2", is_home=True, name=""))

    # when a node starts whose lock TTL is short and whose recovery runs often
    node = await start_node(
        fast_settings(lock_ttl_seconds=1, clean_up_failed_org_task_interval=0.2)
    )
    async with recorded_events(node.services) as events:
        holder = await node.services.lock.holder()
        assert holder is not None and holder.token == dead_token  # not stale yet: untouched

        # then the recovery takes the lock over after the TTL and finishes the creation
        async def done() -> bool:
            return await record_of(node.services) is None and bool(
                await organization_rows(node.services)
            )

        await eventually(done, within=30)
        await wait_lock_free(node.services)
    labels = {e["holder"]["label"] for e in events["operation"]}
    assert labels == {"V2 organization recovery"}
    rows = await organization_rows(node.services)
    assert len(rows) == 1 and rows[0].is_home and rows[0].name == "Recovered Org"
    assert rows[0].org_uid == saved[0] and rows[0].registry_id == saved[1]
    assert unsaved in (rows[0].data_model_version_store_id, rows[0].file_store_id)
    assert owned_store_count(simulator) == 4  # the unsaved store was adopted, not duplicated
    # the stale token cannot release the recovery's lock or write anything any more
    assert await dead.release(dead_token) is False
