"""The response cache: whole JSON answers of database-backed queries, dropped by any write.

What is cached (opt-in): a query whose every selected field is in `CACHEABLE_FIELDS`, the
fields whose values come only from the database (organizations, their sync state and mirrors,
the audit log, registry records). Anything else is never cached: mutations, subscriptions,
and fields answered from Redis, the wallet, DataLayer or the clock (health, creationStatus,
operationStatus, syncStatus, Organization.balance and xchAddress, Query.mirrors, governance).
A new field is not cached until it is added to the list. Only answers without `errors` are
stored.

Keys: operation id (sha256 of the document), operation name, the variables (canonical JSON) and
the auth scope (a hash of the API key the request carried, or anonymous).

Invalidation: the data version. Every committed database transaction that wrote (an
INSERT/UPDATE/DELETE went through the engine) increments a Redis counter and publishes the new
value on a pub/sub channel; each process keeps a local copy, refreshed through that channel, and
an entry is served only while the version it was built under is current. Writes of this process
also invalidate synchronously, at commit, so a read that follows a write in the same process
never sees the old answer; a read on another replica sees it once the published version arrives
(the layer in front of the view waits for the increment before it answers a request that
wrote). While the version is unknown (starting, Redis unreachable) nothing is cached. Entries
also expire after CADT_RESPONSE_CACHE_TTL_SECONDS, a bound for writes made by other tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graphql import (
    BREAK,
    SKIP,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_operation_ast,
    parse,
    visit,
)
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import event

from services.db.engine import Database
from services.events import RECONNECT_DELAY_SECONDS, wire_channel
from services.redis_keys import DATA_VERSION_KEY

logger = logging.getLogger(__name__)

#: The pub/sub channel carrying each new data version (outside the event hub's pattern).
DATA_VERSION_CHANNEL = "cadt:data-version"

#: Fields (schema coordinates) whose values come only from the database. A query selecting
#: only these (and __typename) may be cached; keep the list to fields that read nothing else.
CACHEABLE_FIELDS = frozenset(
    {
        "Query.organizations",
        "Query.organization",
        "Query.homeOrganization",
        "Query.auditLog",
        "Query.registryRecords",
        "OrganizationConnection.edges",
        "OrganizationConnection.pageInfo",
        "OrganizationConnection.totalCount",
        "OrganizationEdge.cursor",
        "OrganizationEdge.node",
        "PageInfo.hasNextPage",
        "PageInfo.endCursor",
        "Organization.orgUid",
        "Organization.name",
        "Organization.icon",
        "Organization.isHome",
        "Organization.subscribed",
        "Organization.dataModelVersion",
        "Organization.orgHash",
        "Organization.registryStoreId",
        "Organization.registryHash",
        "Organization.dataModelVersionStoreId",
        "Organization.fileStoreId",
        "Organization.metadata",
        "Organization.sync",
        "Organization.mirrors",
        "OrganizationSync.orgUid",
        "OrganizationSync.synced",
        "OrganizationSync.syncRemaining",
        "OrganizationSync.lastProcessedGeneration",
        "OrganizationSync.rootHistoryLength",
        "OrganizationSync.datalayerGeneration",
        "OrganizationSync.datalayerTargetGeneration",
        "OrganizationSync.backoff",
        "OrganizationSync.lastSyncedAt",
        "OrganizationSync.writesBlocked",
        "SyncBackoff.since",
        "SyncBackoff.delaySeconds",
        "SyncBackoff.nextRetryAt",
        "SyncBackoff.reason",
        "Mirror.coinId",
        "Mirror.storeId",
        "Mirror.urls",
        "Mirror.amount",
        "Mirror.ours",
        "AuditConnection.edges",
        "AuditConnection.pageInfo",
        "AuditConnection.totalCount",
        "AuditEdge.cursor",
        "AuditEdge.node",
        "AuditEntry.orgUid",
        "AuditEntry.registryId",
        "AuditEntry.generation",
        "AuditEntry.rootHash",
        "AuditEntry.type",
        "AuditEntry.table",
        "AuditEntry.change",
        "AuditEntry.author",
        "AuditEntry.comment",
        "AuditEntry.onchainConfirmedAt",
        "RegistryRecordConnection.edges",
        "RegistryRecordConnection.pageInfo",
        "RegistryRecordConnection.totalCount",
        "RegistryRecordEdge.cursor",
        "RegistryRecordEdge.node",
        "RegistryRecord.orgUid",
        "RegistryRecord.table",
        "RegistryRecord.key",
        "RegistryRecord.record",
        "RegistryRecord.generation",
    }
)

#: Lookups of cacheable queries by result (answers from the cache skip the operation metrics).
LOOKUPS = Counter(
    "cadt_response_cache_lookups", "Response cache lookups of cacheable queries.", ["result"]
)
_HITS, _MISSES = LOOKUPS.labels("hit"), LOOKUPS.labels("miss")

#: Statements that never write; anything else counts as a write (a superset is safe).
_READ_ONLY_PREFIXES = ("SELECT", "PRAGMA", "SHOW", "EXPLAIN", "SAVEPOINT", "RELEASE")
_WROTE = "cadt_wrote"
#: How long a request that wrote waits for the version increment before it answers anyway.
FLUSH_TIMEOUT_SECONDS = 2.0
#: How long a starting process waits for the current version (then it caches nothing yet).
START_TIMEOUT_SECONDS = 5.0
#: A cache generation: entries built under one are valid while it is current.
Version = int


class DataVersion:
    """What this process knows of the data version, as a cache generation.

    `highest` is the highest Redis counter value learned (the increments of every process,
    through pub/sub, and this process's own). The generation moves whenever cached answers may
    be stale: at each local commit that wrote (synchronously), and when a counter value above
    `highest` is learned, unless it is this process's own increment right after `highest` (the
    only write in between is ours, and the generation already moved at its commit). When a
    value is learned, every write numbered up to it has committed, so answers built afterwards
    include them; older messages that arrive late are ignored.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._highest: int | None = None
        self._generation = 0
        self._unpublished = 0
        self._publisher: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._moved = asyncio.Event()
        self._known = asyncio.Event()
        #: Called with no argument whenever the generation moves (the cache drops its entries).
        self.on_change: Callable[[], None] | None = None

    @property
    def current(self) -> Version | None:
        """The generation now, or None while the version is unknown (nothing may be cached)."""
        return None if self._highest is None else self._generation

    @property
    def highest(self) -> int | None:
        """The highest data version (Redis counter) learned, None while unknown."""
        return self._highest

    async def start(self) -> None:
        """Follow the published versions; returns once the version is known (or after
        START_TIMEOUT_SECONDS: Redis may be away, the process starts and caches nothing)."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="cadt-data-version")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._known.wait(), START_TIMEOUT_SECONDS)

    async def stop(self) -> None:
        """Stop following, after the pending increment went out."""
        await self.flush()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def wait_until(self, minimum: int) -> None:
        """Wait until the data version learned here has reached `minimum`."""
        while self._highest is None or self._highest < minimum:
            self._moved.clear()
            await self._moved.wait()

    def wrote(self) -> None:
        """A transaction of this process that wrote has committed (engine event, sync)."""
        self._invalidate()
        self._unpublished += 1
        if self._publisher is None or self._publisher.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # a synchronous engine outside any loop: nothing to tell
                return
            self._publisher = loop.create_task(self._publish(), name="cadt-data-version-bump")

    @property
    def pending(self) -> bool:
        """An increment of this process has not reached Redis yet."""
        return self._publisher is not None and not self._publisher.done()

    async def flush(self) -> None:
        """Wait (bounded) until this process's writes are counted in Redis and published."""
        publisher = self._publisher
        if publisher is not None and not publisher.done():
            await asyncio.wait({publisher}, timeout=FLUSH_TIMEOUT_SECONDS)

    async def _publish(self) -> None:
        while self._unpublished:
            self._unpublished = 0
            try:
                version = int(await self._redis.incr(DATA_VERSION_KEY))
                await self._redis.publish(
                    wire_channel(self._redis, DATA_VERSION_CHANNEL), str(version)
                )
            except (RedisError, OSError) as error:
                logger.warning("could not publish a data version (%s)", type(error).__name__)
                self._forget()
                return
            highest = self._highest
            if highest is None:
                continue  # unknown: the listener's next resync sets it
            if version <= highest:  # our own increment is not above: the counter was reset
                self._highest = version
                self._invalidate()
            elif version == highest + 1:  # only our write in between: already invalidated
                self._highest = version
                self._moved.set()
            else:
                self._learn(version)

    async def _listen(self) -> None:
        # Its own pub/sub connection: the event hub's subscribers are clients (and counted).
        channel = wire_channel(self._redis, DATA_VERSION_CHANNEL)
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(channel)
                await self._resync()  # after subscribing: no increment falls in between
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._learn(int(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # keep following; meanwhile nothing is cached
                logger.warning("data version listener failed (%s)", type(error).__name__)
                self._forget()
                await asyncio.sleep(RECONNECT_DELAY_SECONDS)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _resync(self) -> None:
        # Whatever was missed while not listening: start over from the counter.
        value = await self._redis.get(DATA_VERSION_KEY)
        self._highest = int(value or 0)
        self._invalidate()
        self._known.set()

    def _learn(self, version: int) -> None:
        if self._highest is not None and version > self._highest:
            self._highest = version
            self._invalidate()

    def _forget(self) -> None:
        self._highest = None
        self._invalidate()

    def _invalidate(self) -> None:
        self._generation += 1
        self._moved.set()
        if self.on_change is not None:
            self.on_change()


def track_writes(database: Database, data_version: DataVersion) -> Callable[[], None]:
    """Count every committed transaction of `database` that wrote; returns the remover."""
    engine = database.engine.sync_engine

    def before_cursor_execute(
        connection: Any,
        _cursor: Any,
        statement: str,
        _parameters: Any,
        _context: Any,
        _executemany: bool,
    ) -> None:
        if not statement.lstrip()[:9].upper().startswith(_READ_ONLY_PREFIXES):
            connection.info[_WROTE] = True

    def commit(connection: Any) -> None:
        if connection.info.pop(_WROTE, False):
            data_version.wrote()

    def rollback(connection: Any) -> None:
        connection.info.pop(_WROTE, None)

    listeners = (
        ("before_cursor_execute", before_cursor_execute),
        ("commit", commit),
        ("rollback", rollback),
    )
    for name, listener in listeners:
        event.listen(engine, name, listener)

    def remove() -> None:
        for name, listener in listeners:
            with contextlib.suppress(Exception):
                event.remove(engine, name, listener)

    return remove


class _OnlyCacheableFields(Visitor):
    """Walks the selected operation and the fragments; stops at the first other field."""

    def __init__(self, type_info: TypeInfo, operation: OperationDefinitionNode) -> None:
        super().__init__()
        self.type_info = type_info
        self.operation = operation
        self.cacheable = True

    def enter_operation_definition(self, node: OperationDefinitionNode, *_: object) -> Any:
        return None if node is self.operation else SKIP

    def enter_field(self, node: FieldNode, *_: object) -> Any:
        name = node.name.value
        if name == "__typename":
            return None
        parent = self.type_info.get_parent_type()
        if parent is None or f"{parent.name}.{name}" not in CACHEABLE_FIELDS:
            self.cacheable = False
            return BREAK
        return None

    def enter_directive(self, node: DirectiveNode, *_: object) -> Any:
        if node.name.value in ("defer", "stream"):  # incremental delivery is never cached
            self.cacheable = False
            return BREAK
        return None


def only_cacheable_fields(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None
) -> bool:
    """True when the operation is a query selecting only CACHEABLE_FIELDS (and __typename)."""
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.QUERY:
        return False
    type_info = TypeInfo(schema)
    checker = _OnlyCacheableFields(type_info, operation)
    visit(document, TypeInfoVisitor(type_info, checker))
    return checker.cacheable


@dataclass(slots=True)
class _Entry:
    body: bytes
    version: Version
    expires_at: float


#: Memoized decisions per (operation id, operation name); cleared when this many are held.
MAX_DECISIONS = 4096


class ResponseCache:
    """Cached JSON bodies by key, valid while their data version is current (LRU by bytes)."""

    def __init__(
        self,
        schema: GraphQLSchema,
        data_version: DataVersion,
        *,
        max_bytes: int,
        ttl_seconds: float,
        max_tokens: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.schema = schema
        self.data_version = data_version
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds
        self.max_tokens = max_tokens
        self.clock = clock
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._decisions: dict[tuple[str, str | None], bool] = {}
        data_version.on_change = self.clear

    @property
    def size_bytes(self) -> int:
        """Bytes of the cached bodies."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def cacheable(self, operation_id: str, document: str, operation_name: str | None) -> bool:
        """Whether answers of this operation may be cached (decided once per operation)."""
        decision = self._decisions.get((operation_id, operation_name))
        if decision is None:
            try:
                parsed = parse(document, no_location=True, max_tokens=self.max_tokens)
            except GraphQLError:
                decision = False  # the view reports the syntax error
            else:
                decision = only_cacheable_fields(self.schema, parsed, operation_name)
            if len(self._decisions) >= MAX_DECISIONS:
                self._decisions.clear()
            self._decisions[(operation_id, operation_name)] = decision
        return decision

    def get(self, key: str) -> bytes | None:
        """The cached body, if it is still current."""
        entry = self._entries.get(key)
        if entry is not None and (
            entry.version != self.data_version.current or entry.expires_at <= self.clock()
        ):
            self._drop(key)
            entry = None
        if entry is None:
            self.misses += 1
            _MISSES.inc()
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        _HITS.inc()
        return entry.body

    def put(self, key: str, body: bytes, version: Version | None) -> None:
        """Store `body`, built under `version`, unless the data changed meanwhile."""
        if version is None or version != self.data_version.current:
            return
        if len(body) > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = _Entry(body, version, self.clock() + self.ttl_seconds)
        self._bytes += len(body)
        while self._bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)

    def clear(self) -> None:
        """Drop every entry (the data version moved)."""
        self._entries.clear()
        self._bytes = 0

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry.body)
