"""V1 nodes create V1 organizations; a V2 node upgrades the V1 home organization (3.8).

The V1 home organization is made for real: a node with data_model_version v1 creates it on the
simulator, then a V2 node on the same database and key upgrades it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from services.db.models import Organization
from services.upstream import read_store_data
from tests.home_organization.conftest import (
    HOME_ORGANIZATION,
    UPGRADE,
    create,
    lock_free,
    organization_rows,
    owned_store_count,
    record_of,
    recorded_events,
    running_node,
    wait_lock_free,
)


async def _create_v1_home(fast_settings: Any) -> Organization:
    async with running_node(fast_settings(data_model_version="v1")) as v1_node:
        async with recorded_events(v1_node.services) as events:
            result = await create(v1_node, "Legacy Org")
            assert result["__typename"] == "OperationAccepted", result
            assert result["operationStatus"]["label"] == "V1 organization creation"
            await wait_lock_free(v1_node.services)
        assert {e["holder"]["label"] for e in events["operation"]} == {"V1 organization creation"}
        assert await record_of(v1_node.services, "v1") is None
        home = (await v1_node.execute(HOME_ORGANIZATION))["homeOrganization"]
        assert home["dataModelVersion"] == "V1"
        [row] = await organization_rows(v1_node.services)
        assert row.data_model_version == "v1" and row.is_home
        assert await read_store_data(v1_node.services, row.data_model_version_store_id) == {
            "v1": row.registry_id
        }
        return row


async def test_a_v2_node_upgrades_the_v1_home_organization(
    start_home_node: Any, fast_settings: Any, simulator: Any
) -> None:
    v1 = await _create_v1_home(fast_settings)
    assert owned_store_count(simulator) == 4
    node = await start_home_node()
    async with recorded_events(node.services) as events:
        result = (await node.execute(UPGRADE))["upgradeHomeOrganization"]
        assert result["__typename"] == "OperationAccepted", result
        assert result["operationStatus"]["operation"] == "UPGRADE_HOME_ORGANIZATION"
        assert result["operationStatus"]["label"] == "V1 to V2 upgrade"
        assert result["jobId"].startswith("upgrade_home_organization:")
        await wait_lock_free(node.services)
    statuses = [e["holder"]["status"] for e in events["operation"] if e["kind"] == "PROGRESS"]
    for status in (
        "Validating V1 singleton",
        "Creating V2 registry store",
        "Waiting for V2 registry store to confirm on blockchain",
        "Updating singleton store with v2 key",
        "Waiting for data model version update to confirm on blockchain",
        "Adding V2 home organization to database",
    ):
        assert status in statuses
    assert events["operation"][-1]["kind"] == "FINISHED"

    rows = {row.data_model_version: row for row in await organization_rows(node.services)}
    v2 = rows["v2"]
    assert rows["v1"].is_home and v2.is_home and v2.subscribed
    assert v2.org_uid == v1.org_uid
    assert v2.data_model_version_store_id == v1.data_model_version_store_id
    assert v2.file_store_id == v1.file_store_id
    assert (v2.name, v2.icon) == (v1.name, v1.icon)
    assert v2.registry_id and v2.registry_id != v1.registry_id
    assert await read_store_data(node.services, v1.data_model_version_store_id) == {
        "v1": v1.registry_id,
        "v2": v2.registry_id,
    }
    assert owned_store_count(simulator) == 5  # one new store: the V2 registry
    home = (await node.execute(HOME_ORGANIZATION))["homeOrganization"]
    assert (home["orgUid"], home["dataModelVersion"]) == (v1.org_uid, "V2")

    # a second upgrade is refused, and releases the lock
    again = (await node.execute(UPGRADE))["upgradeHomeOrganization"]
    assert again["__typename"] == "PreconditionFailed", again
    assert again["message"] == "V2 organization upgrade is already complete."
    assert await lock_free(node.services)


async def test_an_upgrade_stopped_after_the_singleton_write_is_finished(
    start_home_node: Any, fast_settings: Any, simulator: Any
) -> None:
    v1 = await _create_v1_home(fast_settings)
    node = await start_home_node()
    result = (await node.execute(UPGRADE))["upgradeHomeOrganization"]
    assert result["__typename"] == "OperationAccepted"
    await wait_lock_free(node.services)
    # given the singleton names our V2 registry but the V2 row is gone (stopped before it)
    async with node.services.db.transaction() as session:
        await session.execute(
            sa.delete(Organization).where(Organization.data_model_version == "v2")
        )
    # when
    again = (await node.execute(UPGRADE))["upgradeHomeOrganization"]
    assert again["__typename"] == "OperationAccepted", again
    await wait_lock_free(node.services)
    # then the row is back, and no second registry store was made
    rows = {row.data_model_version: row for row in await organization_rows(node.services)}
    assert rows["v2"].is_home and rows["v2"].org_uid == v1.org_uid
    assert owned_store_count(simulator) == 5


async def test_upgrade_preconditions_release_the_lock(start_home_node: Any) -> None:
    node = await start_home_node()
    result = (await node.execute(UPGRADE))["upgradeHomeOrganization"]
    assert result["__typename"] == "PreconditionFailed", result
    assert result["message"] == "No V1 home organization to upgrade"
    assert await lock_free(node.services)


async def test_upgrade_needs_a_v2_node(start_home_node: Any) -> None:
    node = await start_home_node(data_model_version="v1")
    result = (await node.execute(UPGRADE))["upgradeHomeOrganization"]
    assert result["__typename"] == "PreconditionFailed", result
    assert "data model v2" in result["message"]
    assert await lock_free(node.services)


async def test_upgrade_is_guarded_by_the_lock(start_home_node: Any) -> None:
    node = await start_home_node()
    await node.services.lock.try_acquire("V2 organization creation")
    result = (await node.execute(UPGRADE))["upgradeHomeOrganization"]
    assert result["__typename"] == "Conflict", result
    assert result["reason"] == "OPERATION_IN_PROGRESS"
    assert result["lockStatus"]["operation"] == "CREATE_HOME_ORGANIZATION"  # scenario 4


async def test_upgrade_on_a_read_only_node(start_home_node: Any) -> None:
    node = await start_home_node(read_only=True)
    result = (await node.execute(UPGRADE))["upgradeHomeOrganization"]
    assert result["__typename"] == "ReadOnly", result
