"""Mirror operations: Query.mirrors, addMirror and removeMirror with their MirrorResult union.

Domain exceptions become union members through schema.errors.error_from_domain; a member the
union does not list is reported as PreconditionFailed with the same message.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, cast

import strawberry

import resolvers.mirrors
from resolvers.context import Info
from schema.errors import (
    ErrorCode,
    NotFound,
    PreconditionFailed,
    ReadOnly,
    UpstreamError,
    ValidationError,
    error_from_domain,
)
from schema.mirrors import Mirror
from schema.payloads import Done
from services.errors import DomainError
from services.mirrors import MirrorOutcome


@strawberry.type(description="A mirror mutation succeeded; the mirror when it is known.")
class MirrorPayload:
    message: str = strawberry.field(description="What happened, for people.")
    mirror: Mirror | None = strawberry.field(
        description="The mirror (null while a new mirror coin is not visible yet)."
    )


MirrorResult = Annotated[
    MirrorPayload
    | Done
    | NotFound
    | ValidationError
    | ReadOnly
    | PreconditionFailed
    | UpstreamError,
    strawberry.union(
        "MirrorResult",
        description=(
            "MirrorPayload when the mirror was added, found or removed; Done when the same "
            "mirror is being added by another request or job."
        ),
    ),
]

_MEMBERS = (NotFound, ValidationError, ReadOnly, PreconditionFailed, UpstreamError)


async def _result(call: Awaitable[MirrorOutcome]) -> object:
    try:
        outcome = await call
    except DomainError as error:
        member = error_from_domain(error)
        if isinstance(member, _MEMBERS):
            return member
        return PreconditionFailed(message=error.message, code=ErrorCode.PRECONDITION_FAILED)
    if outcome.done:
        return Done(message=outcome.message)
    return MirrorPayload(
        message=outcome.message,
        mirror=None if outcome.mirror is None else Mirror.from_domain(outcome.mirror),
    )


StoreIdArgument = Annotated[
    strawberry.ID, strawberry.argument(description="The store (64 hex, 0x optional).")
]


@strawberry.type
class MirrorQuery:
    @strawberry.field(
        description=(
            "Mirrors of a store as last read from DataLayer (the mirror job refreshes them); "
            "read from DataLayer now when `refresh` is true or none are known yet."
        )
    )
    async def mirrors(
        self,
        info: Info,
        store_id: StoreIdArgument,
        refresh: Annotated[
            bool, strawberry.argument(description="Read get_mirrors now instead of the table.")
        ] = False,
    ) -> list[Mirror]:
        found = await resolvers.mirrors.store_mirrors(info, store_id, refresh)
        return [Mirror.from_domain(mirror) for mirror in found]


@strawberry.type
class MirrorMutation:
    @strawberry.mutation(
        description=(
            "Announce `url` as a mirror of a store (DEFAULT_COIN_AMOUNT mojos plus the fee, or "
            "no fee when only the amount is spendable). Nothing is spent when the store is "
            "already mirrored at that URL or the same mirror is being added."
        )
    )
    async def add_mirror(
        self,
        info: Info,
        store_id: StoreIdArgument,
        url: Annotated[
            str,
            strawberry.argument(
                description="http(s) URL without credentials, e.g. the file server."
            ),
        ],
    ) -> MirrorResult:
        return cast(MirrorResult, await _result(resolvers.mirrors.add_mirror(info, store_id, url)))

    @strawberry.mutation(
        description="Remove this wallet's mirror `coinId` of a store (NotFound otherwise)."
    )
    async def remove_mirror(
        self,
        info: Info,
        store_id: StoreIdArgument,
        coin_id: Annotated[
            strawberry.ID, strawberry.argument(description="The mirror's coin id (64 hex).")
        ],
    ) -> MirrorResult:
        return cast(
            MirrorResult,
            await _result(resolvers.mirrors.remove_mirror(info, store_id, coin_id)),
        )
