"""Import an organization (cadt-domain 3.3 with #1534): subscribe first, then check sync.

The org store is subscribed before `get_sync_status` is asked (an unsubscribed store only
answers "No store id stored..."). When DataLayer has not synced the org store or its
data-model-version store yet, the import is recorded in Meta `pendingImports` and the job
`finish_import_organization` (job id `import-organization:<orgUid>`) completes it once they are
synced; a periodic job re-enqueues whatever is still pending, so an import is never lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.container import Services
from services.db.models import Organization, utcnow
from services.errors import (
    Conflict,
    ConflictReason,
    DomainError,
    NotFound,
    PreconditionFailed,
    UpstreamFailure,
)
from services.guards import lock_conflict, store_id_argument
from services.organizations import records
from services.organizations.outcomes import ImportOutcome, ImportStatus
from services.organizations.stores import (
    StoreNotOnChain,
    Subscriptions,
    local_root,
    owned_store_ids,
    read_store,
    store_id_or_none,
    store_sync,
)
from services.views import OrganizationView

logger = logging.getLogger(__name__)

#: arq function name of the job that finishes a waiting import.
FINISH_IMPORT_JOB = "finish_import_organization"
#: arq function name of the periodic job that re-enqueues waiting imports.
RESUME_IMPORTS_JOB = "resume_pending_imports"

IMPORTED_MESSAGE = (
    "Successfully imported {home}organization. CADT will begin syncing data from datalayer shortly"
)


def import_job_id(org_uid: str) -> str:
    """The arq job id of the job finishing the import of `org_uid` (one per organization)."""
    return f"import-organization:{org_uid}"


@dataclass(frozen=True)
class Waiting:
    """DataLayer has not synced a store the import must read."""

    reason: str


def _already_exists(org_uid: str) -> PreconditionFailed:
    return PreconditionFailed(f"organization {org_uid} already exists in the CADT database")


async def import_organization(
    services: Services, org_uid: str, *, is_home: bool = False, user_request: bool = True
) -> ImportOutcome:
    """Import an organization, or start finishing it in the background while DataLayer syncs.

    For governance discovery pass `user_request=False`: organizations the user deleted
    (userDeletedOrgs) are then SKIPPED and stay deleted; an explicit (user) import removes
    the orgUid from userDeletedOrgs. Raises InvalidInput, PreconditionFailed (exists, not a
    V2 organization, stores not owned for isHome), Conflict (another home, lock held for
    isHome) or UpstreamFailure; no row is written on any of them.
    """
    org_uid = store_id_argument(org_uid, field="orgUid")
    version = services.settings.data_model_version.value
    if await records.load_row(services.db, org_uid, version) is not None:
        raise _already_exists(org_uid)
    if not user_request and org_uid in await records.user_deleted_org_uids(services.db):
        return ImportOutcome(
            message=f"organization {org_uid} was deleted by the user; not importing it",
            status=ImportStatus.SKIPPED,
        )
    if is_home:
        await _assert_home_free(services)
    try:
        result = await attempt_import(services, org_uid, is_home=is_home, user_request=user_request)
    except StoreNotOnChain as error:
        # A well-formed id of nothing on chain: NotFound (a malformed one is InvalidInput).
        raise NotFound(error.message) from error
    if isinstance(result, OrganizationView):
        home = "home " if is_home else ""
        return ImportOutcome(
            message=IMPORTED_MESSAGE.format(home=home),
            organization=result,
            status=ImportStatus.IMPORTED,
        )
    job_id = await _record_pending(services, org_uid, is_home=is_home, user_request=user_request)
    return ImportOutcome(
        message=(
            f"Subscribed to organization {org_uid}, but DataLayer is still syncing its stores "
            f"({result.reason}). The import will finish in the background once they are synced."
        ),
        status=ImportStatus.WAITING,
        job_id=job_id,
    )


async def _assert_home_free(services: Services) -> None:
    if await services.lock.status() is not None:
        raise await lock_conflict(services)
    version = services.settings.data_model_version.value
    async with services.db.session() as session:
        home = await records.find_home_row(session, version)
    if home is not None:
        raise Conflict(
            f"Another organization ({home.org_uid}) is already set as home",
            reason=ConflictReason.HOME_ALREADY_SET,
        )


async def _record_pending(
    services: Services, org_uid: str, *, is_home: bool, user_request: bool
) -> str | None:
    async def save(session: AsyncSession) -> None:
        await records.save_pending_import(
            session, org_uid, is_home=is_home, user_request=user_request
        )

    await records.in_transaction(services.db, save, retry_integrity=True)
    return await enqueue_finish(services, org_uid)


async def enqueue_finish(services: Services, org_uid: str) -> str | None:
    """Enqueue the job finishing a waiting import (the periodic job retries if this fails)."""
    try:
        return await services.queue.enqueue(
            FINISH_IMPORT_JOB, org_uid, job_id=import_job_id(org_uid)
        )
    except Exception:  # Redis hiccup: the Meta record stands and resume_pending_imports retries
        logger.warning(
            "could not enqueue the import of %s; it stays pending", org_uid, exc_info=True
        )
        return None


async def attempt_import(
    services: Services,
    org_uid: str,
    *,
    is_home: bool,
    user_request: bool,
    require_pending: bool = False,
) -> OrganizationView | Waiting:
    """One pass of the import: the new row, or Waiting while DataLayer syncs a store.

    With `require_pending` (the background job), the row is written only while the Meta
    `pendingImports` entry still exists, so a delete or unsubscribe meanwhile cancels it.
    """
    version = services.settings.data_model_version.value
    owned: set[str] = set()
    if is_home:
        owned = await owned_store_ids(services)
        if org_uid not in owned:
            raise PreconditionFailed(
                f"orgUid store {org_uid} is not owned by this chia wallet. "
                f"cannot import organization {org_uid} as home"
            )
    subscriptions = Subscriptions(services)
    await subscriptions.ensure(org_uid)
    org_sync = await store_sync(services, org_uid)
    if not org_sync.synced:
        return Waiting(f"org store: {org_sync.describe()}")

    org_data = await read_store(services, org_uid)
    dmv_id = store_id_or_none(org_data.get("registryId"))
    if dmv_id is None:
        raise PreconditionFailed(
            f"organization {org_uid} is not a CADT organization: its org store has no "
            "data-model-version store id (registryId)"
        )
    await subscriptions.ensure(dmv_id)
    dmv_sync = await store_sync(services, dmv_id)
    if not dmv_sync.synced:
        return Waiting(f"data-model-version store: {dmv_sync.describe()}")
    dmv_data = await read_store(services, dmv_id)
    registry_id = store_id_or_none(dmv_data.get(version))
    if registry_id is None:
        raise PreconditionFailed(not_this_version_message(org_uid, version))
    if is_home:
        for store_id in (dmv_id, registry_id):
            if store_id not in owned:
                raise PreconditionFailed(
                    f"store id {store_id} is not owned by this chia wallet. "
                    f"cannot import organization {org_uid} as home"
                )
    await subscriptions.ensure(registry_id)
    file_store_id = store_id_or_none(org_data.get("fileStoreId"))
    if file_store_id is not None and services.settings.auto_subscribe_filestore:
        try:
            await subscriptions.ensure(file_store_id)
        except DomainError as error:  # CADT 3.4 step 5: only a warning
            logger.warning("could not subscribe file store %s: %s", file_store_id, error.message)

    row = Organization(
        org_uid=org_uid,
        data_model_version=version,
        name=org_data.get("name", ""),
        icon=org_data.get("icon") or None,
        org_hash=await local_root(services, org_uid),
        registry_id=registry_id,
        data_model_version_store_id=dmv_id,
        data_model_version_store_hash=await local_root(services, dmv_id),
        file_store_id=file_store_id,
        subscribed=True,
        is_home=is_home,
        metadata_json=json.dumps(metadata_of(org_data), separators=(",", ":")),
    )
    return await _insert(services, row, user_request=user_request, require_pending=require_pending)


def not_this_version_message(org_uid: str, version: str) -> str:
    """CADT's refusal of an organization without this node's data-model-version key."""
    if version == "v2":
        return (
            f"organization {org_uid} does not have V2 data. "
            "Pure V1 organizations should use the V1 API"
        )
    return f"organization {org_uid} does not have data for this datamodel ({version})"


def metadata_of(store_data: dict[str, str]) -> dict[str, str]:
    """The meta_ keys of an org store, prefix kept (as the metadata column stores them)."""
    return {key: value for key, value in sorted(store_data.items()) if key.startswith("meta_")}


async def _insert(
    services: Services, row: Organization, *, user_request: bool, require_pending: bool
) -> OrganizationView | Waiting:
    version = row.data_model_version

    async def write(session: AsyncSession) -> OrganizationView | Waiting:
        existing = await records.find_row(session, row.org_uid, version)
        if existing is not None:
            # A concurrent import won: that row is the result (the import is idempotent).
            await records.drop_pending_import(session, row.org_uid)
            return OrganizationView.from_row(existing)
        pending = await records.pending_import(session, row.org_uid)
        if require_pending and pending is None:
            return Waiting("the import was cancelled")
        if row.is_home and await records.find_home_row(session, version) is not None:
            raise Conflict(
                "Another organization is already set as home",
                reason=ConflictReason.HOME_ALREADY_SET,
            )
        fresh = Organization.model_validate(row.model_dump(exclude={"id"}))
        fresh.created_at = fresh.updated_at = utcnow()
        session.add(fresh)
        await session.flush()
        if user_request or (pending is not None and pending.user_request):
            await records.remove_user_deleted_org(session, row.org_uid)
        await records.drop_pending_import(session, row.org_uid)
        return OrganizationView.from_row(fresh)

    try:
        return await records.in_transaction(services.db, write)
    except IntegrityError as error:
        # Unique (orgUid, version) or the one-home index: someone else wrote first.
        async with services.db.session() as session:
            existing = await records.find_row(session, row.org_uid, version)
        if existing is not None and existing.is_home == row.is_home:
            return OrganizationView.from_row(existing)
        if row.is_home:
            raise Conflict(
                "Home state changed during the import; retry",
                reason=ConflictReason.HOME_CHANGED,
            ) from error
        raise _already_exists(row.org_uid) from error


async def finish_pending_import(services: Services, org_uid: str) -> str:
    """Job body: retry a waiting import until it completes, fails for good, or time runs out.

    Polls every `poll_interval` for up to `subscribe_timeout_seconds`; when time runs out the
    Meta record stays and `resume_pending_imports` starts another round later.
    """
    deadline = time.monotonic() + services.settings.subscribe_timeout_seconds
    while True:
        pending = (await records.pending_imports(services.db)).get(org_uid)
        if pending is None:
            return f"no pending import of {org_uid}"
        try:
            result = await attempt_import(
                services,
                org_uid,
                is_home=pending.is_home,
                user_request=pending.user_request,
                require_pending=True,
            )
        except UpstreamFailure as error:
            # DataLayer or the wallet hiccupped: keep waiting, like CADT's background retries.
            logger.info("import of %s waits: %s", org_uid, error.message)
            result = Waiting(error.message)
        except DomainError as error:
            await _give_up(services, org_uid, error)
            return f"import of {org_uid} failed: {error.message}"
        if isinstance(result, OrganizationView):
            logger.info("imported organization %s (%s) in the background", org_uid, result.name)
            return f"imported {org_uid}"
        if time.monotonic() >= deadline:
            logger.info("import of %s still waits for DataLayer: %s", org_uid, result.reason)
            return f"import of {org_uid} still waiting: {result.reason}"
        await asyncio.sleep(services.poll_interval)


async def _give_up(services: Services, org_uid: str, error: DomainError) -> None:
    logger.error("background import of organization %s failed: %s", org_uid, error.message)

    async def drop(session: AsyncSession) -> None:
        await records.drop_pending_import(session, org_uid)

    await records.in_transaction(services.db, drop)


async def resume_pending_imports(services: Services) -> int:
    """Periodic job body: enqueue the finishing job of every waiting import; how many."""
    count = 0
    for org_uid in await records.pending_imports(services.db):
        if await enqueue_finish(services, org_uid) is not None:
            count += 1
    return count


async def cancel_pending_import(services: Services, org_uid: str) -> bool:
    """Forget a waiting import (delete or unsubscribe won); True when there was one."""

    async def drop(session: AsyncSession) -> bool:
        return await records.drop_pending_import(session, org_uid)

    return await records.in_transaction(services.db, drop)
