"""The Strawberry schema of cadt-gateway (types only; resolvers do the work)."""

from __future__ import annotations

from collections.abc import Sequence

import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig

from schema.root import Mutation, Query
from schema.scalars import SCALAR_MAP


def build_schema(
    extensions: Sequence[type[SchemaExtension] | SchemaExtension] = (),
) -> strawberry.Schema:
    """The schema with the given extensions (the app adds caches and limits)."""
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        extensions=list(extensions),  # type: ignore[arg-type]
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
    )


def print_schema() -> str:
    """The SDL that is committed as schema.graphql."""
    return build_schema().as_str() + "\n"
