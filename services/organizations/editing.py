"""Edit the home organization's profile and metadata (cadt-domain 3.10, V2 behaviour).

The shared `services.upstream.write_store_data` reads the org store, turns each changed key into
delete + insert (a bare insert of an existing key fails on Chia) and pushes the changelist with
the pending-root handling and push-when-available of cadt-domain 4.2/6.3. The database row is
updated right after: `name`/`icon` columns, and `meta_<key>` entries merged into the metadata
JSON (keys keep the prefix there). The org-meta sync later confirms them from DataLayer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from services.chia import ChiaRpcError
from services.container import Services
from services.db.models import Organization, utcnow
from services.errors import InvalidInput, PreconditionFailed
from services.organizations import records
from services.organizations.outcomes import OrganizationOutcome
from services.upstream import upstream_failure, write_store_data

logger = logging.getLogger(__name__)

#: Longest list setOrganizationMetadata accepts (a loop-bound guard like CADT's
#: REQUEST_CONTENT_LIMITS; one call becomes one changelist).
MAX_METADATA_ENTRIES = 100
MAX_METADATA_KEY_LENGTH = 100
MAX_METADATA_VALUE_LENGTH = 10_000
MAX_NAME_LENGTH = 200
#: CADT's icon upload limit (2 MB); an icon here is a URL or a data URI.
MAX_ICON_LENGTH = 2 * 1024 * 1024
METADATA_PREFIX = "meta_"

UPDATING_MESSAGE = "Home org currently being updated, will be completed soon."
UNCHANGED_MESSAGE = "The home organization already has these values; nothing to change."


def profile_changes(*, name: str | None, icon: str | None) -> dict[str, str]:
    """The org-store keys editHomeOrganization writes; InvalidInput for a bad value."""
    changes: dict[str, str] = {}
    if name is not None:
        name = name.strip()
        if not name:
            raise InvalidInput("Organization name is required", field="name")
        if len(name) > MAX_NAME_LENGTH:
            raise InvalidInput(f"name is longer than {MAX_NAME_LENGTH} characters", field="name")
        changes["name"] = name
    if icon is not None:
        if len(icon) > MAX_ICON_LENGTH:
            raise InvalidInput("icon is larger than 2 MB", field="icon")
        changes["icon"] = icon
    if not changes:
        raise InvalidInput("give a name or an icon to change", field="input")
    return changes


def metadata_changes(entries: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The `meta_<key>` org-store keys setOrganizationMetadata writes; InvalidInput when bad."""
    if not entries:
        raise InvalidInput("entries must not be empty", field="entries")
    if len(entries) > MAX_METADATA_ENTRIES:
        raise InvalidInput(
            f"at most {MAX_METADATA_ENTRIES} metadata entries per call (got {len(entries)})",
            field="entries",
        )
    changes: dict[str, str] = {}
    for index, (key, value) in enumerate(entries):
        key = key.strip()
        if not key:
            raise InvalidInput("metadata keys must not be empty", field=f"entries.{index}.key")
        if len(key) > MAX_METADATA_KEY_LENGTH:
            raise InvalidInput(
                f"metadata key is longer than {MAX_METADATA_KEY_LENGTH} characters",
                field=f"entries.{index}.key",
            )
        if len(value) > MAX_METADATA_VALUE_LENGTH:
            raise InvalidInput(
                f"metadata value is longer than {MAX_METADATA_VALUE_LENGTH} characters",
                field=f"entries.{index}.value",
            )
        store_key = METADATA_PREFIX + key
        if store_key in changes:
            raise InvalidInput(f"metadata key {key!r} is given twice", field=f"entries.{index}.key")
        changes[store_key] = value
    return changes


async def edit_home_organization(
    services: Services, changes: dict[str, str]
) -> OrganizationOutcome:
    """Write `changes` (org-store key -> text) to the home organization's store and row.

    Returns once DataLayer accepted the changelist (not once it confirmed). A write of the
    previous edit that is still pending is waited for first (push-when-available), so edits in
    a row all land; the changelist is computed from the store as it is when pushed.
    """
    version = services.settings.data_model_version.value
    async with services.db.session() as session:
        home = await records.find_home_row(session, version)
    if home is None:
        raise PreconditionFailed("There is no home organization on this node")
    try:
        pushed = await write_store_data(
            services, home.org_uid, changes, wait_for_confirmation=False
        )
    except ChiaRpcError as error:
        raise upstream_failure(error, context=f"Could not update store {home.org_uid}") from error
    updated = await _update_row(services, home.org_uid, changes)
    message = UPDATING_MESSAGE if pushed else UNCHANGED_MESSAGE
    return OrganizationOutcome.of_row(message, updated or home)


async def _update_row(
    services: Services, org_uid: str, changes: dict[str, str]
) -> Organization | None:
    version = services.settings.data_model_version.value

    async def write(session: AsyncSession) -> Organization | None:
        row = await records.find_row(session, org_uid, version)
        if row is None:
            return None
        if "name" in changes:
            row.name = changes["name"]
        if "icon" in changes:
            row.icon = changes["icon"] or None
        metadata = {k: v for k, v in changes.items() if k.startswith(METADATA_PREFIX)}
        if metadata:
            try:
                merged = json.loads(row.metadata_json or "{}")
            except ValueError:
                merged = {}
            if not isinstance(merged, dict):
                merged = {}
            merged.update(metadata)
            row.metadata_json = json.dumps(merged, separators=(",", ":"))
        row.updated_at = utcnow()
        session.add(row)
        await session.flush()
        return row

    return await records.in_transaction(services.db, write)
