"""Governance: the body this node owns or follows, its org list, pick list and glossary.

`Query.governance` reads local rows only (queries never wait on DataLayer). The mutations
answer `GovernanceResult`: `Done` once accepted (long work runs as a job), or a typed error.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from enum import Enum
from typing import Annotated, cast

import strawberry

import resolvers.governance
from resolvers.context import Info
from schema.errors import (
    ErrorCode,
    PreconditionFailed,
    ReadOnly,
    UpstreamError,
    ValidationError,
    error_from_domain,
)
from schema.organizations import Organization
from schema.payloads import Done
from schema.scalars import JSON
from services.errors import DomainError
from services.governance import CreationView, GovernanceView


@strawberry.enum(description="Steps of a governance body creation.")
class GovernanceCreationState(Enum):
    CREATING_STORES = strawberry.enum_value(
        "CREATING_STORES", description="Waiting for coins and creating the stores."
    )
    CONFIRMING_STORES = strawberry.enum_value(
        "CONFIRMING_STORES", description="Waiting for the new stores to confirm on chain."
    )
    WRITING_VERSION_MAP = strawberry.enum_value(
        "WRITING_VERSION_MAP",
        description="Writing {v2: <version store>} into the main store and waiting for it.",
    )
    COMPLETE = strawberry.enum_value("COMPLETE", description="The body exists.")
    FAILED = strawberry.enum_value(
        "FAILED", description="The creation stopped; createGovernanceBody retries it."
    )


@strawberry.type(description="Progress of the governance body creation started on this node.")
class GovernanceCreation:
    state: GovernanceCreationState = strawberry.field(description="Current step.")
    message: str = strawberry.field(description="The step in words.")
    main_store_id: strawberry.ID | None = strawberry.field(
        description="Main store id once created (or the existing body's, when adding a version)."
    )
    version_store_id: strawberry.ID | None = strawberry.field(
        description="Version store id once created."
    )
    error: str | None = strawberry.field(description="Why it failed, on FAILED.")
    started_at: datetime | None = strawberry.field(description="When this attempt started.")
    updated_at: datetime | None = strawberry.field(description="When its state last changed.")

    @classmethod
    def from_domain(cls, creation: CreationView) -> GovernanceCreation:
        """Build from the creation record's view."""
        return cls(
            state=GovernanceCreationState(creation.state.value),
            message=creation.message,
            main_store_id=_id(creation.main_store_id),
            version_store_id=_id(creation.version_store_id),
            error=creation.error,
            started_at=creation.started_at,
            updated_at=creation.updated_at,
        )


@strawberry.type(description="One organization of the governance body's member list.")
class GovernanceOrg:
    org_uid: strawberry.ID = strawberry.field(description="The listed orgUid.")

    @strawberry.field(
        description="The local organization once discovered and imported; null until then."
    )
    async def organization(self, info: Info) -> Organization | None:
        found = await resolvers.governance.governance_organization(info, str(self.org_uid))
        return None if found is None else Organization.from_domain(found)


@strawberry.type(
    description=(
        "The governance body this node owns (governance node) or follows (subscriber), and "
        "its values as held locally."
    )
)
class Governance:
    is_governance_body: bool = strawberry.field(description="This node owns a governance body.")
    body_id: strawberry.ID | None = strawberry.field(
        description="The main governance store id (what subscribers configure); null when none."
    )
    version_store_id: strawberry.ID | None = strawberry.field(
        description=(
            "The version store holding the values for this node's data model; null for a "
            "legacy body or before the first sync."
        )
    )
    org_list: list[GovernanceOrg] = strawberry.field(
        description="Member organizations, in the body's order."
    )
    pick_list: JSON = strawberry.field(description="Field name -> allowed values; {} when missing.")
    glossary: JSON = strawberry.field(description="Term -> definition; {} when missing.")
    confirmed: bool = strawberry.field(
        description="Every local value is confirmed on DataLayer (no edit is still pushing)."
    )
    last_synced_at: datetime | None = strawberry.field(
        description="When the local values last matched DataLayer."
    )
    sync_message: str | None = strawberry.field(
        description="What the last governance sync run did (subscriber nodes)."
    )
    creation: GovernanceCreation | None = strawberry.field(
        description="The body creation started on this node, if any."
    )

    @classmethod
    def from_domain(cls, view: GovernanceView) -> Governance:
        """Build from the governance read model."""
        return cls(
            is_governance_body=view.is_governance_body,
            body_id=_id(view.body_id),
            version_store_id=_id(view.version_store_id),
            org_list=[
                GovernanceOrg(org_uid=strawberry.ID(entry.org_uid)) for entry in view.org_list
            ],
            pick_list=view.pick_list,
            glossary=view.glossary,
            confirmed=view.confirmed,
            last_synced_at=view.last_synced_at,
            sync_message=view.sync_message,
            creation=(
                GovernanceCreation.from_domain(view.creation) if view.creation is not None else None
            ),
        )


def _id(value: str | None) -> strawberry.ID | None:
    return None if value is None else strawberry.ID(value)


GovernanceResult = Annotated[
    Done | ValidationError | ReadOnly | PreconditionFailed | UpstreamError,
    strawberry.union(
        "GovernanceResult",
        description=(
            "Done when accepted (the work continues in a job: follow Query.governance), or why "
            "not: PreconditionFailed (not a governance node, listening to another body, "
            "already created, no body owned), ValidationError (bad argument, unknown store), "
            "ReadOnly, UpstreamError (wallet not synced, Chia unavailable)."
        ),
    ),
]

_MEMBERS = (ValidationError, ReadOnly, PreconditionFailed, UpstreamError)


async def _result(call: Awaitable[str]) -> GovernanceResult:
    try:
        message = await call
    except DomainError as error:
        member = error_from_domain(error)
        if isinstance(member, _MEMBERS):
            return cast(GovernanceResult, member)
        # A member the union does not list (Conflict, NotFound) keeps its message.
        return PreconditionFailed(message=error.message, code=ErrorCode.PRECONDITION_FAILED)
    return Done(message=message)


@strawberry.type
class GovernanceQuery:
    @strawberry.field(
        description=(
            "The governance body of this node and its org list, pick list and glossary "
            "(local values; a subscriber refreshes them every governance sync interval)."
        )
    )
    async def governance(self, info: Info) -> Governance:
        return Governance.from_domain(await resolvers.governance.governance_view(info))


@strawberry.type
class GovernanceMutation:
    @strawberry.mutation(
        description=(
            "Create a governance body on this governance node (CADT_IS_GOVERNANCE_BODY=true, "
            "CADT_GOVERNANCE_BODY_ID empty): the main and version stores and the version map, "
            "in a background job. On a node that owns a body of another data model version, "
            "adds this version's store to it."
        )
    )
    async def create_governance_body(self, info: Info) -> GovernanceResult:
        return await _result(resolvers.governance.create_governance_body(info))

    @strawberry.mutation(
        description=(
            "Follow a governance body: subscribe to its main store, record it, and sync it in "
            "the background."
        )
    )
    async def subscribe_governance_body(
        self,
        info: Info,
        governance_body_id: Annotated[
            strawberry.ID,
            strawberry.argument(description="The body's main store id (64 hex, 0x optional)."),
        ],
    ) -> GovernanceResult:
        return await _result(
            resolvers.governance.subscribe_governance_body(info, str(governance_body_id))
        )

    @strawberry.mutation(
        description=(
            "Publish the member organizations of the body this node owns (stored as CADT's "
            '[{"orgUid": ...}]). The local value is unconfirmed until DataLayer confirms it, '
            "and restored if the push fails."
        )
    )
    async def set_governance_org_list(
        self,
        info: Info,
        org_uids: Annotated[
            list[strawberry.ID],
            strawberry.argument(description="orgUids (store ids), each at most once."),
        ],
    ) -> GovernanceResult:
        return await _result(
            resolvers.governance.set_org_list(info, [str(uid) for uid in org_uids])
        )

    @strawberry.mutation(
        description=(
            "Publish the pick lists of the body this node owns: an object of field name -> "
            "array of strings (a string holding that JSON is accepted too)."
        )
    )
    async def set_governance_pick_list(
        self,
        info: Info,
        pick_list: Annotated[
            JSON,
            strawberry.argument(description="Field name -> allowed values."),
        ],
    ) -> GovernanceResult:
        return await _result(resolvers.governance.set_pick_list(info, pick_list))

    @strawberry.mutation(
        description=(
            "Publish the glossary of the body this node owns: an object of term -> definition "
            "(or an array of {term, definition}; a string holding that JSON is accepted too)."
        )
    )
    async def set_governance_glossary(
        self,
        info: Info,
        glossary: Annotated[
            JSON,
            strawberry.argument(description="Term -> definition."),
        ],
    ) -> GovernanceResult:
        return await _result(resolvers.governance.set_glossary(info, glossary))

    @strawberry.mutation(
        description=(
            "Run the governance job now instead of at the next interval (a subscriber syncs "
            "its body; a governance node re-pushes unconfirmed values)."
        )
    )
    async def sync_governance(self, info: Info) -> GovernanceResult:
        return await _result(resolvers.governance.sync_governance(info))
