"""The checks of createHomeOrganization, in CADT's order (2.4): they never leave the lock held."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest

from services.creation_state import CreationRecord, CreationState, meta_key
from services.db.models import Organization, utcnow
from services.fencing import write_meta
from tests.home_organization.conftest import (
    CREATE,
    CREATION_STATUS,
    create,
    lock_free,
    organization_rows,
    owned_store_count,
    record_of,
    wait_lock_free,
)


async def _persist(services: Any, record: CreationRecord) -> None:
    async with services.db.transaction() as session:
        await write_meta(session, meta_key(record.data_version), record.to_json())


def _record(state: CreationState, *, age_minutes: float = 0, retries: int = 0) -> CreationRecord:
    started = utcnow() - timedelta(minutes=age_minutes)
    return CreationRecord(
        state=state,
        name="Earlier Org",
        icon=None,
        data_version="v2",
        api_version="v2",
        retry_count=retries,
        started_at=started,
        updated_at=started,
    )


async def test_read_only_is_refused_before_the_lock(start_home_node: Any) -> None:
    node = await start_home_node(read_only=True)
    # given another operation holds the lock
    token = await node.services.lock.try_acquire("V1 to V2 upgrade")
    # when
    result = await create(node, "Home")
    # then the rejection is ReadOnly and the other operation still holds the lock (scenario 11)
    assert result["__typename"] == "ReadOnly", result
    assert result["code"] == "READ_ONLY"
    holder = await node.services.lock.holder()
    assert holder is not None and holder.token == token


async def test_a_persisted_creation_in_progress_conflicts_without_lock_status(
    home_node: Any,
) -> None:
    await _persist(home_node.services, _record(CreationState.STORES_CREATING))
    result = await create(home_node, "Home")
    assert result["__typename"] == "Conflict", result
    assert result["reason"] == "CREATION_IN_PROGRESS"
    assert "still in progress" in result["message"]
    assert result["lockStatus"] is None
    assert await lock_free(home_node.services)


async def test_a_stale_creation_does_not_block_and_is_resumed(
    home_node: Any, simulator: Any
) -> None:
    # given a creation interrupted 31 minutes ago (scenario 6)
    await _persist(home_node.services, _record(CreationState.STORES_CREATING, age_minutes=31))
    status = (await home_node.execute(CREATION_STATUS))["creationStatus"]
    assert status["inProgress"] is False and status["progress"] == -1
    assert "stale" in status["message"]
    # when
    result = await create(home_node, "New Name")
    # then it is accepted and the earlier creation is resumed (retry 1), not restarted
    assert result["__typename"] == "OperationAccepted", result
    await wait_lock_free(home_node.services)
    rows = await organization_rows(home_node.services)
    assert [(row.name, row.is_home) for row in rows] == [("Earlier Org", True)]
    assert owned_store_count(simulator) == 4
    assert await record_of(home_node.services) is None


async def test_a_stale_creation_at_its_last_retry_fails(home_node: Any, simulator: Any) -> None:
    await _persist(
        home_node.services, _record(CreationState.STORES_CREATING, age_minutes=31, retries=2)
    )
    result = await create(home_node, "Home")
    assert result["__typename"] == "OperationAccepted", result
    await wait_lock_free(home_node.services)
    record = await record_of(home_node.services)
    assert record is not None and record.state is CreationState.FAILED
    assert record.error == "Organization creation timed out after maximum retries"
    assert record.retry_count == 3
    assert await organization_rows(home_node.services) == []  # PENDING removed
    assert owned_store_count(simulator) == 0


@pytest.mark.parametrize(
    ("name", "icon", "field", "text"),
    [
        ("", None, "name", "Organization name is required"),
        ("   ", None, "name", "Organization name is required"),
        ("x" * 201, None, "name", "at most 200 characters"),
        ("Home", "ftp://example.org/icon.png", "icon", "http(s) URL or a data URI"),
        ("Home", "not a url", "icon", "http(s) URL or a data URI"),
        ("Home", "data:image/png;base64,@@@", "icon", "not valid base64"),
        (
            "Home",
            "data:image/png;base64," + base64.b64encode(b"\0" * (2 * 1024 * 1024 + 1)).decode(),
            "icon",
            "at most 2 MB",
        ),
    ],
)
async def test_validation_releases_the_lock(
    home_node: Any, name: str, icon: str | None, field: str, text: str
) -> None:
    result = await create(home_node, name, icon)
    assert result["__typename"] == "ValidationError", result
    assert result["code"] == "VALIDATION"
    assert result["field"] == field
    assert text in result["message"]
    assert await lock_free(home_node.services)  # scenario 12
    assert await record_of(home_node.services) is None


async def test_accepted_icons(home_node: Any) -> None:
    small = "data:image/png;base64," + base64.b64encode(b"\x89PNG" * 10).decode()
    result = await create(home_node, "  Home  ", small)
    assert result["__typename"] == "OperationAccepted", result
    await wait_lock_free(home_node.services)
    [row] = await organization_rows(home_node.services)
    assert (row.name, row.icon) == ("Home", small)


async def _insert_home(services: Any, version: str) -> None:
    async with services.db.transaction() as session:
        session.add(
            Organization(
                org_uid="ab" * 32, data_model_version=version, name="Existing", is_home=True
            )
        )


async def test_an_existing_home_organization_is_a_precondition_failure(home_node: Any) -> None:
    await _insert_home(home_node.services, "v2")
    result = await create(home_node, "Home")
    assert result["__typename"] == "PreconditionFailed", result
    assert result["message"] == "V2 home organization already exists"
    assert await lock_free(home_node.services)


async def test_a_v1_home_organization_points_at_the_upgrade(home_node: Any) -> None:
    await _insert_home(home_node.services, "v1")
    result = await create(home_node, "Home")
    assert result["__typename"] == "PreconditionFailed", result
    assert "V1 organization detected" in result["message"]
    assert "upgradeHomeOrganization" in result["message"]
    assert await lock_free(home_node.services)


async def test_an_unsynced_wallet_refuses_and_releases(home_node: Any, simulator: Any) -> None:
    simulator.state.faults.wallet_unsynced.append(0)
    result = await create(home_node, "Home")
    assert result["__typename"] == "UpstreamError", result
    assert result["code"] == "WALLET_NOT_SYNCED"
    assert result["service"] == "WALLET"
    assert await lock_free(home_node.services)
    assert await record_of(home_node.services) is None


async def test_a_failed_creation_can_be_started_again(home_node: Any, simulator: Any) -> None:
    simulator.state.faults.spendable_coins[0] = 0
    first = await create(home_node, "Home")
    assert first["__typename"] == "OperationAccepted"
    await wait_lock_free(home_node.services)
    failed = await record_of(home_node.services)
    assert failed is not None and failed.state is CreationState.FAILED
    # a FAILED record does not block a new attempt
    simulator.state.faults.spendable_coins.clear()
    data = await home_node.execute(CREATE, {"input": {"name": "Home"}})
    assert data["createHomeOrganization"]["__typename"] == "OperationAccepted"
    await wait_lock_free(home_node.services)
    assert [row.is_home for row in await organization_rows(home_node.services)] == [True]


async def test_a_failed_enqueue_releases_the_lock_and_forgets_the_intent(home_node: Any) -> None:
    async def broken(*args: Any, **kwargs: Any) -> str | None:
        raise ConnectionError("Redis went away")

    home_node.services.queue.enqueue = broken
    body = await home_node.execute(CREATE, {"input": {"name": "Home"}}, expect_errors=True)
    assert "Redis went away" in body["errors"][0]["message"]
    assert await lock_free(home_node.services)
    assert await record_of(home_node.services) is None


async def test_a_job_whose_token_was_superseded_does_nothing(home_node: Any) -> None:
    from services.home_organization import run_creation_job

    services = home_node.services
    old = await services.lock.try_acquire("V2 organization creation")
    await services.lock.release(old)
    newer = await services.lock.try_acquire("V2 organization recovery")
    outcome = await run_creation_job(services, token=old, name="Home", icon=None)
    assert outcome.startswith("skipped")
    holder = await services.lock.holder()
    assert holder is not None and holder.token == newer  # untouched
    assert await record_of(services) is None
    assert await organization_rows(services) == []
