"""Reclaim an organization this wallet owns as the home organization (3.7): a repair operation.

Runs in the request under the lock ("V<n> home organization reclaim"): read-only first, then
the lock, then every check in a section whose `finally` releases it. The promotion itself is a
SERIALIZABLE transaction with a conditional update, and the partial unique index (one home row
per data model) backs it up, so two concurrent reclaims leave exactly one home organization
even without the lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from services.chia import ZERO_HASH, ChiaRpcError
from services.container import Services
from services.db.models import Organization, utcnow
from services.errors import Conflict, ConflictReason, NotFound, PreconditionFailed
from services.fencing import Fence
from services.guards import (
    acquire_or_conflict,
    assert_wallet_synced,
    assert_writable,
    store_id_argument,
)
from services.home_organization.common import (
    PENDING_ORG_UID,
    describe_failure,
    find_home_row,
    find_row,
    reclaim_label,
    version_tag,
)
from services.upstream import owned_store_ids, read_store_data
from services.views import OrganizationView

logger = logging.getLogger(__name__)

_UNSET_HASHES = {None, "", "0", ZERO_HASH, "0x" + ZERO_HASH}
#: Texts of serialization failures, deadlocks and busy databases (3.7), lower case.
_CONCURRENCY_TEXTS = (
    "could not serialize access",
    "serialization failure",
    "deadlock",
    "database is locked",
    "sqlite_busy",
)
_CONCURRENCY_CODES = {"40001", "40P01", "1213", "ER_LOCK_DEADLOCK", "SQLITE_BUSY"}


@dataclass(frozen=True)
class ReclaimOutcome:
    """The home organization after a reclaim, and what happened."""

    message: str
    organization: OrganizationView


def is_concurrency_error(error: DBAPIError) -> bool:
    """A serialization failure, deadlock or busy database: the other writer won."""
    original = error.orig if error.orig is not None else error
    code = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if code in _CONCURRENCY_CODES:
        return True
    text = str(original).lower()
    return any(part in text for part in _CONCURRENCY_TEXTS)


def _home_changed(version: str, *, concurrent: bool) -> Conflict:
    tag = version_tag(version)
    detail = (
        "a concurrent request updated home state"
        if concurrent
        else "home state changed during request processing"
    )
    return Conflict(f"{tag} {detail}. Retry the request.", reason=ConflictReason.HOME_CHANGED)


def _another_home(version: str, org_uid: str) -> Conflict:
    return Conflict(
        f"Another {version_tag(version)} organization ({org_uid}) is already set as home. "
        "Delete it from this node first.",
        reason=ConflictReason.HOME_ALREADY_SET,
    )


def _creation_running(version: str) -> Conflict:
    return Conflict(
        f"A {version_tag(version)} organization creation is currently in progress; "
        "reclaim is not possible now.",
        reason=ConflictReason.CREATION_IN_PROGRESS,
    )


async def reclaim_home_organization(services: Services, *, org_uid: str) -> ReclaimOutcome:
    """reclaimHomeOrganization: make an owned, consistent organization the home organization."""
    assert_writable(services)
    org_uid = store_id_argument(org_uid, field="orgUid")
    version = services.settings.data_model_version.value
    tag = version_tag(version)
    token = await acquire_or_conflict(services, reclaim_label(version))
    error: str | None = None
    try:
        await assert_wallet_synced(services)
        async with services.db.session() as session:
            row = await find_row(session, org_uid, version)
            if row is None:
                raise NotFound(f"{tag} organization {org_uid} not found on this node")
            if row.is_home:
                return ReclaimOutcome(
                    f"{tag} organization {org_uid} is already the home organization.",
                    OrganizationView.from_row(row),
                )
            home = await find_home_row(session, version)
            if home is not None:
                raise _another_home(version, home.org_uid)
            if await find_row(session, PENDING_ORG_UID, version) is not None:
                raise _creation_running(version)
        await _check_consistency(services, row, version)
        view = await promote_home(services, org_uid=org_uid, fence=Fence(services.lock, token))
        return ReclaimOutcome(
            f"{tag} organization {org_uid} has been reclaimed as the home organization.", view
        )
    except Exception as failure:
        error = describe_failure(failure)
        raise
    finally:
        await services.lock.release(token, error=error)


async def _check_consistency(services: Services, row: Organization, version: str) -> None:
    """Ownership of all three stores, the ids and orgHash, and the singleton's version key."""
    if not row.registry_id:
        raise PreconditionFailed(f"Organization {row.org_uid} has no registry store id")
    if not row.data_model_version_store_id:
        raise PreconditionFailed(f"Organization {row.org_uid} has no data-model-version store id")
    if row.org_hash in _UNSET_HASHES:
        raise PreconditionFailed(
            f"Organization {row.org_uid} has no orgHash yet; wait for it to sync"
        )
    try:
        owned = await owned_store_ids(services)
    except ChiaRpcError as error:
        raise PreconditionFailed(f"Could not list the stores this wallet owns: {error}") from error
    for what, store_id in (
        ("orgUid store", row.org_uid),
        ("registry store", row.registry_id),
        ("data-model-version store", row.data_model_version_store_id),
    ):
        if store_id not in owned:
            raise PreconditionFailed(f"{what} id {store_id} is not owned by this chia wallet")
    dmv = row.data_model_version_store_id
    try:
        singleton = await read_store_data(services, dmv)
    except ChiaRpcError as error:
        raise PreconditionFailed(
            f"The data-model-version store {dmv} is not readable: {error.message}"
        ) from error
    if not singleton:
        raise PreconditionFailed(f"The data-model-version store {dmv} is empty")
    registry = singleton.get(version)
    if registry is None:
        raise PreconditionFailed(f"The data-model-version store {dmv} has no {version} key")
    if _bare(registry) != _bare(row.registry_id):
        raise PreconditionFailed(
            f"The data-model-version store {dmv} names registry {registry} for {version}, "
            f"but the organization's registry is {row.registry_id}"
        )


def _bare(store_id: str) -> str:
    return store_id.strip().lower().removeprefix("0x")


async def promote_home(
    services: Services, *, org_uid: str, fence: Fence | None = None
) -> OrganizationView:
    """Make `org_uid` the home organization in one SERIALIZABLE transaction (3.7 step 8).

    Conflict HOME_ALREADY_SET when another is home, HOME_CHANGED when the conditional update
    changed no row or the database reports a concurrent writer.
    """
    version = services.settings.data_model_version.value
    table = Organization.__table__  # type: ignore[attr-defined]
    postgres = services.db.dialect == "postgresql"
    async with services.db.sessions() as session:
        try:
            await session.connection(execution_options={"isolation_level": "SERIALIZABLE"})
            home_query = (
                sa.select(Organization)
                .where(Organization.is_home.is_(True))  # type: ignore[attr-defined]
                .where(Organization.data_model_version == version)  # type: ignore[arg-type]
                .where(Organization.org_uid != PENDING_ORG_UID)  # type: ignore[arg-type]
            )
            if postgres:
                home_query = home_query.with_for_update()
            home = (await session.execute(home_query)).scalars().first()
            if home is not None:
                if home.org_uid == org_uid:
                    await session.commit()
                    return OrganizationView.from_row(home)
                raise _another_home(version, home.org_uid)
            if await find_row(session, PENDING_ORG_UID, version) is not None:
                raise _creation_running(version)
            values: dict[str, object] = {"is_home": True, "updated_at": utcnow()}
            statement = (
                sa.update(table)
                .where(table.c.org_uid == org_uid)
                .where(table.c.data_model_version == version)
                .where(table.c.is_home.is_(False))
            )
            if fence is not None:
                await fence.assert_current()
                statement = statement.where(
                    sa.or_(table.c.lock_fence.is_(None), table.c.lock_fence <= fence.number)
                )
                values["lock_fence"] = fence.number
            result = await session.execute(statement.values(**values))
            if not result.rowcount:  # type: ignore[attr-defined]
                raise _home_changed(version, concurrent=False)
            row = await find_row(session, org_uid, version)
            await session.commit()
        except IntegrityError as error:
            await session.rollback()
            logger.info("reclaim of %s lost to a concurrent home change: %s", org_uid, error)
            raise _home_changed(version, concurrent=True) from error
        except DBAPIError as error:
            await session.rollback()
            if is_concurrency_error(error):
                logger.info("reclaim of %s lost to a concurrent writer: %s", org_uid, error)
                raise _home_changed(version, concurrent=True) from error
            raise
        except BaseException:
            await session.rollback()
            raise
    assert row is not None
    return OrganizationView.from_row(row)
