"""A subscriber key syncing a store owned by another key: jumps, stuck mirrors, unsubscribe."""

from __future__ import annotations

import pytest

from services.simulator import EmbeddedSimulator
from tests.simulator.conftest import Admin, Node, create_store, wait_until, write

URL = "http://127.0.0.1:8575"
#: Cycles only when the test asks (admin /cycle), so every step is deterministic.
MANUAL_CYCLES = pytest.mark.sim(manage_data_blocks=10_000)


async def _owner_store_with_generations(
    owner: Node, admin: Admin, count: int
) -> tuple[str, list[str]]:
    store_id = await create_store(owner, admin)
    roots = []
    for number in range(1, count + 1):
        roots.append(
            await write(
                owner,
                admin,
                store_id,
                [{"action": "insert", "key": f"{number:04x}", "value": f"{number:04x}"}],
            )
        )
    return store_id, roots


async def _status(node: Node, store_id: str) -> dict:
    return await node.dl("get_sync_status", {"id": store_id})


@MANUAL_CYCLES
async def test_subscriber_downloads_in_jumps_and_reads_only_local_data(
    node0: Node, node1: Node, manual: Admin
):
    store_id, roots = await _owner_store_with_generations(node1, manual, 5)

    await node0.ok("subscribe", {"id": store_id, "urls": [URL]})
    assert (await node0.ok("subscriptions"))["store_ids"] == [store_id]
    assert (await _status(node0, store_id))[
        "error"
    ] == f"No store id stored in the local database for {store_id}"
    for method in ("get_local_root", "get_keys_values"):
        assert (await node0.dl(method, {"id": store_id}))[
            "error"
        ] == f"No generations found for store ID: {store_id}"
    assert (await node0.ok("get_root", {"id": store_id}))["hash"] == roots[-1]
    assert len((await node0.ok("get_root_history", {"id": store_id}))["root_history"]) == 6

    await manual.cycle(0)
    status = (await _status(node0, store_id))["sync_status"]
    assert (status["generation"], status["target_generation"]) == (5, 5)
    assert status["root_hash"] == roots[-1][2:]

    # Two owner writes confirm before the subscriber's next cycle: target climbs, then one jump.
    root_6 = await write(
        node1, manual, store_id, [{"action": "insert", "key": "aa", "value": "aa"}]
    )
    assert (await _status(node0, store_id))["sync_status"]["target_generation"] == 6
    root_7 = await write(node1, manual, store_id, [{"action": "delete", "key": "aa"}])
    status = (await _status(node0, store_id))["sync_status"]
    assert (status["generation"], status["target_generation"]) == (5, 7)
    assert (await node0.ok("get_root", {"id": store_id}))["hash"] == root_7
    assert (await node0.ok("get_local_root", {"id": store_id}))["hash"] == roots[-1]
    pairs = (await node0.ok("get_keys_values", {"id": store_id}))["keys_values"]
    assert len(pairs) == 5
    behind = await node0.dl("get_kv_diff", {"id": store_id, "hash_1": roots[-1], "hash_2": root_6})
    assert behind["error"] == f"Unable to diff: Can't find keys and values for {root_6[2:]}"
    assert (await node0.dl("get_keys_values", {"id": store_id, "root_hash": root_6}))["error"] == (
        f"Can't find keys and values for {root_6[2:]}"
    )
    assert (await node0.dl("get_value", {"id": store_id, "key": "aa", "root_hash": root_6}))[
        "error"
    ] == "Key not found: aa"

    await manual.cycle(0)
    status = (await _status(node0, store_id))["sync_status"]
    assert (status["generation"], status["target_generation"]) == (7, 7)
    diff = (await node0.ok("get_kv_diff", {"id": store_id, "hash_1": roots[-1], "hash_2": root_6}))[
        "diff"
    ]
    assert diff == [{"key": "aa", "type": "INSERT", "value": "aa"}]
    mirrors_owner = await node1.ok("get_owned_stores")
    assert store_id in mirrors_owner["store_ids"]
    assert (await node0.ok("get_owned_stores"))["store_ids"] == []
    refused = await node0.dl(
        "batch_update",
        {"id": store_id, "changelist": [{"action": "insert", "key": "00", "value": "00"}]},
    )
    assert refused["error"] == f"Singleton with launcher ID {store_id} is not owned by DL Wallet"


@MANUAL_CYCLES
async def test_missed_download_backs_off_until_remove_subscriptions_and_subscribe(
    node0: Node, node1: Node, manual: Admin
):
    store_id, _roots = await _owner_store_with_generations(node1, manual, 2)
    await node0.ok("subscribe", {"id": store_id, "urls": [URL]})
    await manual.cycle(0)
    assert (await _status(node0, store_id))["sync_status"]["generation"] == 2

    await manual.faults(miss_downloads=[{"store_id": store_id, "count": 1, "key": 0}])
    await write(node1, manual, store_id, [{"action": "insert", "key": "03", "value": "03"}])
    for _ in range(3):
        await manual.cycle(0)
        status = await _status(node0, store_id)
        assert status["success"] is True
        assert (
            status["sync_status"]["generation"],
            status["sync_status"]["target_generation"],
        ) == (2, 3)
    backoff = (await manual.state())["keys"][0]["subscriptions"][0]["backoff_seconds_left"]
    assert 250 < backoff[URL] <= 300

    await node0.ok("subscribe", {"id": store_id, "urls": [URL]})
    await manual.cycle(0)
    assert (await _status(node0, store_id))["sync_status"]["generation"] == 2

    await node0.ok("remove_subscriptions", {"id": store_id, "urls": [URL]})
    assert (await node0.ok("subscriptions"))["store_ids"] == [store_id]
    await node0.ok("subscribe", {"id": store_id, "urls": [URL]})
    await manual.cycle(0)
    assert (await _status(node0, store_id))["sync_status"]["generation"] == 3


@MANUAL_CYCLES
async def test_mirror_down_keeps_the_subscriber_behind_after_it_comes_back(
    node0: Node, node1: Node, manual: Admin
):
    store_id, _roots = await _owner_store_with_generations(node1, manual, 1)
    await node1.ok("add_mirror", {"id": store_id, "urls": [URL], "amount": 300, "fee": 0})
    await manual.farm()
    await node0.ok("subscribe", {"id": store_id})  # no urls: the on-chain mirror is used
    await manual.cycle(0)
    assert (await _status(node0, store_id))["sync_status"]["generation"] == 1

    await manual.faults(mirrors_down=[URL])
    await write(node1, manual, store_id, [{"action": "insert", "key": "02", "value": "02"}])
    await manual.cycle(0)
    await manual.set_faults({})
    await manual.cycle(0)
    status = (await _status(node0, store_id))["sync_status"]
    assert (status["generation"], status["target_generation"]) == (1, 2)

    await node0.ok("remove_subscriptions", {"id": store_id, "urls": [URL]})
    await node0.ok("subscribe", {"id": store_id, "urls": [URL]})
    await manual.cycle(0)
    assert (await _status(node0, store_id))["sync_status"]["generation"] == 2


@pytest.mark.sim(mirror_backoff_seconds=0.2)
async def test_back_off_expires_by_itself(node0: Node, node1: Node, admin: Admin):
    store_id, _roots = await _owner_store_with_generations(node1, admin, 1)
    await admin.faults(miss_downloads=[{"store_id": store_id, "count": 1}])
    await node0.ok("subscribe", {"id": store_id, "urls": [URL]})

    async def synced() -> bool:
        status = await _status(node0, store_id)
        return bool(status["success"] and status["sync_status"]["generation"] == 1)

    await wait_until(synced)
    assert (await admin.faults())["miss_downloads"] == []


@MANUAL_CYCLES
async def test_unsubscribe_is_applied_at_the_next_cycle(node0: Node, node1: Node, manual: Admin):
    store_id, _roots = await _owner_store_with_generations(node1, manual, 2)
    await node1.ok("add_mirror", {"id": store_id, "urls": [URL], "amount": 300, "fee": 0})
    await manual.farm()
    await node0.ok("subscribe", {"id": store_id, "urls": [URL]})
    await manual.cycle(0)

    assert (await node0.ok("unsubscribe", {"id": store_id, "retain": True})) == {"success": True}
    assert (await node0.ok("subscriptions"))["store_ids"] == [store_id]
    assert (await _status(node0, store_id))["sync_status"]["generation"] == 2

    await manual.cycle(0)
    assert (await node0.ok("subscriptions"))["store_ids"] == []
    assert (await _status(node0, store_id))[
        "error"
    ] == f"No store id stored in the local database for {store_id}"
    assert (await node0.dl("get_root", {"id": store_id}))[
        "error"
    ] == f"Failed to get root for {store_id}"
    assert (await node0.ok("get_root_history", {"id": store_id}))["root_history"] == []
    for method in ("get_local_root", "get_keys_values"):
        assert (await node0.dl(method, {"id": store_id}))[
            "error"
        ] == f"No generations found for store ID: {store_id}"
    assert len((await node0.ok("get_mirrors", {"id": store_id}))["mirrors"]) == 1
    again = await node0.dl("unsubscribe", {"id": store_id})
    assert again["error"] == "No subscription found for the given store_id."

    await node0.ok("subscribe", {"id": store_id, "urls": [URL]})
    await manual.cycle(0)
    assert (await _status(node0, store_id))["sync_status"]["generation"] == 2


@MANUAL_CYCLES
async def test_stuck_fault_holds_the_subscriber_at_a_generation(
    node0: Node, node1: Node, manual: Admin
):
    store_id, roots = await _owner_store_with_generations(node1, manual, 4)
    await manual.faults(stuck=[{"store_id": "0x" + store_id, "generation": 2}])
    await node0.ok("subscribe", {"id": store_id, "urls": []})
    await manual.cycle(0)
    await manual.cycle(0)
    status = await _status(node0, store_id)
    assert status["success"] is True
    assert (status["sync_status"]["generation"], status["sync_status"]["target_generation"]) == (
        2,
        4,
    )
    assert (await node0.ok("get_local_root", {"id": store_id}))["hash"] == roots[1]
    assert (await node1.ok("get_sync_status", {"id": store_id}))["sync_status"]["generation"] == 4

    await manual.set_faults({})
    await manual.cycle(0)
    assert (await _status(node0, store_id))["sync_status"]["generation"] == 4


async def test_owner_sees_its_stores_but_not_as_subscriptions(node1: Node, admin: Admin):
    store_id = await create_store(node1, admin)
    assert (await node1.ok("subscriptions"))["store_ids"] == []
    await node1.ok("subscribe", {"id": store_id, "urls": []})
    assert (await node1.ok("subscriptions"))["store_ids"] == [store_id]
    status = (await _status(node1, store_id))["sync_status"]
    assert status["generation"] == status["target_generation"] == 0


async def test_two_keys_sync_over_time_with_auto_blocks(
    sim: EmbeddedSimulator, node0: Node, node1: Node
):
    """No manual farming: blocks and manage-data cycles run on the timer."""
    store_id = (await node1.ok("create_data_store", {"fee": 0}))["id"]

    async def confirmed() -> bool:
        return bool((await node1.dl("get_root", {"id": store_id}))["success"])

    await wait_until(confirmed)
    await node1.ok(
        "batch_update",
        {"id": store_id, "changelist": [{"action": "insert", "key": "01", "value": "01"}]},
    )
    await node0.ok("subscribe", {"id": store_id, "urls": [URL]})

    async def caught_up() -> bool:
        status = await _status(node0, store_id)
        return bool(status["success"] and status["sync_status"]["generation"] == 1)

    await wait_until(caught_up)
    pairs = (await node0.ok("get_keys_values", {"id": store_id}))["keys_values"]
    assert [(p["key"], p["value"]) for p in pairs] == [("0x01", "0x01")]
