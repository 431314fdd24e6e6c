"""Organization queries: a Relay page of organizations, one organization, the home one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import strawberry
from strawberry.types.nodes import SelectedField, Selection

import resolvers.loaders
import resolvers.organizations
from resolvers.context import Info
from schema.organizations import (
    Organization,
    OrganizationConnection,
    OrganizationEdge,
    OrganizationFilter,
    PageInfo,
)
from services.organizations import MAX_PAGE_SIZE


@strawberry.type
class OrganizationQuery:
    @strawberry.field(
        description=(
            "Organizations of this node's data model in a stable order (oldest first), "
            f"as a Relay connection. `first` above {MAX_PAGE_SIZE} is clamped to "
            f"{MAX_PAGE_SIZE}; a negative `first` or a foreign `after` cursor is a VALIDATION "
            "error."
        )
    )
    async def organizations(
        self,
        info: Info,
        filter_: Annotated[
            OrganizationFilter | None,
            strawberry.argument(
                name="filter", description="Conditions the organizations must all meet."
            ),
        ] = None,
        first: Annotated[
            int | None,
            strawberry.argument(description=f"Page size (at most {MAX_PAGE_SIZE})."),
        ] = 50,
        after: Annotated[
            str | None,
            strawberry.argument(description="Return the items after this cursor (endCursor)."),
        ] = None,
    ) -> OrganizationConnection:
        page = await resolvers.organizations.organizations_page(
            info, filter_.as_dict() if filter_ else None, first, after
        )
        # The page's sync state and mirrors are loaded here, one query each, and handed to
        # the nodes as plain values: no resolver awaits per row.
        views = [edge.organization for edge in page.edges]
        wanted = selected_node_fields(info)
        syncs, mirrors = await resolvers.loaders.page_relations(
            info, views, sync="sync" in wanted, mirrors="mirrors" in wanted
        )
        return OrganizationConnection(
            edges=[
                OrganizationEdge(
                    cursor=edge.cursor,
                    node=Organization.from_domain(
                        edge.organization,
                        sync=None if syncs is None else syncs[index],
                        mirrors=None if mirrors is None else mirrors[index],
                    ),
                )
                for index, edge in enumerate(page.edges)
            ],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
            total_count=page.total_count,
        )

    @strawberry.field(
        description=(
            "One organization of this node's data model; null when unknown. A malformed "
            "orgUid is a VALIDATION error."
        )
    )
    async def organization(
        self,
        info: Info,
        org_uid: Annotated[
            strawberry.ID,
            strawberry.argument(description="The organization's orgUid (64 hex, 0x optional)."),
        ],
    ) -> Organization | None:
        found = await resolvers.organizations.organization(info, str(org_uid))
        return None if found is None else Organization.from_domain(found)

    @strawberry.field(description="This node's own organization; null when there is none.")
    async def home_organization(self, info: Info) -> Organization | None:
        found = await resolvers.organizations.home_organization(info)
        return None if found is None else Organization.from_domain(found)


def selected_node_fields(info: Info) -> set[str]:
    """Fields selected on `edges { node { ... } }` of this connection (fragments included)."""
    found: set[str] = set()

    def walk(selections: Sequence[Selection], path: tuple[str, ...]) -> None:
        for selection in selections:
            if isinstance(selection, SelectedField):
                if not path:
                    found.add(selection.name)
                elif selection.name == path[0]:
                    walk(selection.selections, path[1:])
            else:  # a fragment spread or an inline fragment: same level
                walk(selection.selections, path)

    for field in info.selected_fields:
        walk(field.selections, ("edges", "node"))
    return found
