"""Mirrors: add, see them confirm (confirmed_at_height), follow them as a subscriber, delete."""

from __future__ import annotations

from services.chia import Change
from services.chia.models import Mirror
from tests.contract.conftest import hx
from tests.contract.targets import Target
from tests.contract.test_subscriptions import wait_generation, wait_unsubscribed


async def test_mirror_add_confirm_follow_and_delete(target: Target):
    owner, sub = target.owner, target.subscriber
    store = await target.create_store()
    await target.write(store, [Change.insert(hx("m"), hx("1"))])
    assert await owner.dl.get_mirrors(store) == []

    await owner.dl.add_mirror(store, [target.mirror_url], amount=1, fee=0)

    async def confirmed() -> Mirror | None:
        mirrors = await owner.dl.get_mirrors(store)
        return mirrors[0] if mirrors and mirrors[0].confirmed else None

    mirror = await target.confirm(confirmed, what="the mirror coin")
    assert (mirror.launcher_id, mirror.urls, mirror.amount) == (store, [target.mirror_url], 1)
    assert mirror.ours is True
    assert mirror.confirmed_at_height > 0
    assert len(mirror.coin_id) == 64
    assert len(await owner.dl.get_mirrors(store)) == 1

    # A subscriber given no URL downloads from the on-chain mirror; it sees it as not ours.
    await target.wait_published(store)
    await sub.dl.subscribe(store)
    await wait_generation(target, sub, store, 1)
    seen = await sub.dl.get_mirrors(store)
    assert [(m.coin_id, m.urls, m.ours) for m in seen] == [
        (mirror.coin_id, [target.mirror_url], False)
    ]

    await owner.dl.delete_mirror(mirror.coin_id, fee=0)

    async def deleted() -> bool:
        return await owner.dl.get_mirrors(store) == []

    await target.confirm(deleted, what="the mirror deletion")

    async def gone_for_subscriber() -> bool:
        return await sub.dl.get_mirrors(store) == []

    await target.eventually(gone_for_subscriber, what="the subscriber sees the mirror deleted")
    await sub.dl.unsubscribe(store)
    await wait_unsubscribed(target, sub, store)
