"""Every fault switch, set through the admin route (and at start through the constructor/env)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from services.simulator import FAULTS_ENV, EmbeddedSimulator
from tests.simulator.conftest import Admin, Node, create_store, write

TRANSIENT = "DataLayer Wallet already exists for this key"
UNSYNCED = "Wallet needs to be fully synced before making transactions."


async def test_latency_delays_one_method(node0: Node, admin: Admin):
    await admin.faults(latency={"datalayer.subscriptions": 0.2})
    started = time.perf_counter()
    await node0.ok("subscriptions")
    # a lower bound only: the switch's delay happened (nothing asserts how fast anything is)
    assert time.perf_counter() - started >= 0.2
    await node0.ok("get_routes")  # other methods are not affected: they answer (no error)
    assert (await admin.faults())["latency"] == {"datalayer.subscriptions": 0.2}


async def test_fail_next_fails_exactly_n_calls_with_the_given_error(
    node0: Node, node1: Node, admin: Admin
):
    await admin.faults(
        fail_next=[{"method": "create_data_store", "count": 2, "error": TRANSIENT, "key": 1}]
    )
    for _ in range(2):
        failed = await node1.dl("create_data_store", {"fee": 0})
        assert failed["success"] is False
        assert failed["error"].startswith(f'RPC response failure: {{"error": "{TRANSIENT}"')
    assert (await node1.dl("create_data_store", {"fee": 0}))["success"] is True
    assert (await admin.faults())["fail_next"] == []

    await admin.faults(
        fail_next=[{"method": "get_sync_status", "error": UNSYNCED, "service": "wallet"}]
    )
    assert (await node0.dl("subscriptions"))["success"] is True
    wallet = await node0.wallet("get_sync_status")
    assert (wallet["success"], wallet["error"]) == (False, UNSYNCED)
    await admin.faults(fail_next=[{"method": "subscriptions", "error": "boom", "nested": False}])
    assert (await node0.dl("subscriptions"))["error"] == "boom"


async def test_wallet_unsynced_refuses_transactions(node0: Node, admin: Admin):
    await admin.faults(wallet_unsynced=[0])
    status = await node0.wallet("get_sync_status")
    assert (status["synced"], status["syncing"]) == (False, True)
    created = await node0.dl("create_data_store", {"fee": 0})
    assert UNSYNCED in created["error"] and created["error"].startswith("RPC response failure: ")
    address = (await node0.wallet("get_next_address", {"wallet_id": 1}))["address"]
    sent = await node0.wallet("send_transaction", {"wallet_id": 1, "address": address, "amount": 1})
    assert sent["error"] == UNSYNCED

    await admin.set_faults({})
    assert (await node0.wallet("get_sync_status"))["synced"] is True
    assert (await node0.dl("create_data_store", {"fee": 0}))["success"] is True


async def test_lost_data_shows_generation_zero_on_the_owner(node1: Node, manual: Admin):
    store_id = await create_store(node1, manual)
    root = await write(node1, manual, store_id, [{"action": "insert", "key": "01", "value": "01"}])
    await manual.faults(lost_data=[store_id])
    status = (await node1.ok("get_sync_status", {"id": store_id}))["sync_status"]
    assert status == {
        "generation": 0,
        "root_hash": "0" * 64,
        "target_generation": 1,
        "target_root_hash": root[2:],
    }
    assert (await node1.ok("get_local_root", {"id": store_id}))["hash"] is None
    assert (await node1.ok("get_root", {"id": store_id}))["hash"] == root


async def test_rejected_transactions_never_confirm_until_cleaned_up(node1: Node, manual: Admin):
    store_id = await create_store(node1, manual)
    before = (await node1.ok("get_root", {"id": store_id}))["hash"]
    await manual.faults(reject_transactions=[1])

    await node1.ok(
        "batch_update",
        {
            "id": store_id,
            "changelist": [{"action": "insert", "key": "01", "value": "01"}],
            "fee": 10,
        },
    )
    await manual.farm(3)
    for wallet_id in (1, 2):
        unconfirmed = (
            await node1.wallet("get_transactions", {"wallet_id": wallet_id, "confirmed": False})
        )["transactions"]
        assert len(unconfirmed) == 1
        assert unconfirmed[0]["sent_to"][0][1] == 3 and unconfirmed[0]["sent_to"][0][2]
    assert (await node1.ok("get_root", {"id": store_id}))["hash"] == before
    again = await node1.dl(
        "batch_update",
        {"id": store_id, "changelist": [{"action": "insert", "key": "02", "value": "02"}]},
    )
    assert again["error"] == "Already have a pending root waiting for confirmation."
    assert (await node1.wallet("get_wallet_balance", {"wallet_id": 1}))["wallet_balance"][
        "pending_coin_removal_count"
    ] == 1

    await manual.set_faults({})
    assert (await node1.wallet("delete_unconfirmed_transactions", {"wallet_id": 1}))[
        "success"
    ] is True
    balance = (await node1.wallet("get_wallet_balance", {"wallet_id": 1}))["wallet_balance"]
    assert balance["pending_coin_removal_count"] == 0 and balance["pending_change"] == 0
    dl_pending = await node1.wallet("get_transactions", {"wallet_id": 2, "confirmed": False})
    assert len(dl_pending["transactions"]) == 1
    await node1.wallet("delete_unconfirmed_transactions", {"wallet_id": 2})
    assert (await node1.wallet("get_transactions", {"wallet_id": 2, "confirmed": False}))[
        "transactions"
    ] == []
    assert (await node1.ok("clear_pending_roots", {"store_id": store_id}))["root"][
        "generation"
    ] == 1
    assert (
        await write(node1, manual, store_id, [{"action": "insert", "key": "02", "value": "02"}])
        != before
    )


async def test_too_few_spendable_coins(node0: Node, manual: Admin):
    await manual.faults(spendable_coins={"0": 1})
    balance = (await node0.wallet("get_wallet_balance", {"wallet_id": 1}))["wallet_balance"]
    assert balance["unspent_coin_count"] == 1 and balance["spendable_balance"] == 10**12
    records = (await node0.wallet("get_coin_records", {"wallet_id": 1}))["coin_records"]
    assert len([r for r in records if r["spent_height"] == 0]) == 1
    assert (
        len((await node0.wallet("get_spendable_coins", {"wallet_id": 1}))["confirmed_records"]) == 1
    )

    assert (await node0.dl("create_data_store", {"fee": 0}))["success"] is True
    short = await node0.dl("create_data_store", {"fee": 0})
    assert "Can't select amount higher than our spendable balance" in short["error"]


async def test_admin_faults_replace_merge_clear_and_validate(admin: Admin):
    await admin.set_faults({"wallet_unsynced": [0], "latency": {"get_root": 0.1}})
    merged = await admin.faults(wallet_unsynced=[2], latency={"get_value": 0.2})
    assert merged["wallet_unsynced"] == [0, 2]
    assert merged["latency"] == {"get_root": 0.1, "get_value": 0.2}
    replaced = await admin.set_faults({"reject_transactions": [1]})
    assert replaced["wallet_unsynced"] == [] and replaced["reject_transactions"] == [1]
    cleared = (await admin.http.delete("/faults")).json()
    assert cleared["reject_transactions"] == []
    invalid = await admin.http.post("/faults", json={"no_such_fault": 1})
    assert invalid.status_code == 400
    broken = await admin.http.post("/faults", content=b"{")
    assert broken.status_code == 400


@pytest.mark.sim(
    faults={"wallet_unsynced": [1], "stuck": [{"store_id": "0x" + "ab" * 32, "generation": 1}]}
)
async def test_faults_given_at_start(admin: Admin):
    faults = (await admin.http.get("/faults")).json()
    assert faults["wallet_unsynced"] == [1]
    assert faults["stuck"] == [{"store_id": "ab" * 32, "generation": 1, "key": None}]


async def test_faults_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(FAULTS_ENV, '{"reject_transactions": [0]}')
    async with (
        EmbeddedSimulator(tmp_path / "env", block_seconds=0.05, seed="none", keys=1) as sim,
        httpx.AsyncClient(base_url=sim.admin_url) as client,
    ):
        assert (await client.get("/faults")).json()["reject_transactions"] == [0]
