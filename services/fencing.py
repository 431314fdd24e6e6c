"""Fenced database writes: rows written under the org-operation lock refuse a stale holder.

A holder can pause past the lock's TTL and wake up after another operation took over
(Kleppmann, "How to do distributed locking"). Each write under the lock therefore
1. checks in Redis that its token still holds the lock, and
2. updates only rows whose `lock_fence` is not newer than its own fencing number,
so a stale holder's write fails with `StaleLockHolder` and its job stops.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.db.models import Meta, utcnow
from services.errors import DomainError
from services.oplock import OrgOperationLock, fence_of


class StaleLockHolder(DomainError):
    """The writer's lock token was superseded; it must stop."""


@dataclass(frozen=True)
class Fence:
    """The lock token a job writes under."""

    lock: OrgOperationLock
    token: str

    @property
    def number(self) -> int:
        """The fencing number."""
        return fence_of(self.token)

    async def assert_current(self) -> None:
        """Raise StaleLockHolder unless the token still holds the lock."""
        if not await self.lock.is_holder(self.token):
            raise StaleLockHolder(
                f"the org-operation lock token {self.token} was superseded; stopping this job"
            )


async def write_meta(
    session: AsyncSession, key: str, value: str, *, fence: Fence | None = None
) -> None:
    """Upsert a Meta row; with a fence, refuse when a newer holder wrote it or took the lock."""
    if fence is None:
        await _upsert_unfenced(session, key, value)
        return
    await fence.assert_current()
    number = fence.number
    table = Meta.__table__  # type: ignore[attr-defined]
    result = await session.execute(
        sa.update(table)
        .where(table.c.key == key)
        .where(sa.or_(table.c.lock_fence.is_(None), table.c.lock_fence <= number))
        .values(value=value, lock_fence=number, updated_at=utcnow())
    )
    if result.rowcount:  # type: ignore[attr-defined]
        return
    exists = await session.scalar(sa.select(sa.func.count()).where(table.c.key == key))
    if exists:
        raise StaleLockHolder(f"meta {key!r} was written by a newer lock holder than {fence.token}")
    try:
        async with session.begin_nested():
            await session.execute(
                sa.insert(table).values(
                    key=key, value=value, lock_fence=number, updated_at=utcnow()
                )
            )
    except IntegrityError as error:
        raise StaleLockHolder(f"meta {key!r} was written concurrently") from error


async def delete_meta(session: AsyncSession, key: str, *, fence: Fence | None = None) -> None:
    """Delete a Meta row; with a fence, only when no newer holder wrote it."""
    table = Meta.__table__  # type: ignore[attr-defined]
    statement = sa.delete(table).where(table.c.key == key)
    if fence is not None:
        await fence.assert_current()
        statement = statement.where(
            sa.or_(table.c.lock_fence.is_(None), table.c.lock_fence <= fence.number)
        )
    await session.execute(statement)


async def read_meta(session: AsyncSession, key: str) -> str | None:
    """The value of a Meta row, or None."""
    table = Meta.__table__  # type: ignore[attr-defined]
    value = await session.scalar(sa.select(table.c.value).where(table.c.key == key))
    return None if value is None else str(value)


async def _upsert_unfenced(session: AsyncSession, key: str, value: str) -> None:
    table = Meta.__table__  # type: ignore[attr-defined]
    result = await session.execute(
        sa.update(table).where(table.c.key == key).values(value=value, updated_at=utcnow())
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        await session.execute(sa.insert(table).values(key=key, value=value, updated_at=utcnow()))
