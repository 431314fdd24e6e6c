"""Database side of organization operations: rows, the Meta lists, and busy-safe transactions.

Meta keys kept here:
- `userDeletedOrgs`: JSON array of orgUids the user deleted (cadt-domain 3.6, #1536); governance
  discovery must not re-import them, an explicit import removes the entry;
- `pendingImports`: JSON object orgUid -> {isHome, userRequest, requestedAt} of imports waiting
  for DataLayer to sync (cadt-domain 3.3 with #1534). The database, not the job queue, is the
  record, so a lost job or a restart never loses an import.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.db.engine import Database
from services.db.models import Meta, Organization, utcnow

logger = logging.getLogger(__name__)

USER_DELETED_ORGS = "userDeletedOrgs"
PENDING_IMPORTS = "pendingImports"
#: orgUid of the placeholder row a home-organization creation keeps while it runs.
PENDING_ORG_UID = "PENDING"

#: cadt-domain 3.6: SQLITE_BUSY retry, 200 ms x 2^n capped at 5 s, up to 10 retries.
BUSY_RETRIES = 10
BUSY_FIRST_DELAY_SECONDS = 0.2
BUSY_MAX_DELAY_SECONDS = 5.0

_BUSY_TEXTS = ("database is locked", "database is busy", "sqlite_busy")
#: PostgreSQL serialization failure and deadlock.
_RETRYABLE_SQLSTATES = ("40001", "40P01")

T = TypeVar("T")


def is_busy_error(error: BaseException) -> bool:
    """SQLite busy/locked, or a PostgreSQL serialization failure or deadlock."""
    if not isinstance(error, DBAPIError):
        return False
    text = str(error.orig if error.orig is not None else error).lower()
    if isinstance(error, OperationalError) and any(part in text for part in _BUSY_TEXTS):
        return True
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return code in _RETRYABLE_SQLSTATES


async def in_transaction(
    db: Database,
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    retries: int = BUSY_RETRIES,
    retry_integrity: bool = False,
) -> T:
    """Run `work` in one transaction, retrying the whole of it while the database is busy.

    `retry_integrity` also retries unique-constraint races (two writers creating the same Meta
    row): the retry re-reads and finds the row the other writer committed.
    """
    delay = BUSY_FIRST_DELAY_SECONDS
    for attempt in range(retries + 1):
        try:
            async with db.transaction() as session:
                return await work(session)
        except (OperationalError, DBAPIError) as error:
            retryable = is_busy_error(error) or (
                retry_integrity and isinstance(error, IntegrityError)
            )
            if not retryable or attempt == retries:
                raise
            logger.info("database busy (%s); retrying in %.1fs", type(error).__name__, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, BUSY_MAX_DELAY_SECONDS)
    raise AssertionError("unreachable")  # pragma: no cover


async def find_row(
    session: AsyncSession, org_uid: str, data_model_version: str
) -> Organization | None:
    """The organization row of one data-model version, or None."""
    result = await session.execute(
        sa.select(Organization)
        .where(col(Organization.org_uid) == org_uid)
        .where(col(Organization.data_model_version) == data_model_version)
    )
    return result.scalars().first()


async def find_home_row(session: AsyncSession, data_model_version: str) -> Organization | None:
    """The home organization row (never the creation placeholder), or None."""
    result = await session.execute(
        sa.select(Organization)
        .where(col(Organization.is_home).is_(True))
        .where(col(Organization.data_model_version) == data_model_version)
        .where(col(Organization.org_uid) != PENDING_ORG_UID)
    )
    return result.scalars().first()


async def load_row(db: Database, org_uid: str, data_model_version: str) -> Organization | None:
    """The organization row of one data-model version, read in its own session."""
    async with db.session() as session:
        return await find_row(session, org_uid, data_model_version)


# ------------------------------------------------------------------------ Meta JSON values


async def _read_json_for_update(session: AsyncSession, key: str) -> tuple[Meta | None, Any]:
    # FOR UPDATE serialises concurrent read-modify-writes on PostgreSQL; SQLite ignores it and
    # relies on its single writer (a stale snapshot fails as "database is locked" and retries).
    meta = (
        await session.execute(sa.select(Meta).where(col(Meta.key) == key).with_for_update())
    ).scalar_one_or_none()
    if meta is None or not meta.value:
        return meta, None
    try:
        return meta, json.loads(meta.value)
    except ValueError:
        logger.warning("meta %s holds invalid JSON; treating it as empty", key)
        return meta, None


async def _write_json(session: AsyncSession, meta: Meta | None, key: str, value: Any) -> None:
    text = json.dumps(value, separators=(",", ":"))
    if meta is None:
        session.add(Meta(key=key, value=text, updated_at=utcnow()))
    else:
        meta.value = text
        meta.updated_at = utcnow()
        session.add(meta)
    await session.flush()


def _as_uid_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [str(item) for item in value if isinstance(item, str) and item]


async def user_deleted_org_uids(db: Database) -> set[str]:
    """orgUids the user deleted; governance discovery skips them."""
    async with db.session() as session:
        meta = await session.get(Meta, USER_DELETED_ORGS)
    if meta is None or not meta.value:
        return set()
    try:
        return set(_as_uid_list(json.loads(meta.value)))
    except ValueError:
        return set()


async def add_user_deleted_org(session: AsyncSession, org_uid: str) -> None:
    """Append an orgUid to userDeletedOrgs (inside the caller's transaction)."""
    meta, value = await _read_json_for_update(session, USER_DELETED_ORGS)
    uids = _as_uid_list(value)
    if org_uid not in uids:
        uids.append(org_uid)
        await _write_json(session, meta, USER_DELETED_ORGS, uids)


async def remove_user_deleted_org(session: AsyncSession, org_uid: str) -> None:
    """Drop an orgUid from userDeletedOrgs (inside the caller's transaction)."""
    meta, value = await _read_json_for_update(session, USER_DELETED_ORGS)
    uids = _as_uid_list(value)
    if org_uid in uids:
        await _write_json(session, meta, USER_DELETED_ORGS, [uid for uid in uids if uid != org_uid])


# ------------------------------------------------------------------------ pending imports


@dataclass(frozen=True)
class PendingImport:
    """An import waiting for DataLayer to sync the organization's stores."""

    org_uid: str
    is_home: bool
    user_request: bool
    requested_at: str

    def to_json(self) -> dict[str, Any]:
        """The stored shape (camelCase like the other Meta values)."""
        return {
            "isHome": self.is_home,
            "userRequest": self.user_request,
            "requestedAt": self.requested_at,
        }


def _pending_from_json(value: Any) -> dict[str, PendingImport]:
    if not isinstance(value, dict):
        return {}
    found: dict[str, PendingImport] = {}
    for org_uid, entry in value.items():
        if not isinstance(entry, dict):
            continue
        found[str(org_uid)] = PendingImport(
            org_uid=str(org_uid),
            is_home=bool(entry.get("isHome", False)),
            user_request=bool(entry.get("userRequest", True)),
            requested_at=str(entry.get("requestedAt", "")),
        )
    return found


async def pending_imports(db: Database) -> dict[str, PendingImport]:
    """Every import waiting for DataLayer, by orgUid."""
    async with db.session() as session:
        meta = await session.get(Meta, PENDING_IMPORTS)
    if meta is None or not meta.value:
        return {}
    try:
        return _pending_from_json(json.loads(meta.value))
    except ValueError:
        return {}


async def pending_import(session: AsyncSession, org_uid: str) -> PendingImport | None:
    """The waiting import of one organization (locked for the caller's transaction)."""
    _meta, value = await _read_json_for_update(session, PENDING_IMPORTS)
    return _pending_from_json(value).get(org_uid)


async def save_pending_import(
    session: AsyncSession, org_uid: str, *, is_home: bool, user_request: bool
) -> PendingImport:
    """Record (or refresh) a waiting import; an explicit user request wins over discovery."""
    meta, value = await _read_json_for_update(session, PENDING_IMPORTS)
    entries = _pending_from_json(value)
    previous = entries.get(org_uid)
    entry = PendingImport(
        org_uid=org_uid,
        is_home=is_home or (previous.is_home if previous else False),
        user_request=user_request or (previous.user_request if previous else False),
        requested_at=previous.requested_at if previous else utcnow().isoformat(),
    )
    entries[org_uid] = entry
    await _write_json(
        session, meta, PENDING_IMPORTS, {uid: item.to_json() for uid, item in entries.items()}
    )
    return entry


async def drop_pending_import(session: AsyncSession, org_uid: str) -> bool:
    """Forget a waiting import; True when there was one."""
    meta, value = await _read_json_for_update(session, PENDING_IMPORTS)
    entries = _pending_from_json(value)
    if org_uid not in entries:
        return False
    del entries[org_uid]
    await _write_json(
        session, meta, PENDING_IMPORTS, {uid: item.to_json() for uid, item in entries.items()}
    )
    return True
