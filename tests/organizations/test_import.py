"""importOrganization over GraphQL/HTTP against the simulator (remote orgs owned by key 1)."""

from __future__ import annotations

import json
from typing import Any

from services.organizations import import_job_id, pending_imports, user_deleted_org_uids
from services.simulator import StuckRule
from tests.organizations.conftest import (
    IMPORT,
    ORGANIZATION,
    eventually,
    make_remote_org,
    synced_locally,
)


async def test_import_of_a_synced_remote_org_answers_the_organization(
    org_node: Any, simulator: Any
):
    remote = make_remote_org(simulator, "Andes Carbon", metadata={"website": "https://a.test"})
    await synced_locally(org_node, [remote.org_uid, remote.data_model_version_store_id])

    data = await org_node.execute(IMPORT, {"orgUid": remote.org_uid})

    result = data["importOrganization"]
    assert result["__typename"] == "OrganizationPayload", result
    assert result["message"].startswith("Successfully imported organization")
    org = result["organization"]
    assert org["orgUid"] == remote.org_uid
    assert org["name"] == "Andes Carbon"
    assert org["icon"] == "https://example.test/icon.svg"
    assert org["isHome"] is False
    assert org["subscribed"] is True
    assert org["dataModelVersion"] == "V2"
    assert org["registryStoreId"] == remote.registry_store_id
    assert org["dataModelVersionStoreId"] == remote.data_model_version_store_id
    assert org["fileStoreId"] == remote.file_store_id
    assert org["metadata"] == {"website": "https://a.test"}
    assert org["orgHash"]
    subscribed = set(await org_node.services.datalayer.subscriptions())
    assert {
        remote.org_uid,
        remote.data_model_version_store_id,
        remote.registry_store_id,
    } <= subscribed
    # The file store is subscribed only with CADT_AUTO_SUBSCRIBE_FILESTORE.
    assert remote.file_store_id not in subscribed


async def test_import_subscribes_first_and_finishes_in_the_background(
    org_node: Any, simulator: Any
):
    remote = make_remote_org(simulator)
    # Key 0 never downloads past generation 0 of the org store until the rule is lifted.
    stuck = StuckRule(store_id=remote.org_uid, generation=0, key=0)
    simulator.state.faults.stuck.append(stuck)

    data = await org_node.execute(IMPORT, {"orgUid": "0x" + remote.org_uid.upper()})

    result = data["importOrganization"]
    assert result["__typename"] == "Done", result
    assert "still syncing" in result["message"]
    assert "background" in result["message"]
    # #1534: the store was subscribed although DataLayer had not synced it.
    assert remote.org_uid in await org_node.services.datalayer.subscriptions()
    assert remote.org_uid in await pending_imports(org_node.services.db)
    one = await org_node.execute(ORGANIZATION, {"orgUid": remote.org_uid})
    assert one["organization"] is None

    simulator.state.faults.stuck.remove(stuck)

    async def organization() -> Any:
        return (await org_node.execute(ORGANIZATION, {"orgUid": remote.org_uid}))["organization"]

    org = await eventually(organization, lambda found: found is not None)
    assert org["name"] == remote.name
    assert org["subscribed"] is True
    assert org["registryStoreId"] == remote.registry_store_id
    assert await pending_imports(org_node.services.db) == {}


async def test_a_recorded_import_is_resumed_by_any_worker(
    start_node: Any, node_settings: Any, simulator: Any
):
    from services.organizations import resume_pending_imports
    from services.organizations.records import in_transaction, save_pending_import

    remote = make_remote_org(simulator)
    settings = node_settings()
    # A node without a worker: the import is recorded, its job only queued.
    api = await start_node(settings, run_worker=False)
    await synced_locally(api, [remote.org_uid, remote.data_model_version_store_id])

    async def record(session: Any) -> None:
        await save_pending_import(session, remote.org_uid, is_home=False, user_request=True)

    # As if the process died after recording the import and before enqueueing its job.
    await in_transaction(api.services.db, record)
    assert await resume_pending_imports(api.services) == 1
    # One job per organization: the queued one is not duplicated.
    assert await resume_pending_imports(api.services) == 0

    worker = await start_node(settings)

    async def organization() -> Any:
        return (await api.execute(ORGANIZATION, {"orgUid": remote.org_uid}))["organization"]

    await eventually(organization, lambda found: found is not None)
    assert await pending_imports(worker.services.db) == {}
    assert import_job_id(remote.org_uid) == f"import-organization:{remote.org_uid}"


async def test_import_of_an_existing_org_is_a_precondition_failure(org_node: Any, simulator: Any):
    remote = make_remote_org(simulator)
    await synced_locally(org_node, [remote.org_uid, remote.data_model_version_store_id])
    first = await org_node.execute(IMPORT, {"orgUid": remote.org_uid})
    assert first["importOrganization"]["__typename"] == "OrganizationPayload"

    again = (await org_node.execute(IMPORT, {"orgUid": remote.org_uid}))["importOrganization"]

    assert again["__typename"] == "PreconditionFailed"
    assert again["code"] == "PRECONDITION_FAILED"
    assert again["message"] == (
        f"organization {remote.org_uid} already exists in the CADT database"
    )


async def test_import_of_a_v1_only_org_is_refused(org_node: Any, simulator: Any):
    remote = make_remote_org(simulator, version_key="v1")
    await synced_locally(org_node, [remote.org_uid, remote.data_model_version_store_id])

    result = (await org_node.execute(IMPORT, {"orgUid": remote.org_uid}))["importOrganization"]

    assert result["__typename"] == "PreconditionFailed"
    assert "does not have V2 data" in result["message"]
    assert "Pure V1 organizations should use the V1 API" in result["message"]
    assert await org_node.execute(ORGANIZATION, {"orgUid": remote.org_uid}) == {
        "organization": None
    }


async def test_import_as_home_requires_owned_stores(org_node: Any, simulator: Any):
    remote = make_remote_org(simulator)

    result = (await org_node.execute(IMPORT, {"orgUid": remote.org_uid, "isHome": True}))[
        "importOrganization"
    ]

    assert result["__typename"] == "PreconditionFailed"
    assert result["message"] == (
        f"orgUid store {remote.org_uid} is not owned by this chia wallet. "
        f"cannot import organization {remote.org_uid} as home"
    )
    # Refused before anything was subscribed.
    assert remote.org_uid not in await org_node.services.datalayer.subscriptions()


async def test_import_as_home_of_owned_stores(org_node: Any, simulator: Any):
    own = make_remote_org(simulator, "Our Registry", owner_key=0)

    result = (await org_node.execute(IMPORT, {"orgUid": own.org_uid, "isHome": True}))[
        "importOrganization"
    ]

    assert result["__typename"] == "OrganizationPayload", result
    assert result["message"].startswith("Successfully imported home organization")
    assert result["organization"]["isHome"] is True
    home = await org_node.execute("{ homeOrganization { orgUid isHome } }")
    assert home["homeOrganization"] == {"orgUid": own.org_uid, "isHome": True}

    other = make_remote_org(simulator, "Second", owner_key=0)
    conflict = (await org_node.execute(IMPORT, {"orgUid": other.org_uid, "isHome": True}))[
        "importOrganization"
    ]
    assert conflict["__typename"] == "Conflict"
    assert conflict["reason"] == "HOME_ALREADY_SET"


async def test_import_validates_the_org_uid_before_any_call(org_node: Any, simulator: Any):
    simulator.state.faults.wallet_unsynced.append(0)  # would fail any upstream check

    result = (await org_node.execute(IMPORT, {"orgUid": "not-a-store"}))["importOrganization"]

    assert result["__typename"] == "ValidationError"
    assert result["code"] == "VALIDATION"
    assert result["field"] == "orgUid"


async def test_import_of_a_store_that_is_not_on_chain(org_node: Any):
    result = (await org_node.execute(IMPORT, {"orgUid": "ab" * 32}))["importOrganization"]

    assert result["__typename"] == "NotFound", result
    assert result["code"] == "NOT_FOUND"
    assert "exists on chain" in result["message"]


async def test_import_removes_the_org_from_user_deleted_orgs(org_node: Any, simulator: Any):
    from services.organizations.records import add_user_deleted_org, in_transaction

    remote = make_remote_org(simulator)
    await synced_locally(org_node, [remote.org_uid, remote.data_model_version_store_id])
    services = org_node.services

    async def deleted(session: Any) -> None:
        await add_user_deleted_org(session, remote.org_uid)
        await add_user_deleted_org(session, "cd" * 32)

    await in_transaction(services.db, deleted)

    result = (await org_node.execute(IMPORT, {"orgUid": remote.org_uid}))["importOrganization"]

    assert result["__typename"] == "OrganizationPayload"
    assert await user_deleted_org_uids(services.db) == {"cd" * 32}


async def test_discovery_import_skips_user_deleted_orgs(org_node: Any, simulator: Any):
    from services.organizations import ImportStatus, import_organization
    from services.organizations.records import add_user_deleted_org, in_transaction

    remote = make_remote_org(simulator)
    services = org_node.services

    async def deleted(session: Any) -> None:
        await add_user_deleted_org(session, remote.org_uid)

    await in_transaction(services.db, deleted)

    outcome = await import_organization(services, remote.org_uid, user_request=False)

    assert outcome.status is ImportStatus.SKIPPED
    assert remote.org_uid not in await services.datalayer.subscriptions()
    assert await user_deleted_org_uids(services.db) == {remote.org_uid}


async def test_metadata_column_keeps_the_meta_prefix(org_node: Any, simulator: Any):
    from services.organizations.records import load_row

    remote = make_remote_org(simulator, metadata={"country": "Peru"})
    await synced_locally(org_node, [remote.org_uid, remote.data_model_version_store_id])
    await org_node.execute(IMPORT, {"orgUid": remote.org_uid})

    row = await load_row(org_node.services.db, remote.org_uid, "v2")

    assert row is not None
    assert json.loads(row.metadata_json) == {"meta_country": "Peru"}
