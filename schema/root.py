"""The root Query, Mutation and Subscription types, merged from each domain's part."""

from __future__ import annotations

from strawberry.tools import merge_types

from schema.health import HealthQuery

Query = merge_types("Query", (HealthQuery,))
