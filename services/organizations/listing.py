"""Pages of organizations for the `organizations` query (Relay cursor connection).

Order is the row id (insertion order), which never changes for a row, so a cursor stays valid
while rows are added or deleted. Cursors are opaque: base64url of `organization:<row id>`.
`first` above MAX_PAGE_SIZE is clamped to it (like strawberry.relay's max results); a
negative `first` is rejected. Only rows of the node's data-model version are listed, never the
placeholder row of a creation in progress.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from services.db.engine import Database
from services.db.models import Organization
from services.errors import InvalidInput
from services.organizations.records import PENDING_ORG_UID, find_home_row
from services.views import OrganizationView

#: Largest page; larger `first` values are clamped to it.
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50
_CURSOR_PREFIX = "organization:"


@dataclass(frozen=True)
class OrganizationCriteria:
    """Filter of the organizations query; unset conditions do not filter."""

    subscribed: bool | None = None
    synced: bool | None = None
    is_home: bool | None = None
    search: str | None = None

    @classmethod
    def of(cls, values: dict[str, Any] | None) -> OrganizationCriteria:
        """Build from the GraphQL filter's set conditions."""
        values = values or {}
        return cls(
            subscribed=values.get("subscribed"),
            synced=values.get("synced"),
            is_home=values.get("is_home"),
            search=values.get("search"),
        )


@dataclass(frozen=True)
class OrganizationEdgeView:
    """One organization of a page and its cursor."""

    cursor: str
    organization: OrganizationView


@dataclass(frozen=True)
class OrganizationPage:
    """A page of organizations."""

    edges: list[OrganizationEdgeView]
    has_next_page: bool
    end_cursor: str | None
    total_count: int


def encode_cursor(row_id: int) -> str:
    """The opaque cursor of a row."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    """The row id of a cursor; InvalidInput(field='after') when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        text = ""
    number = text.removeprefix(_CURSOR_PREFIX)
    if not text.startswith(_CURSOR_PREFIX) or not number.isdigit():
        raise InvalidInput("after is not a cursor of this connection", field="after")
    return int(number)


def page_size(first: int | None) -> int:
    """The effective page size: the default when unset, clamped to MAX_PAGE_SIZE."""
    if first is None:
        return DEFAULT_PAGE_SIZE
    if first < 0:
        raise InvalidInput("first must not be negative", field="first")
    return min(first, MAX_PAGE_SIZE)


def _conditions(data_model_version: str, criteria: OrganizationCriteria) -> list[Any]:
    conditions: list[Any] = [
        col(Organization.data_model_version) == data_model_version,
        col(Organization.org_uid) != PENDING_ORG_UID,
    ]
    if criteria.subscribed is not None:
        conditions.append(col(Organization.subscribed).is_(criteria.subscribed))
    if criteria.synced is not None:
        conditions.append(col(Organization.synced).is_(criteria.synced))
    if criteria.is_home is not None:
        conditions.append(col(Organization.is_home).is_(criteria.is_home))
    term = (criteria.search or "").strip().lower()
    if term:
        conditions.append(
            sa.or_(
                sa.func.lower(col(Organization.name)).contains(term, autoescape=True),
                sa.func.lower(col(Organization.org_uid)).contains(term, autoescape=True),
            )
        )
    return conditions


async def list_organizations(
    db: Database,
    *,
    data_model_version: str,
    criteria: OrganizationCriteria | None = None,
    first: int | None = DEFAULT_PAGE_SIZE,
    after: str | None = None,
) -> OrganizationPage:
    """One page of organizations matching `criteria`, after the `after` cursor (two queries)."""
    size = page_size(first)
    after_id = decode_cursor(after) if after else None
    conditions = _conditions(data_model_version, criteria or OrganizationCriteria())
    page_conditions = list(conditions)
    if after_id is not None:
        page_conditions.append(col(Organization.id) > after_id)
    async with db.session() as session:
        total = await session.scalar(
            sa.select(sa.func.count()).select_from(Organization).where(*conditions)
        )
        rows = list(
            (
                await session.execute(
                    sa.select(Organization)
                    .where(*page_conditions)
                    .order_by(col(Organization.id))
                    .limit(size + 1)
                )
            ).scalars()
        )
    has_next = len(rows) > size
    edges = [
        OrganizationEdgeView(
            cursor=encode_cursor(row.id or 0), organization=OrganizationView.from_row(row)
        )
        for row in rows[:size]
    ]
    return OrganizationPage(
        edges=edges,
        has_next_page=has_next,
        end_cursor=edges[-1].cursor if edges else None,
        total_count=int(total or 0),
    )


async def home_organization(db: Database, *, data_model_version: str) -> OrganizationView | None:
    """The home organization of the node's data-model version, or None."""
    async with db.session() as session:
        row = await find_home_row(session, data_model_version)
    return None if row is None else OrganizationView.from_row(row)
