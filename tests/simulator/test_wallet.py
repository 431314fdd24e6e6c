"""Wallet RPC over HTTPS: funding, fees, pending and confirmed transactions, coins, payments."""

from __future__ import annotations

from services.simulator import EmbeddedSimulator
from services.simulator.bech32m import decode_puzzle_hash
from tests.simulator.conftest import Admin, Node

XCH = 10**12


async def test_keys_start_funded_with_twenty_coins(node0: Node, node1: Node):
    balance = (await node0.wallet("get_wallet_balance", {"wallet_id": 1}))["wallet_balance"]
    assert balance == {
        "asset_id": None,
        "confirmed_wallet_balance": 20 * XCH,
        "fingerprint": 1532878573,
        "max_send_amount": 20 * XCH,
        "pending_approval_balance": None,
        "pending_change": 0,
        "pending_coin_removal_count": 0,
        "spendable_balance": 20 * XCH,
        "unconfirmed_wallet_balance": 20 * XCH,
        "unspent_coin_count": 20,
        "wallet_id": 1,
        "wallet_type": 0,
    }
    assert (await node1.wallet("get_logged_in_fingerprint"))["fingerprint"] == 3483944781
    records = (await node0.wallet("get_coin_records", {"wallet_id": 1}))["coin_records"]
    assert len(records) == 20 and all(
        r["spent_height"] == 0 and r["id"].startswith("0x") for r in records
    )
    spendable = await node0.wallet("get_spendable_coins", {"wallet_id": 1})
    assert len(spendable["confirmed_records"]) == 20
    assert spendable["unconfirmed_additions"] == spendable["unconfirmed_removals"] == []
    unknown = await node0.wallet("get_wallet_balance", {"wallet_id": 999})
    assert (unknown["success"], unknown["error"]) == (False, "999")


async def test_a_write_spends_a_coin_pays_the_fee_and_confirms_next_block(
    node1: Node, manual: Admin
):
    created = await node1.ok("create_data_store", {"fee": 3000, "verbose": True})
    names = {tx["name"] for tx in created["txs"]}
    # One launcher spend in the standard wallet, not yet sent (as real Chia 2.7.5 answers).
    assert len(names) == 1 and [tx["wallet_id"] for tx in created["txs"]] == [1]
    assert [(tx["sent"], tx["sent_to"]) for tx in created["txs"]] == [(0, [])]

    pending = (await node1.wallet("get_transactions", {"wallet_id": 1, "confirmed": False}))[
        "transactions"
    ]
    assert len(pending) == 1
    tx = pending[0]
    assert tx["name"] in names and tx["confirmed"] is False and tx["fee_amount"] == 3000
    assert tx["sent_to"][0][1:] == [1, None]
    assert tx["to_address"].startswith("txch1")
    balance = (await node1.wallet("get_wallet_balance", {"wallet_id": 1}))["wallet_balance"]
    assert balance["pending_coin_removal_count"] == 1
    assert balance["spendable_balance"] == 19 * XCH
    assert balance["unconfirmed_wallet_balance"] == 20 * XCH - 1 - 3000
    assert balance["pending_change"] == XCH - 1 - 3000
    spendable = await node1.wallet("get_spendable_coins", {"wallet_id": 1})
    assert len(spendable["confirmed_records"]) == 19
    assert (
        len(spendable["unconfirmed_removals"]) == 1 and len(spendable["unconfirmed_additions"]) == 1
    )

    height = await manual.farm()
    confirmed = (await node1.wallet("get_transactions", {"wallet_id": 1, "confirmed": True}))[
        "transactions"
    ]
    assert [t["confirmed_at_height"] for t in confirmed] == [height]
    assert (await node1.wallet("get_transactions", {"wallet_id": 2}))["transactions"] == []
    balance = (await node1.wallet("get_wallet_balance", {"wallet_id": 1}))["wallet_balance"]
    assert balance["confirmed_wallet_balance"] == 20 * XCH - 1 - 3000
    assert balance["unspent_coin_count"] == 20 and balance["pending_coin_removal_count"] == 0
    spent = [
        r
        for r in (await node1.wallet("get_coin_records", {"wallet_id": 1}))["coin_records"]
        if r["spent_height"]
    ]
    assert [r["spent_height"] for r in spent] == [height]
    wallets = (await node1.wallet("get_wallets"))["wallets"]
    assert [(w["id"], w["type"], w["name"]) for w in wallets] == [
        (1, 0, "Chia Wallet"),
        (2, 11, "DataLayer Wallet"),
    ]
    singletons = await node1.wallet("dl_owned_singletons")
    assert (
        singletons["count"] == 1
        and singletons["singletons"][0]["launcher_id"] == "0x" + created["id"]
    )


async def test_send_transaction_pays_another_key(node0: Node, node1: Node, manual: Admin):
    address = (await node1.wallet("get_next_address", {"wallet_id": 1, "new_address": False}))[
        "address"
    ]
    assert address == (await node1.wallet("get_next_address", {"wallet_id": 1}))["address"]
    fresh = (await node1.wallet("get_next_address", {"wallet_id": 1, "new_address": True}))[
        "address"
    ]
    assert fresh != address and len(decode_puzzle_hash(fresh)) == 64

    sent = await node0.wallet(
        "send_transaction", {"wallet_id": 1, "address": fresh, "amount": 5 * 10**11, "fee": 100}
    )
    assert sent["success"] is True and sent["transaction_id"] == sent["transaction"]["name"]
    await manual.farm()

    received = (await node1.wallet("get_wallet_balance", {"wallet_id": 1}))["wallet_balance"]
    assert received["confirmed_wallet_balance"] == 20 * XCH + 5 * 10**11
    incoming = [
        t
        for t in (await node1.wallet("get_transactions", {"wallet_id": 1}))["transactions"]
        if t["type"] == 0
    ]
    assert [t["amount"] for t in incoming] == [5 * 10**11]
    paid = (await node0.wallet("get_wallet_balance", {"wallet_id": 1}))["wallet_balance"]
    assert paid["confirmed_wallet_balance"] == 20 * XCH - 5 * 10**11 - 100
    bad = await node0.wallet(
        "send_transaction", {"wallet_id": 1, "address": "txch1nope", "amount": 1}
    )
    assert bad["success"] is False and "Invalid address" in bad["error"]


async def test_split_coins_makes_more_coins(node0: Node, manual: Admin):
    coin = (await node0.wallet("get_coin_records", {"wallet_id": 1}))["coin_records"][0]
    split = await node0.wallet(
        "split_coins",
        {
            "wallet_id": 1,
            "target_coin_id": coin["id"],
            "number_of_coins": 5,
            "amount_per_coin": 10**6,
            "fee": 0,
            "push": True,
        },
    )
    assert split["success"] is True and len(split["transactions"]) == 1
    await manual.farm()
    records = (await node0.wallet("get_coin_records", {"wallet_id": 1, "limit": 100}))[
        "coin_records"
    ]
    unspent = [r for r in records if r["spent_height"] == 0]
    assert len(unspent) == 20 - 1 + 5 + 1
    assert sorted(r["amount"] for r in unspent)[:5] == [10**6] * 5
    too_big = await node0.wallet(
        "split_coins",
        {
            "wallet_id": 1,
            "target_coin_id": unspent[-1]["id"],
            "number_of_coins": 3,
            "amount_per_coin": 2 * XCH,
            "fee": 0,
        },
    )
    assert "is less than the total amount of the split" in too_big["error"]


async def test_chain_and_node_information(sim: EmbeddedSimulator, node0: Node, manual: Admin):
    first = await node0.wallet("get_height_info")
    assert set(first) == {
        "height",
        "is_transaction_block",
        "latest_timestamp",
        "prev_transaction_block_height",
        "success",
    }
    await manual.farm(3)
    assert (await node0.wallet("get_height_info"))["height"] == first["height"] + 3
    network = await node0.wallet("get_network_info")
    assert (network["network_name"], network["network_prefix"]) == ("simulator0", "txch")
    assert len(network["genesis_challenge"]) == 64
    assert (await node0.wallet("get_version"))["version"] == "2.7.5"
    connections = (await node0.wallet("get_connections"))["connections"]
    assert connections[0]["peer_host"] == "127.0.0.1"
    assert await node0.wallet("get_sync_status") == {
        "genesis_initialized": True,
        "success": True,
        "synced": True,
        "syncing": False,
    }
    no_dl = await node0.wallet("dl_owned_singletons")
    assert no_dl["success"] is False and no_dl["error"] == "DataLayerWallet not available"
