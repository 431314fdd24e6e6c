"""Subscribe to and unsubscribe from an organization's stores (cadt-domain 3.4 and 3.5)."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from services.container import Services
from services.db.models import Organization, utcnow
from services.errors import DomainError, NotFound, PreconditionFailed
from services.organizations import records
from services.organizations.importing import cancel_pending_import
from services.organizations.outcomes import OrganizationOutcome
from services.organizations.stores import (
    Subscriptions,
    read_store,
    store_id_or_none,
    unsubscribe_stores,
)

logger = logging.getLogger(__name__)

UNSUBSCRIBED_MESSAGE = "Unsubscribed from organization datalayer stores"


def row_store_ids(row: Organization, *, include_file_store: bool) -> list[str]:
    """The stores of an organization row: org, data-model-version, registry (and file) store."""
    ids = [row.org_uid, row.data_model_version_store_id, row.registry_id]
    if include_file_store:
        ids.append(row.file_store_id)
    return [store_id for store_id in ids if store_id]


async def subscribe_organization(services: Services, org_uid: str) -> OrganizationOutcome:
    """Subscribe every store of a known organization and mark it subscribed.

    Already subscribed stores are left alone (no fee); a missing subscription is repaired.
    """
    version = services.settings.data_model_version.value
    row = await records.load_row(services.db, org_uid, version)
    if row is None:
        raise NotFound(
            f"organization {org_uid} is not known to this node; import it with importOrganization"
        )
    subscriptions = Subscriptions(services)
    newly = [
        store_id
        for store_id in row_store_ids(
            row, include_file_store=services.settings.auto_subscribe_filestore
        )
        if await subscriptions.ensure(store_id)
    ]
    was_subscribed = row.subscribed
    updated = await _set_subscribed(services, org_uid, True)
    if was_subscribed and not newly:
        message = f"You are already subscribed to organization {org_uid}"
    else:
        message = "Subscribed to organization"
    return OrganizationOutcome.of_row(message, updated or row)


async def unsubscribe_organization(services: Services, org_uid: str) -> OrganizationOutcome:
    """Unsubscribe an organization's stores now and mark it unsubscribed (V2 behaviour).

    The home organization is refused. Without a local row, the stores are derived from
    DataLayer data (when readable) and unsubscribed as long as the org store is subscribed.
    """
    version = services.settings.data_model_version.value
    row = await records.load_row(services.db, org_uid, version)
    if row is not None and row.is_home:
        raise PreconditionFailed("you cannot unsubscribe from your home organization")
    cancelled = await cancel_pending_import(services, org_uid)
    if row is None:
        return await _unsubscribe_unknown(services, org_uid, version, cancelled=cancelled)
    # Mark the row first: jobs that subscribe subscribed rows (reconcile) then leave it alone,
    # and if unsubscribing fails below, reconcile unsubscribes the stores of this row later.
    updated = await _set_subscribed(services, org_uid, False)
    unsubscribed = await unsubscribe_stores(services, row_store_ids(row, include_file_store=True))
    if row.subscribed or unsubscribed:
        message = UNSUBSCRIBED_MESSAGE
    else:
        message = f"you are not subscribed to organization {org_uid}"
    return OrganizationOutcome.of_row(message, updated or row)


async def _unsubscribe_unknown(
    services: Services, org_uid: str, version: str, *, cancelled: bool
) -> OrganizationOutcome:
    if not await Subscriptions(services).contains(org_uid):
        if cancelled:
            return OrganizationOutcome(f"Cancelled the pending import of organization {org_uid}")
        raise NotFound(
            f"organization {org_uid} is not known to this node and you are not subscribed to it"
        )
    store_ids = [org_uid, *await derive_store_ids(services, org_uid, version)]
    await unsubscribe_stores(services, store_ids)
    return OrganizationOutcome(UNSUBSCRIBED_MESSAGE)


async def derive_store_ids(services: Services, org_uid: str, version: str) -> list[str]:
    """The data-model-version, registry and file store ids read from DataLayer (best effort)."""
    found: list[str] = []
    try:
        org_data = await read_store(services, org_uid)
        dmv_id = store_id_or_none(org_data.get("registryId"))
        file_store_id = store_id_or_none(org_data.get("fileStoreId"))
        if file_store_id:
            found.append(file_store_id)
        if dmv_id is None:
            return found
        found.append(dmv_id)
        registry_id = store_id_or_none((await read_store(services, dmv_id)).get(version))
        if registry_id:
            found.append(registry_id)
    except DomainError as error:  # not downloaded yet: unsubscribe what we know
        logger.info("could not read the stores of %s: %s", org_uid, error.message)
    return found


async def _set_subscribed(
    services: Services, org_uid: str, subscribed: bool
) -> Organization | None:
    version = services.settings.data_model_version.value

    async def write(session: AsyncSession) -> Organization | None:
        row = await records.find_row(session, org_uid, version)
        if row is None:
            return None
        if row.subscribed != subscribed:
            row.subscribed = subscribed
            row.updated_at = utcnow()
            session.add(row)
            await session.flush()
        return row

    return await records.in_transaction(services.db, write)
