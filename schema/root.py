"""The root Query, Mutation and Subscription types, merged from each domain's part."""

from __future__ import annotations

from strawberry.tools import merge_types

from schema.health import HealthQuery
from schema.organization_operations import OrganizationMutation
from schema.organization_queries import OrganizationQuery

Query = merge_types("Query", (HealthQuery, OrganizationQuery))

Mutation = merge_types("Mutation", (OrganizationMutation,))
