"""What create, recovery, upgrade and reclaim share: names, validation, rows, the creation record.

Lock labels are CADT's holder names (cadt-domain 5); job names are the arq function names the
mutations enqueue. Writes made under the org-operation lock go through a `Fence`: the Meta
record via services.fencing, organization rows here (same rule: the token must still hold the
lock and the row must not carry a newer fence).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from typing import Any
from urllib.parse import urlparse

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services import mirrors, progress
from services.container import Services
from services.creation_state import CreationRecord, meta_key
from services.db.models import Meta, Organization, utcnow
from services.errors import InvalidInput
from services.fencing import Fence, delete_meta, read_meta, write_meta
from services.oplock import RECOVERY_LABEL_SUFFIX

logger = logging.getLogger(__name__)

#: orgUid of the placeholder row that marks a running creation (cadt-domain 1.2).
PENDING_ORG_UID = "PENDING"

#: arq job names (jobs/home_organization.py registers them under these names).
CREATE_JOB = "create_home_organization"
UPGRADE_JOB = "upgrade_home_organization"
RECOVERY_JOB = "clean_up_failed_org"

UPGRADE_LABEL = "V1 to V2 upgrade"

MAX_NAME_LENGTH = 200
MAX_ICON_BYTES = 2 * 1024 * 1024

_STORE_ID_IN_TEXT = re.compile(r"(?<![0-9a-fA-F])(?:0x)?([0-9a-fA-F]{64})(?![0-9a-fA-F])")


def version_tag(version: str) -> str:
    """'V1' or 'V2' as CADT writes it in labels and messages."""
    return version.upper()


def creation_label(version: str) -> str:
    """Lock holder name of a creation ("V2 organization creation")."""
    return f"{version_tag(version)} organization creation"


def recovery_label(version: str) -> str:
    """Lock holder name of a recovery ("V2 organization recovery")."""
    return f"{version_tag(version)}{RECOVERY_LABEL_SUFFIX}"


def reclaim_label(version: str) -> str:
    """Lock holder name of a reclaim ("V2 home organization reclaim")."""
    return f"{version_tag(version)} home organization reclaim"


# ------------------------------------------------------------------------------ validation


def validate_name(name: str | None) -> str:
    """The trimmed organization name, or InvalidInput(field='name')."""
    trimmed = (name or "").strip()
    if not trimmed:
        raise InvalidInput("Organization name is required", field="name")
    if len(trimmed) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"Organization name must be at most {MAX_NAME_LENGTH} characters", field="name"
        )
    return trimmed


def validate_icon(icon: str | None) -> str | None:
    """The icon (an http(s) URL or a data URI of at most 2 MB), None when empty."""
    value = (icon or "").strip()
    if not value:
        return None
    if value.lower().startswith("data:"):
        header, separator, payload = value.partition(",")
        if not separator:
            raise InvalidInput("icon data URI has no ',' before its data", field="icon")
        if header.lower().endswith(";base64"):
            try:
                size = len(base64.b64decode(payload, validate=True))
            except (binascii.Error, ValueError):
                raise InvalidInput("icon data URI is not valid base64", field="icon") from None
        else:
            size = len(payload.encode("utf-8"))
    else:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidInput("icon must be an http(s) URL or a data URI", field="icon")
        size = len(value.encode("utf-8"))
    if size > MAX_ICON_BYTES:
        raise InvalidInput("icon must be at most 2 MB", field="icon")
    return value


# ------------------------------------------------------------------------------ rows


async def find_row(session: AsyncSession, org_uid: str, version: str) -> Organization | None:
    """The row of `org_uid` in one data model, or None."""
    result = await session.execute(
        sa.select(Organization)
        .where(col(Organization.org_uid) == org_uid)
        .where(col(Organization.data_model_version) == version)
    )
    return result.scalars().first()


async def find_home_row(session: AsyncSession, version: str) -> Organization | None:
    """The home row of one data model (never the PENDING placeholder), or None."""
    result = await session.execute(
        sa.select(Organization)
        .where(col(Organization.is_home).is_(True))
        .where(col(Organization.data_model_version) == version)
        .where(col(Organization.org_uid) != PENDING_ORG_UID)
    )
    return result.scalars().first()


async def home_row(services: Services, version: str) -> Organization | None:
    """The home row of one data model, read in its own session."""
    async with services.db.session() as session:
        return await find_home_row(session, version)


async def pending_row_exists(services: Services, version: str) -> bool:
    """True while a creation's PENDING placeholder row exists."""
    async with services.db.session() as session:
        return await find_row(session, PENDING_ORG_UID, version) is not None


def _fence_allows(number: int) -> Any:
    table = Organization.__table__  # type: ignore[attr-defined]
    return sa.or_(table.c.lock_fence.is_(None), table.c.lock_fence <= number)


async def ensure_pending_row(services: Services, version: str, fence: Fence) -> None:
    """Insert the PENDING placeholder (is_home, unsubscribed, no name) unless it exists."""
    async with services.db.transaction() as session:
        await fence.assert_current()
        if await find_row(session, PENDING_ORG_UID, version) is not None:
            return
        session.add(
            Organization(
                org_uid=PENDING_ORG_UID,
                data_model_version=version,
                name="",
                icon="",
                is_home=True,
                subscribed=False,
                lock_fence=fence.number,
            )
        )


async def delete_rows(session: AsyncSession, org_uid: str, version: str, fence: Fence) -> int:
    """Delete the row of `org_uid` in one data model unless a newer holder wrote it."""
    table = Organization.__table__  # type: ignore[attr-defined]
    await fence.assert_current()
    result = await session.execute(
        sa.delete(table)
        .where(table.c.org_uid == org_uid)
        .where(table.c.data_model_version == version)
        .where(_fence_allows(fence.number))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def delete_pending_row(services: Services, version: str, fence: Fence) -> None:
    """Delete the PENDING placeholder (fenced)."""
    async with services.db.transaction() as session:
        await delete_rows(session, PENDING_ORG_UID, version, fence)


async def delete_pending_row_unfenced(services: Services, version: str) -> None:
    """Delete the PENDING placeholder when no lock is held (recovery of a leftover)."""
    table = Organization.__table__  # type: ignore[attr-defined]
    async with services.db.transaction() as session:
        await session.execute(
            sa.delete(table)
            .where(table.c.org_uid == PENDING_ORG_UID)
            .where(table.c.data_model_version == version)
        )


async def known_store_ids(services: Services) -> set[str]:
    """Every store id this node has recorded anywhere (organization rows and Meta values)."""
    known: set[str] = set()
    async with services.db.session() as session:
        rows = await session.execute(
            sa.select(
                col(Organization.org_uid),
                col(Organization.registry_id),
                col(Organization.data_model_version_store_id),
                col(Organization.file_store_id),
            )
        )
        for row in rows:
            known.update(value.lower() for value in row if value)
        values = await session.execute(sa.select(col(Meta.value)))
        for (value,) in values:
            known.update(match.lower() for match in _STORE_ID_IN_TEXT.findall(value or ""))
    return known


# ------------------------------------------------------------------------------ the record


async def load_record(services: Services, version: str) -> CreationRecord | None:
    """The persisted creation record of a data model, or None (also for unreadable JSON)."""
    async with services.db.session() as session:
        raw = await read_meta(session, meta_key(version))
    if raw is None:
        return None
    try:
        return CreationRecord.from_json(raw)
    except (ValueError, KeyError, TypeError) as error:
        logger.warning("ignoring an unreadable creation record (%s): %s", meta_key(version), error)
        return None


async def save_record(services: Services, record: CreationRecord, fence: Fence) -> None:
    """Persist the record under the lock (fenced) and publish the creation status."""
    record.updated_at = utcnow()
    async with services.db.transaction() as session:
        await write_meta(session, meta_key(record.data_version), record.to_json(), fence=fence)
    await publish_creation_status(services)


async def clear_record(services: Services, version: str, fence: Fence | None) -> None:
    """Delete the record (COMPLETE is never persisted) and publish the creation status."""
    async with services.db.transaction() as session:
        await delete_meta(session, meta_key(version), fence=fence)
    await publish_creation_status(services)


# ------------------------------------------------------------------------------ progress, mirrors


async def publish_creation_status(services: Services) -> None:
    """Publish the creation status to subscribers (services.progress); never raises."""
    try:
        await progress.publish_creation_status(services)
    except Exception:  # progress is best effort; the record is already saved
        logger.warning("could not publish the creation status", exc_info=True)


async def run_mirror_check_once(services: Services) -> None:
    """Announce mirrors of the new stores once (services.mirrors); failures only log."""
    try:
        await mirrors.run_mirror_check(services)
    except Exception:
        logger.warning("mirror check after the home-organization operation failed", exc_info=True)


def describe_failure(error: BaseException) -> str:
    """One line for creationStatus.error and the FAILED lock event."""
    message = getattr(error, "message", None)
    if isinstance(message, str) and message:
        return message
    return f"{type(error).__name__}: {error}"


def dumps(value: Any) -> str:
    """Compact JSON for Meta values."""
    return json.dumps(value, separators=(",", ":"))
