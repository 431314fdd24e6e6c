"""Organization maintenance jobs: org metadata sync (3.10), reconcile (3.11), discovery (3.12).

Each runs as its own periodic job with its own interval, so none blocks another (CADT's single
scheduler stalled for minutes per organization, PR #1600/#1602). Within a job nothing waits for
DataLayer: a store that is not synced yet is skipped at INFO and retried next run.

- `sync_organization_meta`: org store name, icon, file store id and `meta_*` keys into the row,
  read at the LOCAL root only; registry/data-model-version ids and `is_home` are never touched
  (#1536); organizations whose org store is not synced are skipped (#1602).
- `reconcile_organizations`: subscribed rows are subscribed first, then corrected from the org
  and data-model-version stores once those are synced (#1600); rows marked unsubscribed get
  their stores unsubscribed. userDeletedOrgs are left alone.
- `sync_default_organizations`: imports the governance orgList's organizations (local
  `governance` table, key `orgList`) that are not known and not deleted by the user, through
  the import of services.organizations (subscribe first, finish in the background).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from services.chia import ChiaRpcError, is_store_id, normalize_store_id
from services.container import Services
from services.db.models import Governance, Organization, utcnow
from services.errors import DomainError
from services.organizations import ImportStatus, import_organization, user_deleted_org_uids
from services.organizations.importing import metadata_of
from services.organizations.membership import row_store_ids
from services.organizations.stores import (
    Subscriptions,
    local_root,
    owned_store_ids,
    read_store,
    store_id_or_none,
    store_sync,
    unsubscribe_stores,
)
from services.views import PENDING_ORG_UID

logger = logging.getLogger(__name__)

#: Key of the governance table row holding the orgList (written by the governance sync).
ORG_LIST_KEY = "orgList"
#: CADT's heartbeat of the discovery job: at most one "waiting" line per minute.
DISCOVERY_HEARTBEAT_SECONDS = 60.0
_last_heartbeat = 0.0

_ORGS = Organization.__table__  # type: ignore[attr-defined]


@dataclass
class MaintenanceReport:
    """What one maintenance run did, per organization."""

    updated: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the log and the job result."""
        return (
            f"{len(self.updated)} updated, {len(self.skipped)} skipped, {len(self.failed)} failed"
        )


async def _rows(services: Services) -> list[Organization]:
    version = services.settings.data_model_version.value
    async with services.db.session() as session:
        rows = await session.execute(
            sa.select(Organization)
            .where(col(Organization.data_model_version) == version)
            .where(col(Organization.org_uid) != PENDING_ORG_UID)
            .order_by(col(Organization.id))
        )
        return list(rows.scalars())


async def _wallet_synced(services: Services) -> bool:
    try:
        return bool((await services.wallet.get_sync_status()).synced)
    except ChiaRpcError as error:
        logger.info("wallet unavailable: %s", error)
        return False


async def _update_row(services: Services, row_id: int | None, **values: Any) -> None:
    async with services.db.transaction() as session:
        await session.execute(
            sa.update(_ORGS).where(_ORGS.c.id == row_id).values(updated_at=utcnow(), **values)
        )


# ---------------------------------------------------------------------------- 3.10


def profile_values(row: Organization, data: dict[str, str]) -> dict[str, Any]:
    """Columns to change from org store data (never registry/DMV ids or is_home)."""
    values: dict[str, Any] = {}
    if "name" in data and data["name"] != row.name:
        values["name"] = data["name"]
    if "icon" in data and (data["icon"] or None) != row.icon:
        values["icon"] = data["icon"] or None
    file_store = store_id_or_none(data.get("fileStoreId"))
    if file_store and file_store != row.file_store_id:
        values["file_store_id"] = file_store
    metadata = json.dumps(metadata_of(data), separators=(",", ":"))
    try:
        current = json.loads(row.metadata_json or "{}")
    except ValueError:
        current = None
    if current != metadata_of(data):
        values["metadata_json"] = metadata
    return values


async def sync_organization_meta(services: Services) -> MaintenanceReport:
    """Refresh name, icon, file store and metadata of subscribed orgs whose org store changed."""
    report = MaintenanceReport()
    lock_held = await services.lock.status() is not None
    for row in await _rows(services):
        if not row.subscribed:
            continue
        if row.is_home and lock_held:
            report.skipped[row.org_uid] = "an org operation holds the lock"
            continue
        try:
            sync = await store_sync(services, row.org_uid)
            if not sync.synced:
                # [later #1602]: never wait here; the next run looks again.
                report.skipped[row.org_uid] = f"org store {sync.describe()}"
                continue
            root = await local_root(services, row.org_uid)
            if root is None or root == row.org_hash:
                continue
            data = await read_store(services, row.org_uid)
        except DomainError as error:
            report.failed[row.org_uid] = error.message
            logger.warning("org meta sync of %s failed: %s", row.org_uid, error.message)
            await _update_row(services, row.id, org_hash="0")
            continue
        await _update_row(services, row.id, org_hash=root, **profile_values(row, data))
        report.updated.append(row.org_uid)
    if report.updated or report.failed:
        logger.info("Organization meta sync: %s", report.summary())
    return report


# ---------------------------------------------------------------------------- 3.11


async def reconcile_organizations(services: Services) -> MaintenanceReport:
    """Subscribe and correct subscribed rows; unsubscribe the stores of unsubscribed rows."""
    report = MaintenanceReport()
    if not await _wallet_synced(services):
        report.skipped["*"] = "wallet not synced"
        return report
    deleted = await user_deleted_org_uids(services.db)
    lock_held = await services.lock.status() is not None
    subscriptions = Subscriptions(services)
    for row in await _rows(services):
        if row.org_uid in deleted:
            continue
        if row.is_home and lock_held:
            report.skipped[row.org_uid] = "an org operation holds the lock"
            continue
        try:
            if row.subscribed:
                reason = await _reconcile_subscribed(services, subscriptions, row)
                if reason is None:
                    report.updated.append(row.org_uid)
                else:
                    report.skipped[row.org_uid] = reason
            elif not row.is_home:
                done = await unsubscribe_stores(
                    services,
                    row_store_ids(row, include_file_store=True),
                )
                if done:
                    report.updated.append(row.org_uid)
        except DomainError as error:
            report.failed[row.org_uid] = error.message
            logger.warning("reconcile of %s failed: %s", row.org_uid, error.message)
    logger.info("Organization reconcile: %s", report.summary())
    return report


async def _reconcile_subscribed(
    services: Services, subscriptions: Subscriptions, row: Organization
) -> str | None:
    """Reconcile one subscribed row; the reason it was skipped, or None when done."""
    version = services.settings.data_model_version.value
    owned: set[str] = set()
    if row.is_home:
        owned = await owned_store_ids(services)
        if row.org_uid not in owned:
            logger.error(
                "Home organization store %s is not owned by this chia wallet. CADT cannot "
                "correct this issue; restore the wallet that created it.",
                row.org_uid,
            )
            return "home org store not owned by this wallet"
    # [later #1600]: subscribe first, then only look at stores that are synced.
    await subscriptions.ensure(row.org_uid)
    org_sync = await store_sync(services, row.org_uid)
    if not org_sync.synced:
        logger.info("reconcile: org store of %s %s; next run", row.org_uid, org_sync.describe())
        return f"org store {org_sync.describe()}"
    data = await read_store(services, row.org_uid)
    dmv_id = store_id_or_none(data.get("registryId"))
    if dmv_id is None:
        return "org store has no data-model-version store id"
    await subscriptions.ensure(dmv_id)
    dmv_sync = await store_sync(services, dmv_id)
    if not dmv_sync.synced:
        logger.info("reconcile: DMV store of %s %s; next run", row.org_uid, dmv_sync.describe())
        return f"data-model-version store {dmv_sync.describe()}"
    registry_id = store_id_or_none((await read_store(services, dmv_id)).get(version))
    if registry_id is None:
        return f"no {version} registry store"
    await subscriptions.ensure(registry_id)
    file_store = store_id_or_none(data.get("fileStoreId"))
    if file_store and services.settings.auto_subscribe_filestore:
        try:
            await subscriptions.ensure(file_store)
        except DomainError as error:  # CADT: a file store subscription failure only warns
            logger.warning("could not subscribe file store %s: %s", file_store, error.message)
    if row.is_home and not {dmv_id, registry_id} <= owned:
        logger.error(
            "Home organization %s: data-model-version or registry store is not owned by this "
            "wallet. CADT cannot correct this issue.",
            row.org_uid,
        )
        return "home stores not owned by this wallet"
    values: dict[str, Any] = {}
    if row.data_model_version_store_id != dmv_id:
        values["data_model_version_store_id"] = dmv_id
    if row.registry_id != registry_id:
        # A new registry starts its audit with CREATE REGISTRY; the sync engine owns
        # registry_hash, so it is not refreshed here.
        logger.warning(
            "reconcile: registry of %s changed from %s to %s",
            row.org_uid,
            row.registry_id,
            registry_id,
        )
        values["registry_id"] = registry_id
    dmv_hash = await local_root(services, dmv_id)
    if dmv_hash and dmv_hash != row.data_model_version_store_hash:
        values["data_model_version_store_hash"] = dmv_hash
    if "name" in data and data["name"] != row.name:
        values["name"] = data["name"]
    if "icon" in data and (data["icon"] or None) != row.icon:
        values["icon"] = data["icon"] or None
    if file_store and file_store != row.file_store_id:
        values["file_store_id"] = file_store
    if values:
        await _update_row(services, row.id, **values)
    return None


# ---------------------------------------------------------------------------- 3.12


async def governance_org_uids(services: Services) -> list[str]:
    """orgUids of the local governance orgList (empty when not synced yet)."""
    async with services.db.session() as session:
        row = await session.get(Governance, ORG_LIST_KEY)
    if row is None or not row.value:
        return []
    try:
        entries = json.loads(row.value)
    except ValueError:
        logger.warning("governance orgList is not JSON; ignoring it")
        return []
    uids: list[str] = []
    for entry in entries if isinstance(entries, list) else []:
        uid = entry.get("orgUid") if isinstance(entry, dict) else None
        if isinstance(uid, str) and is_store_id(uid):
            uids.append(normalize_store_id(uid))
    return list(dict.fromkeys(uids))


@dataclass
class DiscoveryReport:
    """What one discovery run did."""

    imported: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the log and the job result."""
        return (
            f"{len(self.imported)} imported, {len(self.waiting)} waiting, "
            f"{len(self.skipped)} skipped, {len(self.failed)} failed"
        )


async def sync_default_organizations(services: Services) -> DiscoveryReport:
    """Import the governance-listed organizations that are not known here yet."""
    global _last_heartbeat
    report = DiscoveryReport()
    listed = await governance_org_uids(services)
    if not listed:
        return report
    if not await _wallet_synced(services):
        report.skipped = listed
        return report
    deleted = await user_deleted_org_uids(services.db)
    known = {row.org_uid for row in await _rows(services)}
    for org_uid in listed:
        if org_uid in known or org_uid in deleted:
            continue
        try:
            outcome = await import_organization(services, org_uid, user_request=False)
        except DomainError as error:
            report.failed[org_uid] = error.message
            logger.info("default organization %s not imported: %s", org_uid, error.message)
            continue
        if outcome.status is ImportStatus.IMPORTED:
            report.imported.append(org_uid)
        elif outcome.status is ImportStatus.WAITING:
            report.waiting.append(org_uid)
        else:
            report.skipped.append(org_uid)
    now = time.monotonic()
    if report.imported or (report.waiting and now - _last_heartbeat >= DISCOVERY_HEARTBEAT_SECONDS):
        _last_heartbeat = now
        logger.info(
            "Default organizations: waiting for DataLayer to sync default organization stores: %s",
            report.summary(),
        )
    return report
