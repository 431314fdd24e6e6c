"""Query.operationStatus and Query.creationStatus over HTTP (domain 2.5; scenarios 13-15)."""

from __future__ import annotations

from datetime import timedelta

from schema.scalars import format_datetime
from services.creation_state import CreationRecord, CreationState
from services.domain import utcnow
from tests.lock.conftest import save_creation

OPERATION_STATUS = "{ operationStatus { operation label status startedAt elapsedSeconds } }"
CREATION_STATUS = """{ creationStatus {
  inProgress state message progress retryCount maxRetries startedAt updatedAt error
  stores { orgUid { id confirmed dataWritten } registry { id confirmed dataWritten }
           dataModelVersion { id confirmed dataWritten } fileStore { id confirmed dataWritten } }
  liveStatus { operation label status startedAt elapsedSeconds }
} }"""


async def test_operation_status_is_null_while_the_lock_is_free(node):
    assert (await node.execute(OPERATION_STATUS)) == {"operationStatus": None}


async def test_operation_status_shows_the_holder(node):
    lock = node.services.lock
    token = await lock.try_acquire("V1 to V2 upgrade")
    await lock.update_status(token, "Creating registry store")
    status = (await node.execute(OPERATION_STATUS))["operationStatus"]
    snapshot = await lock.status()
    assert status == {
        "operation": "UPGRADE_HOME_ORGANIZATION",
        "label": "V1 to V2 upgrade",
        "status": "Creating registry store",
        "startedAt": format_datetime(snapshot.started_at),
        "elapsedSeconds": status["elapsedSeconds"],
    }
    assert isinstance(status["elapsedSeconds"], int) and status["elapsedSeconds"] >= 0
    await lock.release(token)
    assert (await node.execute(OPERATION_STATUS)) == {"operationStatus": None}


async def test_scenario_15_creation_status_idle(node):
    status = (await node.execute(CREATION_STATUS))["creationStatus"]
    assert status["inProgress"] is False
    assert status["state"] is None
    assert status["message"] == "No organization creation in progress"
    assert status["liveStatus"] is None
    assert status["stores"] is None
    assert status["maxRetries"] == node.settings.creation_max_retries


async def test_scenario_13_creation_status_with_live_status_only(node):
    lock = node.services.lock
    token = await lock.try_acquire("V1 to V2 upgrade")
    await lock.update_status(token, "Creating registry store")
    status = (await node.execute(CREATION_STATUS))["creationStatus"]
    assert status["inProgress"] is True
    assert status["state"] is None
    assert status["message"] == "V1 to V2 upgrade: Creating registry store"
    assert status["liveStatus"]["operation"] == "UPGRADE_HOME_ORGANIZATION"
    assert status["liveStatus"]["label"] == "V1 to V2 upgrade"
    assert status["liveStatus"]["status"] == "Creating registry store"


async def test_scenario_14_creation_status_both_sources(node):
    record = CreationRecord(
        state=CreationState.STORES_CREATING,
        name="Org",
        icon=None,
        data_version="v2",
        api_version="v2",
    )
    record.stores["orgUid"].id = "a" * 64
    record.stores["orgUid"].confirmed = True
    await save_creation(node.services, record)
    token = await node.services.lock.try_acquire("V2 organization creation")
    await node.services.lock.update_status(token, "Creating stores on blockchain")

    status = (await node.execute(CREATION_STATUS))["creationStatus"]
    assert status["state"] == "STORES_CREATING"
    assert status["inProgress"] is True
    assert status["message"] == "Creating stores on blockchain (1/4 created, 1/4 confirmed)"
    assert status["progress"] == 12
    assert status["stores"]["orgUid"] == {"id": "a" * 64, "confirmed": True, "dataWritten": False}
    assert status["stores"]["registry"] == {"id": None, "confirmed": False, "dataWritten": False}
    assert status["liveStatus"]["operation"] == "CREATE_HOME_ORGANIZATION"
    assert status["liveStatus"]["label"] == "V2 organization creation"
    assert status["startedAt"] == format_datetime(record.started_at)


async def test_stale_and_failed_creations(node):
    stale = CreationRecord(
        state=CreationState.DATA_PUSHING,
        name="Org",
        icon=None,
        data_version="v2",
        api_version="v2",
        started_at=utcnow() - timedelta(minutes=31),
    )
    await save_creation(node.services, stale)
    status = (await node.execute(CREATION_STATUS))["creationStatus"]
    assert (status["inProgress"], status["progress"]) == (False, -1)
    assert status["message"].startswith("Organization creation appears stale")

    failed = CreationRecord(
        state=CreationState.FAILED,
        name="Org",
        icon=None,
        data_version="v2",
        api_version="v2",
        error="Failed to create stores: RpcError",
        retry_count=3,
    )
    await save_creation(node.services, failed)
    status = (await node.execute(CREATION_STATUS))["creationStatus"]
    assert status["state"] == "FAILED"
    assert status["progress"] == -1
    assert status["retryCount"] == 3
    assert status["error"] == "Failed to create stores: RpcError"
    assert status["message"] == "Organization creation failed: Failed to create stores: RpcError"


async def test_creation_status_reads_the_node_data_model_version(start_node, node_settings):
    node = await start_node(node_settings(data_model_version="v1"), run_worker=False)
    v2 = CreationRecord(
        state=CreationState.INITIALIZING,
        name="Org",
        icon=None,
        data_version="v2",
        api_version="v2",
    )
    services = node.services
    # Written under the v2 key directly: a v1 node must not see it.
    from services.creation_state import meta_key
    from services.fencing import write_meta

    async with services.db.transaction() as session:
        await write_meta(session, meta_key("v2"), v2.to_json())
    status = (await node.execute(CREATION_STATUS))["creationStatus"]
    assert status["state"] is None
