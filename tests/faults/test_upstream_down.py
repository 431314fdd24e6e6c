"""DataLayer or the wallet down: health says which, reads go on, writes fail typed, jobs resume.

The node talks to each Chia service through its own TCP switch in front of the simulator, so
one service can be cut (connections dropped, new ones refused: a stopped service) while the
other stays up; the last test stops the whole simulator and starts it again on the same ports
and data dir. In every case:
- `health` is DEGRADED: that part DOWN and `ok` false, the others UP;
- dashboard queries are served from the database;
- mutations answer `UpstreamError` naming the service (never a traceback);
- the sync and mirror jobs fail quietly meanwhile and catch up once the service is back.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from services.mirrors import MIRROR_CLAIM_PREFIX
from tests.faults.conftest import (
    SimulatorSwitch,
    TcpSwitch,
    eventually,
    mirrors_per_store_url,
    via,
)
from tests.organizations.conftest import make_remote_org
from tests.sync.harness import insert

pytestmark = pytest.mark.slow

FILE_SERVER = "https://files.example.test"

DASHBOARD = """
query Dashboard($first: Int!) {
  organizations(first: $first) {
    totalCount
    edges { node { orgUid name subscribed
      sync { synced syncRemaining lastProcessedGeneration }
      mirrors { coinId storeId urls } } }
  }
}
"""
HEALTH = """
query { health { ok state database { state } redis { state } datalayer { state detail }
  wallet { state detail } worker { state } } }
"""
IMPORT = """
mutation Import($orgUid: ID!) { importOrganization(orgUid: $orgUid) {
  __typename ... on Error { message code } ... on UpstreamError { service } } }
"""
ADD_MIRROR = """
mutation Add($storeId: ID!, $url: String!) { addMirror(storeId: $storeId, url: $url) {
  __typename ... on Error { message code } ... on UpstreamError { service } } }
"""
CREATE = """
mutation { createHomeOrganization(input: {name: "Upstream Down"}) {
  __typename ... on Error { message code } ... on UpstreamError { service } } }
"""


async def _synced_node(
    start_node: Any, fault_settings: Any, simulator: Any, **overrides: Any
) -> tuple[Any, Any]:
    """A node (with its worker) that imported and synced a remote organization."""
    remote = make_remote_org(simulator, "Remote Registry", registry_generations=3)
    node = await start_node(fault_settings(datalayer_file_server_url=FILE_SERVER, **overrides))
    result = (await node.execute(IMPORT, {"orgUid": remote.org_uid}))["importOrganization"]
    assert result["__typename"] in ("OrganizationPayload", "Done"), result

    async def ready() -> bool:
        page = (await node.execute(DASHBOARD, {"first": 50}))["organizations"]
        synced = [e["node"]["sync"]["synced"] for e in page["edges"]]
        return synced == [True] and set(mirrors_per_store_url(simulator)) == {
            (store, FILE_SERVER) for store in remote.store_ids
        }

    await eventually(ready, what="imported, synced and mirrored")
    return node, remote


async def _dashboard(node: Any, first: int) -> dict[str, Any]:
    """The dashboard query with a page size not asked before (the response cache cannot answer
    it: the database does)."""
    data: dict[str, Any] = (await node.execute(DASHBOARD, {"first": first}))["organizations"]
    return data


def _write_generation(simulator: Any, store_id: str, key: str) -> None:
    """The remote owner commits one more generation (confirmed at once)."""
    state = simulator.state
    store = state.stores[store_id]
    state.height += 1
    store.data.commit(
        store.data.plan([insert(key, {"projectName": key})]),
        timestamp=int(state.now()),
        height=state.height,
    )
    state.dirty = True


async def _caught_up(node: Any, generations: int) -> None:
    async def applied() -> bool:
        page = await _dashboard(node, 40 + generations)
        sync = page["edges"][0]["node"]["sync"]
        return bool(sync["synced"] and sync["lastProcessedGeneration"] == generations)

    await eventually(applied, what=f"generation {generations} applied")


async def test_datalayer_down(
    start_node: Any,
    fault_settings: Any,
    simulator: Any,
    tcp_switches: Any,
) -> None:
    switch: TcpSwitch = await tcp_switches(simulator.port)
    node, remote = await _synced_node(
        start_node,
        fault_settings,
        simulator,
        datalayer_url=via(simulator.datalayer_url(0), switch.port),
    )
    before = await _dashboard(node, 11)

    await switch.cut()
    health = (await node.execute(HEALTH))["health"]
    assert (health["ok"], health["state"]) == (False, "DEGRADED"), health
    assert health["datalayer"]["state"] == "DOWN", health
    assert {health[p]["state"] for p in ("database", "redis", "wallet", "worker")} == {"UP"}
    # reads come from the database
    assert await _dashboard(node, 12) == before
    # writes are refused, typed, naming DataLayer
    other = make_remote_org(simulator, "Not Importable Now")
    imported = (await node.execute(IMPORT, {"orgUid": other.org_uid}))["importOrganization"]
    assert (imported["__typename"], imported["service"]) == ("UpstreamError", "DATALAYER")
    added = (
        await node.execute(ADD_MIRROR, {"storeId": other.registry_store_id, "url": FILE_SERVER})
    )["addMirror"]
    assert (added["__typename"], added["service"]) == ("UpstreamError", "DATALAYER"), added
    created = (await node.execute(CREATE))["createHomeOrganization"]
    assert (created["__typename"], created["service"]) == ("UpstreamError", "DATALAYER")
    # the owner writes meanwhile: the sync job catches up once DataLayer is back
    _write_generation(simulator, remote.registry_store_id, "project|during-outage")

    await switch.restore()
    await _caught_up(node, 4)
    health = (await node.execute(HEALTH))["health"]
    assert (health["ok"], health["state"]) == (True, "UP"), health


def _postponed(caplog: pytest.LogCaptureFixture) -> int:
    return sum("wallet unavailable" in r.getMessage() for r in caplog.records)


async def test_wallet_down(
    start_node: Any,
    fault_settings: Any,
    simulator: Any,
    tcp_switches: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="services.mirrors")
    switch: TcpSwitch = await tcp_switches(simulator.port)
    node, remote = await _synced_node(
        start_node,
        fault_settings,
        simulator,
        wallet_url=via(simulator.wallet_url(0), switch.port),
    )
    before = await _dashboard(node, 11)

    await switch.cut()
    health = (await node.execute(HEALTH))["health"]
    assert (health["ok"], health["state"]) == (False, "DEGRADED"), health
    assert health["wallet"]["state"] == "DOWN", health
    assert {health[p]["state"] for p in ("database", "redis", "datalayer", "worker")} == {"UP"}
    assert await _dashboard(node, 12) == before
    other = make_remote_org(simulator, "Not Importable Now")
    imported = (await node.execute(IMPORT, {"orgUid": other.org_uid}))["importOrganization"]
    assert (imported["__typename"], imported["service"]) == ("UpstreamError", "WALLET")
    added = (
        await node.execute(ADD_MIRROR, {"storeId": other.registry_store_id, "url": FILE_SERVER})
    )["addMirror"]
    assert (added["__typename"], added["service"], added["code"]) == (
        "UpstreamError",
        "WALLET",
        "UPSTREAM_UNAVAILABLE",
    ), added
    created = (await node.execute(CREATE))["createHomeOrganization"]
    assert (created["__typename"], created["service"]) == ("UpstreamError", "WALLET")
    # the sync needs only DataLayer: it goes on while the wallet is down
    _write_generation(simulator, remote.registry_store_id, "project|wallet-outage")
    await _caught_up(node, 4)
    # our mirror of the registry store is gone (spent elsewhere, long after it was added: its
    # claim expired too): the mirror job must add it again, and can only once the wallet is back
    wanted = {(store, FILE_SERVER) for store in remote.store_ids}
    lost = next(
        coin
        for coin, mirror in simulator.state.mirrors.items()
        if mirror.launcher_id == remote.registry_store_id and FILE_SERVER in mirror.urls
    )
    del simulator.state.mirrors[lost]
    redis = node.services.redis
    await redis.delete(*await redis.keys(f"{MIRROR_CLAIM_PREFIX}{remote.registry_store_id}:*"))
    postponed = _postponed(caplog)

    async def two_checks_postponed() -> bool:
        return _postponed(caplog) >= postponed + 2

    await eventually(two_checks_postponed, what="mirror checks postponed")
    assert (remote.registry_store_id, FILE_SERVER) not in mirrors_per_store_url(simulator)

    await switch.restore()

    async def mirrored() -> bool:
        return set(mirrors_per_store_url(simulator)) == wanted

    await eventually(mirrored, what="the lost mirror added again")
    assert mirrors_per_store_url(simulator) == dict.fromkeys(wanted, 1)
    health = (await node.execute(HEALTH))["health"]
    assert (health["ok"], health["state"]) == (True, "UP"), health


async def test_simulator_stopped_and_started_again(
    simulator_switch: SimulatorSwitch,
    start_node: Any,
    fault_settings: Any,
    simulator: Any,
) -> None:
    node, remote = await _synced_node(start_node, fault_settings, simulator)
    before = await _dashboard(node, 11)

    await simulator_switch.stop()
    health = (await node.execute(HEALTH))["health"]
    assert (health["ok"], health["state"]) == (False, "DEGRADED"), health
    assert (health["datalayer"]["state"], health["wallet"]["state"]) == ("DOWN", "DOWN")
    assert await _dashboard(node, 12) == before
    created = (await node.execute(CREATE))["createHomeOrganization"]
    assert created["__typename"] == "UpstreamError", created

    again = await simulator_switch.start()
    _write_generation(again, remote.registry_store_id, "project|after-restart")
    await _caught_up(node, 4)
    health = (await node.execute(HEALTH))["health"]
    assert (health["ok"], health["state"]) == (True, "UP"), health
