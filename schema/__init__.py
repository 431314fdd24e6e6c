"""The Strawberry schema of cadt-gateway (types only; resolvers do the work)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig

from schema.fanout import SharedEventExecutionContext
from schema.root import Mutation, Query, Subscription
from schema.scalars import SCALAR_MAP


def build_schema(
    extensions: Sequence[type[SchemaExtension] | Callable[[], SchemaExtension]] = (),
    *,
    schema_class: type[strawberry.Schema] = strawberry.Schema,
) -> strawberry.Schema:
    """The schema with the given extension classes or factories (the app adds caches).

    `schema_class` lets the app choose how errors are processed (cadt_gateway.errors).
    """
    return schema_class(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=list(extensions),
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        # One execution per progress event, shared by its subscribers (schema/fanout.py).
        execution_context_class=SharedEventExecutionContext,
    )


def print_schema() -> str:
    """The SDL that is committed as schema.graphql."""
    return build_schema().as_str() + "\n"
