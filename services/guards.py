"""Checks every mutation shares: read-only, the org-operation lock, a synced wallet, store ids.

The typed Conflict of a held lock is built here, once; mutations never build it themselves.
"""

from __future__ import annotations

import asyncio
import time

from services.chia import ChiaRpcError, InvalidStoreId, normalize_store_id
from services.container import Services
from services.domain import LockSnapshot
from services.errors import (
    Conflict,
    ConflictReason,
    InvalidInput,
    ReadOnly,
    UpstreamCode,
    UpstreamFailure,
    UpstreamServiceName,
)
from services.oplock import INITIAL_STATUS, RECOVERY_LABEL_SUFFIX


def assert_writable(services: Services) -> None:
    """Refuse every mutation on a read-only node (checked before the lock, rule L9)."""
    if services.settings.read_only:
        raise ReadOnly()


async def lock_conflict(services: Services) -> Conflict:
    """The Conflict describing the current holder of the org-operation lock."""
    snapshot = await services.lock.status()
    label = snapshot.label if snapshot else "another operation"
    return Conflict(
        f"A home organization operation is already in progress: {label}. "
        "Please wait for it to complete.",
        reason=ConflictReason.OPERATION_IN_PROGRESS,
        operation_status=snapshot,
    )


#: Attempts when the holder releases between our refused acquire and the read of its status.
_ACQUIRE_ATTEMPTS = 3


#: How often a mutation waiting for a tidying recovery tries the lock again.
_RECOVERY_POLL_SECONDS = 0.05


def _tidying_recovery(snapshot: LockSnapshot | None) -> bool:
    """The holder is the periodic creation recovery that has not handed over to a creation:
    it clears a finished record and releases within milliseconds."""
    return (
        snapshot is not None
        and snapshot.label.endswith(RECOVERY_LABEL_SUFFIX)
        and snapshot.status == INITIAL_STATUS
    )


async def acquire_or_conflict(services: Services, label: str) -> str:
    """Take the org-operation lock for `label`, or raise Conflict(OPERATION_IN_PROGRESS).

    A user retrying a failed creation must not be refused because the periodic recovery is
    clearing that failure at the same moment: while the holder is such a tidying recovery
    the lock is tried again for up to `lock_recovery_wait_seconds`; any other holder is a
    Conflict at once (L2).
    """
    deadline = time.monotonic() + services.settings.lock_recovery_wait_seconds
    attempts = 0
    while True:
        token = await services.lock.try_acquire(label)
        if token is not None:
            return token
        conflict = await lock_conflict(services)
        if conflict.operation_status is None:
            # The lock was freed in between: a Conflict without its holder would be a lie.
            attempts += 1
            if attempts < _ACQUIRE_ATTEMPTS:
                continue
            raise conflict
        if _tidying_recovery(conflict.operation_status) and time.monotonic() < deadline:
            await asyncio.sleep(_RECOVERY_POLL_SECONDS)
            continue
        raise conflict


async def assert_wallet_synced(services: Services) -> None:
    """Writes upstream need a synced wallet (queries never check it, PR #1535)."""
    try:
        status = await services.wallet.get_sync_status()
    except ChiaRpcError as error:
        raise UpstreamFailure(
            f"The Chia wallet is not available: {error.message}",
            code=UpstreamCode.UPSTREAM_UNAVAILABLE,
            service=UpstreamServiceName.WALLET,
        ) from error
    if not status.synced:
        raise UpstreamFailure(
            "Your wallet is syncing, please wait for it to sync and try again",
            code=UpstreamCode.WALLET_NOT_SYNCED,
            service=UpstreamServiceName.WALLET,
        )


async def assert_datalayer_available(services: Services) -> None:
    """An operation whose job starts with DataLayer needs it reachable now: refuse the request
    (UpstreamError) rather than accept a job that fails at its first step."""
    try:
        await services.datalayer.get_routes()
    except ChiaRpcError as error:
        raise UpstreamFailure(
            f"The Chia DataLayer is not available: {error.message}",
            code=UpstreamCode.UPSTREAM_UNAVAILABLE,
            service=UpstreamServiceName.DATALAYER,
        ) from error


def store_id_argument(value: str, *, field: str) -> str:
    """A store id argument (64 hex, with or without 0x) normalised, or InvalidInput naming it."""
    try:
        return normalize_store_id(value)
    except InvalidStoreId:
        raise InvalidInput(
            f"{field} must be a store id of 64 hex characters (with or without 0x)", field=field
        ) from None
