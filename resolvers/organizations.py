"""Resolvers of the organization queries and mutations: unpack arguments, call one service."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from graphql import GraphQLError

from resolvers.context import Info
from resolvers.loaders import organization_by_uid
from resolvers.wallet import upstream_error
from services import organizations
from services.chia import ChiaRpcError
from services.errors import InvalidInput
from services.guards import store_id_argument
from services.organizations import (
    ImportOutcome,
    OrganizationCriteria,
    OrganizationOutcome,
    OrganizationPage,
    requests,
)
from services.upstream import upstream_failure
from services.views import OrganizationView


async def xch_address(info: Info) -> str | None:
    """The wallet's current receive address (cached for the request)."""
    cache = info.context.loaders
    if "xch_address" not in cache:
        try:
            cache["xch_address"] = await info.context.services.wallet.get_next_address(1)
        except ChiaRpcError as error:
            raise upstream_error(upstream_failure(error, context="the wallet address")) from None
    value = cache["xch_address"]
    return None if value is None else str(value)


async def spendable_balance(info: Info) -> int | None:
    """The standard wallet's spendable balance in mojos (cached for the request)."""
    cache = info.context.loaders
    if "spendable_balance" not in cache:
        try:
            balance = await info.context.services.wallet.get_wallet_balance(wallet_id=1)
        except ChiaRpcError as error:
            raise upstream_error(upstream_failure(error, context="the wallet balance")) from None
        cache["spendable_balance"] = balance.spendable_balance
    value = cache["spendable_balance"]
    return None if value is None else int(value)


# ------------------------------------------------------------------ organization queries


def validation_error(error: InvalidInput) -> GraphQLError:
    """A top-level GraphQL error for bad query arguments (queries have no result unions)."""
    extensions: dict[str, object] = {"code": "VALIDATION"}
    if error.field:
        extensions["field"] = error.field
    return GraphQLError(error.message, extensions=extensions)


async def organizations_page(
    info: Info, criteria: dict[str, Any] | None, first: int | None, after: str | None
) -> OrganizationPage:
    """One page of organizations of the node's data-model version."""
    services = info.context.services
    try:
        return await organizations.list_organizations(
            services.db,
            data_model_version=services.settings.data_model_version.value,
            criteria=OrganizationCriteria.of(criteria),
            first=first,
            after=after,
        )
    except InvalidInput as error:
        raise validation_error(error) from None


async def organization(info: Info, org_uid: str) -> OrganizationView | None:
    """One organization (batched); a malformed orgUid is a VALIDATION error, unknown is None."""
    try:
        uid = store_id_argument(org_uid, field="orgUid")
    except InvalidInput as error:
        raise validation_error(error) from None
    return await organization_by_uid(info, uid)


async def home_organization(info: Info) -> OrganizationView | None:
    """The home organization, or None."""
    services = info.context.services
    return await organizations.home_organization(
        services.db, data_model_version=services.settings.data_model_version.value
    )


# ------------------------------------------------------------------ organization mutations


async def import_organization(info: Info, org_uid: str, is_home: bool) -> ImportOutcome:
    """importOrganization."""
    return await requests.import_request(info.context.services, org_uid, is_home=is_home)


async def subscribe_organization(info: Info, org_uid: str) -> OrganizationOutcome:
    """subscribeOrganization."""
    return await requests.subscribe_request(info.context.services, org_uid)


async def unsubscribe_organization(info: Info, org_uid: str) -> OrganizationOutcome:
    """unsubscribeOrganization."""
    return await requests.unsubscribe_request(info.context.services, org_uid)


async def resync_organization(info: Info, org_uid: str) -> OrganizationOutcome:
    """resyncOrganization."""
    return await requests.resync_request(info.context.services, org_uid)


async def delete_organization(info: Info, org_uid: str) -> OrganizationOutcome:
    """deleteOrganization."""
    return await requests.delete_request(info.context.services, org_uid)


async def edit_home_organization(
    info: Info, name: str | None, icon: str | None
) -> OrganizationOutcome:
    """editHomeOrganization."""
    return await requests.edit_home_request(info.context.services, name=name, icon=icon)


async def set_organization_metadata(
    info: Info, entries: Sequence[tuple[str, str]]
) -> OrganizationOutcome:
    """setOrganizationMetadata."""
    return await requests.set_metadata_request(info.context.services, entries)
