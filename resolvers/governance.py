"""Resolvers of the governance query and mutations: unpack arguments, call one service."""

from __future__ import annotations

from collections.abc import Sequence

from resolvers.context import Info
from resolvers.loaders import organization_by_uid
from services import governance
from services.governance import GovernanceView
from services.views import OrganizationView


async def governance_view(info: Info) -> GovernanceView:
    """Query.governance."""
    return await governance.get_governance(info.context.services)


async def governance_organization(info: Info, org_uid: str) -> OrganizationView | None:
    """The local organization of an orgList entry (batched by the request's DataLoader)."""
    return await organization_by_uid(info, org_uid)


async def create_governance_body(info: Info) -> str:
    """createGovernanceBody."""
    return await governance.start_creation(info.context.services)


async def subscribe_governance_body(info: Info, governance_body_id: str) -> str:
    """subscribeGovernanceBody."""
    return await governance.subscribe_governance_body(info.context.services, governance_body_id)


async def set_org_list(info: Info, org_uids: Sequence[str]) -> str:
    """setGovernanceOrgList."""
    uids = list(org_uids)
    return await governance.set_governance_value(
        info.context.services,
        governance.ORG_LIST,
        lambda settings: governance.org_list_value(uids, settings),
    )


async def set_pick_list(info: Info, pick_list: object) -> str:
    """setGovernancePickList."""
    return await governance.set_governance_value(
        info.context.services,
        governance.PICK_LIST,
        lambda settings: governance.pick_list_value(pick_list, settings),
    )


async def set_glossary(info: Info, glossary: object) -> str:
    """setGovernanceGlossary."""
    return await governance.set_governance_value(
        info.context.services,
        governance.GLOSSARY,
        lambda settings: governance.glossary_value(glossary, settings),
    )


async def sync_governance(info: Info) -> str:
    """syncGovernance."""
    return await governance.request_sync(info.context.services)
