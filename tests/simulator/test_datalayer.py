"""DataLayer over HTTPS on one key: confirmation, pending roots, reads, diffs, errors, mirrors."""

from __future__ import annotations

import pytest

from services.simulator import EmbeddedSimulator
from tests.simulator.conftest import (
    Admin,
    Node,
    confirmed_root,
    create_store,
    hx,
    wait_until,
    write,
)

ZEROS = "0x" + "0" * 64
UNKNOWN = "ab" * 32


async def test_store_confirms_at_the_next_block(node1: Node, admin: Admin):
    store_id = (await node1.ok("create_data_store", {"fee": 0}))["id"]
    assert len(store_id) == 64 and not store_id.startswith("0x")

    root = await wait_until(lambda: confirmed_root(node1, store_id))
    assert root == {
        "confirmed": True,
        "hash": ZEROS,
        "success": True,
        "timestamp": root["timestamp"],
    }
    assert (await node1.ok("get_owned_stores"))["store_ids"] == [store_id]
    assert (await node1.ok("get_keys_values", {"id": store_id}))["keys_values"] == []


async def test_unconfirmed_store_is_unreadable_and_blocks_writes(node1: Node, manual: Admin):
    store_id = (await node1.ok("create_data_store", {"fee": 0}))["id"]

    root = await node1.dl("get_root", {"id": store_id})
    assert root["success"] is False
    assert root["error"] == f"Failed to get root for {store_id}"
    assert root["structuredError"] == {"code": "UNKNOWN", "data": {}, "message": root["error"]}
    assert isinstance(root["traceback"], str)
    assert (await node1.ok("get_owned_stores"))["store_ids"] == []
    # Nothing is committed locally before the launch confirms (real Chia 2.7.5, contract suite).
    local = await node1.dl("get_local_root", {"id": store_id})
    assert local["error"] == f"No generations found for store ID: {store_id}"
    pending = await node1.dl(
        "batch_update",
        {"id": store_id, "changelist": [{"action": "insert", "key": "6b30", "value": "7630"}]},
    )
    assert pending["error"] == "Already have a pending root waiting for confirmation."

    await manual.farm()
    assert (await node1.ok("get_root", {"id": store_id}))["hash"] == ZEROS


async def test_pending_update_is_invisible_until_the_next_block(node1: Node, manual: Admin):
    store_id = await create_store(node1, manual)
    before = await node1.ok("get_root", {"id": store_id})
    changes = [{"action": "insert", "key": f"6b3{i}", "value": f"763{i}"} for i in (1, 2, 3)]

    tx = await node1.ok("batch_update", {"id": store_id, "changelist": changes, "fee": 0})
    assert tx["tx_id"].startswith("0x") and len(tx["tx_id"]) == 66

    assert await node1.ok("get_root", {"id": store_id}) == before
    assert (await node1.ok("get_keys_values", {"id": store_id}))["keys_values"] == []
    assert (await node1.ok("get_local_root", {"id": store_id}))["hash"] is None
    second = await node1.dl(
        "batch_update",
        {"id": store_id, "changelist": [{"action": "insert", "key": "6b34", "value": "7634"}]},
    )
    assert second["error"] == "Already have a pending root waiting for confirmation."

    await manual.farm()
    after = await node1.ok("get_root", {"id": store_id})
    assert after["hash"] != before["hash"] and after["confirmed"] is True
    pairs = (await node1.ok("get_keys_values", {"id": store_id}))["keys_values"]
    assert sorted((p["key"], p["value"]) for p in pairs) == [
        ("0x6b31", "0x7631"),
        ("0x6b32", "0x7632"),
        ("0x6b33", "0x7633"),
    ]
    assert all(p["atom"] is None and p["hash"].startswith("0x") for p in pairs)
    assert (await node1.ok("get_local_root", {"id": store_id}))["hash"] == after["hash"]


async def test_reads_use_chias_hex_formats_and_diffs_show_upserts(node1: Node, manual: Admin):
    store_id = await create_store(node1, manual)
    root_1 = await write(
        node1,
        manual,
        store_id,
        [
            {"action": "insert", "key": "6b31", "value": "7631"},
            {"action": "insert", "key": "0x6b32", "value": "0x7632"},
            {"action": "insert", "key": "6b33", "value": "7633"},
        ],
    )
    root_2 = await write(
        node1,
        manual,
        store_id,
        [
            {"action": "delete", "key": "6b33"},
            {"action": "upsert", "key": "6b31", "value": "aa31"},
        ],
    )

    diff = (
        await node1.ok("get_kv_diff", {"id": store_id, "hash_1": root_1, "hash_2": root_2[2:]})
    )["diff"]
    assert sorted((d["type"], d["key"], d["value"]) for d in diff) == [
        ("DELETE", "6b31", "7631"),
        ("DELETE", "6b33", "7633"),
        ("INSERT", "6b31", "aa31"),
    ]
    first = (await node1.ok("get_kv_diff", {"id": store_id, "hash_1": ZEROS, "hash_2": root_1}))[
        "diff"
    ]
    assert {d["type"] for d in first} == {"INSERT"} and len(first) == 3
    missing = await node1.dl("get_kv_diff", {"id": store_id, "hash_1": root_2, "hash_2": UNKNOWN})
    assert missing["error"] == f"Unable to diff: Can't find keys and values for {UNKNOWN}"

    assert (await node1.ok("get_value", {"id": store_id, "key": "0x6b31"}))["value"] == "aa31"
    assert (await node1.ok("get_value", {"id": store_id, "key": "6b31", "root_hash": root_1}))[
        "value"
    ] == "7631"
    assert (await node1.dl("get_value", {"id": store_id, "key": "ffff"}))[
        "error"
    ] == "Key not found: ffff"
    assert sorted((await node1.ok("get_keys", {"id": store_id}))["keys"]) == ["0x6b31", "0x6b32"]
    old = await node1.ok("get_keys_values", {"id": store_id, "root_hash": root_1})
    assert len(old["keys_values"]) == 3

    history = (await node1.ok("get_root_history", {"id": store_id}))["root_history"]
    assert [h["root_hash"] for h in history] == [ZEROS, root_1, root_2]
    assert all(h["confirmed"] is True and isinstance(h["timestamp"], int) for h in history)
    status = (await node1.ok("get_sync_status", {"id": store_id}))["sync_status"]
    assert status == {
        "generation": 2,
        "root_hash": root_2[2:],
        "target_generation": 2,
        "target_root_hash": root_2[2:],
    }
    roots = (await node1.ok("get_roots", {"ids": [store_id, UNKNOWN]}))["root_hashes"]
    assert roots == [
        {
            "confirmed": True,
            "hash": root_2,
            "id": "0x" + store_id,
            "timestamp": history[-1]["timestamp"],
        }
    ]


async def test_keys_values_order_is_unstable_and_pagination_reports_bytes(
    node1: Node, manual: Admin
):
    store_id = await create_store(node1, manual)
    await write(
        node1,
        manual,
        store_id,
        [{"action": "insert", "key": f"{i:04x}", "value": "ab" * i} for i in range(1, 9)],
    )

    orders = set()
    for _ in range(6):
        pairs = (await node1.ok("get_keys_values", {"id": store_id}))["keys_values"]
        orders.add(tuple(p["key"] for p in pairs))
    assert len(orders) > 1

    page = await node1.ok("get_keys_values", {"id": store_id, "page": 0, "max_page_size": 100})
    assert page["total_bytes"] == sum(2 + i for i in range(1, 9))
    assert page["total_pages"] == 1 and page["root_hash"].startswith("0x")
    small = await node1.ok("get_keys_values", {"id": store_id, "page": 0, "max_page_size": 12})
    assert small["total_pages"] > 1
    seen = []
    for number in range(small["total_pages"]):
        chunk = await node1.ok(
            "get_keys_values", {"id": store_id, "page": number, "max_page_size": 12}
        )
        seen += [p["key"] for p in chunk["keys_values"]]
    assert sorted(seen) == sorted(f"0x{i:04x}" for i in range(1, 9))


async def test_errors_have_chias_messages(node1: Node, manual: Admin):
    store_id = await create_store(node1, manual)
    await write(node1, manual, store_id, [{"action": "insert", "key": "6b31", "value": "00"}])

    async def error(method: str, body: dict) -> str:
        data = await node1.dl(method, body)
        assert data["success"] is False, data
        return str(data["error"])

    assert await error("get_root", {}) == "id"
    assert (
        await error("get_root", {"id": "zz"})
        == "non-hexadecimal number found in fromhex() arg at position 0"
    )
    assert await error("get_root", {"id": "abab"}) == "bad bytes32 initializer b'\\xab\\xab'"
    assert await error("get_root", {"id": UNKNOWN}) == f"Failed to get root for {UNKNOWN}"
    assert (
        await error(
            "batch_update",
            {"id": store_id, "changelist": [{"action": "insert", "key": "6b31", "value": "00"}]},
        )
        == "KeyId(1)"
    )
    assert (
        await error(
            "batch_update", {"id": store_id, "changelist": [{"action": "delete", "key": "ffff"}]}
        )
        == "Changelist resulted in no change to tree data"
    )
    assert (
        await error("batch_update", {"id": store_id, "changelist": []})
        == "Changelist resulted in no change to tree data"
    )
    assert await error(
        "batch_update",
        {"id": UNKNOWN, "changelist": [{"action": "insert", "key": "00", "value": "00"}]},
    ) == (f"Singleton with launcher ID {UNKNOWN} is not owned by DL Wallet")
    assert (
        await error("get_sync_status", {"id": UNKNOWN})
        == f"No store id stored in the local database for {UNKNOWN}"
    )
    assert (
        await error("get_keys_values", {"id": UNKNOWN})
        == f"No generations found for store ID: {UNKNOWN}"
    )
    assert (
        await error("unsubscribe", {"id": UNKNOWN})
        == "No subscription found for the given store_id."
    )
    nested = await error("subscribe", {"id": UNKNOWN, "urls": []})
    assert nested.startswith(
        'RPC response failure: {"error": "Launcher ID ' + UNKNOWN + ' is not a valid coin"'
    )
    assert (await node1.ok("get_root_history", {"id": UNKNOWN}))["root_history"] == []
    assert (await node1.ok("get_mirrors", {"id": UNKNOWN}))["mirrors"] == []
    assert (await node1.ok("subscriptions"))["store_ids"] == []

    broken = await node1.raw_dl("get_root", b"{not json")
    assert broken.status_code == 500
    assert broken.text == "500 Internal Server Error\n\nServer got itself in trouble"
    assert broken.headers["content-type"].startswith("text/plain")
    unknown = await node1.raw_dl("no_such_method", b"{}")
    assert (unknown.status_code, unknown.text) == (404, "404: Not Found")


async def test_fresh_key_has_no_datalayer_wallet_until_it_subscribes(
    sim: EmbeddedSimulator, node0: Node, node1: Node, manual: Admin
):
    store_id = await create_store(node1, manual)
    for method in (
        "get_root",
        "get_root_history",
        "get_sync_status",
        "get_local_root",
        "get_keys_values",
        "get_mirrors",
    ):
        data = await node0.dl(method, {"id": store_id})
        assert data["success"] is False
        assert data["error"].startswith(
            'RPC response failure: {"error": "DataLayerWallet not available"'
        ), method
    owned = await node0.dl("get_owned_stores")
    assert "DataLayerWallet not available" in owned["error"]
    assert (await node0.ok("subscriptions"))["store_ids"] == []
    wallets = (await node0.wallet("get_wallets"))["wallets"]
    assert [w["type"] for w in wallets] == [0]

    await node0.ok("subscribe", {"id": store_id, "urls": []})
    assert (await node0.ok("get_owned_stores"))["store_ids"] == []
    assert [w["type"] for w in (await node0.wallet("get_wallets"))["wallets"]] == [0, 11]


async def test_clear_pending_roots_forgets_the_root_but_not_its_spend(node1: Node, manual: Admin):
    store_id = await create_store(node1, manual)
    await node1.ok(
        "batch_update",
        {"id": store_id, "changelist": [{"action": "insert", "key": "01", "value": "01"}]},
    )
    cleared = await node1.dl("clear_pending_roots", {"store_id": store_id})
    assert cleared["success"] is True
    assert cleared["root"]["tree_id"] == store_id and cleared["root"]["generation"] == 1
    assert (await node1.dl("clear_pending_roots", {"store_id": store_id})) == {
        "root": None,
        "success": False,
    }
    # The wallet still waits for the spend (real Chia 2.7.5, see the contract suite).
    again = await node1.dl(
        "batch_update",
        {"id": store_id, "changelist": [{"action": "insert", "key": "02", "value": "02"}]},
    )
    assert f"Singleton with launcher ID {store_id} is currently pending" in again["error"]
    assert again["error"].startswith("RPC response failure: ")

    # It was in the mempool, so it confirms: the chain moves on, the local copy does not.
    await manual.farm()
    assert (await node1.ok("get_root", {"id": store_id}))["hash"] == "0x" + cleared["root"][
        "node_hash"
    ]
    status = (await node1.ok("get_sync_status", {"id": store_id}))["sync_status"]
    assert (status["generation"], status["target_generation"]) == (0, 1)
    assert (await node1.ok("get_keys_values", {"id": store_id}))["keys_values"] == []


async def test_mirrors_confirm_at_the_next_block_and_know_whose_they_are(
    node0: Node, node1: Node, manual: Admin
):
    store_id = await create_store(node1, manual)
    await node0.ok("subscribe", {"id": store_id})
    url = "http://127.0.0.1:8575"

    await node1.ok("add_mirror", {"id": store_id, "urls": [url], "amount": 300, "fee": 0})
    # A new mirror shows once it is in a block, for its creator too (real Chia 2.7.5).
    assert (await node1.ok("get_mirrors", {"id": store_id}))["mirrors"] == []
    assert (await node0.ok("get_mirrors", {"id": store_id}))["mirrors"] == []

    height = await manual.farm()
    mine = (await node1.ok("get_mirrors", {"id": store_id}))["mirrors"][0]
    assert mine == {
        "amount": 300,
        "coin_id": mine["coin_id"],
        "confirmed_at_height": height,
        "launcher_id": "0x" + store_id,
        "ours": True,
        "urls": [url],
    }
    theirs = (await node0.ok("get_mirrors", {"id": store_id}))["mirrors"]
    assert [(m["coin_id"], m["ours"]) for m in theirs] == [(mine["coin_id"], False)]

    # Anyone may announce a mirror of a store on chain (CADT mirrors subscribed stores).
    await node0.ok(
        "add_mirror", {"id": store_id, "urls": ["http://127.0.0.1:9999"], "amount": 300, "fee": 0}
    )
    refused = await node0.dl("delete_mirror", {"coin_id": mine["coin_id"], "fee": 0})
    assert "DL Wallet does not have permission to delete mirror" in refused["error"]
    # Chia accepts a mirror of any launcher id, and lists mirrors of tracked launchers only.
    await node1.ok("add_mirror", {"id": UNKNOWN, "urls": [url], "amount": 300})

    await node1.ok("delete_mirror", {"coin_id": mine["coin_id"], "fee": 0})
    assert len((await node1.ok("get_mirrors", {"id": store_id}))["mirrors"]) == 1
    await manual.farm()
    left = (await node1.ok("get_mirrors", {"id": store_id}))["mirrors"]
    assert [m["urls"] for m in left] == [["http://127.0.0.1:9999"]] and left[0]["ours"] is False
    assert (await node1.ok("get_mirrors", {"id": UNKNOWN}))["mirrors"] == []


async def test_get_routes_lists_the_methods(node0: Node):
    routes = (await node0.ok("get_routes"))["routes"]
    for name in (
        "/create_data_store",
        "/batch_update",
        "/get_kv_diff",
        "/clear_pending_roots",
        "/remove_subscriptions",
    ):
        assert name in routes
    wallet_routes = (await node0.wallet("get_routes"))["routes"]
    assert "/get_coin_records" in wallet_routes and "/dl_owned_singletons" in wallet_routes


@pytest.mark.parametrize("value", ["7631", "0x7631"])
async def test_inputs_accept_hex_with_and_without_prefix(node1: Node, manual: Admin, value: str):
    store_id = await create_store(node1, manual)
    await write(
        node1, manual, "0x" + store_id, [{"action": "insert", "key": hx("k"), "value": value}]
    )
    assert (await node1.ok("get_value", {"id": "0x" + store_id, "key": "0x" + hx("k")}))[
        "value"
    ] == "7631"
