"""Resolvers of the home organization's long operations: create, upgrade, reclaim."""

from __future__ import annotations

from resolvers.context import Info
from services import home_organization
from services.home_organization import AcceptedOperation, ReclaimOutcome


async def create_home_organization(info: Info, *, name: str, icon: str | None) -> AcceptedOperation:
    """Start the creation job (checks, lock, persisted intent)."""
    return await home_organization.start_creation(info.context.services, name=name, icon=icon)


async def upgrade_home_organization(info: Info) -> AcceptedOperation:
    """Start the V1 to V2 upgrade job."""
    return await home_organization.start_upgrade(info.context.services)


async def reclaim_home_organization(info: Info, *, org_uid: str) -> ReclaimOutcome:
    """Make an owned organization the home organization again."""
    return await home_organization.reclaim_home_organization(info.context.services, org_uid=org_uid)
