"""Fan-out of one subscription event to many subscribers: execute once, send to all.

A progress event reaches every local subscriber (thousands per process). GraphQL executes the
subscription's selection set once per subscriber and event, which is most of the cost of a
delivery (bench/subscription_fanout). When the event's type is declared viewer-independent
(`@viewer_independent`: no field depends on who subscribed, i.e. on the context), subscribers
with the same document and variables get the same result: the first one to process an event
executes it, the others reuse that result.

Identity is what makes this cheap and safe: the event hub hands one payload object to every
local subscriber, the subscription maps it once (`LastMapped`), and ParserCache returns one
parsed document per query text, so (event object, operation node, variables) identifies an
execution whose result is equal for all of them.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from graphql import ExecutionResult
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

T = TypeVar("T")
S = TypeVar("S")

_SHARED_ATTRIBUTE = "__cadt_viewer_independent__"
#: Events kept; a few suffice (one event is processed by all subscribers before the next).
_CACHE_SIZE = 64


def viewer_independent(cls: type[T]) -> type[T]:
    """Declare that no field of this type depends on the subscriber (results may be shared)."""
    setattr(cls, _SHARED_ATTRIBUTE, True)
    return cls


class LastMapped(Generic[S, T]):
    """`convert(source)`, computed once for the last source object seen (by identity)."""

    def __init__(self, convert: Callable[[S], T]) -> None:
        self.convert = convert
        self._last: tuple[S, T] | None = None

    def __call__(self, source: S) -> T:
        """The mapped value of `source`."""
        last = self._last
        if last is not None and last[0] is source:
            return last[1]
        mapped = self.convert(source)
        self._last = (source, mapped)
        return mapped


# (schema, operation, event, variables) -> (operation, event, result); the stored objects keep
# the ids of the key from being reused while the entry lives.
_results: OrderedDict[tuple[int, int, int, str], tuple[object, object, ExecutionResult]] = (
    OrderedDict()
)


class _Executed:
    """Stands in for a per-event executor whose result another subscriber already computed."""

    __slots__ = ("result",)

    def __init__(self, result: ExecutionResult) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None) -> ExecutionResult:
        """The shared result."""
        return self.result


class SharedEventExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, sharing results of viewer-independent events."""

    _shared_key: tuple[int, int, int, str] | None = None
    _variables_key: str | None = None

    def _key(self, payload: Any) -> tuple[int, int, int, str]:
        if self._variables_key is None:
            # The subscription's variables never change: encode them once.
            coerced = self.variable_values.coerced
            self._variables_key = (
                json.dumps(coerced, sort_keys=True, default=str) if coerced else ""
            )
        return (id(self.schema), id(self.operation), id(payload), self._variables_key)

    def build_per_event_executor(self, payload: Any) -> Any:
        """The per-event executor, or the result of this event when it was already computed."""
        if not getattr(type(payload), _SHARED_ATTRIBUTE, False):
            return super().build_per_event_executor(payload)
        key = self._key(payload)
        cached = _results.get(key)
        if cached is not None:
            return _Executed(cached[2])
        executor = super().build_per_event_executor(payload)
        assert isinstance(executor, SharedEventExecutionContext)  # a copy of self
        executor._shared_key = key
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        """Execute, and keep the result of a viewer-independent event for the others."""
        result = super().execute_operation(serially)
        key = self._shared_key
        if key is not None and isinstance(result, ExecutionResult):
            # Awaitables (async fields) are not shared; plain data fields never are awaitable.
            _results[key] = (self.operation, self.root_value, result)
            if len(_results) > _CACHE_SIZE:
                _results.popitem(last=False)
        return result
