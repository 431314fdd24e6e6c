"""Query limits: what a GraphQL document may ask for, checked before it is validated or run.

- Tokens (CADT_MAX_QUERY_TOKENS): graphql-core's parser stops counting past the limit, so an
  oversized document costs a fraction of its parse.
- Depth, aliases, repeated fields and cost (CADT_MAX_QUERY_DEPTH, CADT_MAX_ALIASES,
  CADT_MAX_QUERY_COST): one linear walk of the parsed operation (fragments measured once each)
  before graphql-core's validation, whose OverlappingFieldsCanBeMerged rule is quadratic in
  fields sharing a response name: 400 copies of one field cost it seconds, the walk microseconds.
- Cost: an object field costs 1 and leaves cost 0; a list multiplies what it holds, a connection
  by its `first` (the default when omitted, capped at the page size) and any other list by
  ASSUMED_LIST_SIZE; nested lists multiply. Introspection fields cost nothing (introspection is
  off in production). Variables are read, so `first: $n` costs what `$n` asks.
- Introspection (CADT_INTROSPECTION): graphql-core's NoSchemaIntrospectionCustomRule.
- List inputs (CADT_MAX_LIST_INPUT): mutation list arguments longer than the cap get the
  field's ValidationError member instead of running.

Errors are ordinary GraphQL errors (HTTP 200 with `errors`, `extensions.code` naming the limit),
reported through `pre_execution_errors`, so HTTP, SSE and WebSocket clients see the same thing.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_operation_ast,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import FieldExtension, ParserCache, SchemaExtension, ValidationCache
from strawberry.types.base import StrawberryList, StrawberryOptional
from strawberry.types.field import StrawberryField
from strawberry.types.union import StrawberryUnion
from strawberry.utils.str_converters import to_camel_case

from cadt_gateway.settings import Settings
from schema.errors import ErrorCode, ValidationError
from services.views import MAX_PAGE_SIZE

#: Items assumed in a list that has no `first` (mirrors of a store, organizations in sync).
ASSUMED_LIST_SIZE = 10
#: Most fields sharing one response name in one selection set (the quadratic validation case).
MAX_REPEATED_FIELDS = 20


@dataclass(frozen=True)
class QueryLimits:
    """The limits one app enforces (from settings)."""

    max_depth: int
    max_tokens: int
    max_aliases: int
    max_cost: int
    introspection: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> QueryLimits:
        """The limits configured by CADT_MAX_* and CADT_INTROSPECTION."""
        return cls(
            max_depth=settings.max_query_depth,
            max_tokens=settings.max_query_tokens,
            max_aliases=settings.max_aliases,
            max_cost=settings.max_query_cost,
            introspection=settings.introspection_enabled,
        )


@dataclass(frozen=True)
class Measures:
    """What an operation asks for: nesting depth, aliases, the most repeated field, cost."""

    depth: int
    aliases: int
    cost: int
    repeated_field: str | None
    repeats: int


@dataclass
class _Stats:
    depth: int = 0
    aliases: int = 0
    cost: int = 0


class _TooManyAliases(Exception):
    """Raised inside the walk once the alias limit is passed."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


class _Walker:
    """One pass over an operation; fragment results are memoized by (name, page size)."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any],
        depth_cap: int,
        alias_cap: int | None = None,
    ) -> None:
        self.schema = schema
        self.fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        self.variables = variables
        self.variable_defaults = {
            definition.variable.name.value: definition.default_value
            for definition in operation.variable_definitions or ()
        }
        #: Walking stops this deep: the depth is over the limit anyway, and recursion is bounded.
        self.depth_cap = depth_cap
        #: Past this many aliases the walk stops (_TooManyAliases): the answer is known.
        self.alias_cap = alias_cap
        self.alias_count = 0
        self.memo: dict[tuple[str, int | None], _Stats] = {}
        self.names_memo: dict[str, Counter[str]] = {}
        self.visiting: set[str] = set()
        self.repeated_field: str | None = None
        self.repeats = 0

    # ----------------------------------------------------------------- selection sets
    def selection_set(
        self, node: SelectionSetNode, parent: GraphQLNamedType | None, page: int | None, level: int
    ) -> _Stats:
        self._check_repeats(node)
        total = _Stats()
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                stats = self.field(selection, parent, page, level)
            elif isinstance(selection, InlineFragmentNode):
                condition = parent
                if selection.type_condition is not None:
                    condition = self.schema.get_type(selection.type_condition.name.value)
                stats = self.selection_set(selection.selection_set, condition, page, level)
            elif isinstance(selection, FragmentSpreadNode):
                stats = self.spread(selection.name.value, page, level)
            else:  # pragma: no cover - graphql-core has no other selection kinds
                continue
            total.depth = max(total.depth, stats.depth)
            total.aliases += stats.aliases
            total.cost += stats.cost
        return total

    def spread(self, name: str, page: int | None, level: int) -> _Stats:
        fragment = self.fragments.get(name)
        if fragment is None or name in self.visiting:
            return _Stats()  # unknown or cyclic: validation refuses the document
        key = (name, page)
        cached = self.memo.get(key)
        if cached is not None and level + cached.depth <= self.depth_cap:
            self._count_aliases(cached.aliases)
            return cached
        self.visiting.add(name)
        try:
            condition = self.schema.get_type(fragment.type_condition.name.value)
            stats = self.selection_set(fragment.selection_set, condition, page, level)
        finally:
            self.visiting.discard(name)
        if level + stats.depth <= self.depth_cap:  # complete, not cut at the cap: reusable
            self.memo[key] = stats
        return stats

    def field(
        self, node: FieldNode, parent: GraphQLNamedType | None, page: int | None, level: int
    ) -> _Stats:
        stats = _Stats(depth=1, aliases=1 if node.alias is not None else 0)
        self._count_aliases(stats.aliases)
        if node.selection_set is None:
            return stats
        if level + 1 > self.depth_cap:
            stats.depth = 2  # deeper than the cap: stop here
            return stats
        name = node.name.value
        definition = _field_definition(parent, name)
        named = get_named_type(definition.type) if definition is not None else None
        child_page = self._first(node, definition) if definition is not None else None
        child = self.selection_set(node.selection_set, named, child_page, level + 1)
        stats.depth += child.depth
        stats.aliases += child.aliases
        if name.startswith("__") or definition is None:
            return stats  # introspection is free; unknown fields are refused by validation
        if child_page is not None:  # a connection: its lists are sized by `first`
            stats.cost = 1 + child.cost
        elif _is_list(definition.type):
            stats.cost = (page if page is not None else ASSUMED_LIST_SIZE) * (1 + child.cost)
        else:
            stats.cost = 1 + child.cost
        return stats

    # ----------------------------------------------------------------- helpers
    def _count_aliases(self, count: int) -> None:
        self.alias_count += count
        if self.alias_cap is not None and self.alias_count > self.alias_cap:
            raise _TooManyAliases(self.alias_count)

    def _first(self, node: FieldNode, definition: GraphQLField) -> int | None:
        """The page size a field with a `first` argument asks for, capped; None without one."""
        argument = definition.args.get("first")
        if argument is None:
            return None
        value: Any = argument.default_value
        for given in node.arguments or ():
            if given.name.value != "first":
                continue
            literal = given.value
            if isinstance(literal, VariableNode):
                name = literal.name.value
                value = self.variables.get(name)
                if value is None:
                    default = self.variable_defaults.get(name)
                    value = default.value if isinstance(default, IntValueNode) else None
            elif isinstance(literal, IntValueNode):
                value = literal.value
            else:
                value = None
        try:
            size = int(value)
        except (TypeError, ValueError):
            return MAX_PAGE_SIZE
        return max(0, min(size, MAX_PAGE_SIZE))

    def _check_repeats(self, node: SelectionSetNode) -> None:
        names = self._response_names(node)
        if names:
            name, count = names.most_common(1)[0]
            if count > self.repeats:
                self.repeated_field, self.repeats = name, count

    def _response_names(self, node: SelectionSetNode) -> Counter[str]:
        """Response names merged into one selection set (fields, inline fragments, spreads)."""
        names: Counter[str] = Counter()
        spreads: set[str] = set()
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                names[(selection.alias or selection.name).value] += 1
            elif isinstance(selection, InlineFragmentNode):
                names.update(self._response_names(selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                spreads.add(selection.name.value)
        for name in spreads:  # graphql-core merges a fragment spread twice only once
            names.update(self._fragment_names(name))
        return names

    def _fragment_names(self, name: str) -> Counter[str]:
        if name not in self.names_memo:
            fragment = self.fragments.get(name)
            self.names_memo[name] = Counter()  # a cycle sees an empty fragment
            if fragment is not None:
                self.names_memo[name] = self._response_names(fragment.selection_set)
        return self.names_memo[name]


def _field_definition(parent: GraphQLNamedType | None, name: str) -> GraphQLField | None:
    if isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)):
        field: GraphQLField | None = parent.fields.get(name)
        return field
    return None


def _is_list(type_: GraphQLType) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


def measure_operation(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None = None,
    variables: Mapping[str, Any] | None = None,
    *,
    depth_cap: int = 1000,
    alias_cap: int | None = None,
) -> Measures | None:
    """Depth, aliases, repetition and cost of the operation to run; None if there is none.

    The walk stops below `depth_cap` and once `alias_cap` aliases are seen (the measures then
    say only that the cap was passed). The response cache and persisted operations use the
    same numbers (`cost`).
    """
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    root = schema.get_root_type(operation.operation)
    walker = _Walker(schema, document, operation, variables or {}, depth_cap, alias_cap)
    try:
        stats = walker.selection_set(operation.selection_set, root, None, 0)
    except _TooManyAliases as stop:
        return Measures(depth=0, aliases=stop.count, cost=0, repeated_field=None, repeats=0)
    return Measures(
        depth=stats.depth,
        aliases=stats.aliases,
        cost=stats.cost,
        repeated_field=walker.repeated_field,
        repeats=walker.repeats,
    )


def limit_error(measures: Measures, limits: QueryLimits) -> GraphQLError | None:
    """The error for the first limit the operation exceeds, or None."""
    if measures.depth > limits.max_depth:
        return _error(
            f"The operation is nested {measures.depth} fields deep; the limit is "
            f"{limits.max_depth}.",
            "MAX_DEPTH_EXCEEDED",
            limits.max_depth,
        )
    if measures.aliases > limits.max_aliases:
        return _error(
            f"The operation uses {measures.aliases} aliases; the limit is {limits.max_aliases}.",
            "MAX_ALIASES_EXCEEDED",
            limits.max_aliases,
        )
    if measures.repeats > MAX_REPEATED_FIELDS:
        return _error(
            f"The field {measures.repeated_field!r} is selected {measures.repeats} times in one "
            f"selection set; the limit is {MAX_REPEATED_FIELDS}.",
            "MAX_REPEATED_FIELDS_EXCEEDED",
            MAX_REPEATED_FIELDS,
        )
    if measures.cost > limits.max_cost:
        return _error(
            f"The operation's estimated cost is {measures.cost}; the limit is "
            f"{limits.max_cost}. Ask for smaller pages (`first`) or fewer lists.",
            "MAX_COST_EXCEEDED",
            limits.max_cost,
        )
    return None


def _error(message: str, code: str, limit: int) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, "limit": limit})


# ---------------------------------------------------------------------- schema extensions


class SafeParserCache(ParserCache):
    """ParserCache with the token limit, and whose syntax errors reach every transport.

    strawberry's ParserCache raises a syntax error from the hook itself, which its streaming
    path (WebSocket, SSE) does not catch; leaving the document unset lets strawberry parse
    again inside its own error handling (only invalid documents pay twice).
    """

    def __init__(self, maxsize: int | None, *, max_tokens: int) -> None:
        super().__init__(maxsize=maxsize)
        self.max_tokens = max_tokens

    def on_operation(self) -> Iterator[None]:
        """Bound the parser (strawberry's MaxTokensLimiter does the same)."""
        self.execution_context.parse_options["max_tokens"] = self.max_tokens
        yield

    def on_parse(self) -> Iterator[None]:
        """Parse through the shared LRU cache; leave failures to strawberry's parse."""
        context = self.execution_context
        if context.query is not None:
            try:
                context.graphql_document = self.cached_parse_document(
                    context.query, **context.parse_options
                )
            except (GraphQLError, RecursionError):
                context.graphql_document = None
        yield


class LimitedValidationCache(ValidationCache):
    """The limits before validation, then graphql-core's validation through the shared cache."""

    def __init__(self, maxsize: int | None, *, limits: QueryLimits) -> None:
        super().__init__(maxsize=maxsize)
        self.limits = limits

    def on_validate(self) -> Iterator[None]:
        """Refuse an operation over a limit without validating it; else validate (cached)."""
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            error: GraphQLError | None
            try:
                measures = measure_operation(
                    context.schema._schema,
                    document,
                    context.operation_name,
                    context.variables,
                    depth_cap=self.limits.max_depth,
                    alias_cap=self.limits.max_aliases,
                )
            except RecursionError:  # fragments nested hundreds deep
                error = _error(
                    "The document is nested too deeply.",
                    "MAX_DEPTH_EXCEEDED",
                    self.limits.max_depth,
                )
            else:
                error = limit_error(measures, self.limits) if measures is not None else None
            if error is not None:
                context.pre_execution_errors = [error]
                yield
                return
        if not self.limits.introspection:
            context.validation_rules = (
                *context.validation_rules,
                NoSchemaIntrospectionCustomRule,
            )
        yield from super().on_validate()


def limit_extensions(
    limits: QueryLimits, *, cache_size: int = 1000
) -> list[Callable[[], SchemaExtension]]:
    """Factories of the parse and validation extensions (a fresh instance per operation)."""
    return [
        partial(SafeParserCache, cache_size, max_tokens=limits.max_tokens),
        partial(LimitedValidationCache, cache_size, limits=limits),
    ]


# ---------------------------------------------------------------------- list inputs


class ListInputCap(FieldExtension):
    """Refuse list arguments longer than CADT_MAX_LIST_INPUT before the resolver runs."""

    def __init__(self, *, default_limit: int = 100) -> None:
        super().__init__()
        self.default_limit = default_limit
        #: (python name, GraphQL name) of each argument holding a list.
        self.list_arguments: list[tuple[str, str]] = []
        self.returns_validation_error = False

    def apply(self, field: StrawberryField) -> None:
        """Remember which arguments hold lists and whether the result has ValidationError."""
        self.list_arguments = [
            (argument.python_name, argument.graphql_name or to_camel_case(argument.python_name))
            for argument in field.arguments
            if _holds_list(argument.type)
        ]
        result = field.type
        self.returns_validation_error = isinstance(result, StrawberryUnion) and any(
            cast(object, member) is ValidationError for member in result.types
        )

    def _refusal(self, info: Any, kwargs: dict[str, Any]) -> object | None:
        settings = getattr(info.context, "services", None)
        limit = getattr(getattr(settings, "settings", None), "max_list_input", None)
        limit = limit if isinstance(limit, int) else self.default_limit
        for python_name, name in self.list_arguments:
            size = _longest_list(kwargs.get(python_name))
            if size > limit:
                message = f"at most {limit} items per list (got {size} in {name})"
                if self.returns_validation_error:
                    return ValidationError(message=message, code=ErrorCode.VALIDATION, field=name)
                raise GraphQLError(message, extensions={"code": "VALIDATION", "field": name})
        return None

    def resolve(self, next_: Callable[..., Any], source: Any, info: Any, **kwargs: Any) -> Any:
        """Synchronous resolvers."""
        refusal = self._refusal(info, kwargs)
        return refusal if refusal is not None else next_(source, info, **kwargs)

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Any, **kwargs: Any
    ) -> Any:
        """Asynchronous resolvers (every mutation of the gateway)."""
        refusal = self._refusal(info, kwargs)
        return refusal if refusal is not None else await next_(source, info, **kwargs)


def _holds_list(type_: Any) -> bool:
    while isinstance(type_, StrawberryOptional):
        type_ = type_.of_type
    if isinstance(type_, StrawberryList):
        return True
    definition = getattr(type_, "__strawberry_definition__", None)
    if definition is not None and definition.is_input:
        return any(_holds_list(field.type) for field in definition.fields)
    return False


def _longest_list(value: Any) -> int:
    """The longest list in an argument value (lists, and lists inside input objects)."""
    if isinstance(value, list):
        return max([len(value), *(_longest_list(item) for item in value)])
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return max(
            (_longest_list(getattr(value, field.name)) for field in dataclasses.fields(value)),
            default=0,
        )
    return 0


def install_list_input_caps(*root_types: type) -> None:
    """Add ListInputCap to every field with a list argument (idempotent; before building)."""
    for root in root_types:
        definition = getattr(root, "__strawberry_definition__", None)
        if definition is None:
            continue
        for field in definition.fields:
            if any(isinstance(extension, ListInputCap) for extension in field.extensions):
                continue
            if any(_holds_list(argument.type) for argument in field.arguments):
                field.extensions.append(ListInputCap())
