"""Issue 3: every fault switch of the built-in simulator, seen through the typed Chia clients.

For each switch of services/simulator/faults.py the case below turns it on through the
loopback admin route, makes the client call it affects over real HTTPS (mutual TLS with the
simulator's client certificates), asserts the typed outcome, clears the switch
(`DELETE /_simulator/faults`) and asserts that the same call then succeeds.

What each switch shows through the clients:

- latency: ChiaTimeout (phase 'read', request_sent) once the delay passes the read timeout.
- fail_next: ChiaBusinessError carrying the injected text; `kind`/`nested` follow the text.
- wallet_unsynced: WalletSyncStatus.synced False; writes raise ChiaBusinessError
  WALLET_NOT_SYNCED (nested through DataLayer), a transient wallet error.
- stuck: SyncStatus behind its target; reads at the target root raise ROOT_NOT_DOWNLOADED,
  a key of a later generation KEY_NOT_FOUND.
- lost_data: SyncStatus generation 0 with the zero root, get_local_root None; reads at the
  chain's root raise ROOT_NOT_DOWNLOADED.
- reject_transactions: no exception; the TransactionRecord is `rejected` (sent_to status
  FAILED) and the store it launched never confirms (get_root: FAILED_TO_GET_ROOT).
- spendable_coins: the wallet lists fewer coins; a second write raises COIN_SHORTAGE.
- mirrors_down, miss_downloads: the subscription stays at generation 0 of N; reads at the
  target root raise ROOT_NOT_DOWNLOADED.

Blocks and manage-data cycles happen only when a case asks for them (auto-farming paused,
cycles every million blocks), and the mirror back-off is 0 s, so nothing waits on a clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.chia import (
    ZERO_HASH,
    Change,
    ChiaBusinessError,
    ChiaClients,
    ChiaErrorKind,
    ChiaTimeout,
    DataLayerClient,
    WalletClient,
    build_chia_clients,
    is_coin_shortage_error,
    is_root_not_downloaded_error,
    is_store_id,
    is_transient_wallet_error,
    text_to_hex,
)
from services.chia.models.base import MempoolInclusionStatus
from services.simulator import EmbeddedSimulator
from services.simulator.faults import Faults
from tests.simulator.conftest import Admin

LOCAL_KEY = 0  # the gateway's node: subscriber, and the key most switches are aimed at
OWNER_KEY = 1  # owns the stores the local node subscribes to

#: Read timeout of the client in the latency case, and the delay the switch adds (4x as long).
SHORT_READ_TIMEOUT = 0.3
LATENCY_SECONDS = 4 * SHORT_READ_TIMEOUT
#: Timeout of every other client: nothing a case does comes near it.
READ_TIMEOUT = 10.0

MIRROR_URL = "http://127.0.0.1:8575"
DL_WALLET_EXISTS = "DataLayer Wallet already exists for this key"
WALLET_FAILURE = "simulated wallet failure"


def hx(text: str) -> str:
    """UTF-8 text as bare hex."""
    return text_to_hex(text)


def typed_clients(
    sim: EmbeddedSimulator, key: int, *, read_timeout: float = READ_TIMEOUT
) -> ChiaClients:
    """The clients of `key` over mutual TLS; one attempt, so an error surfaces as is."""
    return build_chia_clients(
        datalayer_url=sim.datalayer_url(key),
        wallet_url=sim.wallet_url(key),
        ssl_folder=sim.ssl_folder(key),
        connect_timeout=5,
        datalayer_timeout=read_timeout,
        wallet_timeout=read_timeout,
        retry_attempts=1,
        retry_max_wait=0,
    )


@dataclass
class Node:
    """The typed clients of one simulated key."""

    datalayer: DataLayerClient
    wallet: WalletClient


@dataclass
class Chain:
    """A running simulator, its admin routes, and the clients of the local and owner keys."""

    sim: EmbeddedSimulator
    admin: Admin
    local: Node
    owner: Node

    def clients(self, key: int, *, read_timeout: float = READ_TIMEOUT) -> ChiaClients:
        """New clients of `key` (close them); see `typed_clients`."""
        return typed_clients(self.sim, key, read_timeout=read_timeout)

    async def faults_on(self, **switches: Any) -> None:
        """Turn switches on (admin POST merges them) and check the simulator holds them."""
        now = await self.admin.faults(**switches)
        for name in switches:
            assert now[name], f"{name} did not take: {now}"

    async def clear_faults(self) -> None:
        """Clear every switch through the admin route: back to a healthy node."""
        response = await self.admin.http.delete("/faults")
        response.raise_for_status()
        assert response.json() == Faults().model_dump()

    async def owned_store(self, *generations: list[Change]) -> tuple[str, list[str]]:
        """A confirmed store of the owner key with these generations; (id, their roots)."""
        owner = self.owner.datalayer
        store_id = (await owner.create_data_store(fee=0)).id
        await self.admin.farm()
        roots: list[str] = []
        for changes in generations:
            await owner.batch_update(store_id, changes, fee=0)
            await self.admin.farm()
            root = (await owner.get_root(store_id)).hash
            assert root is not None
            roots.append(root)
        return store_id, roots


@pytest.fixture
async def chain(tmp_path: Path) -> AsyncIterator[Chain]:
    """A fresh two-key chain over HTTPS, frozen between the steps of a case."""
    async with AsyncExitStack() as stack:
        sim = await stack.enter_async_context(
            EmbeddedSimulator(
                tmp_path / "simulator",
                block_seconds=0.05,
                seed="none",
                keys=2,
                manage_data_blocks=1_000_000,  # cycles only through the admin route
                mirror_backoff_seconds=0.0,  # a missed download is retried at the next cycle
                faults={},
            )
        )
        admin = Admin(sim)
        stack.push_async_callback(admin.http.aclose)
        await admin.auto_farm(False)
        nodes = []
        for key in (LOCAL_KEY, OWNER_KEY):
            clients = await stack.enter_async_context(typed_clients(sim, key))
            nodes.append(Node(clients.datalayer, clients.wallet))
        yield Chain(sim, admin, nodes[0], nodes[1])


async def business_error(
    call: Awaitable[Any], *, service: str, method: str, kind: ChiaErrorKind | None
) -> ChiaBusinessError:
    """Await `call`, which must raise exactly ChiaBusinessError of `kind` for this method."""
    with pytest.raises(ChiaBusinessError) as caught:
        await call
    error = caught.value
    assert type(error) is ChiaBusinessError
    assert (error.service, error.method, error.kind) == (service, method, kind), error
    return error


# ---------------------------------------------------------------------------------- cases
Case = Callable[[Chain], Awaitable[None]]
CASES: dict[str, Case] = {}


def case(switch: str) -> Callable[[Case], Case]:
    """Register the case of one fault switch."""

    def register(function: Case) -> Case:
        assert switch in Faults.model_fields, f"no fault switch named {switch}"
        CASES[switch] = function
        return function

    return register


@case("latency")
async def latency_times_out(chain: Chain) -> None:
    async with chain.clients(LOCAL_KEY, read_timeout=SHORT_READ_TIMEOUT) as fast:
        await chain.faults_on(
            latency={
                "datalayer.get_routes": LATENCY_SECONDS,
                "wallet.get_sync_status": LATENCY_SECONDS,
            }
        )
        outcomes = await asyncio.gather(
            fast.datalayer.get_routes(), fast.wallet.get_sync_status(), return_exceptions=True
        )
        for outcome, service, method in zip(
            outcomes, ("datalayer", "wallet"), ("get_routes", "get_sync_status"), strict=True
        ):
            assert type(outcome) is ChiaTimeout, outcome
            assert (outcome.service, outcome.method) == (service, method)
            assert (outcome.phase, outcome.request_sent) == ("read", True)
            assert f"{SHORT_READ_TIMEOUT:g} s" in str(outcome)
        # Only the delayed methods time out: the same short timeout is enough for the rest.
        assert (await fast.wallet.get_height_info()).height >= 1

        await chain.clear_faults()
        assert "/get_routes" in await fast.datalayer.get_routes()
        assert (await fast.wallet.get_sync_status()).synced


@case("fail_next")
async def fail_next_raises_the_injected_error(chain: Chain) -> None:
    await chain.faults_on(
        fail_next=[
            {"method": "create_data_store", "count": 3, "error": DL_WALLET_EXISTS, "key": 0},
            {
                "method": "get_wallet_balance",
                "count": 3,
                "error": WALLET_FAILURE,
                "service": "wallet",
                "key": 0,
            },
        ]
    )
    for _ in range(2):  # the next `count` calls fail, not only the first one
        relayed = await business_error(
            chain.local.datalayer.create_data_store(fee=0),
            service="datalayer",
            method="create_data_store",
            kind=ChiaErrorKind.DL_WALLET_ALREADY_EXISTS,
        )
        assert relayed.nested and relayed.message == DL_WALLET_EXISTS
        assert relayed.raw_error.startswith("RPC response failure: ")
        assert is_transient_wallet_error(relayed)

        unknown = await business_error(
            chain.local.wallet.get_wallet_balance(),
            service="wallet",
            method="get_wallet_balance",
            kind=None,  # a text the client does not recognise stays unclassified
        )
        assert not unknown.nested and unknown.message == WALLET_FAILURE
        assert not is_transient_wallet_error(unknown)
    # The rules are for key 0: the owner's node answers normally meanwhile.
    assert (await chain.owner.wallet.get_wallet_balance()).wallet_id == 1

    await chain.clear_faults()
    assert is_store_id((await chain.local.datalayer.create_data_store(fee=0)).id)
    assert (await chain.local.wallet.get_wallet_balance()).confirmed_wallet_balance > 0


@case("wallet_unsynced")
async def wallet_unsynced_refuses_transactions(chain: Chain) -> None:
    address = await chain.owner.wallet.get_next_address()
    await chain.faults_on(wallet_unsynced=[LOCAL_KEY])

    status = await chain.local.wallet.get_sync_status()
    assert (status.synced, status.syncing) == (False, True)
    relayed = await business_error(
        chain.local.datalayer.create_data_store(fee=0),
        service="datalayer",
        method="create_data_store",
        kind=ChiaErrorKind.WALLET_NOT_SYNCED,
    )
    assert relayed.nested and is_transient_wallet_error(relayed)
    direct = await business_error(
        chain.local.wallet.send_transaction(address=address, amount=1, fee=0),
        service="wallet",
        method="send_transaction",
        kind=ChiaErrorKind.WALLET_NOT_SYNCED,
    )
    assert not direct.nested and is_transient_wallet_error(direct)

    await chain.clear_faults()
    assert (await chain.local.wallet.get_sync_status()).synced
    assert is_store_id((await chain.local.datalayer.create_data_store(fee=0)).id)
    sent = await chain.local.wallet.send_transaction(address=address, amount=1, fee=0)
    assert sent.transaction is not None and sent.transaction.in_mempool


@case("stuck")
async def stuck_subscriber_stays_behind(chain: Chain) -> None:
    store_id, roots = await chain.owned_store(
        [Change.insert(hx("a"), hx("1"))], [Change.insert(hx("b"), hx("2"))]
    )
    local = chain.local.datalayer
    await local.subscribe(store_id)
    await chain.faults_on(stuck=[{"store_id": store_id, "generation": 1, "key": LOCAL_KEY}])
    await chain.admin.cycle(LOCAL_KEY)

    status = await local.get_sync_status(store_id)
    assert (status.generation, status.target_generation, status.synced) == (1, 2, False)
    assert (status.root_hash, status.target_root_hash) == (roots[0], roots[1])
    missing = await business_error(
        local.get_keys_values(store_id, root_hash=roots[1]),
        service="datalayer",
        method="get_keys_values",
        kind=ChiaErrorKind.ROOT_NOT_DOWNLOADED,
    )
    assert is_root_not_downloaded_error(missing)
    await business_error(
        local.get_value(store_id, hx("b")),
        service="datalayer",
        method="get_value",
        kind=ChiaErrorKind.KEY_NOT_FOUND,
    )

    await chain.clear_faults()
    await chain.admin.cycle(LOCAL_KEY)
    status = await local.get_sync_status(store_id)
    assert (status.generation, status.synced) == (2, True)
    pairs = (await local.get_keys_values(store_id, root_hash=roots[1])).keys_values
    assert sorted((pair.key, pair.value) for pair in pairs) == [
        (hx("a"), hx("1")),
        (hx("b"), hx("2")),
    ]
    assert await local.get_value(store_id, hx("b")) == hx("2")


@case("lost_data")
async def lost_data_shows_generation_zero(chain: Chain) -> None:
    store_id, roots = await chain.owned_store([Change.insert(hx("a"), hx("1"))])
    owner = chain.owner.datalayer
    await chain.faults_on(lost_data=[store_id])

    status = await owner.get_sync_status(store_id)
    assert (status.generation, status.root_hash) == (0, ZERO_HASH)
    assert (status.target_generation, status.target_root_hash) == (1, roots[0])
    assert not status.synced
    assert await owner.get_local_root(store_id) is None
    assert (await owner.get_root(store_id)).hash == roots[0]  # the chain still has it
    await business_error(
        owner.get_keys_values(store_id, root_hash=roots[0]),
        service="datalayer",
        method="get_keys_values",
        kind=ChiaErrorKind.ROOT_NOT_DOWNLOADED,
    )

    await chain.clear_faults()
    status = await owner.get_sync_status(store_id)
    assert (status.generation, status.root_hash, status.synced) == (1, roots[0], True)
    assert await owner.get_local_root(store_id) == roots[0]
    pairs = (await owner.get_keys_values(store_id, root_hash=roots[0])).keys_values
    assert [(pair.key, pair.value) for pair in pairs] == [(hx("a"), hx("1"))]


@case("reject_transactions")
async def rejected_transactions_are_flagged_not_raised(chain: Chain) -> None:
    # The client raises nothing here: Chia accepts the request and the mempool refuses the
    # spend, so the typed outcome is the record's `rejected` flag (sent_to status FAILED).
    address = await chain.owner.wallet.get_next_address()
    wallet, datalayer = chain.local.wallet, chain.local.datalayer
    await chain.faults_on(reject_transactions=[LOCAL_KEY])

    sent = await wallet.send_transaction(address=address, amount=1, fee=0)
    assert sent.transaction is not None
    assert sent.transaction.rejected and not sent.transaction.in_mempool
    assert [entry.status for entry in sent.transaction.sent_to] == [MempoolInclusionStatus.FAILED]
    created = await datalayer.create_data_store(fee=0)
    await chain.admin.farm(2)
    unconfirmed = {tx.name: tx for tx in await wallet.get_transactions(confirmed=False)}
    assert {sent.transaction_id, *created.tx_ids} <= set(unconfirmed)
    assert all(unconfirmed[name].rejected for name in (sent.transaction_id, *created.tx_ids))
    await business_error(  # the launch never confirms
        datalayer.get_root(created.id),
        service="datalayer",
        method="get_root",
        kind=ChiaErrorKind.FAILED_TO_GET_ROOT,
    )

    await chain.clear_faults()
    sent = await wallet.send_transaction(address=address, amount=1, fee=0)
    assert sent.transaction is not None
    assert sent.transaction.in_mempool and not sent.transaction.rejected
    created = await datalayer.create_data_store(fee=0)
    await chain.admin.farm()
    confirmed = {tx.name for tx in await wallet.get_transactions(confirmed=True)}
    assert sent.transaction_id in confirmed
    assert (await datalayer.get_root(created.id)).confirmed


@case("spendable_coins")
async def too_few_coins_is_a_coin_shortage(chain: Chain) -> None:
    wallet, datalayer = chain.local.wallet, chain.local.datalayer
    await chain.faults_on(spendable_coins={str(LOCAL_KEY): 1})

    assert len((await wallet.get_spendable_coins()).confirmed_records) == 1
    assert (await wallet.get_wallet_balance()).unspent_coin_count == 1
    await datalayer.create_data_store(fee=0)  # reserves the one coin the wallet shows
    short = await business_error(
        datalayer.create_data_store(fee=0),
        service="datalayer",
        method="create_data_store",
        kind=ChiaErrorKind.COIN_SHORTAGE,
    )
    assert short.nested and is_coin_shortage_error(short) and is_transient_wallet_error(short)

    await chain.clear_faults()
    assert is_store_id((await datalayer.create_data_store(fee=0)).id)
    assert len((await wallet.get_spendable_coins()).confirmed_records) > 1


@case("mirrors_down")
async def mirror_down_leaves_the_subscription_empty(chain: Chain) -> None:
    store_id, roots = await chain.owned_store([Change.insert(hx("a"), hx("1"))])
    local = chain.local.datalayer
    await local.subscribe(store_id, urls=[MIRROR_URL])
    await chain.faults_on(mirrors_down=[MIRROR_URL])
    await chain.admin.cycle(LOCAL_KEY)

    status = await local.get_sync_status(store_id)
    assert (status.generation, status.target_generation, status.synced) == (0, 1, False)
    await business_error(
        local.get_keys_values(store_id, root_hash=roots[0]),
        service="datalayer",
        method="get_keys_values",
        kind=ChiaErrorKind.ROOT_NOT_DOWNLOADED,
    )

    await chain.clear_faults()
    await chain.admin.cycle(LOCAL_KEY)
    assert (await local.get_sync_status(store_id)).synced
    pairs = (await local.get_keys_values(store_id, root_hash=roots[0])).keys_values
    assert [(pair.key, pair.value) for pair in pairs] == [(hx("a"), hx("1"))]


@case("miss_downloads")
async def missed_downloads_leave_the_subscription_empty(chain: Chain) -> None:
    store_id, roots = await chain.owned_store([Change.insert(hx("a"), hx("1"))])
    local = chain.local.datalayer
    await local.subscribe(store_id)
    await chain.faults_on(miss_downloads=[{"store_id": store_id, "count": 3, "key": LOCAL_KEY}])

    for _ in range(2):  # every cycle's attempt misses while misses are left
        await chain.admin.cycle(LOCAL_KEY)
        status = await local.get_sync_status(store_id)
        assert (status.generation, status.target_generation, status.synced) == (0, 1, False)
        await business_error(
            local.get_keys_values(store_id, root_hash=roots[0]),
            service="datalayer",
            method="get_keys_values",
            kind=ChiaErrorKind.ROOT_NOT_DOWNLOADED,
        )

    await chain.clear_faults()
    await chain.admin.cycle(LOCAL_KEY)
    assert (await local.get_sync_status(store_id)).synced
    pairs = (await local.get_keys_values(store_id, root_hash=roots[0])).keys_values
    assert [(pair.key, pair.value) for pair in pairs] == [(hx("a"), hx("1"))]


# ---------------------------------------------------------------------------------- tests
def test_every_fault_switch_has_a_case() -> None:
    # A switch added to Faults without a case here fails this test.
    assert sorted(CASES) == sorted(Faults.model_fields)


@pytest.mark.parametrize("switch", sorted(CASES))
async def test_fault_switch_shows_a_typed_outcome(switch: str, chain: Chain) -> None:
    await CASES[switch](chain)
