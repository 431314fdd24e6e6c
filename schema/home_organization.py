"""Mutations of the home organization's long operations: create, upgrade and reclaim.

Create and upgrade answer `OperationAccepted` once the lock is taken and the job is queued;
progress then streams through `operationProgress` and `creationStatus`. Reclaim is short and
answers the organization. Domain exceptions become union members through
schema.errors.error_from_domain; a member a union does not list is answered as
PreconditionFailed with the same message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar, cast

import strawberry

import resolvers.home_organization
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
from schema.lock import OperationStatus
from schema.payloads import OrganizationPayload
from services.errors import DomainError
from services.home_organization import AcceptedOperation

T = TypeVar("T")


@strawberry.type(
    description=(
        "A long operation was accepted: it holds the lock and runs as a job; follow it with "
        "the operationProgress subscription."
    )
)
class OperationAccepted:
    message: str = strawberry.field(description="What was started, for people.")
    operation_status: OperationStatus = strawberry.field(
        description="The lock as the operation took it (status 'Starting...')."
    )
    job_id: strawberry.ID = strawberry.field(description="Id of the background job.")

    @classmethod
    def from_domain(cls, accepted: AcceptedOperation) -> OperationAccepted:
        """Build from the service's answer."""
        return cls(
            message=accepted.message,
            operation_status=OperationStatus.from_domain(accepted.operation_status),
            job_id=strawberry.ID(accepted.job_id),
        )


@strawberry.input(description="The new home organization's profile.")
class CreateHomeOrganizationInput:
    name: str = strawberry.field(description="Organization name (1 to 200 characters).")
    icon: str | None = strawberry.field(
        default=None, description="Icon: an http(s) URL or a data URI of at most 2 MB."
    )


CreateHomeOrganizationResult = Annotated[
    OperationAccepted | Conflict | ValidationError | ReadOnly | PreconditionFailed | UpstreamError,
    strawberry.union(
        "CreateHomeOrganizationResult",
        description="OperationAccepted when the creation job started, else why not.",
    ),
]

UpgradeHomeOrganizationResult = Annotated[
    OperationAccepted | Conflict | ReadOnly | PreconditionFailed | UpstreamError,
    strawberry.union(
        "UpgradeHomeOrganizationResult",
        description="OperationAccepted when the upgrade job started, else why not.",
    ),
]

ReclaimHomeOrganizationResult = Annotated[
    OrganizationPayload
    | Conflict
    | NotFound
    | ValidationError
    | ReadOnly
    | PreconditionFailed
    | UpstreamError,
    strawberry.union(
        "ReclaimHomeOrganizationResult",
        description="OrganizationPayload with the home organization, else why not.",
    ),
]

_CREATE_MEMBERS = (Conflict, ValidationError, ReadOnly, PreconditionFailed, UpstreamError)
_UPGRADE_MEMBERS = (Conflict, ReadOnly, PreconditionFailed, UpstreamError)
_RECLAIM_MEMBERS = (
    Conflict,
    NotFound,
    ValidationError,
    ReadOnly,
    PreconditionFailed,
    UpstreamError,
)


async def _answer(
    call: Awaitable[T], success: Callable[[T], object], members: tuple[type, ...]
) -> object:
    try:
        outcome = await call
    except DomainError as error:
        member = error_from_domain(error)
        if isinstance(member, members):
            return member
        return PreconditionFailed(message=error.message, code=ErrorCode.PRECONDITION_FAILED)
    return success(outcome)


@strawberry.type
class HomeOrganizationMutation:
    @strawberry.mutation(
        description=(
            "Create this node's home organization (four DataLayer stores). Checks read-only, a "
            "persisted creation still running, the lock, then the input and the wallet; then "
            "the creation runs as a resumable job. Follow creationStatus."
        )
    )
    async def create_home_organization(
        self,
        info: Info,
        input: Annotated[
            CreateHomeOrganizationInput,
            strawberry.argument(description="Name and optional icon of the organization."),
        ],
    ) -> CreateHomeOrganizationResult:
        call = resolvers.home_organization.create_home_organization(
            info, name=input.name, icon=input.icon
        )
        answer = await _answer(call, OperationAccepted.from_domain, _CREATE_MEMBERS)
        return cast(CreateHomeOrganizationResult, answer)

    @strawberry.mutation(
        description=(
            "Upgrade the V1 home organization to V2: a new V2 registry store, the v2 key in its "
            "data-model-version store and the V2 home row. Runs as a job under the lock."
        )
    )
    async def upgrade_home_organization(self, info: Info) -> UpgradeHomeOrganizationResult:
        call = resolvers.home_organization.upgrade_home_organization(info)
        answer = await _answer(call, OperationAccepted.from_domain, _UPGRADE_MEMBERS)
        return cast(UpgradeHomeOrganizationResult, answer)

    @strawberry.mutation(
        description=(
            "Make an organization this wallet owns the home organization again (a repair). "
            "Exactly one of two concurrent reclaims wins."
        )
    )
    async def reclaim_home_organization(
        self,
        info: Info,
        org_uid: Annotated[
            strawberry.ID,
            strawberry.argument(description="The organization's orgUid (64 hex, 0x optional)."),
        ],
    ) -> ReclaimHomeOrganizationResult:
        call = resolvers.home_organization.reclaim_home_organization(info, org_uid=str(org_uid))
        answer = await _answer(
            call,
            lambda outcome: OrganizationPayload.from_domain(outcome.message, outcome.organization),
            _RECLAIM_MEMBERS,
        )
        return cast(ReclaimHomeOrganizationResult, answer)
