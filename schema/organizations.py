"""Organizations: the home organization, imported and subscribed ones, and pages of them."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from enum import Enum
from typing import Any

import strawberry

import resolvers.loaders
import resolvers.organizations
from resolvers.context import Info
from schema.mirrors import Mirror
from schema.scalars import JSON, Mojos
from schema.sync import OrganizationSync
from services.views import MirrorView, OrganizationSyncView, OrganizationView


@strawberry.enum(description="Data model of an organization's registry store.")
class DataModelVersion(Enum):
    V1 = "V1"
    V2 = "V2"


@strawberry.type(description="An organization known to this node.")
class Organization:
    org_uid: strawberry.ID = strawberry.field(description="Store id of the org store (64 hex).")
    name: str = strawberry.field(description="Organization name.")
    icon: str | None = strawberry.field(description="Icon URL or data URI.")
    is_home: bool = strawberry.field(description="This node's own organization.")
    subscribed: bool = strawberry.field(description="DataLayer downloads its stores.")
    data_model_version: DataModelVersion = strawberry.field(description="V1 or V2.")
    org_hash: str | None = strawberry.field(description="Root hash of the org store.")
    registry_store_id: strawberry.ID | None = strawberry.field(description="Registry store id.")
    registry_hash: str | None = strawberry.field(description="Root hash of the registry store.")
    data_model_version_store_id: strawberry.ID | None = strawberry.field(
        description="Data-model-version store id (the 'singleton')."
    )
    file_store_id: strawberry.ID | None = strawberry.field(description="File store id.")
    metadata: JSON = strawberry.field(description="User metadata, keys without the meta_ prefix.")
    view: strawberry.Private[OrganizationView]
    #: Set when the parent resolver loaded them for a whole page: then `sync` and `mirrors`
    #: answer without an await per row (async field resolvers cost 1.7-3x, bench/README.md).
    prefetched_sync: strawberry.Private[OrganizationSync | None] = None
    prefetched_mirrors: strawberry.Private[list[Mirror] | None] = None

    @classmethod
    def from_domain(
        cls,
        org: OrganizationView,
        *,
        sync: OrganizationSyncView | None = None,
        mirrors: Sequence[MirrorView] | None = None,
    ) -> Organization:
        """Build from the read model (and, when prefetched, its sync state and mirrors)."""
        return cls(
            org_uid=strawberry.ID(org.org_uid),
            name=org.name,
            icon=org.icon,
            is_home=org.is_home,
            subscribed=org.subscribed,
            data_model_version=DataModelVersion(org.data_model_version.upper()),
            org_hash=org.org_hash,
            registry_store_id=_id(org.registry_id),
            registry_hash=org.registry_hash,
            data_model_version_store_id=_id(org.data_model_version_store_id),
            file_store_id=_id(org.file_store_id),
            metadata=JSON(dict(org.metadata)),
            view=org,
            prefetched_sync=None if sync is None else OrganizationSync.from_domain(sync),
            prefetched_mirrors=(
                None if mirrors is None else [Mirror.from_domain(mirror) for mirror in mirrors]
            ),
        )

    # Synchronous resolvers: a prefetched value is returned as is; otherwise the awaitable of
    # the batched load, which graphql-core awaits.
    @strawberry.field(
        description="Sync progress of this organization's registry.", graphql_type=OrganizationSync
    )
    def sync(self, info: Info) -> OrganizationSync | Awaitable[OrganizationSync]:
        if self.prefetched_sync is not None:
            return self.prefetched_sync
        return self._load_sync(info)

    @strawberry.field(
        description="Mirrors of all stores of this organization.", graphql_type=list[Mirror]
    )
    def mirrors(self, info: Info) -> list[Mirror] | Awaitable[list[Mirror]]:
        if self.prefetched_mirrors is not None:
            return self.prefetched_mirrors
        return self._load_mirrors(info)

    async def _load_sync(self, info: Info) -> OrganizationSync:
        return OrganizationSync.from_domain(
            await resolvers.loaders.organization_sync(info, self.view)
        )

    async def _load_mirrors(self, info: Info) -> list[Mirror]:
        found = await resolvers.loaders.organization_mirrors(info, self.view)
        return [Mirror.from_domain(mirror) for mirror in found]

    @strawberry.field(description="Receive address of the wallet (home organization only).")
    async def xch_address(self, info: Info) -> str | None:
        if not self.view.is_home:
            return None
        return await resolvers.organizations.xch_address(info)

    @strawberry.field(description="Spendable wallet balance in mojos (home organization only).")
    async def balance(self, info: Info) -> Mojos | None:
        if not self.view.is_home:
            return None
        amount = await resolvers.organizations.spendable_balance(info)
        return None if amount is None else Mojos(amount)


def _id(value: str | None) -> strawberry.ID | None:
    return None if value is None else strawberry.ID(value)


@strawberry.type(description="Pagination state of a connection.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow.")
    end_cursor: str | None = strawberry.field(description="Cursor of the last item.")


@strawberry.type(description="An organization in a page.")
class OrganizationEdge:
    cursor: str = strawberry.field(description="Opaque cursor of this item.")
    node: Organization = strawberry.field(description="The organization.")


@strawberry.type(description="A page of organizations.")
class OrganizationConnection:
    edges: list[OrganizationEdge] = strawberry.field(description="The items of the page.")
    page_info: PageInfo = strawberry.field(description="Pagination state.")
    total_count: int = strawberry.field(description="Items matching the filter in all pages.")


@strawberry.input(description="Filter of organizations (all given conditions must hold).")
class OrganizationFilter:
    subscribed: bool | None = strawberry.field(default=None, description="Subscribed or not.")
    synced: bool | None = strawberry.field(default=None, description="Synced or not.")
    is_home: bool | None = strawberry.field(default=None, description="Home or not.")
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive substring of name or orgUid."
    )

    def as_dict(self) -> dict[str, Any]:
        """The conditions that are set."""
        return {k: v for k, v in vars(self).items() if v is not None}
