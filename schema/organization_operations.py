"""Short organization mutations: import, subscribe, unsubscribe, resync, delete, edit, metadata.

Each returns its named result union. Domain exceptions become union members through
schema.errors.error_from_domain; a member the union does not list is reported as
PreconditionFailed with the same message (it cannot be left out of the answer).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, cast

import strawberry

import resolvers.organizations
from resolvers.context import Info
from schema.errors import (
    Conflict,
    ErrorCode,
    NotFound,
    PreconditionFailed,
    ReadOnly,
    UpstreamError,
    ValidationError,
    error_from_domain,
)
from schema.payloads import Done, OrganizationPayload
from services.errors import DomainError
from services.organizations import OrganizationOutcome

ImportOrganizationResult = Annotated[
    OrganizationPayload
    | Done
    | Conflict
    | NotFound
    | ValidationError
    | ReadOnly
    | PreconditionFailed
    | UpstreamError,
    strawberry.union(
        "ImportOrganizationResult",
        description=(
            "OrganizationPayload when imported now; Done when DataLayer is still syncing and "
            "the import finishes in the background; NotFound when no DataLayer store with this "
            "id exists on chain."
        ),
    ),
]

OrganizationResult = Annotated[
    OrganizationPayload
    | Done
    | NotFound
    | ValidationError
    | ReadOnly
    | PreconditionFailed
    | UpstreamError,
    strawberry.union(
        "OrganizationResult",
        description="Result of a short organization operation.",
    ),
]

_IMPORT_MEMBERS = (Conflict, NotFound, ValidationError, ReadOnly, PreconditionFailed, UpstreamError)
_ORGANIZATION_MEMBERS = (NotFound, ValidationError, ReadOnly, PreconditionFailed, UpstreamError)


async def _result(call: Awaitable[OrganizationOutcome], members: tuple[type, ...]) -> object:
    try:
        outcome = await call
    except DomainError as error:
        member = error_from_domain(error)
        if isinstance(member, members):
            return member
        return PreconditionFailed(message=error.message, code=ErrorCode.PRECONDITION_FAILED)
    if outcome.organization is None:
        return Done(message=outcome.message)
    return OrganizationPayload.from_domain(outcome.message, outcome.organization)


OrgUidArgument = Annotated[
    strawberry.ID,
    strawberry.argument(description="The organization's orgUid (64 hex, 0x optional)."),
]


@strawberry.input(description="New profile values of the home organization; omitted ones stay.")
class EditHomeOrganizationInput:
    name: str | None = strawberry.field(default=None, description="New name (not empty).")
    icon: str | None = strawberry.field(
        default=None, description="New icon: a URL or a data URI (at most 2 MB)."
    )


@strawberry.input(description="One metadata entry; stored in the org store as meta_<key>.")
class MetadataEntryInput:
    key: str = strawberry.field(description="Key without the meta_ prefix.")
    value: str = strawberry.field(description="Text value.")


@strawberry.type
class OrganizationMutation:
    @strawberry.mutation(
        description=(
            "Import an organization: subscribe to its stores first, then check that DataLayer "
            "has synced them. While DataLayer is still syncing, answers Done and finishes the "
            "import in the background. isHome requires this wallet to own the stores."
        )
    )
    async def import_organization(
        self,
        info: Info,
        org_uid: OrgUidArgument,
        is_home: Annotated[
            bool | None,
            strawberry.argument(description="Import it as this node's home organization."),
        ] = False,
    ) -> ImportOrganizationResult:
        call = resolvers.organizations.import_organization(info, str(org_uid), bool(is_home))
        return cast(ImportOrganizationResult, await _result(call, _IMPORT_MEMBERS))

    @strawberry.mutation(
        description="Subscribe to every store of a known organization and mark it subscribed."
    )
    async def subscribe_organization(
        self, info: Info, org_uid: OrgUidArgument
    ) -> OrganizationResult:
        call = resolvers.organizations.subscribe_organization(info, str(org_uid))
        return cast(OrganizationResult, await _result(call, _ORGANIZATION_MEMBERS))

    @strawberry.mutation(
        description=(
            "Unsubscribe from an organization's stores and mark it unsubscribed "
            "(not the home organization). DataLayer applies it at its next cycle."
        )
    )
    async def unsubscribe_organization(
        self, info: Info, org_uid: OrgUidArgument
    ) -> OrganizationResult:
        call = resolvers.organizations.unsubscribe_organization(info, str(org_uid))
        return cast(OrganizationResult, await _result(call, _ORGANIZATION_MEMBERS))

    @strawberry.mutation(
        description=(
            "Replay an organization's registry from generation 0. Refused (PreconditionFailed, "
            "nothing deleted) until DataLayer has synced all of its stores."
        )
    )
    async def resync_organization(self, info: Info, org_uid: OrgUidArgument) -> OrganizationResult:
        call = resolvers.organizations.resync_organization(info, str(org_uid))
        return cast(OrganizationResult, await _result(call, _ORGANIZATION_MEMBERS))

    @strawberry.mutation(
        description=(
            "Delete an organization's local data and remember the deletion (governance "
            "discovery will not import it again); unsubscribes a non-home organization."
        )
    )
    async def delete_organization(self, info: Info, org_uid: OrgUidArgument) -> OrganizationResult:
        call = resolvers.organizations.delete_organization(info, str(org_uid))
        return cast(OrganizationResult, await _result(call, _ORGANIZATION_MEMBERS))

    @strawberry.mutation(
        description="Change the home organization's name and/or icon in its org store."
    )
    async def edit_home_organization(
        self,
        info: Info,
        input: Annotated[
            EditHomeOrganizationInput,
            strawberry.argument(description="The values to change."),
        ],
    ) -> OrganizationResult:
        call = resolvers.organizations.edit_home_organization(info, input.name, input.icon)
        return cast(OrganizationResult, await _result(call, _ORGANIZATION_MEMBERS))

    @strawberry.mutation(
        description=(
            "Set metadata of the home organization (org-store keys meta_<key>, merged into "
            "Organization.metadata); at most 100 entries per call."
        )
    )
    async def set_organization_metadata(
        self,
        info: Info,
        entries: Annotated[
            list[MetadataEntryInput],
            strawberry.argument(description="Entries to set (at most 100)."),
        ],
    ) -> OrganizationResult:
        call = resolvers.organizations.set_organization_metadata(
            info, [(entry.key, entry.value) for entry in entries]
        )
        return cast(OrganizationResult, await _result(call, _ORGANIZATION_MEMBERS))
