"""Synced registry data and overall sync: the audit log, registry records, syncStatus."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

import resolvers.sync
from resolvers.context import Info
from schema.organizations import Organization, PageInfo
from schema.scalars import JSON
from services.views import MAX_PAGE_SIZE, AuditView, Page, RegistryRecordView


@strawberry.type(description="One applied change of a registry generation (the audit log).")
class AuditEntry:
    org_uid: strawberry.ID = strawberry.field(description="The organization.")
    registry_id: strawberry.ID = strawberry.field(description="The registry store.")
    generation: int = strawberry.field(description="Generation index in the root history.")
    root_hash: str = strawberry.field(description="Root hash of that generation.")
    type: str = strawberry.field(
        description="CREATE REGISTRY | INSERT | DELETE | UPDATE | NO CHANGE."
    )
    table: str | None = strawberry.field(
        description="Record table (text before the first | of the key); null for markers."
    )
    change: JSON | None = strawberry.field(
        description=(
            "The record written (INSERT, UPDATE) or removed (DELETE); null for markers. "
            "Text that is not JSON comes back as a string."
        )
    )
    author: str | None = strawberry.field(description="The commit's author key.")
    comment: str | None = strawberry.field(description="The commit's comment key.")
    onchain_confirmed_at: datetime | None = strawberry.field(
        description="When the generation's root was confirmed on chain."
    )

    @classmethod
    def from_domain(cls, view: AuditView) -> AuditEntry:
        """Build from the read model."""
        return cls(
            org_uid=strawberry.ID(view.org_uid),
            registry_id=strawberry.ID(view.registry_id),
            generation=view.generation,
            root_hash=view.root_hash,
            type=view.type,
            table=view.table,
            change=view.change,
            author=view.author,
            comment=view.comment,
            onchain_confirmed_at=view.onchain_confirmed_at,
        )


@strawberry.type(description="An audit entry in a page.")
class AuditEdge:
    cursor: str = strawberry.field(description="Opaque cursor of this item.")
    node: AuditEntry = strawberry.field(description="The audit entry.")


@strawberry.type(description="A page of an organization's audit log, newest generation first.")
class AuditConnection:
    edges: list[AuditEdge] = strawberry.field(description="The items of the page.")
    page_info: PageInfo = strawberry.field(description="Pagination state.")
    total_count: int = strawberry.field(description="Audit entries of the organization.")

    @classmethod
    def from_page(cls, page: Page[AuditView]) -> AuditConnection:
        """Build from a page of the read model."""
        return cls(
            edges=[
                AuditEdge(cursor=cursor, node=AuditEntry.from_domain(view))
                for cursor, view in page.edges
            ],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
            total_count=page.total_count,
        )


@strawberry.type(description="The current value of one registry key `<table>|<key>`.")
class RegistryRecord:
    org_uid: strawberry.ID = strawberry.field(description="The organization.")
    table: str = strawberry.field(description="Text before the first | of the key.")
    key: str = strawberry.field(description="Text after the first | of the key.")
    record: JSON = strawberry.field(description="The record (JSON; other text as a string).")
    generation: int = strawberry.field(description="Generation that last wrote it.")

    @classmethod
    def from_domain(cls, view: RegistryRecordView) -> RegistryRecord:
        """Build from the read model."""
        return cls(
            org_uid=strawberry.ID(view.org_uid),
            table=view.table,
            key=view.key,
            record=view.record,
            generation=view.generation,
        )


@strawberry.type(description="A registry record in a page.")
class RegistryRecordEdge:
    cursor: str = strawberry.field(description="Opaque cursor of this item.")
    node: RegistryRecord = strawberry.field(description="The record.")


@strawberry.type(description="A page of registry records, ordered by table and key.")
class RegistryRecordConnection:
    edges: list[RegistryRecordEdge] = strawberry.field(description="The items of the page.")
    page_info: PageInfo = strawberry.field(description="Pagination state.")
    total_count: int = strawberry.field(description="Records matching in all pages.")

    @classmethod
    def from_page(cls, page: Page[RegistryRecordView]) -> RegistryRecordConnection:
        """Build from a page of the read model."""
        return cls(
            edges=[
                RegistryRecordEdge(cursor=cursor, node=RegistryRecord.from_domain(view))
                for cursor, view in page.edges
            ],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
            total_count=page.total_count,
        )


@strawberry.type(description="Sync of every subscribed organization of this node.")
class SyncStatus:
    synced: bool = strawberry.field(description="Every subscribed organization is synced.")
    sync_remaining: int = strawberry.field(description="Generations still to apply, summed.")
    home_organization_synced: bool | None = strawberry.field(
        description="The home organization is synced; null without a home organization."
    )
    wallet_synced: bool = strawberry.field(description="The Chia wallet reports synced.")
    home_writes_blocked: str | None = strawberry.field(
        description=(
            "Why writes to the home organization are refused (DataLayer lost its local "
            "data); null when writes are allowed."
        )
    )
    organizations: list[Organization] = strawberry.field(
        description="The subscribed organizations, home first."
    )


FirstArgument = Annotated[
    int | None,
    strawberry.argument(description=f"Page size (at most {MAX_PAGE_SIZE}; larger is clamped)."),
]
AfterArgument = Annotated[
    str | None,
    strawberry.argument(description="Return the items after this cursor (endCursor)."),
]
OrgUidArgument = Annotated[
    strawberry.ID, strawberry.argument(description="The organization (its org store id).")
]


@strawberry.type
class SyncQuery:
    @strawberry.field(description="Overall sync of the node and of each subscribed organization.")
    async def sync_status(self, info: Info) -> SyncStatus:
        status = await resolvers.sync.sync_status(info)
        return SyncStatus(
            synced=status.synced,
            sync_remaining=status.sync_remaining,
            home_organization_synced=status.home_organization_synced,
            wallet_synced=status.wallet_synced,
            home_writes_blocked=status.home_writes_blocked,
            organizations=[Organization.from_domain(org) for org in status.organizations],
        )

    @strawberry.field(
        description=(
            "The audit log of an organization's registry, newest generation first, as a Relay "
            "connection with opaque cursors."
        )
    )
    async def audit_log(
        self,
        info: Info,
        org_uid: OrgUidArgument,
        first: FirstArgument = 50,
        after: AfterArgument = None,
    ) -> AuditConnection:
        page = await resolvers.sync.audit_log(info, org_uid, 50 if first is None else first, after)
        return AuditConnection.from_page(page)

    @strawberry.field(
        description=(
            "The current registry records of an organization, by table and key, as a Relay "
            "connection with opaque cursors."
        )
    )
    async def registry_records(
        self,
        info: Info,
        org_uid: OrgUidArgument,
        table: Annotated[
            str | None, strawberry.argument(description="Only this table (e.g. project).")
        ] = None,
        first: FirstArgument = 50,
        after: AfterArgument = None,
    ) -> RegistryRecordConnection:
        page = await resolvers.sync.registry_records(
            info, org_uid, table, 50 if first is None else first, after
        )
        return RegistryRecordConnection.from_page(page)
