"""Organization maintenance jobs: org metadata sync (3.10), reconcile (3.11), discovery (3.12)."""

from __future__ import annotations

import json

import sqlalchemy as sa

from services import org_sync
from services.container import Services
from services.db.engine import Database
from services.db.models import Governance, Meta, Organization
from services.simulator import StuckRule
from tests.sync.harness import (
    LOCAL,
    Chain,
    FakeClock,
    add_organization,
    insert,
    organization,
    upsert,
)


def remote(chain: Chain, name: str = "Remote") -> tuple[str, str, str]:
    """(orgUid, data-model-version store, registry) of an organization owned by key 1."""
    registry = chain.create_store([[insert("unit|a", {"a": 1})]])
    dmv = chain.create_store([[insert("v2", registry)]])
    org = chain.create_store(
        [[insert("name", name), insert("registryId", dmv), insert("meta_web", "x.org")]]
    )
    return org, dmv, registry


async def imported(database: Database, chain: Chain, org: str, dmv: str, registry: str) -> None:
    for store in (org, dmv, registry):
        chain.subscribe(store)
    chain.cycle()
    await add_organization(
        database,
        org_uid=org,
        registry_id=registry,
        name="Remote",
        data_model_version_store_id=dmv,
    )


async def test_meta_sync_reads_the_org_store_at_its_local_root(
    chain: Chain, database: Database, services: Services
):
    org, dmv, registry = remote(chain)
    await imported(database, chain, org, dmv, registry)
    chain.write(org, [upsert("name", "Renamed"), insert("icon", "https://x/icon.png")])
    chain.cycle()

    report = await org_sync.sync_organization_meta(services)

    assert report.updated == [org]
    row = await organization(database, org)
    assert (row.name, row.icon) == ("Renamed", "https://x/icon.png")
    assert json.loads(row.metadata_json) == {"meta_web": "x.org"}
    assert row.registry_id == registry and row.is_home is False
    assert row.org_hash == chain.state.stores[org].data.generations[-1].root
    # unchanged root: nothing to do
    assert (await org_sync.sync_organization_meta(services)).updated == []


async def test_meta_sync_skips_an_org_store_that_is_not_synced(
    chain: Chain, database: Database, services: Services
):
    org, dmv, registry = remote(chain)
    await imported(database, chain, org, dmv, registry)
    chain.state.faults.stuck.append(StuckRule(store_id=org, generation=1, key=LOCAL))
    chain.write(org, [upsert("name", "Later")])
    chain.cycle()
    report = await org_sync.sync_organization_meta(services)
    assert org in report.skipped and "generation 1 of 2" in report.skipped[org]
    assert (await organization(database, org)).name == "Remote"


async def test_reconcile_subscribes_first_and_corrects_the_row(
    chain: Chain, database: Database, services: Services
):
    org, dmv, registry = remote(chain, "Fixed Name")
    # the row is wrong (registry and DMV ids) and DataLayer is not subscribed to anything
    await add_organization(
        database, org_uid=org, registry_id="f" * 64, data_model_version_store_id="e" * 64
    )
    chain.state.key(LOCAL).dl_wallet = True

    # first run: subscribes the org store, which is not downloaded yet: skipped, no waiting
    first = await org_sync.reconcile_organizations(services)
    assert org in first.skipped
    assert org in chain.state.key(LOCAL).subscriptions

    chain.cycle()
    second = await org_sync.reconcile_organizations(services)
    assert org in second.skipped and "data-model-version" in second.skipped[org]

    chain.cycle()
    third = await org_sync.reconcile_organizations(services)
    assert third.updated == [org]
    row = await organization(database, org)
    assert (row.registry_id, row.data_model_version_store_id, row.name) == (
        registry,
        dmv,
        "Fixed Name",
    )
    assert registry in chain.state.key(LOCAL).subscriptions


async def test_reconcile_unsubscribes_the_stores_of_an_unsubscribed_row(
    chain: Chain, database: Database, services: Services
):
    org, dmv, registry = remote(chain)
    await imported(database, chain, org, dmv, registry)
    async with database.transaction() as session:
        await session.execute(sa.update(Organization).values(subscribed=False))
    report = await org_sync.reconcile_organizations(services)
    assert report.updated == [org]
    subscriptions = chain.state.key(LOCAL).subscriptions
    assert all(subscriptions[store].unsubscribe_pending for store in (org, dmv, registry))


async def test_reconcile_leaves_user_deleted_organizations_alone(
    chain: Chain, database: Database, services: Services
):
    org, _dmv, registry = remote(chain)
    await add_organization(database, org_uid=org, registry_id=registry, subscribed=False)
    async with database.transaction() as session:
        session.add(Meta(key="userDeletedOrgs", value=json.dumps([org])))
    chain.state.key(LOCAL).dl_wallet = True
    report = await org_sync.reconcile_organizations(services)
    assert report.updated == [] and report.failed == {}


async def test_reconcile_refuses_a_home_org_this_wallet_does_not_own(
    chain: Chain, database: Database, services: Services
):
    org, _dmv, registry = remote(chain)
    await add_organization(database, org_uid=org, registry_id=registry, is_home=True)
    chain.state.key(LOCAL).dl_wallet = True
    report = await org_sync.reconcile_organizations(services)
    assert report.skipped[org] == "home org store not owned by this wallet"


async def test_reconcile_waits_for_a_synced_wallet(
    chain: Chain, database: Database, services: Services
):
    chain.state.faults.wallet_unsynced.append(LOCAL)
    report = await org_sync.reconcile_organizations(services)
    assert report.skipped == {"*": "wallet not synced"}


async def test_discovery_imports_the_governance_org_list(
    chain: Chain, database: Database, services: Services, clock: FakeClock
):
    listed, _dmv, registry = remote(chain, "Listed")
    deleted, _dmv2, _registry2 = remote(chain, "Deleted")
    known, dmv3, registry3 = remote(chain, "Known")
    await imported(database, chain, known, dmv3, registry3)
    async with database.transaction() as session:
        session.add(
            Governance(
                key="orgList",
                value=json.dumps([{"orgUid": listed}, {"orgUid": deleted}, {"orgUid": known}]),
                confirmed=True,
            )
        )
        session.add(Meta(key="userDeletedOrgs", value=json.dumps([deleted])))

    # first run: subscribed, DataLayer still downloading: the import waits (background job)
    first = await org_sync.sync_default_organizations(services)
    assert first.waiting == [listed]
    assert deleted not in chain.state.key(LOCAL).subscriptions

    # once DataLayer has the stores, the next run imports it
    for _ in range(3):
        chain.cycle()
        report = await org_sync.sync_default_organizations(services)
        if report.imported:
            break
    assert report.imported == [listed]
    row = await organization(database, listed)
    assert (row.name, row.registry_id, row.subscribed) == ("Listed", registry, True)
    assert (await org_sync.sync_default_organizations(services)).imported == []


async def test_discovery_without_an_org_list_does_nothing(services: Services):
    report = await org_sync.sync_default_organizations(services)
    assert report.summary() == "0 imported, 0 waiting, 0 skipped, 0 failed"
