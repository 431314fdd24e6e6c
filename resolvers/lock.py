"""Resolvers of the org-operation lock and the creation status: queries and progress streams."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from resolvers.context import Info
from services import progress
from services.creation_state import CreationSummary
from services.domain import LockSnapshot


async def operation_status(info: Info) -> LockSnapshot | None:
    """The org operation holding the lock, or None."""
    return await progress.operation_status(info.context.services)


async def creation_status(info: Info) -> CreationSummary:
    """The creation status of the node's data-model version, merged with the lock."""
    return await progress.creation_status(info.context.services)


def operation_progress(info: Info) -> AsyncGenerator[progress.OperationEvent, None]:
    """The current lock holder (if any), then every lock event."""
    return progress.operation_events(info.context.services)


def creation_status_changes(info: Info) -> AsyncGenerator[CreationSummary, None]:
    """The current creation status, then every change."""
    return progress.creation_status_changes(info.context.services)
