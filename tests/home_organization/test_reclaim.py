"""reclaimHomeOrganization (3.7): the checks, the promotion, and the race of scenario 30."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa

from services.db.models import Organization
from services.errors import Conflict, ConflictReason
from services.home_organization import promote_home
from tests.home_organization.conftest import (
    RECLAIM,
    create_and_wait,
    lock_free,
    organization_rows,
)


async def _unhome(services: Any) -> Organization:
    """Turn the current home organization into an ordinary row; return it."""
    async with services.db.transaction() as session:
        row = (
            await session.execute(sa.select(Organization).where(Organization.is_home.is_(True)))
        ).scalar_one()
        row.is_home = False
        session.add(row)
    return row


async def _owned_orgs(node: Any, count: int) -> list[Organization]:
    """`count` valid organizations this wallet owns, none of them home."""
    orgs = []
    for index in range(count):
        await create_and_wait(node, f"Org {index}")
        orgs.append(await _unhome(node.services))
    return orgs


async def _reclaim(node: Any, org_uid: str) -> dict[str, Any]:
    result: dict[str, Any] = (await node.execute(RECLAIM, {"orgUid": org_uid}))[
        "reclaimHomeOrganization"
    ]
    return result


async def _homes(services: Any) -> list[str]:
    return [row.org_uid for row in await organization_rows(services) if row.is_home]


async def test_reclaim_makes_an_owned_organization_home_again(home_node: Any) -> None:
    [org] = await _owned_orgs(home_node, 1)
    result = await _reclaim(home_node, "0x" + org.org_uid.upper())
    assert result["__typename"] == "OrganizationPayload", result
    assert result["message"] == (
        f"V2 organization {org.org_uid} has been reclaimed as the home organization."
    )
    assert result["organization"]["isHome"] is True
    assert result["organization"]["orgUid"] == org.org_uid
    assert await _homes(home_node.services) == [org.org_uid]
    assert await lock_free(home_node.services)
    # idempotent
    again = await _reclaim(home_node, org.org_uid)
    assert again["__typename"] == "OrganizationPayload"
    assert again["message"].endswith("is already the home organization.")


async def test_reclaim_refusals(home_node: Any, simulator: Any) -> None:
    services = home_node.services
    a, b = await _owned_orgs(home_node, 2)

    malformed = await _reclaim(home_node, "not-a-store-id")
    assert (malformed["__typename"], malformed["field"]) == ("ValidationError", "orgUid")

    missing = await _reclaim(home_node, "cd" * 32)
    assert missing["__typename"] == "NotFound", missing

    # another organization is home
    await _reclaim(home_node, a.org_uid)
    other = await _reclaim(home_node, b.org_uid)
    assert (other["__typename"], other["reason"]) == ("Conflict", "HOME_ALREADY_SET")
    assert a.org_uid in other["message"]
    await _unhome(services)

    # a creation is running (its PENDING row exists)
    async with services.db.transaction() as session:
        session.add(Organization(org_uid="PENDING", data_model_version="v2", is_home=True))
    pending = await _reclaim(home_node, b.org_uid)
    assert (pending["__typename"], pending["reason"]) == ("Conflict", "CREATION_IN_PROGRESS")
    async with services.db.transaction() as session:
        await session.execute(sa.delete(Organization).where(Organization.org_uid == "PENDING"))

    # stores this wallet does not own
    async with services.db.transaction() as session:
        session.add(
            Organization(
                org_uid="ef" * 32,
                data_model_version="v2",
                registry_id="12" * 32,
                data_model_version_store_id="34" * 32,
                org_hash="56" * 32,
            )
        )
    foreign = await _reclaim(home_node, "ef" * 32)
    assert foreign["__typename"] == "PreconditionFailed", foreign
    assert foreign["message"] == f"orgUid store id {'ef' * 32} is not owned by this chia wallet"

    # the singleton names another registry than the row
    async with services.db.transaction() as session:
        await session.execute(
            sa.update(Organization)
            .where(Organization.org_uid == b.org_uid)
            .values(registry_id=b.file_store_id)
        )
    mismatch = await _reclaim(home_node, b.org_uid)
    assert mismatch["__typename"] == "PreconditionFailed", mismatch
    assert b.registry_id in mismatch["message"] and b.file_store_id in mismatch["message"]

    # no orgHash yet
    async with services.db.transaction() as session:
        await session.execute(
            sa.update(Organization)
            .where(Organization.org_uid == b.org_uid)
            .values(registry_id=b.registry_id, org_hash="0")
        )
    unsynced = await _reclaim(home_node, b.org_uid)
    assert unsynced["__typename"] == "PreconditionFailed", unsynced
    assert "orgHash" in unsynced["message"]

    # the wallet must be synced
    simulator.state.faults.wallet_unsynced.append(0)
    wallet = await _reclaim(home_node, a.org_uid)
    assert (wallet["__typename"], wallet["code"]) == ("UpstreamError", "WALLET_NOT_SYNCED")
    simulator.state.faults.wallet_unsynced.clear()

    assert await _homes(services) == []
    assert await lock_free(services)  # every refusal released the lock


async def test_reclaim_is_guarded_by_the_lock_and_read_only(start_home_node: Any) -> None:
    node = await start_home_node()
    token = await node.services.lock.try_acquire("V1 to V2 upgrade")
    held = await _reclaim(node, "ab" * 32)
    assert (held["__typename"], held["reason"]) == ("Conflict", "OPERATION_IN_PROGRESS")
    assert held["lockStatus"]["label"] == "V1 to V2 upgrade"  # scenario 4
    await node.services.lock.release(token)

    read_only = await start_home_node(read_only=True)
    refused = await _reclaim(read_only, "ab" * 32)
    assert refused["__typename"] == "ReadOnly", refused


async def test_two_concurrent_reclaims_leave_exactly_one_home(home_node: Any) -> None:
    # scenario 30
    a, b = await _owned_orgs(home_node, 2)
    results = await asyncio.gather(_reclaim(home_node, a.org_uid), _reclaim(home_node, b.org_uid))
    kinds = sorted(result["__typename"] for result in results)
    assert kinds == ["Conflict", "OrganizationPayload"], results
    loser = next(result for result in results if result["__typename"] == "Conflict")
    assert loser["reason"] in ("OPERATION_IN_PROGRESS", "HOME_ALREADY_SET", "HOME_CHANGED")
    assert len(await _homes(home_node.services)) == 1


@pytest.mark.parametrize("attempt", range(3))
async def test_concurrent_promotions_without_the_lock_leave_exactly_one_home(
    database: Any, attempt: int
) -> None:
    # The database alone (SERIALIZABLE, conditional update, unique home index) decides.
    from types import SimpleNamespace

    from services.config import ServiceSettings

    async with database.transaction() as session:
        for uid in ("aa" * 32, "bb" * 32):
            session.add(Organization(org_uid=uid, data_model_version="v2", name=uid[:4]))
    services = SimpleNamespace(db=database, settings=ServiceSettings())
    outcomes = await asyncio.gather(
        promote_home(services, org_uid="aa" * 32),  # type: ignore[arg-type]
        promote_home(services, org_uid="bb" * 32),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    winners = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    losers = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert isinstance(losers[0], Conflict)
    assert losers[0].reason in (ConflictReason.HOME_ALREADY_SET, ConflictReason.HOME_CHANGED)
    async with database.session() as session:
        homes = (
            await session.execute(sa.select(Organization.org_uid).where(Organization.is_home))
        ).all()
    assert homes == [(winners[0].org_uid,)]
