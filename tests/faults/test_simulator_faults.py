"""Simulator faults during a home-organization creation: it completes, or fails cleanly.

Each test drives createHomeOrganization over GraphQL on a node with its worker, with one of the
simulator's fault switches on: latency spikes, transient wallet errors, rejected transactions,
too few coins. Either the creation completes with exactly the four stores it needs, or it ends
FAILED with the right message and nothing half-written: the lock free, no PENDING row, no home
row, no store launched on chain; a creation started after the fault is cleared then completes
with exactly four stores.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.faults.conftest import ArrivalFaults, eventually, home_rows
from tests.home_organization.conftest import CREATE, CREATION_STATUS, wait_lock_free

pytestmark = pytest.mark.slow


def launched_stores(simulator: Any, key: int = 0) -> list[str]:
    """Stores of `key` whose launch confirmed on chain (a rejected launch never does)."""
    return [
        store.store_id
        for store in simulator.state.stores.values()
        if store.owner == key and store.launched
    ]


async def create(node: Any, name: str) -> dict[str, Any]:
    """createHomeOrganization; its result."""
    data = await node.execute(CREATE, {"input": {"name": name}})
    result: dict[str, Any] = data["createHomeOrganization"]
    return result


async def create_and_wait(node: Any, name: str) -> dict[str, Any]:
    """Create, wait for the job to end; the creation status then."""
    accepted = await create(node, name)
    assert accepted["__typename"] == "OperationAccepted", accepted
    await wait_lock_free(node.services, within=60)
    status: dict[str, Any] = (await node.execute(CREATION_STATUS))["creationStatus"]
    return status


async def assert_created_once(node: Any, simulator: Any, name: str) -> None:
    """One home organization of four stores, the only four launched."""
    rows = await home_rows(node.services.db)
    assert [(row.name, row.org_uid != "PENDING") for row in rows] == [(name, True)]
    home = rows[0]
    stores = {home.org_uid, home.registry_id, home.data_model_version_store_id, home.file_store_id}
    assert sorted(stores) == sorted(launched_stores(simulator))


async def assert_failed_cleanly(node: Any, simulator: Any, status: dict[str, Any], error: str):
    """FAILED with `error`, and nothing of the creation left behind."""
    assert (status["inProgress"], status["state"]) == (False, "FAILED"), status
    assert error in (status["error"] or ""), status
    assert await node.services.lock.status() is None
    assert await home_rows(node.services.db) == []  # no PENDING row either
    assert launched_stores(simulator) == []


async def test_latency_spikes_slow_a_creation_down_and_it_completes_once(
    start_node: Any, fault_settings: Any, simulator: Any
) -> None:
    # reads slower than the RPC timeout are retried by the client; the waits keep polling
    node = await start_node(fault_settings(datalayer_timeout_seconds=0.5))
    faults = simulator.state.faults = ArrivalFaults(
        latency={
            "*": 0.02,
            "create_data_store": 0.3,
            "batch_update": 0.3,
            "wallet.get_transactions": 0.1,
            "get_root": 0.8,  # a spike past the read timeout
        }
    )
    accepted = await create(node, "Slow Chia")
    assert accepted["__typename"] == "OperationAccepted", accepted

    async def timed_out_reads() -> bool:
        return faults.arrived("get_root") >= 6

    await eventually(timed_out_reads, what="get_root timing out")
    faults.latency.pop("get_root")  # the spike ends; the rest stays slow
    await wait_lock_free(node.services, within=60)
    status = (await node.execute(CREATION_STATUS))["creationStatus"]
    assert status["inProgress"] is False and status["error"] is None, status
    await assert_created_once(node, simulator, "Slow Chia")


async def test_transient_wallet_errors_are_retried_and_a_syncing_wallet_is_refused(
    start_node: Any, fault_settings: Any, simulator: Any, admin: Any
) -> None:
    node = await start_node(fault_settings())
    # a syncing wallet: the mutation refuses at once, typed, and writes nothing
    await admin.faults(wallet_unsynced=[0])
    refused = await create(node, "Too Early")
    assert (refused["__typename"], refused["code"], refused["service"]) == (
        "UpstreamError",
        "WALLET_NOT_SYNCED",
        "WALLET",
    ), refused
    assert await node.services.lock.status() is None
    assert (await node.execute(CREATION_STATUS))["creationStatus"]["state"] is None
    await admin.clear_faults()
    # the wallet errors CADT retries (6.2) on store creation and on the data pushes
    await admin.faults(
        fail_next=[
            {"method": "create_data_store", "count": 3, "error": "Wallet needs to be fully synced"},
            {"method": "batch_update", "count": 2, "error": "DataLayerWallet not available"},
        ]
    )
    status = await create_and_wait(node, "Retried")
    assert status["error"] is None, status
    assert (await admin.faults())["fail_next"] == []  # every injected failure was met
    await assert_created_once(node, simulator, "Retried")


async def test_rejected_transactions_are_created_again_or_fail_cleanly(
    start_node: Any, fault_settings: Any, simulator: Any, admin: Any
) -> None:
    node = await start_node(fault_settings())
    # the network rejects every launch: three rounds, then a clean failure
    await admin.faults(reject_transactions=[0])
    status = await create_and_wait(node, "Rejected")
    await assert_failed_cleanly(node, simulator, status, "rejected by the network 3 times")

    # rejected once, then accepted: the second round creates the stores, once
    accepted = await create(node, "Rejected Once")
    assert accepted["__typename"] == "OperationAccepted", accepted

    async def first_round_rejected() -> bool:
        rejected = [op for op in simulator.state.mempool.values() if op.rejected]
        return len(rejected) >= 4

    await eventually(first_round_rejected, what="the first launches rejected")
    await admin.clear_faults()
    await wait_lock_free(node.services, within=60)
    status = (await node.execute(CREATION_STATUS))["creationStatus"]
    assert status["error"] is None, status
    await assert_created_once(node, simulator, "Rejected Once")


async def test_too_few_coins_fail_cleanly_and_a_split_wallet_then_creates(
    start_node: Any, fault_settings: Any, simulator: Any, admin: Any
) -> None:
    node = await start_node(fault_settings(spendable_coins_timeout_seconds=1))
    await admin.faults(spendable_coins={"0": 1})
    status = await create_and_wait(node, "Poor")
    await assert_failed_cleanly(node, simulator, status, "Timeout waiting for 4 coins")
    assert "ensure wallet has sufficient balance" in status["error"]

    await admin.clear_faults()  # coin management split the coins
    status = await create_and_wait(node, "Split")
    assert status["error"] is None, status
    await assert_created_once(node, simulator, "Split")


async def test_a_store_creation_answered_too_late_is_adopted_not_created_twice(
    start_node: Any, fault_settings: Any, simulator: Any
) -> None:
    # create_data_store answers after the RPC read timeout: the gateway cannot know whether
    # Chia created the stores (it did); the run stops without failing and the recovery adopts
    node = await start_node(
        fault_settings(datalayer_timeout_seconds=0.5, clean_up_failed_org_task_interval=3600)
    )
    faults = simulator.state.faults = ArrivalFaults(latency={"create_data_store": 0.8})
    accepted = await create(node, "Answered Late")
    assert accepted["__typename"] == "OperationAccepted", accepted
    await wait_lock_free(node.services, within=60)
    status = (await node.execute(CREATION_STATUS))["creationStatus"]
    # interrupted, not failed: the record waits for the recovery
    assert (status["inProgress"], status["state"], status["error"]) == (
        True,
        "STORES_CREATING",
        None,
    ), status

    async def chia_created_them() -> bool:
        return len(launched_stores(simulator)) == 4

    await eventually(chia_created_them, what="Chia created the four stores")
    faults.latency.clear()
    # the periodic recovery (here enqueued by hand) resumes the creation
    assert await node.services.queue.enqueue("clean_up_failed_org", job_id="recover-now")

    async def created() -> bool:
        rows = await home_rows(node.services.db)
        return len(rows) == 1 and rows[0].org_uid != "PENDING"

    await eventually(created, what="the creation resumed and completed")
    await wait_lock_free(node.services, within=60)
    await assert_created_once(node, simulator, "Answered Late")
    assert faults.arrived("create_data_store") == 4  # adopted: none created again


async def test_a_wallet_with_a_long_history_of_spent_coins_still_creates(
    start_node: Any, fault_settings: Any, simulator: Any
) -> None:
    # a busy node spent many coins (mirrors, fees); a wallet that pages its coin records lists
    # the oldest first: the coin wait must ask for the unspent ones, or it never sees them
    from services.simulator.state import Coin

    key = simulator.state.key(0)
    for number in range(120):
        coin_id = f"{number + 1:064x}"
        key.coins[coin_id] = Coin(
            coin_id=coin_id,
            parent="ab" * 32,
            puzzle_hash=key.puzzle_hashes[0],
            amount=10**12,
            confirmed_height=1,
            spent_height=2,
        )
    node = await start_node(fault_settings(spendable_coins_timeout_seconds=5))
    status = await create_and_wait(node, "Long History")
    assert status["error"] is None, status
    await assert_created_once(node, simulator, "Long History")
