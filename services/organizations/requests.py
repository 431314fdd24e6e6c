"""Entry points of the organization mutations: the shared checks, in order, then the operation.

Order for every mutation: read-only (ReadOnly) first, then the arguments (InvalidInput naming
the field, before any upstream call), then a synced wallet for operations that write upstream
(UpstreamFailure WALLET_NOT_SYNCED), then the operation itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.container import Services
from services.guards import assert_wallet_synced, assert_writable, store_id_argument
from services.organizations import editing, importing, membership, removal
from services.organizations.outcomes import ImportOutcome, OrganizationOutcome
from services.organizations.records import load_row, pending_imports
from services.sync import assert_home_writable


async def import_request(services: Services, org_uid: str, *, is_home: bool) -> ImportOutcome:
    """importOrganization."""
    assert_writable(services)
    uid = store_id_argument(org_uid, field="orgUid")
    await assert_wallet_synced(services)
    return await importing.import_organization(services, uid, is_home=is_home)


async def subscribe_request(services: Services, org_uid: str) -> OrganizationOutcome:
    """subscribeOrganization."""
    assert_writable(services)
    uid = store_id_argument(org_uid, field="orgUid")
    await assert_wallet_synced(services)
    return await membership.subscribe_organization(services, uid)


async def unsubscribe_request(services: Services, org_uid: str) -> OrganizationOutcome:
    """unsubscribeOrganization."""
    assert_writable(services)
    uid = store_id_argument(org_uid, field="orgUid")
    await assert_wallet_synced(services)
    return await membership.unsubscribe_organization(services, uid)


async def resync_request(services: Services, org_uid: str) -> OrganizationOutcome:
    """resyncOrganization."""
    assert_writable(services)
    uid = store_id_argument(org_uid, field="orgUid")
    await assert_wallet_synced(services)
    return await removal.resync_organization(services, uid)


async def delete_request(services: Services, org_uid: str) -> OrganizationOutcome:
    """deleteOrganization (the wallet is checked only when stores will be unsubscribed)."""
    assert_writable(services)
    uid = store_id_argument(org_uid, field="orgUid")
    row = await load_row(services.db, uid, services.settings.data_model_version.value)
    waiting = row is None and uid in await pending_imports(services.db)
    if (row is not None and not row.is_home) or waiting:
        # Check before deleting: failing afterwards would leave the stores subscribed.
        await assert_wallet_synced(services)
    return await removal.delete_organization(services, uid)


async def edit_home_request(
    services: Services, *, name: str | None, icon: str | None
) -> OrganizationOutcome:
    """editHomeOrganization."""
    assert_writable(services)
    changes = editing.profile_changes(name=name, icon=icon)
    await assert_wallet_synced(services)
    await assert_home_writable(services)
    return await editing.edit_home_organization(services, changes)


async def set_metadata_request(
    services: Services, entries: Sequence[tuple[str, str]]
) -> OrganizationOutcome:
    """setOrganizationMetadata."""
    assert_writable(services)
    changes = editing.metadata_changes(entries)
    await assert_wallet_synced(services)
    await assert_home_writable(services)
    return await editing.edit_home_organization(services, changes)
