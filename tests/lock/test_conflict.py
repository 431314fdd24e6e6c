"""The one typed Conflict of a held lock (domain 2.4) and its GraphQL mapping."""

from __future__ import annotations

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
    # acquire_or_conflict only needs the lock.
    return SimpleNamespace(lock=OrgOperationLock(redis_client, ttl_seconds=3600))


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
