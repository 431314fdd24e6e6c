"""An owner's store: creation and confirmation, writes, pending roots, reads, diffs, history."""

from __future__ import annotations

from services.chia import (
    ZERO_HASH,
    Change,
    ChiaErrorKind,
    is_failed_to_get_root_error,
    is_key_already_present_error,
    is_key_not_found_error,
    is_no_change_error,
    is_pending_root_error,
    is_singleton_pending_error,
)
from tests.contract.conftest import UNKNOWN_ID, assert_envelope, business_error, hx, pairs, rows
from tests.contract.targets import Target

PENDING = "Already have a pending root waiting for confirmation."


async def test_a_new_store_is_unreadable_until_confirmed_then_empty(target: Target):
    dl = target.owner.dl
    created = await dl.create_data_store(fee=0)
    store_id = created.id
    assert len(store_id) == 64 and store_id == store_id.lower()
    assert created.tx_ids, "verbose creation returns its transactions"

    unconfirmed = await business_error(dl.get_root(store_id))
    assert_envelope(
        unconfirmed, f"Failed to get root for {store_id}", ChiaErrorKind.FAILED_TO_GET_ROOT
    )
    assert is_failed_to_get_root_error(unconfirmed)
    early_write = await business_error(
        dl.batch_update(store_id, [Change.insert("6b30", "7630")], fee=0)
    )
    assert_envelope(early_write, PENDING, ChiaErrorKind.PENDING_ROOT)
    assert store_id not in await dl.get_owned_stores()
    # Nothing is committed locally before the launch confirms.
    for read in (dl.get_local_root, dl.get_keys_values):
        error = await business_error(read(store_id))
        assert_envelope(
            error, f"No generations found for store ID: {store_id}", ChiaErrorKind.NO_GENERATIONS
        )
    status = await business_error(dl.get_sync_status(store_id))
    assert status.kind == ChiaErrorKind.STORE_NOT_IN_LOCAL_DB
    # The owner's wallet already lists the launch, unconfirmed.
    launch = await dl.get_root_history(store_id)
    assert [(e.root_hash, e.confirmed, e.timestamp) for e in launch] == [(ZERO_HASH, False, 0)]
    assert await dl.get_roots([store_id]) == []

    root = await target.wait_confirmed(store_id, 0)
    assert root.hash == ZERO_HASH
    assert root.confirmed is True
    assert root.timestamp > 0
    assert (await dl.get_keys_values(store_id)).keys_values == []
    assert (await dl.get_keys(store_id)).keys == []
    assert await dl.get_local_root(store_id) is None  # no local root row for the launch root
    assert store_id in await dl.get_owned_stores()
    history = await dl.get_root_history(store_id)
    assert [(entry.root_hash, entry.confirmed) for entry in history] == [(ZERO_HASH, True)]
    status = await dl.get_sync_status(store_id)
    assert (status.generation, status.target_generation) == (0, 0)
    assert status.root_hash == status.target_root_hash == ZERO_HASH
    assert store_id not in await dl.subscriptions(), "owned stores are not subscriptions"


async def test_insert_delete_upsert_and_the_kv_diff(target: Target, store: str):
    dl = target.owner.dl
    k1, k2, k3 = hx("k1"), hx("k2"), hx("k3")
    v1, v2, v3 = hx("v1"), hx("v2"), hx("v3")

    root_1 = await target.write(
        store, [Change.insert(k1, v1), Change.insert(k2, v2), Change.insert("0x" + k3, "0x" + v3)]
    )
    assert root_1 != ZERO_HASH
    assert pairs(await dl.get_keys_values(store)) == [(k1, v1), (k2, v2), (k3, v3)]
    assert sorted((await dl.get_keys(store)).keys) == [k1, k2, k3]
    assert await dl.get_value(store, k2) == v2
    assert await dl.get_local_root(store) == root_1
    assert rows(await _diff(target, store, ZERO_HASH, root_1)) == [
        ("INSERT", k1, v1),
        ("INSERT", k2, v2),
        ("INSERT", k3, v3),
    ]

    new_v1 = hx("v1-new")
    root_2 = await target.write(store, [Change.delete(k3), Change.upsert(k1, new_v1)])
    assert pairs(await dl.get_keys_values(store)) == [(k1, new_v1), (k2, v2)]
    # An upsert shows as DELETE of the old value plus INSERT of the new one; bare hex.
    assert rows(await _diff(target, store, root_1, root_2)) == [
        ("DELETE", k1, v1),
        ("DELETE", k3, v3),
        ("INSERT", k1, new_v1),
    ]
    # Upserting a new key inserts it.
    root_3 = await target.write(store, [Change.upsert(hx("k4"), hx("v4"))])
    assert rows(await _diff(target, store, root_2, root_3)) == [("INSERT", hx("k4"), hx("v4"))]

    history = await dl.get_root_history(store)
    assert [entry.root_hash for entry in history] == [ZERO_HASH, root_1, root_2, root_3]
    assert all(entry.confirmed for entry in history)
    assert [entry.timestamp for entry in history] == sorted(entry.timestamp for entry in history)
    # Older roots stay readable on the owner.
    assert pairs(await dl.get_keys_values(store, root_hash=root_1)) == [
        (k1, v1),
        (k2, v2),
        (k3, v3),
    ]
    assert await dl.get_value(store, k3, root_hash=root_1) == v3

    missing = await business_error(dl.get_value(store, hx("nope")))
    assert missing.message == f"Key not found: {hx('nope')}"
    assert is_key_not_found_error(missing)

    status = await dl.get_sync_status(store)
    assert (status.generation, status.target_generation) == (3, 3)
    assert status.root_hash == status.target_root_hash == root_3


async def _diff(target: Target, store: str, hash_1: str, hash_2: str) -> list:
    return (await target.owner.dl.get_kv_diff(store, hash_1, hash_2)).diff


async def test_one_pending_root_per_store_and_pending_data_is_invisible(target: Target, store: str):
    dl = target.owner.dl
    root_1 = await target.write(store, [Change.insert("6b31", "7631")])

    tx = await dl.batch_update(store, [Change.insert("6b32", "7632")], fee=0)
    assert tx.tx_id is not None and len(tx.tx_id) == 64

    # The pending root is invisible to every read.
    assert (await dl.get_root(store)).hash == root_1
    assert pairs(await dl.get_keys_values(store)) == [("6b31", "7631")]
    assert await dl.get_local_root(store) == root_1
    # ...except the owner's root history: its wallet lists the pending root last, unconfirmed.
    history = await dl.get_root_history(store)
    assert [(e.root_hash, e.confirmed) for e in history[:2]] == [(ZERO_HASH, True), (root_1, True)]
    assert len(history) == 3
    pending = history[2]
    assert (pending.confirmed, pending.timestamp) == (False, 0)
    assert pending.root_hash not in (ZERO_HASH, root_1)
    second = await business_error(dl.batch_update(store, [Change.insert("6b33", "7633")], fee=0))
    assert_envelope(second, PENDING, ChiaErrorKind.PENDING_ROOT)
    assert is_pending_root_error(second)

    root_2 = await target.wait_confirmed(store, 2)
    assert root_2.hash == pending.root_hash
    assert pairs(await dl.get_keys_values(store)) == [("6b31", "7631"), ("6b32", "7632")]
    assert [e.confirmed for e in await dl.get_root_history(store)] == [True, True, True]
    # Once confirmed, the next write is accepted again.
    await target.write(store, [Change.insert("6b33", "7633")])


async def test_changelists_that_change_nothing_or_clash_are_refused(target: Target, store: str):
    dl = target.owner.dl
    await target.write(store, [Change.insert("6b31", "7631")])

    duplicate = await business_error(dl.batch_update(store, [Change.insert("6b31", "00")], fee=0))
    assert is_key_already_present_error(duplicate), duplicate.message
    assert duplicate.message.startswith("KeyId(")
    for changes in ([Change.delete("ffff")], []):
        nothing = await business_error(dl.batch_update(store, changes, fee=0))
        assert_envelope(
            nothing, "Changelist resulted in no change to tree data", ChiaErrorKind.NO_CHANGE
        )
        assert is_no_change_error(nothing)
    # None of them left a pending root behind.
    await target.write(store, [Change.delete("6b31")])
    assert pairs(await dl.get_keys_values(store)) == []


async def test_key_order_is_not_to_be_relied_on(target: Target, store: str):
    dl = target.owner.dl
    keys = [f"{number:04x}" for number in range(12)]
    await target.write(store, [Change.insert(key, key) for key in keys])
    for _ in range(3):
        response = await dl.get_keys_values(store)
        assert pairs(response) == [(key, key) for key in keys]
        assert sorted((await dl.get_keys(store)).keys) == keys
    page = await dl.get_keys_values(store, page=0, max_page_size=1000)
    assert pairs(page) == [(key, key) for key in keys]
    assert (page.total_pages, page.total_bytes) == (1, 2 * 2 * len(keys))
    assert page.root_hash == (await dl.get_root(store)).hash


async def test_get_roots_lists_known_stores_only(target: Target, store: str):
    other = await target.create_store()
    root = await target.write(other, [Change.insert("01", "02")])
    roots = {
        entry.id: entry for entry in await target.owner.dl.get_roots([store, UNKNOWN_ID, other])
    }
    assert set(roots) == {store, other}
    assert roots[store].hash == ZERO_HASH
    assert roots[other].hash == root
    assert all(entry.confirmed for entry in roots.values())


async def test_clear_pending_roots_forgets_the_root_but_not_its_spend(target: Target, store: str):
    dl = target.owner.dl
    root_1 = await target.write(store, [Change.insert("01", "01")])
    # A confirmed root stays "pending" in Chia's local database until a local read (or the
    # next cycle) notices the confirmation; clear_pending_roots would drop it before that.
    assert await dl.get_local_root(store) == root_1
    nothing = await dl.clear_pending_roots(store)
    assert not nothing.cleared

    await dl.batch_update(store, [Change.insert("02", "02")], fee=0)
    pending = (await dl.get_root_history(store))[-1]
    cleared = await dl.clear_pending_roots(store)
    assert cleared.cleared and cleared.root is not None
    assert (cleared.root.store_id, cleared.root.generation) == (store, 2)
    assert cleared.root.node_hash == pending.root_hash
    assert not (await dl.clear_pending_roots(store)).cleared
    # The DataLayer forgot its pending root; the wallet still waits for the spend.
    again = await business_error(dl.batch_update(store, [Change.insert("03", "03")], fee=0))
    assert again.message == f"Singleton with launcher ID {store} is currently pending"
    assert again.nested and is_singleton_pending_error(again)

    # The spend was in the mempool, so it confirms: the chain moves on, the local copy does not.
    async def chain_moved() -> bool:
        return (await dl.get_root(store)).hash == pending.root_hash

    await target.confirm(chain_moved, what="the cleared root's spend")
    status = await dl.get_sync_status(store)
    assert (status.generation, status.target_generation) == (1, 2)
    assert (status.root_hash, status.target_root_hash) == (root_1, pending.root_hash)
    assert await dl.get_local_root(store) == root_1
    assert pairs(await dl.get_keys_values(store)) == [("01", "01")]
