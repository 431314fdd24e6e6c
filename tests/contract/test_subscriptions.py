"""Subscriptions: the owner's own, and a second node (another key) following the owner's store.

The subscriber's downloads are steered with its URL list only: `dead_url` never serves a file,
`mirror_url` is the owner's file server. A store with no on-chain mirror is downloaded from
nothing else, so "behind" and "caught up" are set up deterministically on both targets (on real
Chia, a subscriber that tries a file the owner has not written yet backs off for 300 s; waiting
for `wait_published` before pointing it at the mirror avoids that race).
"""

from __future__ import annotations

from services.chia import (
    ZERO_HASH,
    Change,
    ChiaBusinessError,
    ChiaErrorKind,
    is_no_generations_error,
    is_no_subscription_error,
    is_not_owned_error,
    is_root_not_downloaded_error,
    is_store_not_in_local_db_error,
    is_unable_to_diff_error,
)
from services.chia.models import SyncStatus
from tests.contract.conftest import assert_envelope, business_error, hx, pairs, rows
from tests.contract.targets import Node, Target


async def sync_status(node: Node, store_id: str) -> SyncStatus | None:
    """get_sync_status, None while the node holds nothing of the store ("No store id stored")."""
    try:
        return await node.dl.get_sync_status(store_id)
    except ChiaBusinessError as error:
        if is_store_not_in_local_db_error(error):
            return None
        raise


async def wait_generation(target: Target, node: Node, store_id: str, generation: int) -> SyncStatus:
    """Wait until the node holds `generation` locally and the chain is at the same generation."""

    async def reached() -> SyncStatus | None:
        status = await sync_status(node, store_id)
        if status is not None and status.generation == status.target_generation == generation:
            return status
        return None

    return await target.eventually(reached, what=f"{node.name} holds generation {generation}")


async def wait_unsubscribed(target: Target, node: Node, store_id: str) -> None:
    """Wait for a queued unsubscribe to be applied (at the node's next manage-data cycle)."""

    async def gone() -> bool:
        return store_id not in await node.dl.subscriptions()

    await target.eventually(gone, what=f"{node.name} unsubscribed from {store_id}")


async def assert_store_unknown(node: Node, store_id: str) -> None:
    """Every store-scoped read answers as for a store this node never heard of."""
    dl = node.dl
    status = await business_error(dl.get_sync_status(store_id))
    assert status.kind == ChiaErrorKind.STORE_NOT_IN_LOCAL_DB
    root = await business_error(dl.get_root(store_id))
    assert root.message == f"Failed to get root for {store_id}"
    assert await dl.get_root_history(store_id) == []
    for read in (dl.get_keys_values, dl.get_local_root):
        error = await business_error(read(store_id))
        assert error.message == f"No generations found for store ID: {store_id}"


# ---------------------------------------------------------------------------------- owner
async def test_owner_subscribes_to_its_own_store_and_unsubscribe_waits_for_a_cycle(
    target: Target, store: str
):
    dl = target.owner.dl
    assert store not in await dl.subscriptions()
    await dl.subscribe(store, urls=[target.mirror_url])
    assert store in await dl.subscriptions()
    await dl.subscribe(store, urls=[target.mirror_url])  # again: no error, still listed once
    assert (await dl.subscriptions()).count(store) == 1

    await dl.unsubscribe(store, retain=True)
    assert store in await dl.subscriptions(), "unsubscribe is only queued"
    await wait_unsubscribed(target, target.owner, store)
    again = await business_error(dl.unsubscribe(store))
    assert_envelope(
        again, "No subscription found for the given store_id.", ChiaErrorKind.NO_SUBSCRIPTION
    )


# ---------------------------------------------------------------------------------- subscriber
async def _owner_store_with_two_generations(target: Target) -> tuple[str, list[str]]:
    store = await target.create_store()
    root_1 = await target.write(
        store, [Change.insert(hx("a"), hx("1")), Change.insert(hx("b"), hx("2"))]
    )
    root_2 = await target.write(
        store, [Change.upsert(hx("a"), hx("1b")), Change.insert(hx("c"), hx("3"))]
    )
    await target.wait_published(store)
    return store, [ZERO_HASH, root_1, root_2]


async def test_subscriber_before_and_after_its_first_download(target: Target):
    owner, sub = target.owner, target.subscriber
    fresh = not await sub.has_datalayer_wallet()
    store, roots = await _owner_store_with_two_generations(target)

    if fresh:  # only a node that never subscribed has no DataLayer wallet yet
        error = await business_error(sub.dl.get_root(store))
        assert error.message == "DataLayerWallet not available"
        assert error.nested and error.kind == ChiaErrorKind.DL_WALLET_NOT_AVAILABLE

    await sub.dl.subscribe(store, urls=[target.dead_url])
    assert await sub.has_datalayer_wallet()
    assert store in await sub.dl.subscriptions()
    # Subscribed, nothing local yet: the same message as for an unknown store.
    status = await business_error(sub.dl.get_sync_status(store))
    assert_envelope(
        status,
        f"No store id stored in the local database for {store}",
        ChiaErrorKind.STORE_NOT_IN_LOCAL_DB,
    )
    for read in (sub.dl.get_local_root, sub.dl.get_keys_values):
        error = await business_error(read(store))
        assert is_no_generations_error(error), error.message

    # The chain view comes from the subscriber's wallet (it may lag a moment behind subscribe).
    async def chain_root() -> str | None:
        root = await sub.dl.get_root(store)
        return root.hash if root.hash == roots[-1] else None

    await target.eventually(chain_root, what="the subscriber's wallet sees the chain root")
    assert [e.root_hash for e in await sub.dl.get_root_history(store)] == roots

    # Its first cycle makes an empty local store (generation 0) even though no file came.
    async def first_cycle() -> SyncStatus | None:
        return await sync_status(sub, store)

    status = await target.eventually(first_cycle, what="the subscriber's first manage cycle")
    assert (status.generation, status.root_hash) == (0, ZERO_HASH)
    assert (status.target_generation, status.target_root_hash) == (2, roots[-1])
    assert await sub.dl.get_local_root(store) is None
    assert (await sub.dl.get_keys_values(store)).keys_values == []

    # Point it at the owner's mirror: remove_subscriptions keeps the subscription itself.
    await sub.dl.remove_subscriptions(store, [target.dead_url])
    assert store in await sub.dl.subscriptions()
    await sub.dl.subscribe(store, urls=[target.mirror_url])
    status = await wait_generation(target, sub, store, 2)  # one jump, 0 -> 2
    assert status.root_hash == status.target_root_hash == roots[-1]
    assert await sub.dl.get_local_root(store) == roots[-1]
    assert pairs(await sub.dl.get_keys_values(store)) == pairs(
        await owner.dl.get_keys_values(store)
    )
    for hash_1, hash_2 in ((ZERO_HASH, roots[1]), (roots[1], roots[2])):
        ours = (await sub.dl.get_kv_diff(store, hash_1, hash_2)).diff
        theirs = (await owner.dl.get_kv_diff(store, hash_1, hash_2)).diff
        assert rows(ours) == rows(theirs)
    assert rows((await sub.dl.get_kv_diff(store, roots[1], roots[2])).diff) == [
        ("DELETE", hx("a"), hx("1")),
        ("INSERT", hx("a"), hx("1b")),
        ("INSERT", hx("c"), hx("3")),
    ]

    # It is not the owner.
    assert store not in await sub.dl.get_owned_stores()
    refused = await business_error(sub.dl.batch_update(store, [Change.insert("00", "00")], fee=0))
    assert is_not_owned_error(refused)
    assert store not in await owner.dl.subscriptions()

    await sub.dl.unsubscribe(store)
    await wait_unsubscribed(target, sub, store)


async def test_a_store_with_only_its_launch_root_is_never_downloaded(target: Target):
    owner, sub = target.owner, target.subscriber
    empty = await target.create_store()
    marker = await target.create_store()
    marker_root = await target.write(marker, [Change.insert("01", "01")])

    await sub.dl.subscribe(empty, urls=[target.mirror_url])

    async def tracked(store: str, root: str) -> bool:
        try:
            return (await sub.dl.get_root(store)).hash == root
        except ChiaBusinessError:
            return False

    await target.eventually(lambda: tracked(empty, ZERO_HASH), what="the wallet tracks the store")
    # A marker store whose first cycle is visible (it goes from unknown to generation 0), so
    # that we know a whole cycle ran while the subscriber's wallet knew both stores.
    await sub.dl.subscribe(marker, urls=[target.dead_url])
    await target.eventually(
        lambda: tracked(marker, marker_root), what="the wallet tracks the marker"
    )
    await target.eventually(lambda: sync_status(sub, marker), what="a manage cycle")

    status = await business_error(sub.dl.get_sync_status(empty))
    assert status.message == f"No store id stored in the local database for {empty}"
    local = await business_error(sub.dl.get_local_root(empty))
    assert is_no_generations_error(local)
    assert (await owner.dl.get_sync_status(empty)).generation == 0

    for store in (empty, marker):
        await sub.dl.unsubscribe(store)
    await wait_unsubscribed(target, sub, empty)
    await wait_unsubscribed(target, sub, marker)


async def test_subscriber_behind_reads_only_its_local_generation_then_catches_up(target: Target):
    owner, sub = target.owner, target.subscriber
    store, roots = await _owner_store_with_two_generations(target)
    await sub.dl.subscribe(store, urls=[target.mirror_url])
    await wait_generation(target, sub, store, 2)
    local_pairs = pairs(await sub.dl.get_keys_values(store))

    # Cut it off from the mirror, then the owner writes generation 3.
    await sub.dl.remove_subscriptions(store, [target.mirror_url])
    await sub.dl.subscribe(store, urls=[target.dead_url])
    root_3 = await target.write(store, [Change.delete(hx("b"))])

    async def sees_target() -> SyncStatus | None:
        status = await sync_status(sub, store)
        return status if status is not None and status.target_generation == 3 else None

    status = await target.eventually(sees_target, what="the subscriber sees generation 3 on chain")
    assert (status.generation, status.root_hash) == (2, roots[2])
    assert status.target_root_hash == root_3
    assert not status.synced
    # The chain says 3, the local copy is 2: reads answer from 2, and 3 cannot be read or diffed.
    assert (await sub.dl.get_root(store)).hash == root_3
    assert [e.root_hash for e in await sub.dl.get_root_history(store)] == [*roots, root_3]
    assert await sub.dl.get_local_root(store) == roots[2]
    assert pairs(await sub.dl.get_keys_values(store)) == local_pairs
    diff = await business_error(sub.dl.get_kv_diff(store, roots[2], root_3))
    assert diff.message == f"Unable to diff: Can't find keys and values for {root_3}"
    assert is_unable_to_diff_error(diff)
    at_target = await business_error(sub.dl.get_keys_values(store, root_hash=root_3))
    assert at_target.message == f"Can't find keys and values for {root_3}"
    assert is_root_not_downloaded_error(at_target)
    # Misleading but real: the key exists on chain, the node just does not have that root.
    value = await business_error(sub.dl.get_value(store, hx("a"), root_hash=root_3))
    assert value.message == f"Key not found: {hx('a')}"

    # Back to the mirror: it catches up in one jump.
    await target.wait_published(store)
    await sub.dl.remove_subscriptions(store, [target.dead_url])
    await sub.dl.subscribe(store, urls=[target.mirror_url])
    await wait_generation(target, sub, store, 3)
    assert await sub.dl.get_local_root(store) == root_3
    assert pairs(await sub.dl.get_keys_values(store)) == pairs(
        await owner.dl.get_keys_values(store)
    )
    assert rows((await sub.dl.get_kv_diff(store, roots[2], root_3)).diff) == [
        ("DELETE", hx("b"), hx("2"))
    ]

    await sub.dl.unsubscribe(store)
    await wait_unsubscribed(target, sub, store)


async def test_unsubscribed_store_looks_unknown_even_with_retain_and_resubscribe_downloads_again(
    target: Target,
):
    sub = target.subscriber
    store, roots = await _owner_store_with_two_generations(target)
    await sub.dl.subscribe(store, urls=[target.mirror_url])
    await wait_generation(target, sub, store, 2)

    await sub.dl.unsubscribe(store, retain=True)
    assert store in await sub.dl.subscriptions(), "applied at the next cycle, not now"
    assert (await sub.dl.get_sync_status(store)).generation == 2
    await wait_unsubscribed(target, sub, store)
    await assert_store_unknown(sub, store)
    again = await business_error(sub.dl.unsubscribe(store))
    assert is_no_subscription_error(again)

    await sub.dl.subscribe(store, urls=[target.mirror_url])
    status = await wait_generation(target, sub, store, 2)
    assert status.root_hash == roots[-1]
    await sub.dl.unsubscribe(store)
    await wait_unsubscribed(target, sub, store)
