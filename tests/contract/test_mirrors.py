"""Mirrors: add, see them confirm (confirmed_at_height), follow them as a subscriber, delete."""

from __future__ import annotations

from services.chia import Change, ChiaErrorKind
from services.chia.models import Mirror
from tests.contract.conftest import UNKNOWN_ID, business_error, hx
from tests.contract.targets import Target
from tests.contract.test_subscriptions import wait_generation, wait_unsubscribed
from tests.contract.test_wallet import datalayer_wallet_id, unconfirmed


async def test_mirror_add_confirm_follow_and_delete(target: Target):
    owner, sub = target.owner, target.subscriber
    store = await target.create_store()
    await target.write(store, [Change.insert(hx("m"), hx("1"))])
    assert await owner.dl.get_mirrors(store) == []

    await owner.dl.add_mirror(store, [target.mirror_url], amount=1, fee=0)
    # A new mirror is not listed while its coin is pending, not even for its creator.
    assert await owner.dl.get_mirrors(store) == []

    async def confirmed() -> Mirror | None:
        mirrors = await owner.dl.get_mirrors(store)
        return mirrors[0] if mirrors and mirrors[0].confirmed else None

    mirror = await target.confirm(confirmed, what="the mirror coin")
    assert (mirror.launcher_id, mirror.urls, mirror.amount) == (store, [target.mirror_url], 1)
    assert mirror.ours is True
    assert mirror.confirmed_at_height > 0
    assert len(mirror.coin_id) == 64
    assert len(await owner.dl.get_mirrors(store)) == 1

    # A node lists the mirrors of the stores it tracks only.
    if await sub.has_datalayer_wallet():
        assert await sub.dl.get_mirrors(store) == []
    else:
        error = await business_error(sub.dl.get_mirrors(store))
        assert error.kind == ChiaErrorKind.DL_WALLET_NOT_AVAILABLE

    # A subscriber given no URL downloads from the on-chain mirror; it sees it as not ours.
    await target.wait_published(store)
    await sub.dl.subscribe(store)
    await wait_generation(target, sub, store, 1)
    seen = await sub.dl.get_mirrors(store)
    assert [(m.coin_id, m.urls, m.ours) for m in seen] == [
        (mirror.coin_id, [target.mirror_url], False)
    ]
    refused = await business_error(sub.dl.delete_mirror(mirror.coin_id, fee=0))
    assert refused.nested
    assert refused.message == (
        f"DL Wallet does not have permission to delete mirror with ID {mirror.coin_id}"
    )

    # The DataLayer wallet spends the mirror coin; the mirror is listed until that confirms.
    dl_wallet = await datalayer_wallet_id(target)
    await owner.dl.delete_mirror(mirror.coin_id, fee=0)
    assert [m.coin_id for m in await owner.dl.get_mirrors(store)] == [mirror.coin_id]
    # Asking again is accepted: a second spend of the same coin, held back by the mempool.
    await owner.dl.delete_mirror(mirror.coin_id, fee=0)

    async def both_sent() -> list[tuple[int, str | None]] | None:
        spends = await unconfirmed(target, dl_wallet)
        outcomes = sorted(
            (entry.status, entry.error or "") for tx in spends for entry in tx.sent_to
        )
        return outcomes if len(spends) == 2 and len(outcomes) >= 2 else None

    outcomes = await target.eventually(both_sent, what="both deletions reach the mempool")
    assert (1, "") in outcomes and (2, "MEMPOOL_CONFLICT") in outcomes
    assert all(tx.amount == 1 for tx in await unconfirmed(target, dl_wallet))
    assert await unconfirmed(target, 1) == []

    async def deleted() -> bool:
        return await owner.dl.get_mirrors(store) == []

    await target.confirm(deleted, what="the mirror deletion")
    assert await unconfirmed(target, dl_wallet) == []  # the conflicting spend is settled too

    async def gone_for_subscriber() -> bool:
        return await sub.dl.get_mirrors(store) == []

    await target.eventually(gone_for_subscriber, what="the subscriber sees the mirror deleted")
    # A mirror the wallet does not list fails Chia's internal assertion: an empty message.
    gone = await business_error(owner.dl.delete_mirror(mirror.coin_id, fee=0))
    assert gone.nested and gone.message == ""
    assert '"INTERNAL_ERROR"' in gone.raw_error

    await sub.dl.unsubscribe(store)
    await wait_unsubscribed(target, sub, store)


async def test_mirrors_of_any_launcher_id_are_accepted_but_listed_only_when_tracked(
    target: Target, store: str
):
    dl = target.owner.dl
    empty = await business_error(dl.add_mirror(store, [], amount=1, fee=0))
    assert (empty.message, empty.nested) == ("URL list can't be empty", False)

    await dl.add_mirror(UNKNOWN_ID, [target.mirror_url], amount=1, fee=0)

    async def spent() -> bool:
        return await unconfirmed(target, 1) == []

    await target.confirm(spent, what="the mirror coin of an unknown launcher")
    assert await dl.get_mirrors(UNKNOWN_ID) == []
