"""The Error interface, its members, and the one mapping from domain exceptions to them."""

from __future__ import annotations

from enum import Enum

import strawberry

from schema.lock import OperationStatus
from services import errors as domain


@strawberry.enum(description="Machine-readable class of an error.")
class ErrorCode(Enum):
    CONFLICT = "CONFLICT"
    VALIDATION = "VALIDATION"
    NOT_FOUND = "NOT_FOUND"
    READ_ONLY = "READ_ONLY"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    WALLET_NOT_SYNCED = "WALLET_NOT_SYNCED"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    PRECONDITION_FAILED = "PRECONDITION_FAILED"


@strawberry.enum(description="Why an operation conflicts.")
class ConflictReason(Enum):
    OPERATION_IN_PROGRESS = "OPERATION_IN_PROGRESS"
    CREATION_IN_PROGRESS = "CREATION_IN_PROGRESS"
    HOME_ALREADY_SET = "HOME_ALREADY_SET"
    HOME_CHANGED = "HOME_CHANGED"


@strawberry.enum(description="A Chia service.")
class UpstreamService(Enum):
    DATALAYER = "DATALAYER"
    WALLET = "WALLET"


@strawberry.interface(
    description="Every expected failure of a mutation is a union member implementing Error."
)
class Error:
    message: str = strawberry.field(description="What went wrong, for people.")
    code: ErrorCode = strawberry.field(description="What went wrong, for programs.")


@strawberry.type(description="The typed 409 of the gateway.")
class Conflict(Error):
    reason: ConflictReason = strawberry.field(description="Which kind of conflict.")
    operation_status: OperationStatus | None = strawberry.field(
        description="The operation holding the lock, when one does."
    )


@strawberry.type(description="Input rejected; nothing was changed.")
class ValidationError(Error):
    field: str | None = strawberry.field(description="Input field at fault, when there is one.")


@strawberry.type(description="The named thing does not exist.")
class NotFound(Error):
    pass


@strawberry.type(description="The node runs read-only; mutations are refused.")
class ReadOnly(Error):
    pass


@strawberry.type(description="The current state does not allow the operation.")
class PreconditionFailed(Error):
    pass


@strawberry.type(description="The upstream Chia services refused or could not serve the write.")
class UpstreamError(Error):
    service: UpstreamService = strawberry.field(description="Which Chia service.")


ErrorMember = Conflict | ValidationError | NotFound | ReadOnly | PreconditionFailed | UpstreamError


def error_from_domain(error: domain.DomainError) -> ErrorMember:
    """Map a domain exception to its union member (the only place this mapping lives)."""
    if isinstance(error, domain.Conflict):
        return Conflict(
            message=error.message,
            code=ErrorCode.CONFLICT,
            reason=ConflictReason(error.reason.value),
            operation_status=(
                OperationStatus.from_domain(error.operation_status)
                if error.operation_status is not None
                else None
            ),
        )
    if isinstance(error, domain.InvalidInput):
        return ValidationError(message=error.message, code=ErrorCode.VALIDATION, field=error.field)
    if isinstance(error, domain.NotFound):
        return NotFound(message=error.message, code=ErrorCode.NOT_FOUND)
    if isinstance(error, domain.ReadOnly):
        return ReadOnly(message=error.message, code=ErrorCode.READ_ONLY)
    if isinstance(error, domain.UpstreamFailure):
        return UpstreamError(
            message=error.message,
            code=ErrorCode(error.code.value),
            service=UpstreamService(error.service.value),
        )
    return PreconditionFailed(message=error.message, code=ErrorCode.PRECONDITION_FAILED)
