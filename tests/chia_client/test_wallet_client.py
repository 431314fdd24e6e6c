"""Wallet client: request bodies and recorded responses, with amounts beyond 2**53 kept exact."""

from __future__ import annotations

import httpx
import respx

from services.chia import WalletClient
from services.chia.models import WalletType
from tests.chia_client.conftest import HASH_A, HASH_B, STORE_ID, WALLET_URL

BIG = 21000009999999999999  # the simulator wallet's balance: above 2**64, let alone 2**53


def ok(**fields: object) -> httpx.Response:
    """A Chia success response."""
    return httpx.Response(200, json={**fields, "success": True})


def transaction(**overrides: object) -> dict[str, object]:
    """A TransactionRecord as Chia serialises it."""
    record: dict[str, object] = {
        "additions": [
            {"amount": BIG, "parent_coin_info": "0x" + HASH_A, "puzzle_hash": "0x" + HASH_B}
        ],
        "amount": 1000,
        "confirmed": False,
        "confirmed_at_height": 0,
        "created_at_time": 1795905368,
        "fee_amount": 3000,
        "memos": {},
        "name": "0x" + HASH_A.upper(),
        "removals": [],
        "sent": 1,
        "sent_to": [["peer-1", 1, None]],
        "spend_bundle": None,
        "to_address": "txch1abc",
        "to_puzzle_hash": "0x" + HASH_B,
        "trade_id": None,
        "type": 1,
        "valid_times": {},
        "wallet_id": 1,
    }
    record.update(overrides)
    return record


async def test_sync_status(router: respx.MockRouter, wallet: WalletClient) -> None:
    router.post(f"{WALLET_URL}/get_sync_status", json={}).mock(
        return_value=ok(genesis_initialized=True, synced=False, syncing=False)
    )
    status = await wallet.get_sync_status()
    assert not status.synced and not status.syncing and status.genesis_initialized


async def test_wallet_balance_keeps_big_ints_exact(
    router: respx.MockRouter, wallet: WalletClient
) -> None:
    router.post(f"{WALLET_URL}/get_wallet_balance", json={"wallet_id": 1}).mock(
        return_value=ok(
            wallet_balance={
                "asset_id": None,
                "confirmed_wallet_balance": BIG,
                "fingerprint": 1532878573,
                "max_send_amount": BIG,
                "pending_approval_balance": None,
                "pending_change": 0,
                "pending_coin_removal_count": 0,
                "spendable_balance": BIG,
                "unconfirmed_wallet_balance": BIG,
                "unspent_coin_count": 13,
                "wallet_id": 1,
                "wallet_type": 0,
            }
        )
    )
    balance = await wallet.get_wallet_balance()
    assert balance.spendable_balance == BIG
    assert isinstance(balance.spendable_balance, int)
    assert balance.unspent_coin_count == 13


async def test_next_address(router: respx.MockRouter, wallet: WalletClient) -> None:
    router.post(f"{WALLET_URL}/get_next_address", json={"wallet_id": 1, "new_address": False}).mock(
        return_value=ok(address="txch1xyz", wallet_id=1)
    )
    assert await wallet.get_next_address() == "txch1xyz"


async def test_coin_records(router: respx.MockRouter, wallet: WalletClient) -> None:
    router.post(f"{WALLET_URL}/get_coin_records", json={"wallet_id": 1}).mock(
        return_value=ok(
            coin_records=[
                {
                    "amount": 18375000000000000000,
                    "coinbase": True,
                    "confirmed_height": 1,
                    "id": "0x" + HASH_A,
                    "metadata": None,
                    "parent_coin_info": "0x" + HASH_B,
                    "puzzle_hash": "0x" + HASH_B,
                    "spent_height": 0,
                    "type": 0,
                    "wallet_identifier": {"id": 1, "type": 0},
                },
                {"amount": 2625000000000000000, "id": HASH_B.upper(), "spent_height": 2},
                {"amount": 5, "id": HASH_B, "spent_height": None},
            ],
            total_count=None,
        )
    )
    records = (await wallet.get_coin_records()).coin_records
    assert [(r.id, r.amount, r.spent) for r in records] == [
        (HASH_A, 18375000000000000000, False),
        (HASH_B, 2625000000000000000, True),
        (HASH_B, 5, False),
    ]
    assert records[0].confirmed_height == 1


async def test_spendable_coins(router: respx.MockRouter, wallet: WalletClient) -> None:
    router.post(f"{WALLET_URL}/get_spendable_coins", json={"wallet_id": 1}).mock(
        return_value=ok(
            confirmed_records=[
                {
                    "coin": {
                        "amount": 1750000000000,
                        "parent_coin_info": "0x" + HASH_A,
                        "puzzle_hash": "0x" + HASH_B,
                    },
                    "coinbase": True,
                    "confirmed_block_index": 3,
                    "spent_block_index": 0,
                    "timestamp": 1795905386,
                }
            ],
            unconfirmed_additions=[],
            unconfirmed_removals=[],
        )
    )
    [record] = (await wallet.get_spendable_coins()).confirmed_records
    assert record.coin.amount == 1750000000000
    assert record.coin.parent_coin_info == HASH_A


async def test_transactions(router: respx.MockRouter, wallet: WalletClient) -> None:
    router.post(
        f"{WALLET_URL}/get_transactions",
        json={"wallet_id": 2, "sort_key": "RELEVANCE", "confirmed": False},
    ).mock(return_value=ok(transactions=[transaction()], wallet_id=2))
    [tx] = await wallet.get_transactions(2, sort_key="RELEVANCE", confirmed=False)
    assert tx.name == HASH_A
    assert not tx.confirmed
    assert tx.in_mempool and not tx.rejected
    assert tx.sent_to[0].peer == "peer-1"
    assert tx.created_at_time == 1795905368
    assert (tx.wallet_id, tx.fee_amount, tx.to_puzzle_hash) == (1, 3000, HASH_B)
    assert tx.additions[0].amount == BIG


async def test_wallets(router: respx.MockRouter, wallet: WalletClient) -> None:
    router.post(f"{WALLET_URL}/get_wallets", json={}).mock(
        return_value=ok(
            fingerprint=1532878573,
            wallets=[
                {
                    "authorized_providers": [],
                    "data": "",
                    "flags_needed": [],
                    "id": 1,
                    "name": "Chia Wallet",
                    "type": 0,
                },
                {
                    "authorized_providers": [],
                    "data": "",
                    "flags_needed": [],
                    "id": 2,
                    "name": "DataLayer Wallet",
                    "type": 11,
                },
            ],
        )
    )
    wallets = await wallet.get_wallets()
    assert wallets.fingerprint == 1532878573
    assert [w.id for w in wallets.wallets if w.type == WalletType.DATA_LAYER] == [2]


async def test_diagnostics(router: respx.MockRouter, wallet: WalletClient) -> None:
    router.post(f"{WALLET_URL}/get_network_info").mock(
        return_value=ok(genesis_challenge=HASH_A, network_name="simulator0", network_prefix="txch")
    )
    router.post(f"{WALLET_URL}/get_version").mock(return_value=ok(version="2.7.5"))
    router.post(f"{WALLET_URL}/get_connections").mock(
        return_value=ok(
            connections=[
                {"node_id": "0x" + HASH_B, "peer_host": "127.0.0.1", "peer_port": 48111, "type": 1}
            ]
        )
    )
    router.post(f"{WALLET_URL}/get_height_info").mock(
        return_value=ok(
            height=6,
            is_transaction_block=None,
            latest_timestamp=1795905440,
            prev_transaction_block_height=None,
        )
    )
    router.post(f"{WALLET_URL}/get_logged_in_fingerprint").mock(
        return_value=ok(fingerprint=1532878573)
    )
    network = await wallet.get_network_info()
    assert (network.network_name, network.network_prefix, network.genesis_challenge) == (
        "simulator0",
        "txch",
        HASH_A,
    )
    assert await wallet.get_version() == "2.7.5"
    [connection] = await wallet.get_connections()
    assert connection.node_id == HASH_B and connection.peer_port == 48111
    assert (await wallet.get_height_info()).height == 6
    assert await wallet.get_logged_in_fingerprint() == 1532878573


async def test_dl_owned_singletons(router: respx.MockRouter, wallet: WalletClient) -> None:
    router.post(f"{WALLET_URL}/dl_owned_singletons").mock(
        return_value=ok(
            count=1,
            singletons=[
                {
                    "coin_id": "0x" + HASH_A,
                    "confirmed": True,
                    "confirmed_at_height": 4,
                    "generation": 2,
                    "inner_puzzle_hash": "0x" + HASH_B,
                    "launcher_id": "0x" + STORE_ID.upper(),
                    "lineage_proof": {
                        "amount": 1,
                        "inner_puzzle_hash": "0x" + HASH_B,
                        "parent_name": "0x" + HASH_A,
                    },
                    "root": "0x" + HASH_B,
                    "timestamp": 1795905404,
                }
            ],
        )
    )
    [singleton] = await wallet.dl_owned_singletons()
    assert (singleton.launcher_id, singleton.root, singleton.generation) == (STORE_ID, HASH_B, 2)


async def test_writes_send_chia_shapes(router: respx.MockRouter, wallet: WalletClient) -> None:
    delete = router.post(
        f"{WALLET_URL}/delete_unconfirmed_transactions", json={"wallet_id": 2}
    ).mock(return_value=ok())
    split = router.post(
        f"{WALLET_URL}/split_coins",
        json={
            "wallet_id": 1,
            "target_coin_id": HASH_A,
            "number_of_coins": 15,
            "amount_per_coin": 1000001,
            "fee": 3000,
            "push": True,
        },
    ).mock(return_value=ok(transactions=[transaction()], unsigned_transactions=[]))
    send = router.post(
        f"{WALLET_URL}/send_transaction",
        json={"wallet_id": 1, "address": "txch1sub", "amount": 10**12, "fee": 0},
    ).mock(
        return_value=ok(
            transaction=transaction(confirmed=True), transaction_id="0x" + HASH_A, transactions=[]
        )
    )
    await wallet.delete_unconfirmed_transactions(2)
    split_result = await wallet.split_coins(
        target_coin_id="0x" + HASH_A, number_of_coins=15, amount_per_coin=1000001, fee=3000
    )
    sent = await wallet.send_transaction(address="txch1sub", amount=10**12, fee=0)
    assert delete.called and split.called and send.called
    assert [tx.name for tx in split_result.transactions] == [HASH_A]
    assert sent.transaction_id == HASH_A
    assert sent.transaction is not None and sent.transaction.confirmed
