"""Per-request DataLoaders: each relation of a page costs one batched query, not one per row."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from strawberry.dataloader import DataLoader

from resolvers.context import Info
from services import views
from services.container import Services
from services.views import MirrorView, OrganizationSyncView, OrganizationView


@dataclass
class Loaders:
    """The DataLoaders of one request."""

    organization: DataLoader[str, OrganizationView | None]
    sync: DataLoader[OrganizationView, OrganizationSyncView]
    mirrors: DataLoader[str, list[MirrorView]]


def _build(services: Services) -> Loaders:
    version = services.settings.data_model_version.value

    async def load_organizations(org_uids: Sequence[str]) -> list[OrganizationView | None]:
        found = await views.organizations_by_uid(services.db, org_uids, version)
        return [found.get(uid) for uid in org_uids]

    async def load_sync(orgs: Sequence[OrganizationView]) -> list[OrganizationSyncView]:
        found = await views.sync_views(services.db, orgs)
        return [found[org.org_uid] for org in orgs]

    async def load_mirrors(store_ids: Sequence[str]) -> list[list[MirrorView]]:
        found = await views.mirrors_by_store(services.db, store_ids)
        return [found.get(store_id, []) for store_id in store_ids]

    return Loaders(
        organization=DataLoader(load_fn=load_organizations),
        sync=DataLoader(load_fn=load_sync, cache_key_fn=lambda org: (org.org_uid, org.row_id)),
        mirrors=DataLoader(load_fn=load_mirrors),
    )


def loaders(info: Info) -> Loaders:
    """This request's loaders, created on first use."""
    existing = info.context.loaders.get("loaders")
    if existing is None:
        existing = info.context.loaders["loaders"] = _build(info.context.services)
    assert isinstance(existing, Loaders)
    return existing


async def organization_sync(info: Info, organization: OrganizationView) -> OrganizationSyncView:
    """Sync state of one organization (batched)."""
    return await loaders(info).sync.load(organization)


async def organization_mirrors(info: Info, organization: OrganizationView) -> list[MirrorView]:
    """Mirrors of all stores of one organization (batched)."""
    per_store = await loaders(info).mirrors.load_many(organization.store_ids)
    return [mirror for mirrors in per_store for mirror in mirrors]


async def organization_by_uid(info: Info, org_uid: str) -> OrganizationView | None:
    """One organization of this node's data model (batched)."""
    return await loaders(info).organization.load(org_uid)


async def page_relations(
    info: Info,
    organizations: Sequence[OrganizationView],
    *,
    sync: bool,
    mirrors: bool,
) -> tuple[list[OrganizationSyncView] | None, list[list[MirrorView]] | None]:
    """Sync state and mirrors of a page of organizations, each relation one batched query.

    Through the request's DataLoaders, so later loads of the same rows are cache hits. A
    relation that is not asked for is not loaded (None).
    """
    request = loaders(info)

    async def load_sync() -> list[OrganizationSyncView] | None:
        return await request.sync.load_many(organizations) if sync else None

    async def load_mirrors() -> list[list[MirrorView]] | None:
        if not mirrors:
            return None
        per_store = await request.mirrors.load_many(
            [store_id for org in organizations for store_id in org.store_ids]
        )
        found: list[list[MirrorView]] = []
        start = 0
        for org in organizations:
            count = len(org.store_ids)
            found.append([m for store in per_store[start : start + count] for m in store])
            start += count
        return found

    return await asyncio.gather(load_sync(), load_mirrors())
