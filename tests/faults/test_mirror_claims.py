"""The add_mirror claim is a lease until the mirror is sent (the fix behind the kill test).

A worker killed between claiming a (store, url) pair and sending add_mirror used to block the
pair for the whole claim TTL (15 minutes); the claim now lapses after
lock_heartbeat_timeout_seconds, and a worker whose lease lapsed never sends nor deletes the
claim another worker holds by then. In-process, on the hand-driven chain of the sync tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from services.container import Services
from services.mirrors import (
    MIRROR_CLAIM_PREFIX,
    MIRROR_CLAIM_TTL_SECONDS,
    MirrorAddStatus,
    add_mirror,
)
from tests.faults.conftest import eventually
from tests.sync.harness import LOCAL, Chain, chain, clock, insert, make_services

__all__ = ["chain", "clock", "make_services"]

URL = "https://files.example.test"


@pytest.fixture(autouse=True)
def local_datalayer_wallet(chain: Chain) -> None:
    """Key 0 has its DataLayer wallet."""
    chain.state.key(LOCAL).dl_wallet = True


def tracked_store(chain: Chain) -> str:
    """A store of key 1 that key 0 subscribes to."""
    store = chain.create_store([[insert("unit|a", {})]], mirror_urls=())
    chain.subscribe(store)
    return store


def our_mirrors(chain: Chain, store_id: str) -> int:
    """Mirrors of `store_id` at URL created by key 0."""
    return sum(
        1
        for mirror in chain.state.mirrors.values()
        if mirror.launcher_id == store_id and mirror.creator_key == LOCAL and URL in mirror.urls
    )


async def test_a_claim_is_a_short_lease_until_add_mirror_is_sent(
    chain: Chain, make_services: Callable[..., Services], redis_client: Any
) -> None:
    store = tracked_store(chain)
    services = make_services(datalayer_file_server_url=URL, lock_heartbeat_timeout_seconds=5)
    release = asyncio.Event()
    real_balance = services.wallet.get_wallet_balance

    async def paused_balance(wallet_id: int = 1) -> Any:
        await release.wait()
        return await real_balance(wallet_id)

    services.wallet.get_wallet_balance = paused_balance  # type: ignore[method-assign]
    adding = asyncio.create_task(add_mirror(services, store, URL))

    async def claimed() -> list[Any]:
        keys: list[Any] = await redis_client.keys(f"{MIRROR_CLAIM_PREFIX}*")
        return keys

    (claim,) = await eventually(claimed, within=10, what="the claim")
    # killed now, the pair would be free again within the heartbeat timeout (5 s), not 15 min
    assert 0 < await redis_client.pttl(claim) <= 5000
    release.set()
    assert (await adding).status is MirrorAddStatus.ADDED
    # sent: the claim covers the pending coin for the whole claim TTL
    assert await redis_client.pttl(claim) > (MIRROR_CLAIM_TTL_SECONDS - 60) * 1000
    assert our_mirrors(chain, store) == 1


async def test_a_live_but_slow_worker_keeps_its_claim_by_renewing_it(
    chain: Chain, make_services: Callable[..., Services], redis_client: Any
) -> None:
    store = tracked_store(chain)
    # renewals every 50 ms against a 1 s lease: a loaded CI machine may stall the loop for a
    # few hundred ms (a 0.3 s lease lapsed there once), never for a whole second
    timeout = 1.0
    settings = {"lock_heartbeat_seconds": 0.05, "lock_heartbeat_timeout_seconds": timeout}
    slow = make_services(datalayer_file_server_url=URL, **settings)
    other = make_services(datalayer_file_server_url=URL, **settings)
    release = asyncio.Event()
    real_balance = slow.wallet.get_wallet_balance

    async def paused_balance(wallet_id: int = 1) -> Any:
        await release.wait()
        return await real_balance(wallet_id)

    slow.wallet.get_wallet_balance = paused_balance  # type: ignore[method-assign]
    first = asyncio.create_task(add_mirror(slow, store, URL))
    await eventually(lambda: _claims(redis_client), within=10, what="the claim")
    # three lease timeouts later the claim is still held: every attempt elsewhere backs off
    loop = asyncio.get_running_loop()
    until = loop.time() + 3 * timeout
    while loop.time() < until:
        assert (await add_mirror(other, store, URL)).status is MirrorAddStatus.IN_FLIGHT
    release.set()
    assert (await first).status is MirrorAddStatus.ADDED
    assert our_mirrors(chain, store) == 1


async def test_a_worker_whose_lease_lapsed_neither_sends_nor_frees_the_new_claim(
    chain: Chain, make_services: Callable[..., Services], redis_client: Any
) -> None:
    store = tracked_store(chain)
    # a process that stalls (it renews its lease only every minute) past the 0.3 s timeout
    slow = make_services(
        datalayer_file_server_url=URL,
        lock_heartbeat_seconds=60,
        lock_heartbeat_timeout_seconds=0.3,
    )
    fast = make_services(datalayer_file_server_url=URL, lock_heartbeat_timeout_seconds=0.3)
    release = asyncio.Event()
    real_balance = slow.wallet.get_wallet_balance

    async def paused_balance(wallet_id: int = 1) -> Any:
        await release.wait()
        return await real_balance(wallet_id)

    slow.wallet.get_wallet_balance = paused_balance  # type: ignore[method-assign]
    first = asyncio.create_task(add_mirror(slow, store, URL))

    async def taken_over() -> bool:
        return (await add_mirror(fast, store, URL)).status is MirrorAddStatus.ADDED

    await eventually(taken_over, within=10, what="the lapsed claim taken over")
    claim = await _claims(redis_client)
    release.set()
    assert (await first).status is MirrorAddStatus.IN_FLIGHT
    assert our_mirrors(chain, store) == 1
    assert await _claims(redis_client) == claim  # the new holder's claim is untouched


async def _claims(redis_client: Any) -> dict[bytes, bytes]:
    keys = await redis_client.keys(f"{MIRROR_CLAIM_PREFIX}*")
    return {key: await redis_client.get(key) for key in keys}
