"""resyncOrganization and deleteOrganization over GraphQL against the simulator."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa

from services.db.models import Audit, Organization, RegistryRecord, SyncState
from services.events import SYNC_CHANNEL
from services.organizations import ImportStatus, import_organization, user_deleted_org_uids
from services.organizations.records import load_row
from services.simulator import StuckRule
from tests.organizations.conftest import (
    DELETE,
    IMPORT,
    ORGANIZATION,
    RESYNC,
    RemoteOrg,
    eventually,
    make_remote_org,
    synced_locally,
)


async def _imported(node: Any, simulator: Any, **kwargs: Any) -> RemoteOrg:
    remote = make_remote_org(simulator, **kwargs)
    await synced_locally(node, [remote.org_uid, remote.data_model_version_store_id])
    result = (await node.execute(IMPORT, {"orgUid": remote.org_uid}))["importOrganization"]
    assert result["__typename"] == "OrganizationPayload", result
    return remote


async def _add_synced_data(node: Any, remote: RemoteOrg) -> None:
    """Rows the sync engine would have written for the organization."""
    async with node.services.db.transaction() as session:
        session.add(
            Audit(
                org_uid=remote.org_uid,
                registry_id=remote.registry_store_id,
                generation=0,
                root_hash="00" * 32,
                type="CREATE REGISTRY",
            )
        )
        session.add(
            RegistryRecord(
                org_uid=remote.org_uid, table="project", key="p0", record="{}", generation=1
            )
        )
        session.add(SyncState(org_uid=remote.org_uid, registry_id=remote.registry_store_id))


async def _counts(node: Any, org_uid: str) -> dict[str, int]:
    async with node.services.db.session() as session:
        counts = {}
        for name, model in (
            ("audit", Audit),
            ("records", RegistryRecord),
            ("sync_state", SyncState),
            ("organizations", Organization),
        ):
            counts[name] = int(
                await session.scalar(
                    sa.select(sa.func.count()).select_from(model).where(model.org_uid == org_uid)
                )
                or 0
            )
        return counts


async def _subscriptions(node: Any) -> set[str]:
    return set(await node.services.datalayer.subscriptions())


# ------------------------------------------------------------------------------ resync


async def test_resync_of_a_synced_org_resets_its_synced_data(
    start_node: Any, node_settings: Any, simulator: Any
):
    # No sync run after start-up: the rows below stay as written until the resync.
    org_node = await start_node(node_settings(sync_registries_task_interval=3600))
    remote = await _imported(org_node, simulator)
    await synced_locally(org_node, [remote.registry_store_id])
    await _add_synced_data(org_node, remote)

    async with org_node.services.events.subscribe(SYNC_CHANNEL) as events:
        result = (await org_node.execute(RESYNC, {"orgUid": remote.org_uid}))["resyncOrganization"]

        # syncProgress subscribers hear of the reset (no generation processed any more).
        async def reset_event() -> dict[str, Any]:
            while True:
                event = await events.get()
                if (
                    event
                    and event["orgUid"] == remote.org_uid
                    and event["lastProcessedGeneration"] is None
                ):
                    return event

        event = await asyncio.wait_for(reset_event(), 10)
    assert event["synced"] is False

    assert result["__typename"] == "OrganizationPayload", result
    assert result["message"] == "Resyncing organization process initiated"
    assert result["organization"]["registryHash"] == "0"
    assert result["organization"]["registryStoreId"] == remote.registry_store_id
    assert await _counts(org_node, remote.org_uid) == {
        "audit": 0,
        "records": 0,
        "sync_state": 0,
        "organizations": 1,
    }


async def test_resync_is_refused_while_datalayer_has_not_synced_the_registry(
    org_node: Any, simulator: Any
):
    # Key 0 holds generation 1 of the registry's 2 until the rule is lifted.
    remote = make_remote_org(simulator)
    stuck = StuckRule(store_id=remote.registry_store_id, generation=1, key=0)
    simulator.state.faults.stuck.append(stuck)
    await synced_locally(org_node, [remote.org_uid, remote.data_model_version_store_id])
    imported = (await org_node.execute(IMPORT, {"orgUid": remote.org_uid}))["importOrganization"]
    assert imported["__typename"] == "OrganizationPayload"
    await _add_synced_data(org_node, remote)

    result = (await org_node.execute(RESYNC, {"orgUid": remote.org_uid}))["resyncOrganization"]

    assert result["__typename"] == "PreconditionFailed", result
    assert "has not synced its registry store" in result["message"]
    assert "Nothing was deleted" in result["message"]
    assert await _counts(org_node, remote.org_uid) == {
        "audit": 1,
        "records": 1,
        "sync_state": 1,
        "organizations": 1,
    }
    row = await load_row(org_node.services.db, remote.org_uid, "v2")
    assert row is not None and row.registry_hash != "0"

    simulator.state.faults.stuck.remove(stuck)
    await synced_locally(org_node, [remote.registry_store_id])
    done = (await org_node.execute(RESYNC, {"orgUid": remote.org_uid}))["resyncOrganization"]
    assert done["__typename"] == "OrganizationPayload"
    assert (await _counts(org_node, remote.org_uid))["audit"] == 0


async def test_resync_of_an_unsubscribed_org_is_refused(org_node: Any, simulator: Any):
    remote = await _imported(org_node, simulator)
    unsubscribe = """mutation($orgUid: ID!) { unsubscribeOrganization(orgUid: $orgUid) {
        __typename } }"""
    await org_node.execute(unsubscribe, {"orgUid": remote.org_uid})

    result = (await org_node.execute(RESYNC, {"orgUid": remote.org_uid}))["resyncOrganization"]

    assert result["__typename"] == "PreconditionFailed"
    assert "not subscribed" in result["message"]


async def test_resync_of_an_unknown_org_is_not_found(org_node: Any):
    result = (await org_node.execute(RESYNC, {"orgUid": "ab" * 32}))["resyncOrganization"]

    assert result["__typename"] == "NotFound"
    assert result["message"] == f"organization {'ab' * 32} not found"


# ------------------------------------------------------------------------------ delete


async def test_delete_removes_everything_and_remembers_the_deletion(org_node: Any, simulator: Any):
    remote = await _imported(org_node, simulator)
    await _add_synced_data(org_node, remote)
    services = org_node.services

    result = (await org_node.execute(DELETE, {"orgUid": remote.org_uid}))["deleteOrganization"]

    assert result["__typename"] == "Done", result
    assert result["message"] == (
        f"Removed all organization records for {remote.org_uid} and unsubscribed from its "
        "datalayer stores"
    )
    assert await _counts(org_node, remote.org_uid) == {
        "audit": 0,
        "records": 0,
        "sync_state": 0,
        "organizations": 0,
    }
    assert await user_deleted_org_uids(services.db) == {remote.org_uid}
    stores = {remote.org_uid, remote.data_model_version_store_id, remote.registry_store_id}
    await eventually(lambda: _subscriptions(org_node), lambda ids: not (ids & stores))
    assert (await org_node.execute(ORGANIZATION, {"orgUid": remote.org_uid})) == {
        "organization": None
    }

    # Governance discovery leaves it deleted (#1536) ...
    skipped = await import_organization(services, remote.org_uid, user_request=False)
    assert skipped.status is ImportStatus.SKIPPED
    # ... an explicit import brings it back and forgets the deletion.
    await synced_locally(org_node, [remote.org_uid, remote.data_model_version_store_id])
    back = (await org_node.execute(IMPORT, {"orgUid": remote.org_uid}))["importOrganization"]
    assert back["__typename"] == "OrganizationPayload", back
    assert await user_deleted_org_uids(services.db) == set()


async def test_delete_of_the_home_org_keeps_its_stores(org_node: Any, simulator: Any):
    own = make_remote_org(simulator, "Ours", owner_key=0)
    home = (await org_node.execute(IMPORT, {"orgUid": own.org_uid, "isHome": True}))[
        "importOrganization"
    ]
    assert home["__typename"] == "OrganizationPayload", home
    subscribed_before = await _subscriptions(org_node)

    result = (await org_node.execute(DELETE, {"orgUid": own.org_uid}))["deleteOrganization"]

    assert result["__typename"] == "Done"
    assert result["message"].startswith("Your home organization was deleted from this instance")
    assert await _subscriptions(org_node) == subscribed_before
    assert (await org_node.execute("{ homeOrganization { orgUid } }")) == {"homeOrganization": None}


async def test_delete_of_an_unknown_org_is_not_found(org_node: Any):
    result = (await org_node.execute(DELETE, {"orgUid": "ab" * 32}))["deleteOrganization"]

    assert result["__typename"] == "NotFound"
    assert await user_deleted_org_uids(org_node.services.db) == set()


async def test_delete_cancels_a_pending_import(org_node: Any, simulator: Any):
    from services.organizations import pending_imports

    remote = make_remote_org(simulator)
    stuck = StuckRule(store_id=remote.org_uid, generation=0, key=0)
    simulator.state.faults.stuck.append(stuck)
    waiting = (await org_node.execute(IMPORT, {"orgUid": remote.org_uid}))["importOrganization"]
    assert waiting["__typename"] == "Done"

    result = (await org_node.execute(DELETE, {"orgUid": remote.org_uid}))["deleteOrganization"]

    # No row yet: the waiting import is cancelled, remembered as deleted, unsubscribed.
    assert result["__typename"] == "Done", result
    assert result["message"].startswith("Cancelled the pending import")
    assert await pending_imports(org_node.services.db) == {}
    assert await user_deleted_org_uids(org_node.services.db) == {remote.org_uid}
    await eventually(lambda: _subscriptions(org_node), lambda ids: remote.org_uid not in ids)
    simulator.state.faults.stuck.remove(stuck)


async def test_concurrent_deletes_remember_every_organization(org_node: Any):
    from services.organizations import delete_organization

    uids = [f"{number:064x}" for number in range(1, 7)]
    async with org_node.services.db.transaction() as session:
        for org_uid in uids:
            session.add(Organization(org_uid=org_uid, name=org_uid[-4:], is_home=False))

    # Both engines serialise the read-modify-write of userDeletedOrgs (row lock on PostgreSQL,
    # busy retry on SQLite), so no deletion is lost.
    services = org_node.services
    outcomes = await asyncio.gather(*(delete_organization(services, uid) for uid in uids))

    assert all(outcome.organization is None for outcome in outcomes)
    assert await user_deleted_org_uids(services.db) == set(uids)
    for org_uid in uids:
        assert (await _counts(org_node, org_uid))["organizations"] == 0
