"""services.upstream against the simulator: waits, retries and pushes, with its fault switches."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from services.chia import (
    Change,
    ChiaBusinessError,
    ChiaUnavailable,
    text_to_hex,
)
from services.errors import PreconditionFailed, UpstreamCode, UpstreamServiceName
from services.simulator import FailRule
from services.upstream import (
    CoinWaitTimeout,
    PushFailed,
    StoreConfirmationTimeout,
    StoreRejected,
    assert_store_owned,
    create_store_with_retry,
    owned_store_ids,
    push_changes,
    read_store_data,
    run_to_completion,
    upstream_failure,
    wait_for_all_transactions_to_confirm,
    wait_for_spendable_coins,
    wait_for_store_confirmation,
    write_store_data,
)
from tests.home_organization.conftest import eventually

TRANSIENT = "DataLayer Wallet already exists for this key"
SHORTAGE = "Can't select amount higher than our spendable balance.  Amount: 3300, spendable: 0"


def _tuned(services: Any, **settings: Any) -> Any:
    """The node's services with some settings changed (the node keeps its own)."""
    return dataclasses.replace(services, settings=services.settings.model_copy(update=settings))


def _fail_next(simulator: Any, method: str, error: str, count: int = 1) -> None:
    simulator.state.faults.fail_next.append(
        FailRule(method=method, error=error, count=count, key=0)
    )


def _spy(client: Any, method: str) -> list[int]:
    """Count calls of a client method (the node runs in this event loop)."""
    calls: list[int] = []
    original = getattr(client, method)

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return await original(*args, **kwargs)

    setattr(client, method, counting)
    return calls


async def _at_least(calls: list[int], count: int) -> bool:
    return len(calls) >= count


async def _new_store(services: Any) -> str:
    response = await create_store_with_retry(services)
    await wait_for_store_confirmation(services, response.id)
    return str(response.id)


# ------------------------------------------------------------------------------ coins


async def test_spendable_coins_are_found(home_node: Any) -> None:
    readiness = await wait_for_spendable_coins(home_node.services, required=4)
    assert readiness.coin_count >= 4
    assert readiness.total_mojos >= 4 * 3300


async def test_too_few_coins_time_out_with_cadts_message(home_node: Any, simulator: Any) -> None:
    simulator.state.faults.spendable_coins[0] = 3
    with pytest.raises(CoinWaitTimeout) as caught:
        await wait_for_spendable_coins(home_node.services, required=4, limit_seconds=0.1)
    assert caught.value.message == "Timeout waiting for 4 coins of 3300+ mojos after 0.1s"
    assert caught.value.code is UpstreamCode.INSUFFICIENT_FUNDS
    assert caught.value.service is UpstreamServiceName.WALLET


async def test_the_total_balance_counts_too(home_node: Any) -> None:
    # [later #1728]: enough coins, but not enough mojos in them
    with pytest.raises(CoinWaitTimeout):
        await wait_for_spendable_coins(
            home_node.services, required=1, min_total_mojos=10**30, limit_seconds=0.05
        )


async def test_the_coin_wait_succeeds_once_a_fourth_coin_appears(
    home_node: Any, simulator: Any
) -> None:
    simulator.state.faults.spendable_coins[0] = 3
    polls = _spy(home_node.services.wallet, "get_coin_records")
    waiting = asyncio.create_task(
        wait_for_spendable_coins(home_node.services, required=4, limit_seconds=10)
    )
    await eventually(lambda: _at_least(polls, 3), within=10)  # polls that saw three coins
    assert not waiting.done()
    simulator.state.faults.spendable_coins.clear()
    assert (await waiting).coin_count >= 4


async def test_the_coin_wait_waits_for_pending_transactions(home_node: Any, simulator: Any) -> None:
    services = home_node.services
    simulator.state.auto_farm = False
    await services.datalayer.create_data_store(fee=0)
    with pytest.raises(CoinWaitTimeout):
        await wait_for_spendable_coins(services, required=1, limit_seconds=0.1)
    assert await wait_for_all_transactions_to_confirm(services, limit_seconds=0.1) is False
    simulator.state.auto_farm = True
    assert await wait_for_all_transactions_to_confirm(services, limit_seconds=10) is True
    assert (await wait_for_spendable_coins(services, required=1)).coin_count >= 1


# ------------------------------------------------------------------------------ creation


async def test_transient_errors_are_retried(home_node: Any, simulator: Any) -> None:
    _fail_next(simulator, "create_data_store", TRANSIENT, 2)
    response = await create_store_with_retry(home_node.services)
    assert response.id in simulator.state.stores
    assert not simulator.state.faults.fail_next


async def test_transient_errors_stop_after_the_attempt_budget(
    home_node: Any, simulator: Any
) -> None:
    services = _tuned(home_node.services, transient_retry_attempts=3)
    _fail_next(simulator, "create_data_store", TRANSIENT, 3)
    with pytest.raises(ChiaBusinessError, match="DataLayer Wallet already exists"):
        await create_store_with_retry(services)
    assert simulator.state.stores == {}


async def test_a_permanent_error_is_not_retried(home_node: Any, simulator: Any) -> None:
    _fail_next(simulator, "create_data_store", "Some permanent error", 2)
    with pytest.raises(ChiaBusinessError, match="Some permanent error"):
        await create_store_with_retry(home_node.services)
    assert len(simulator.state.faults.fail_next) == 1  # one call only


async def test_coin_shortages_retry_on_a_time_budget(home_node: Any, simulator: Any) -> None:
    _fail_next(simulator, "create_data_store", SHORTAGE, 3)
    response = await create_store_with_retry(home_node.services)
    assert response.id in simulator.state.stores
    no_budget = _tuned(home_node.services, coin_shortage_budget_seconds=0)
    _fail_next(simulator, "create_data_store", SHORTAGE, 1)
    with pytest.raises(ChiaBusinessError, match="spendable balance"):
        await create_store_with_retry(no_budget)


async def test_a_cancelled_creation_still_hands_over_the_store(
    home_node: Any, simulator: Any
) -> None:
    services = home_node.services
    simulator.state.faults.latency["create_data_store"] = 0.3
    called = asyncio.Event()
    original = services.datalayer.create_data_store

    async def spy(**kwargs: Any) -> Any:
        called.set()
        return await original(**kwargs)

    services.datalayer.create_data_store = spy
    saved: list[str] = []

    async def on_created(response: Any) -> None:
        saved.append(response.id)

    task = asyncio.create_task(create_store_with_retry(services, on_created=on_created))
    await called.wait()
    task.cancel()  # while Chia creates the store
    with pytest.raises(asyncio.CancelledError):
        await task
    assert saved == list(simulator.state.stores)  # created AND handed over


async def test_run_to_completion_finishes_before_it_honours_a_cancel() -> None:
    steps: list[str] = []

    async def work() -> str:
        await asyncio.sleep(0.05)
        steps.append("done")
        return "result"

    task = asyncio.create_task(run_to_completion(work()))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    task.cancel()  # twice: still finishes first
    with pytest.raises(asyncio.CancelledError):
        await task
    assert steps == ["done"]
    assert await run_to_completion(work()) == "result"


# ------------------------------------------------------------------------------ confirmation


async def test_a_rejected_store_fails_early(home_node: Any, simulator: Any) -> None:
    simulator.state.faults.reject_transactions.append(0)
    response = await home_node.services.datalayer.create_data_store(fee=0, verbose=True)
    with pytest.raises(StoreRejected, match="was rejected by the network"):
        await wait_for_store_confirmation(home_node.services, response.id, tx_ids=response.tx_ids)


async def test_an_unconfirmed_store_times_out(home_node: Any) -> None:
    services = _tuned(home_node.services, store_confirmation_max_polls=3)
    with pytest.raises(StoreConfirmationTimeout, match="did not confirm after 3 polls"):
        await wait_for_store_confirmation(services, "ab" * 32, limit_seconds=0)


# ------------------------------------------------------------------------------ data


async def test_write_store_data_is_idempotent_and_reads_are_sorted(home_node: Any) -> None:
    services = home_node.services
    store = await _new_store(services)
    assert await write_store_data(services, store, {"zeta": "1", "alpha": "2", "mid": "3"})
    data = await read_store_data(services, store)
    assert list(data) == ["alpha", "mid", "zeta"]
    assert data == {"alpha": "2", "mid": "3", "zeta": "1"}
    # the same values again: nothing to push
    assert await write_store_data(services, store, {"alpha": "2"}) is False
    # a changed value is a delete + insert; other keys stay
    assert await write_store_data(services, store, {"alpha": "changed", "new": "4"})
    assert await read_store_data(services, store) == {
        "alpha": "changed",
        "mid": "3",
        "new": "4",
        "zeta": "1",
    }


async def test_a_push_waits_out_a_pending_root(home_node: Any, simulator: Any) -> None:
    services = home_node.services
    store = await _new_store(services)
    simulator.state.auto_farm = False
    first = [Change.insert(text_to_hex("a"), text_to_hex("1"))]
    assert (await push_changes(services, store, first, wait_until_available=False)).pushed
    second = [Change.insert(text_to_hex("b"), text_to_hex("2"))]
    pushing = asyncio.create_task(push_changes(services, store, second, wait_until_available=False))
    await asyncio.sleep(0.1)  # "Already have a pending root": it waits
    assert not pushing.done()
    simulator.state.auto_farm = True
    assert (await pushing).pushed

    async def both() -> bool:
        return await read_store_data(services, store) == {"a": "1", "b": "2"}

    await eventually(both, within=10)


async def test_an_orphaned_pending_root_is_cleared(home_node: Any, simulator: Any) -> None:
    services = home_node.services
    store = await _new_store(services)
    # a root whose transaction the network rejected stays pending for ever
    simulator.state.faults.reject_transactions.append(0)
    orphan = [Change.insert(text_to_hex("lost"), text_to_hex("x"))]
    await push_changes(services, store, orphan, wait_until_available=False)
    simulator.state.faults.reject_transactions.clear()
    change = [Change.insert(text_to_hex("kept"), text_to_hex("y"))]
    assert (await push_changes(services, store, change, wait_until_available=False)).pushed

    async def kept() -> bool:
        return await read_store_data(services, store) == {"kept": "y"}

    await eventually(kept, within=10)


async def test_already_applied_changes_are_a_success(home_node: Any) -> None:
    services = home_node.services
    store = await _new_store(services)
    await write_store_data(services, store, {"k": "v"})
    again = [Change.insert(text_to_hex("k"), text_to_hex("v"))]
    assert (await push_changes(services, store, again)).pushed is False
    nothing = [Change.delete(text_to_hex("missing"))]
    assert (await push_changes(services, store, nothing)).pushed is False


async def test_a_store_of_another_wallet_is_a_permanent_failure(
    home_node: Any, simulator: Any
) -> None:
    other, _ = simulator.state.create_store(simulator.state.key(1), 0)
    await eventually(lambda: _launched(simulator, other), within=10)
    await _new_store(home_node.services)  # key 0 needs its DataLayer wallet
    change = [Change.insert(text_to_hex("k"), text_to_hex("v"))]
    with pytest.raises(PushFailed) as caught:
        await push_changes(home_node.services, other, change, wait_until_available=False)
    assert caught.value.permanent
    assert "is not owned by DL Wallet" in caught.value.message


async def _launched(simulator: Any, store_id: str) -> bool:
    return bool(simulator.state.stores[store_id].launched)


# ------------------------------------------------------------------------------ ownership


async def test_ownership(home_node: Any) -> None:
    services = home_node.services
    assert await owned_store_ids(services) == set()  # a fresh wallet owns nothing
    store = await _new_store(services)
    assert await owned_store_ids(services) == {store}
    await assert_store_owned(services, "0x" + store.upper())
    with pytest.raises(PreconditionFailed, match="is not owned by this chia wallet"):
        await assert_store_owned(services, "ab" * 32, what="registry store")


# ------------------------------------------------------------------------------ error mapping


@pytest.mark.parametrize(
    ("error", "code", "service"),
    [
        (
            ChiaBusinessError(
                "Wallet needs to be fully synced before making transactions",
                service="datalayer",
                method="batch_update",
                raw_error="x",
            ),
            UpstreamCode.WALLET_NOT_SYNCED,
            UpstreamServiceName.WALLET,
        ),
        (
            ChiaBusinessError(
                SHORTAGE, service="datalayer", method="create_data_store", raw_error="x"
            ),
            UpstreamCode.INSUFFICIENT_FUNDS,
            UpstreamServiceName.WALLET,
        ),
        (
            ChiaBusinessError(
                "DataLayerWallet not available",
                service="datalayer",
                method="get_owned_stores",
                raw_error="x",
            ),
            UpstreamCode.UPSTREAM_UNAVAILABLE,
            UpstreamServiceName.WALLET,
        ),
        (
            ChiaUnavailable(
                "connection refused",
                service="datalayer",
                method="get_root",
                url="https://x",
                request_sent=False,
            ),
            UpstreamCode.UPSTREAM_UNAVAILABLE,
            UpstreamServiceName.DATALAYER,
        ),
        (
            ChiaUnavailable(
                "connection refused",
                service="wallet",
                method="get_sync_status",
                url="https://x",
                request_sent=False,
            ),
            UpstreamCode.UPSTREAM_UNAVAILABLE,
            UpstreamServiceName.WALLET,
        ),
    ],
)
def test_upstream_failure_mapping(error: Any, code: Any, service: Any) -> None:
    failure = upstream_failure(error, context="Creating a store")
    assert (failure.code, failure.service) == (code, service)
    assert failure.message.startswith("Creating a store: ")
