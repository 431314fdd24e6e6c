"""createHomeOrganization end to end over HTTP against the simulator (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from services.upstream import read_store_data
from tests.home_organization.conftest import (
    CREATION_STATUS,
    HOME_ORGANIZATION,
    create,
    eventually,
    organization_rows,
    owned_store_count,
    record_of,
    recorded_events,
    wait_lock_free,
)


async def test_create_end_to_end(home_node: Any, simulator: Any) -> None:
    services = home_node.services
    async with recorded_events(services) as events:
        # when
        result = await create(home_node, "Climate Org", "https://example.org/icon.png")
        # then
        assert result["__typename"] == "OperationAccepted", result
        assert result["jobId"].startswith("create_home_organization:orglock-")
        assert result["operationStatus"]["operation"] == "CREATE_HOME_ORGANIZATION"
        assert result["operationStatus"]["label"] == "V2 organization creation"
        assert result["operationStatus"]["status"] == "Starting..."
        await wait_lock_free(services)

    statuses = [e["holder"]["status"] for e in events["operation"] if e["kind"] == "PROGRESS"]
    # the status repeats once with the orgUid as soon as the org store exists
    assert [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s] == [
        "Waiting for spendable coins",
        "Creating stores on blockchain",
        "Waiting for stores to confirm on blockchain",
        "Writing data to stores",
        "Finalizing organization record",
        "Organization creation complete",
    ]
    assert events["operation"][-1]["kind"] == "FINISHED"
    assert events["operation"][-1]["holder"]["org_uid"]
    states = [e["state"] for e in events["creation"]]
    for state in ("INITIALIZING", "STORES_CREATING", "STORES_CONFIRMED", "DATA_PUSHING"):
        assert state in states
    assert states[-1] is None  # cleared: COMPLETE is never persisted
    assert states.index("STORES_CREATING") < states.index("DATA_PUSHING")

    assert await record_of(services) is None
    rows = await organization_rows(services)
    assert len(rows) == 1
    home = rows[0]
    assert home.is_home and home.subscribed and home.data_model_version == "v2"
    assert home.org_uid != "PENDING"
    store_ids = {home.org_uid, home.registry_id, home.data_model_version_store_id}
    store_ids.add(home.file_store_id)
    assert len(store_ids) == 4 and all(store_ids)
    assert owned_store_count(simulator) == 4

    data = await read_store_data(services, home.org_uid)
    assert data == {
        "fileStoreId": home.file_store_id,
        "icon": "https://example.org/icon.png",
        "name": "Climate Org",
        "registryId": home.data_model_version_store_id,
    }
    assert await read_store_data(services, home.data_model_version_store_id) == {
        "v2": home.registry_id
    }
    assert home.org_hash and home.org_hash != "0" * 64

    status = (await home_node.execute(CREATION_STATUS))["creationStatus"]
    assert status["inProgress"] is False and status["state"] is None
    assert status["liveStatus"] is None
    organization = (await home_node.execute(HOME_ORGANIZATION))["homeOrganization"]
    assert organization["orgUid"] == home.org_uid
    assert organization["dataModelVersion"] == "V2"
    assert organization["registryStoreId"] == home.registry_id


async def test_a_second_create_during_a_creation_conflicts_with_the_live_status(
    home_node: Any, simulator: Any
) -> None:
    # given a creation that is busy creating stores
    simulator.state.faults.latency["create_data_store"] = 0.5
    first = await create(home_node, "First")
    assert first["__typename"] == "OperationAccepted"
    await eventually(
        lambda: _status_is(home_node.services, "Creating stores on blockchain"), within=10
    )
    # when
    second = await create(home_node, "Second")
    # then
    assert second["__typename"] == "Conflict", second
    assert second["code"] == "CONFLICT"
    # the persisted creation is checked first (domain 2.4): CREATION_IN_PROGRESS, with the
    # live operationStatus since the creation holds the lock now
    assert second["reason"] == "CREATION_IN_PROGRESS"
    assert "V2 organization creation" in second["message"]
    assert second["lockStatus"]["label"] == "V2 organization creation"
    assert second["lockStatus"]["status"] == "Creating stores on blockchain"
    assert second["lockStatus"]["elapsedSeconds"] >= 0
    simulator.state.faults.latency.clear()
    await wait_lock_free(home_node.services)
    rows = await organization_rows(home_node.services)
    assert [row.name for row in rows] == ["First"]


async def _status_is(services: Any, status: str) -> bool:
    snapshot = await services.lock.status()
    return snapshot is not None and snapshot.status == status
