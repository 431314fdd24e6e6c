"""Domain exceptions: every expected failure of an operation, mapped to GraphQL in one place."""

from __future__ import annotations

from enum import StrEnum

from services.domain import LockSnapshot


class ConflictReason(StrEnum):
    """Why an operation conflicts with another."""

    OPERATION_IN_PROGRESS = "OPERATION_IN_PROGRESS"
    CREATION_IN_PROGRESS = "CREATION_IN_PROGRESS"
    HOME_ALREADY_SET = "HOME_ALREADY_SET"
    HOME_CHANGED = "HOME_CHANGED"


class UpstreamCode(StrEnum):
    """Why the upstream Chia services refused or could not serve."""

    WALLET_NOT_SYNCED = "WALLET_NOT_SYNCED"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"


class UpstreamServiceName(StrEnum):
    """Which Chia service."""

    DATALAYER = "DATALAYER"
    WALLET = "WALLET"


class DomainError(Exception):
    """An expected failure; `message` is safe to show to clients."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Conflict(DomainError):
    """Another operation holds the lock, or the home state forbids this now."""

    def __init__(
        self,
        message: str,
        *,
        reason: ConflictReason,
        operation_status: LockSnapshot | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.operation_status = operation_status


class InvalidInput(DomainError):
    """Input rejected before anything changed."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(DomainError):
    """The named thing does not exist."""


class ReadOnly(DomainError):
    """The node runs read-only."""

    def __init__(self, message: str = "This node runs read-only; mutations are refused.") -> None:
        super().__init__(message)


class PreconditionFailed(DomainError):
    """The current state does not allow the operation."""


class UpstreamFailure(DomainError):
    """DataLayer or the wallet refused or could not serve."""

    def __init__(
        self,
        message: str,
        *,
        code: UpstreamCode = UpstreamCode.UPSTREAM_UNAVAILABLE,
        service: UpstreamServiceName = UpstreamServiceName.DATALAYER,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.service = service
