"""Upstream trouble during a creation: transient retries, permanent failures, too few coins."""

from __future__ import annotations

from typing import Any

from services.creation_state import CreationState
from tests.home_organization.conftest import (
    CREATION_STATUS,
    create,
    organization_rows,
    owned_store_count,
    record_of,
    recorded_events,
    wait_lock_free,
)

TRANSIENT = "DataLayer Wallet already exists for this key"


def _fail_next(simulator: Any, method: str, error: str, count: int) -> None:
    from services.simulator import FailRule

    simulator.state.faults.fail_next.append(
        FailRule(method=method, error=error, count=count, key=0)
    )


async def test_a_transient_wallet_error_is_retried_and_the_creation_completes(
    home_node: Any, simulator: Any
) -> None:
    # scenario 23: two calls fail with the Chia race, the retries succeed
    _fail_next(simulator, "create_data_store", TRANSIENT, 2)
    result = await create(home_node, "Home")
    assert result["__typename"] == "OperationAccepted"
    await wait_lock_free(home_node.services)
    assert not simulator.state.faults.fail_next  # both failures were consumed
    rows = await organization_rows(home_node.services)
    assert [(row.is_home, row.subscribed) for row in rows] == [(True, True)]
    assert owned_store_count(simulator) == 4
    assert await record_of(home_node.services) is None


async def test_a_permanent_error_fails_the_creation_and_frees_the_lock(
    home_node: Any, simulator: Any
) -> None:
    _fail_next(simulator, "create_data_store", "Some permanent error", 1)
    async with recorded_events(home_node.services) as events:
        result = await create(home_node, "Home")
        assert result["__typename"] == "OperationAccepted"
        await wait_lock_free(home_node.services)
    record = await record_of(home_node.services)
    assert record is not None and record.state is CreationState.FAILED
    assert record.error is not None
    assert record.error.startswith("Failed to create stores: ")
    assert "Some permanent error" in record.error
    # the three other stores were created and saved (a retry can reuse the record's ids)
    assert sum(1 for store in record.stores.values() if store.id) == 3
    assert await organization_rows(home_node.services) == []  # PENDING deleted
    last = events["operation"][-1]
    assert last["kind"] == "FAILED" and "Some permanent error" in last["error"]
    status = (await home_node.execute(CREATION_STATUS))["creationStatus"]
    assert status["state"] == "FAILED" and status["progress"] == -1
    assert status["message"].startswith("Organization creation failed: Failed to create stores")
    assert status["inProgress"] is False and status["liveStatus"] is None


async def test_too_few_coins_waits_then_fails_with_the_timeout(
    start_home_node: Any, simulator: Any
) -> None:
    node = await start_home_node(spendable_coins_timeout_seconds=0.3)
    simulator.state.faults.spendable_coins[0] = 3  # scenario 24: 3 usable coins, 4 needed
    async with recorded_events(node.services) as events:
        result = await create(node, "Home")
        assert result["__typename"] == "OperationAccepted"
        await wait_lock_free(node.services)
    record = await record_of(node.services)
    assert record is not None and record.state is CreationState.FAILED
    assert record.error == (
        "Cannot create organization: Timeout waiting for 4 coins of 3300+ mojos after 0.3s. "
        "Please ensure wallet has sufficient balance, coin management has split coins, and no "
        "pending transactions."
    )
    statuses = [e["holder"]["status"] for e in events["operation"]]
    assert "Waiting for spendable coins" in statuses
    assert owned_store_count(simulator) == 0
    assert await organization_rows(node.services) == []
