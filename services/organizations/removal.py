"""Delete an organization (cadt-domain 3.6) and resync one from generation 0 (3.9, #1600).

Both remove synced data in ONE transaction (retried while SQLite is busy). Resync removes it
only after checking that DataLayer holds every store of the organization, so the sync engine
can rebuild what was removed; otherwise it refuses and deletes nothing.
"""

from __future__ import annotations

import json
import logging

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.container import Services
from services.db.models import Audit, Organization, RegistryRecord, SyncState, utcnow
from services.errors import NotFound, PreconditionFailed, UpstreamFailure
from services.organizations import records
from services.organizations.importing import metadata_of, not_this_version_message
from services.organizations.membership import derive_store_ids, row_store_ids
from services.organizations.outcomes import OrganizationOutcome
from services.organizations.stores import (
    StoreSync,
    Subscriptions,
    local_root,
    read_store,
    store_id_or_none,
    store_sync,
    unsubscribe_stores,
)
from services.sync import publish_sync

logger = logging.getLogger(__name__)

#: registry_hash after a resync: CADT's marker for "replay everything".
RESYNC_REGISTRY_HASH = "0"

RESYNC_MESSAGE = "Resyncing organization process initiated"


def _not_found(org_uid: str) -> NotFound:
    return NotFound(f"organization {org_uid} not found")


async def _purge_synced_data(session: AsyncSession, org_uid: str) -> None:
    """Delete the organization's audit rows, registry records and sync state."""
    await session.execute(sa.delete(Audit).where(col(Audit.org_uid) == org_uid))
    await session.execute(sa.delete(RegistryRecord).where(col(RegistryRecord.org_uid) == org_uid))
    await session.execute(sa.delete(SyncState).where(col(SyncState.org_uid) == org_uid))


async def delete_organization(services: Services, org_uid: str) -> OrganizationOutcome:
    """Remove an organization's rows in one transaction, remember the deletion, unsubscribe.

    The orgUid is added to Meta userDeletedOrgs so governance discovery does not import it
    again. A non-home organization's stores are unsubscribed afterwards; if that fails the
    data is already gone and UpstreamFailure says so.
    """
    version = services.settings.data_model_version.value

    async def remove(session: AsyncSession) -> Organization | None:
        row = await records.find_row(session, org_uid, version)
        cancelled = await records.drop_pending_import(session, org_uid)
        if row is None and not cancelled:
            raise _not_found(org_uid)
        if row is not None:
            await session.delete(row)
        await _purge_synced_data(session, org_uid)
        await records.add_user_deleted_org(session, org_uid)
        return row

    row = await records.in_transaction(services.db, remove, retry_integrity=True)
    if row is None:
        # Only an import waiting for DataLayer: it is cancelled; drop what it subscribed.
        store_ids = [org_uid, *await derive_store_ids(services, org_uid, version)]
        await _unsubscribe_after_delete(services, org_uid, store_ids)
        return OrganizationOutcome(
            f"Cancelled the pending import of organization {org_uid} and unsubscribed from "
            "its datalayer stores"
        )
    if row.is_home:
        return OrganizationOutcome(
            "Your home organization was deleted from this instance. Its DataLayer stores still "
            "exist; import it again with importOrganization(orgUid, isHome: true) to restore it."
        )
    await _unsubscribe_after_delete(services, org_uid, row_store_ids(row, include_file_store=True))
    return OrganizationOutcome(
        f"Removed all organization records for {org_uid} and unsubscribed from its datalayer stores"
    )


async def _unsubscribe_after_delete(services: Services, org_uid: str, store_ids: list[str]) -> None:
    try:
        await unsubscribe_stores(services, store_ids)
    except UpstreamFailure as error:
        raise UpstreamFailure(
            f"Removed all organization records for {org_uid}, but {error.message}",
            code=error.code,
            service=error.service,
        ) from error


async def resync_organization(services: Services, org_uid: str) -> OrganizationOutcome:
    """Rebuild an organization's synced data from generation 0, only when DataLayer can.

    Subscribes first (#1600), then refuses with PreconditionFailed unless the org,
    data-model-version and registry stores are all synced locally. Otherwise it reconciles the
    row with DataLayer and, in one transaction, resets the registry hash and deletes the audit
    rows, registry records and sync state, so the sync engine replays from generation 0.
    """
    version = services.settings.data_model_version.value
    row = await records.load_row(services.db, org_uid, version)
    if row is None:
        raise _not_found(org_uid)
    if not row.subscribed:
        raise PreconditionFailed(
            f"organization {org_uid} is not subscribed; subscribe to it before resyncing"
        )
    subscriptions = Subscriptions(services)
    await subscriptions.ensure(org_uid)
    _require_synced(await store_sync(services, org_uid), org_uid, "org")
    org_data = await read_store(services, org_uid)
    dmv_id = store_id_or_none(org_data.get("registryId")) or row.data_model_version_store_id
    if dmv_id is None:
        raise PreconditionFailed(
            f"Cannot resync organization {org_uid}: its data-model-version store is unknown"
        )
    await subscriptions.ensure(dmv_id)
    _require_synced(await store_sync(services, dmv_id), org_uid, "data-model-version")
    registry_id = store_id_or_none((await read_store(services, dmv_id)).get(version))
    if registry_id is None:
        raise PreconditionFailed(not_this_version_message(org_uid, version))
    await subscriptions.ensure(registry_id)
    _require_synced(await store_sync(services, registry_id), org_uid, "registry")
    if registry_id != row.registry_id:
        logger.warning(
            "resync of %s: registry store %s replaces %s (from the data-model-version store)",
            org_uid,
            registry_id,
            row.registry_id,
        )
    org_hash = await local_root(services, org_uid)
    dmv_hash = await local_root(services, dmv_id)

    async def reset(session: AsyncSession) -> Organization:
        current = await records.find_row(session, org_uid, version)
        if current is None:
            raise _not_found(org_uid)
        current.registry_id = registry_id
        current.registry_hash = RESYNC_REGISTRY_HASH
        current.data_model_version_store_id = dmv_id
        current.data_model_version_store_hash = dmv_hash or current.data_model_version_store_hash
        current.org_hash = org_hash or current.org_hash
        current.name = org_data.get("name", current.name)
        current.icon = org_data.get("icon") or current.icon
        current.file_store_id = store_id_or_none(org_data.get("fileStoreId")) or (
            current.file_store_id
        )
        if metadata_of(org_data):
            current.metadata_json = _json(metadata_of(org_data))
        current.synced = False
        current.sync_remaining = 0
        current.updated_at = utcnow()
        session.add(current)
        await _purge_synced_data(session, org_uid)
        await session.flush()
        return current

    updated = await records.in_transaction(services.db, reset)
    try:
        # syncProgress subscribers see the reset at once, not at the next sync run.
        await publish_sync(services, org_uid)
    except Exception:  # Redis hiccup: the next sync run publishes again
        logger.warning("could not publish the reset sync of %s", org_uid, exc_info=True)
    return OrganizationOutcome.of_row(RESYNC_MESSAGE, updated)


def _json(value: dict[str, str]) -> str:
    return json.dumps(value, separators=(",", ":"))


def _require_synced(sync: StoreSync, org_uid: str, label: str) -> None:
    if sync.synced:
        return
    raise PreconditionFailed(
        f"Cannot resync organization {org_uid} yet: DataLayer has not synced its {label} store "
        f"{sync.store_id} ({sync.describe()}). Nothing was deleted; try again once DataLayer "
        "has caught up."
    )
