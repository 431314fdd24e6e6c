"""The one typed Conflict of a held lock (domain 2.4) and its GraphQL mapping."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from types import SimpleNamespace

import pytest

from schema.errors import Conflict, ConflictReason, ErrorCode, error_from_domain
from schema.lock import OrgOperation
from schema.scalars import format_datetime
from services import errors as domain
from services.guards import acquire_or_conflict
from services.oplock import OrgOperationLock


@pytest.fixture
def services(redis_client):
    # acquire_or_conflict only needs the lock and how long to wait for a tidying recovery.
    return SimpleNamespace(
        lock=OrgOperationLock(redis_client, ttl_seconds=3600),
        settings=SimpleNamespace(lock_recovery_wait_seconds=5.0),
    )


@pytest.mark.parametrize(
    ("holder", "operation"),
    [
        ("V1 organization creation", OrgOperation.CREATE_HOME_ORGANIZATION),
        ("V1 to V2 upgrade", OrgOperation.UPGRADE_HOME_ORGANIZATION),
        ("V2 home organization reclaim", OrgOperation.RECLAIM_HOME_ORGANIZATION),
    ],
)
async def test_a_held_lock_is_one_typed_conflict(services, holder, operation):
    token = await services.lock.try_acquire(holder)
    await services.lock.update_status(token, "Waiting for store")

    with pytest.raises(domain.Conflict) as raised:
        await acquire_or_conflict(services, "V2 organization creation")

    error = raised.value
    assert error.message == (
        f"A home organization operation is already in progress: {holder}. "
        "Please wait for it to complete."
    )
    assert error.reason is domain.ConflictReason.OPERATION_IN_PROGRESS
    mapped = error_from_domain(error)
    assert isinstance(mapped, Conflict)
    assert mapped.code is ErrorCode.CONFLICT
    assert mapped.reason is ConflictReason.OPERATION_IN_PROGRESS
    assert mapped.message == error.message
    status = mapped.operation_status
    assert status is not None
    assert (status.operation, status.label, status.status) == (
        operation,
        holder,
        "Waiting for store",
    )
    assert isinstance(status.elapsed_seconds, int) and status.elapsed_seconds >= 0
    # Scenario 3: startedAt round-trips as its own ISO string (toISOString form).
    started = format_datetime(status.started_at)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", started)
    assert format_datetime(datetime.fromisoformat(started.replace("Z", "+00:00"))) == started
    # The refused caller changed nothing (L2).
    assert (await services.lock.holder()).token == token


async def test_a_lock_freed_during_the_refusal_is_taken_instead(services, monkeypatch):
    real = services.lock.try_acquire
    calls = []

    async def refused_once(label):
        calls.append(label)
        return None if len(calls) == 1 else await real(label)

    monkeypatch.setattr(services.lock, "try_acquire", refused_once)
    token = await acquire_or_conflict(services, "V2 organization creation")
    assert token.startswith("orglock-") and len(calls) == 2


async def test_a_recovery_that_only_tidies_up_is_waited_for(services):
    # The periodic recovery clears a FAILED record under the lock at the moment the user
    # retries the creation: the retry waits for it instead of a Conflict.
    recovery = await services.lock.try_acquire("V2 organization recovery")
    waiting = asyncio.create_task(acquire_or_conflict(services, "V2 organization creation"))
    await asyncio.sleep(0)  # the request is refused once before the recovery releases
    assert not waiting.done()
    await services.lock.release(recovery)
    token = await asyncio.wait_for(waiting, 5)
    assert (await services.lock.holder()).label == "V2 organization creation"
    assert token != recovery


async def test_a_recovery_that_resumed_a_creation_is_a_conflict_at_once(services):
    recovery = await services.lock.try_acquire("V2 organization recovery")
    await services.lock.update_status(recovery, "Creating stores")
    with pytest.raises(domain.Conflict):
        await asyncio.wait_for(acquire_or_conflict(services, "V2 organization creation"), 1)
    assert (await services.lock.holder()).token == recovery


async def test_waiting_for_a_recovery_is_bounded(services):
    services.settings.lock_recovery_wait_seconds = 0.2
    recovery = await services.lock.try_acquire("V2 organization recovery")
    with pytest.raises(domain.Conflict) as raised:
        await acquire_or_conflict(services, "V2 organization creation")
    assert "V2 organization recovery" in raised.value.message
    assert (await services.lock.holder()).token == recovery


async def test_a_persisted_creation_conflict_has_no_operation_status():
    error = domain.Conflict(
        "A V2 organization creation is still in progress (from a previous session). "
        "Check status at GET /v2/organizations/creation-status.",
        reason=domain.ConflictReason.CREATION_IN_PROGRESS,
    )
    mapped = error_from_domain(error)
    assert isinstance(mapped, Conflict)
    assert mapped.reason is ConflictReason.CREATION_IN_PROGRESS
    assert mapped.operation_status is None
