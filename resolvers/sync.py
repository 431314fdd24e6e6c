"""Resolvers of the sync queries and the syncProgress stream: unpack arguments, call services."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from resolvers.context import Info
from resolvers.organizations import validation_error
from services import sync, views
from services.errors import InvalidInput
from services.guards import store_id_argument
from services.views import AuditView, OrganizationSyncView, Page, RegistryRecordView


def _org_uid(value: str) -> str:
    try:
        return store_id_argument(value, field="orgUid")
    except InvalidInput as error:
        raise validation_error(error) from None


def _checked_first(first: int) -> int:
    if first < 0:
        raise validation_error(InvalidInput("first must not be negative", field="first"))
    return first


async def sync_status(info: Info) -> sync.SyncStatusView:
    """The node's overall sync."""
    return await sync.sync_status(info.context.services)


async def audit_log(info: Info, org_uid: str, first: int, after: str | None) -> Page[AuditView]:
    """A page of an organization's audit log, newest generation first."""
    uid, size = _org_uid(org_uid), _checked_first(first)
    try:
        return await views.audit_page(info.context.services.db, uid, first=size, after=after)
    except views.InvalidCursor as error:
        raise validation_error(InvalidInput(str(error), field="after")) from None


async def registry_records(
    info: Info, org_uid: str, table: str | None, first: int, after: str | None
) -> Page[RegistryRecordView]:
    """A page of an organization's registry records, by table and key."""
    uid, size = _org_uid(org_uid), _checked_first(first)
    try:
        return await views.registry_record_page(
            info.context.services.db, uid, table_name=table, first=size, after=after
        )
    except views.InvalidCursor as error:
        raise validation_error(InvalidInput(str(error), field="after")) from None


def sync_progress(info: Info, org_uid: str | None) -> AsyncGenerator[OrganizationSyncView, None]:
    """The syncProgress stream of one organization or of all."""
    uid = None if org_uid is None else _org_uid(org_uid)
    return sync.sync_progress(info.context.services, uid)
