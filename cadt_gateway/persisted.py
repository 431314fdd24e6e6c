"""Persisted operations and the HTTP layer in front of the GraphQL view (with the response cache).

Clients may send an operation id instead of the document, with Apollo's APQ protocol: the
request carries `extensions.persistedQuery = {"version": 1, "sha256Hash": <sha256 of the
document, hex>}` and no `query`. CADT_PERSISTED_OPERATIONS says what the gateway accepts:

- `off`: documents only; a persisted query is answered PERSISTED_QUERY_NOT_SUPPORTED.
- `apq` (default): an unknown id is answered PERSISTED_QUERY_NOT_FOUND; the client re-sends
  the document with the id, the gateway checks the hash and registers it in Redis (shared by
  every replica, kept APQ_TTL_SECONDS), and later requests send the id alone. Plain documents
  run as usual.
- `allowlist` (production): only registered operations run, sent by id or as the exact
  registered document; anything else is answered PERSISTED_QUERY_NOT_IN_LIST (unknown id) or
  OPERATION_NOT_IN_ALLOWLIST (document). Operations are registered from
  CADT_PERSISTED_OPERATIONS_FILE at start, or by `cadt-gateway operations register`; clients
  cannot register any. WebSocket and SSE operations are held to the same rules.

These answers are GraphQL-shaped JSON (`errors[].extensions.code`), HTTP 200 like Apollo's, or
400 for a malformed persistedQuery (wrong version, hash not hex, hash not the document's).

`GraphQLFront` is the ASGI layer in front of the HTTP view: it resolves ids to documents,
enforces the allow-list, and answers queries from the response cache (cadt_gateway/
response_cache.py) before anything of Strawberry runs; on a miss it forwards the request and
stores the answer. A request that wrote to the database is answered only once its data-version
increment reached Redis, so the next read on any replica misses the old answer. Anything it does
not understand (malformed JSON, other content types, batches outside allowlist mode) goes to the
view untouched, which answers it as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from graphql import GraphQLSchema
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cadt_gateway.auth import API_KEY_HEADER
from cadt_gateway.errors import UNAVAILABLE_MESSAGES, new_error_id
from cadt_gateway.response_cache import DataVersion, ResponseCache, track_writes
from cadt_gateway.settings import PersistedOperationsMode, Settings
from services.db.engine import Database
from services.redis_keys import PERSISTED_ALLOWLIST_KEY, PERSISTED_APQ_PREFIX

logger = logging.getLogger(__name__)

#: How long an operation registered by a client through APQ stays registered (refreshed when it
#: is registered again after it expired).
APQ_TTL_SECONDS = 30 * 24 * 3600
#: Largest document a client may register through APQ (bytes).
MAX_APQ_DOCUMENT_BYTES = 64 * 1024
#: Documents kept in process memory per registry (most recently used).
LOCAL_DOCUMENTS = 2048

PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
PERSISTED_QUERY_NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
PERSISTED_QUERY_NOT_IN_LIST = "PERSISTED_QUERY_NOT_IN_LIST"
OPERATION_NOT_IN_ALLOWLIST = "OPERATION_NOT_IN_ALLOWLIST"
BAD_REQUEST = "BAD_REQUEST"

_HASH = re.compile(r"[0-9a-fA-F]{64}")


def operation_id(document: str) -> str:
    """The id of a document: its sha256, lowercase hex (what APQ clients send)."""
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


class _Recent(OrderedDict[str, str]):
    """A small most-recently-used map of documents by id."""

    def remember(self, key: str, value: str) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > LOCAL_DOCUMENTS:
            self.popitem(last=False)


class OperationRegistry:
    """Documents by operation id: the allow-list (a Redis hash) and APQ registrations."""

    def __init__(self, redis: Redis, *, apq_ttl_seconds: int = APQ_TTL_SECONDS) -> None:
        self.redis = redis
        self.apq_ttl_seconds = apq_ttl_seconds
        self._allowed = _Recent()
        self._apq = _Recent()

    async def allowed(self, operation: str) -> str | None:
        """The registered (allow-listed) document with this id, if any."""
        document = self._allowed.get(operation)
        if document is None:
            value = await self.redis.hget(PERSISTED_ALLOWLIST_KEY, operation)  # type: ignore[misc]
            if value is None:
                return None
            document = value.decode() if isinstance(value, bytes) else str(value)
            self._allowed.remember(operation, document)
        return document

    async def lookup(self, operation: str, *, apq: bool) -> str | None:
        """The document of an id: allow-listed ones, and (when `apq`) client-registered ones."""
        document = self._apq.get(operation) if apq else None
        if document is None:
            document = await self.allowed(operation)
        if document is None and apq:
            value = await self.redis.get(PERSISTED_APQ_PREFIX + operation)
            if value is not None:
                document = value.decode() if isinstance(value, bytes) else str(value)
                self._apq.remember(operation, document)
        return document

    async def register_apq(self, operation: str, document: str) -> None:
        """Register a client's document under its (checked) id."""
        if operation in self._apq or operation in self._allowed:
            return
        if len(document) <= MAX_APQ_DOCUMENT_BYTES:
            await self.redis.set(
                PERSISTED_APQ_PREFIX + operation, document, ex=self.apq_ttl_seconds
            )
        self._apq.remember(operation, document)

    async def register_allowed(self, documents: Mapping[str, str]) -> None:
        """Add documents to the allow-list (ids must be their sha256)."""
        if not documents:
            return
        for operation, document in documents.items():
            if operation_id(document) != operation:
                raise ValueError(f"operation {operation} is not the sha256 of its document")
        await self.redis.hset(PERSISTED_ALLOWLIST_KEY, mapping=dict(documents))  # type: ignore[misc]
        for operation, document in documents.items():
            self._allowed.remember(operation, document)

    async def allowlist(self) -> dict[str, str]:
        """Every allow-listed operation."""
        raw = await self.redis.hgetall(PERSISTED_ALLOWLIST_KEY)  # type: ignore[misc]
        return {
            (k.decode() if isinstance(k, bytes) else str(k)): (
                v.decode() if isinstance(v, bytes) else str(v)
            )
            for k, v in raw.items()
        }


def read_operations(path: Path) -> dict[str, str]:
    """Operations of a file: an Apollo persisted-query manifest, {id: document}, or .graphql."""
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".graphql", ".gql"):
        return {operation_id(text): text}
    data = json.loads(text)
    found: dict[str, str] = {}
    if isinstance(data, dict) and isinstance(data.get("operations"), list):
        entries = [(op.get("id"), op.get("body")) for op in data["operations"]]
    elif isinstance(data, dict):
        entries = list(data.items())
    else:
        raise ValueError("expected a persisted-query manifest or an object {id: document}")
    for identifier, document in entries:
        if not isinstance(identifier, str) or not isinstance(document, str):
            raise ValueError("every operation needs a string id and a string document")
        if operation_id(document) != identifier.lower():
            raise ValueError(f"operation {identifier} is not the sha256 of its document")
        found[identifier.lower()] = document
    return found


@dataclass
class QueryLayer:
    """What the layer in front of the view uses, built once per process by `open_node`."""

    mode: PersistedOperationsMode
    registry: OperationRegistry
    data_version: DataVersion
    settings: Settings
    _cache: ResponseCache | None = field(default=None, repr=False)

    def response_cache(self, schema: GraphQLSchema) -> ResponseCache | None:
        """This process's response cache (created on first use), or None when it is off."""
        if not self.settings.response_cache:
            return None
        if self._cache is None:
            self._cache = ResponseCache(
                schema,
                self.data_version,
                max_bytes=self.settings.response_cache_max_bytes,
                ttl_seconds=self.settings.response_cache_ttl_seconds,
                max_tokens=self.settings.max_query_tokens,
            )
        return self._cache


@asynccontextmanager
async def open_query_layer(
    settings: Settings, *, redis: Redis, database: Database
) -> AsyncIterator[QueryLayer]:
    """Track database writes (every process: the worker writes most) and load the allow-list."""
    data_version = DataVersion(redis)
    remove = track_writes(database, data_version)
    try:
        if settings.response_cache:
            await data_version.start()
        registry = OperationRegistry(redis)
        if settings.persisted_operations_file is not None:
            path = settings.persisted_operations_file
            try:
                operations = read_operations(path)
            except (OSError, ValueError) as error:
                raise ValueError(f"CADT_PERSISTED_OPERATIONS_FILE {path}: {error}") from None
            await registry.register_allowed(operations)
            logger.info("registered %d persisted operations from %s", len(operations), path)
        yield QueryLayer(settings.persisted_operations, registry, data_version, settings)
    finally:
        remove()
        await data_version.stop()


# ----------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class Refusal:
    """A request the layer answers itself."""

    message: str
    code: str
    status: int = 200
    error_id: str | None = None

    @property
    def error(self) -> dict[str, Any]:
        """The GraphQL error."""
        extensions: dict[str, Any] = {"code": self.code}
        if self.error_id is not None:
            extensions["errorId"] = self.error_id
        return {"message": self.message, "extensions": extensions}

    def body(self) -> bytes:
        """The GraphQL-shaped JSON body."""
        return json.dumps({"errors": [self.error]}, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Resolved:
    """The document to run and its id (None when the request carries no document)."""

    document: str | None
    operation: str | None
    #: The document came from the registry: the request must be rewritten to carry it.
    from_registry: bool = False


async def resolve(layer: QueryLayer, payload: Mapping[str, Any]) -> Resolved | Refusal:
    """Resolve one GraphQL request (HTTP body or subscribe payload) under the mode.

    The registry lives in Redis: while Redis is down, a request that needs it gets
    REDIS_UNAVAILABLE (as resolvers do, cadt_gateway/errors.py) and the log one WARNING.
    """
    try:
        return await _resolve(layer, payload)
    except (RedisError, OSError) as error:
        error_id = new_error_id()
        logger.warning(
            "persisted operations: Redis unavailable (%s, error id %s)",
            type(error).__name__,
            error_id,
        )
        code = "REDIS_UNAVAILABLE"
        return Refusal(UNAVAILABLE_MESSAGES[code], code, error_id=error_id)


async def _resolve(layer: QueryLayer, payload: Mapping[str, Any]) -> Resolved | Refusal:
    mode = layer.mode
    query = payload.get("query")
    extensions = payload.get("extensions")
    persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
    if persisted is not None:
        if mode is PersistedOperationsMode.OFF:
            return Refusal("PersistedQueryNotSupported", PERSISTED_QUERY_NOT_SUPPORTED)
        if not isinstance(persisted, dict) or persisted.get("version") != 1:
            return Refusal("Unsupported persisted query version", BAD_REQUEST, 400)
        given = persisted.get("sha256Hash")
        if not isinstance(given, str) or _HASH.fullmatch(given) is None:
            return Refusal("persistedQuery.sha256Hash must be 64 hex digits", BAD_REQUEST, 400)
        identifier = given.lower()
        if isinstance(query, str) and query:
            if operation_id(query) != identifier:
                return Refusal("provided sha does not match query", BAD_REQUEST, 400)
            if mode is PersistedOperationsMode.ALLOWLIST:
                if await layer.registry.allowed(identifier) is None:
                    return Refusal("Operation is not in the allow-list", OPERATION_NOT_IN_ALLOWLIST)
            else:
                await layer.registry.register_apq(identifier, query)
            return Resolved(query, identifier)
        apq = mode is PersistedOperationsMode.APQ
        document = await layer.registry.lookup(identifier, apq=apq)
        if document is None:
            if apq:
                return Refusal("PersistedQueryNotFound", PERSISTED_QUERY_NOT_FOUND)
            return Refusal("PersistedQueryNotInList", PERSISTED_QUERY_NOT_IN_LIST)
        return Resolved(document, identifier, from_registry=True)
    if not isinstance(query, str) or not query:
        if mode is PersistedOperationsMode.ALLOWLIST and query is not None:
            return Refusal("Operation is not in the allow-list", OPERATION_NOT_IN_ALLOWLIST)
        return Resolved(None, None)  # the view reports the missing or malformed query
    identifier = operation_id(query)
    if (
        mode is PersistedOperationsMode.ALLOWLIST
        and await layer.registry.allowed(identifier) is None
    ):
        return Refusal("Operation is not in the allow-list", OPERATION_NOT_IN_ALLOWLIST)
    return Resolved(query, identifier)


async def resolve_subscribe(layer: QueryLayer | None, payload: dict[str, Any]) -> Refusal | None:
    """A graphql-transport-ws `subscribe` payload: resolve its id in place, or refuse it."""
    if layer is None or (layer.mode is PersistedOperationsMode.OFF and not _persisted(payload)):
        return None
    outcome = await resolve(layer, payload)
    if isinstance(outcome, Refusal):
        return outcome
    if outcome.from_registry:
        payload["query"] = outcome.document
    return None


def _persisted(payload: Mapping[str, Any]) -> bool:
    extensions = payload.get("extensions")
    return isinstance(extensions, dict) and "persistedQuery" in extensions


def query_layer_of(scope: Scope) -> QueryLayer | None:
    """The QueryLayer of the node serving this request (lifespan state), if any."""
    node = scope.get("state", {}).get("node")
    layer = getattr(node, "query_layer", None)
    return layer if isinstance(layer, QueryLayer) else None


# ----------------------------------------------------------------------------- ASGI layer


@dataclass
class _Request:
    """What the layer reads of one HTTP request."""

    content_type: str = ""
    accept: str = ""
    api_key: str | None = None
    content_length: int | None = None


def _headers(scope: Scope) -> _Request:
    found = _Request()
    for name, value in scope["headers"]:
        if name == b"content-type":
            found.content_type = value.decode("latin-1")
        elif name == b"accept":
            found.accept = value.decode("latin-1")
        elif name == b"content-length":
            try:
                found.content_length = int(value)
            except ValueError:
                found.content_length = None
        elif name == _API_KEY:
            found.api_key = value.decode("latin-1")
    return found


_API_KEY = API_KEY_HEADER.encode()


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool, list[Message]]:
    """The body up to `limit` bytes: (body, complete, the messages read, to replay)."""
    chunks: list[bytes] = []
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return b"", False, messages
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True, messages
        if size > limit:
            return b"", False, messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that gives the messages read already, then the rest of the original."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def _single_body(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _answer(send: Send, status: int, body: bytes, *extra: tuple[bytes, bytes]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _json_or_none(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return _MALFORMED


_MALFORMED = object()
_FORWARD = object()
_CACHE_HIT = (b"x-cadt-cache", b"hit")
_CACHE_COALESCED = (b"x-cadt-cache", b"coalesced")


class GraphQLFront:
    """ASGI layer in front of the GraphQL HTTP view: persisted operations, response cache."""

    def __init__(
        self, app: ASGIApp, *, schema: GraphQLSchema, settings: Settings, cache: bool = True
    ) -> None:
        self.app = app
        self.schema = schema
        #: Misses being computed now, by (cache key, data version): followers await them.
        self._in_flight: dict[tuple[str, Any], asyncio.Future[bytes | None]] = {}
        self.use_cache = cache and settings.response_cache
        self.max_body_bytes = settings.max_body_bytes
        #: With persisted operations off and no cache, only a persistedQuery needs an answer.
        self.minimal = settings.persisted_operations is PersistedOperationsMode.OFF and not (
            self.use_cache
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        layer = query_layer_of(scope) if scope["type"] == "http" else None
        if layer is None:
            await self.app(scope, receive, send)
            return
        request = _headers(scope)
        payload, receive = await self._payload(scope, receive, request)
        if payload is _FORWARD:
            await self._forward(layer, scope, receive, send)
            return
        if not isinstance(payload, dict):
            if layer.mode is PersistedOperationsMode.ALLOWLIST:
                refusal = Refusal(
                    "Batched requests are not accepted in allowlist mode", BAD_REQUEST, 400
                )
                await _answer(send, refusal.status, refusal.body())
                return
            await self._forward(layer, scope, receive, send)
            return
        outcome = await resolve(layer, payload)
        if isinstance(outcome, Refusal):
            await _answer(send, outcome.status, outcome.body())
            return
        if outcome.from_registry:
            scope, receive = _with_document(scope, payload, outcome)
        cache = layer.response_cache(self.schema) if self.use_cache else None
        operation_name = payload.get("operationName")
        variables = payload.get("variables")
        if (
            cache is None
            or outcome.document is None
            or outcome.operation is None
            or "text/event-stream" in request.accept  # streamed answers are never cached
            or "multipart/mixed" in request.accept
            or not isinstance(operation_name, (str, type(None)))
            or not isinstance(variables, (dict, type(None)))
            # a malformed `extensions` is the view's 400 to answer, never a cached 200
            or not isinstance(payload.get("extensions"), (dict, type(None)))
            or not cache.cacheable(outcome.operation, outcome.document, operation_name)
        ):
            await self._forward(layer, scope, receive, send)
            return
        key = _cache_key(request.api_key, outcome.operation, operation_name, variables)
        cached = cache.get(key)
        if cached is not None:
            await _answer(send, 200, cached, _CACHE_HIT)
            return
        version = layer.data_version.current
        if version is None:  # nothing is cached (nor coalesced) while the version is unknown
            await self._forward(layer, scope, receive, send)
            return
        flight = (key, version)
        leader = self._in_flight.get(flight)
        if leader is not None:
            # The same query is being computed under the same data version (no write since
            # it started): its answer is this one's too. Misses after each write no longer
            # cost one computation per request in flight.
            body = await asyncio.shield(leader)
            if body is not None:
                await _answer(send, 200, body, _CACHE_COALESCED)
                return
            await self._forward(layer, scope, receive, send)  # not cacheable: run it
            return
        computing: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._in_flight[flight] = computing
        captured: bytes | None = None
        try:
            captured = await self._forward(layer, scope, receive, send, capture=True)
        finally:
            del self._in_flight[flight]
            computing.set_result(captured)
        if captured is not None:
            cache.put(key, captured, version)

    async def _payload(
        self, scope: Scope, receive: Receive, request: _Request
    ) -> tuple[Any, Receive]:
        """The request's JSON payload, or _FORWARD; and a receive that replays what was read."""
        method = scope["method"]
        if method == "GET":
            params = params_of(scope)
            if "query" not in params and "extensions" not in params:
                return _FORWARD, receive  # e.g. the GraphiQL page
            if self.minimal and "persistedQuery" not in params.get("extensions", ""):
                return _FORWARD, receive
            payload = {
                "query": params.get("query"),
                "operationName": params.get("operationName"),
                "variables": _json_or_none(params.get("variables")),
                "extensions": _json_or_none(params.get("extensions")),
            }
            if payload["variables"] is _MALFORMED or payload["extensions"] is _MALFORMED:
                return _FORWARD, receive
            return payload, receive
        if (
            method != "POST"
            or "application/json" not in request.content_type
            or (request.content_length or 0) > self.max_body_bytes
        ):
            return _FORWARD, receive
        body, complete, messages = await _read_body(receive, self.max_body_bytes)
        replay = _replay(messages, receive)
        if not complete or (self.minimal and b"persistedQuery" not in body):
            return _FORWARD, replay
        try:
            return json.loads(body), replay
        except ValueError:  # the view answers malformed JSON
            return _FORWARD, replay

    async def _forward(
        self,
        layer: QueryLayer,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        capture: bool = False,
    ) -> bytes | None:
        """Run the view; answer only after this request's writes are counted (and capture)."""
        status = 0
        json_body = False
        chunks: list[bytes] = []
        data_version = layer.data_version

        async def forward_send(message: Message) -> None:
            nonlocal status, json_body
            if message["type"] == "http.response.start":
                if data_version.pending:
                    await data_version.flush()
                status = message["status"]
                json_body = any(
                    name == b"content-type" and value.startswith(b"application/json")
                    for name, value in message.get("headers", ())
                )
            elif capture and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, forward_send)
        if not capture or status != 200 or not json_body:
            return None
        body = b"".join(chunks)
        if b'"errors":' in body:  # only clean answers (a value mentioning it is just a miss)
            return None
        return body


def params_of(scope: Scope) -> dict[str, str]:
    """The query-string parameters of a request."""
    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))


def _with_document(
    scope: Scope, payload: dict[str, Any], outcome: Resolved
) -> tuple[Scope, Receive]:
    """The request rewritten to carry the registered document (the view needs the text)."""
    assert outcome.document is not None
    if scope["method"] == "GET":
        params = params_of(scope)
        params["query"] = outcome.document
        return {**scope, "query_string": urlencode(params).encode("latin-1")}, _single_body(b"")
    body = json.dumps({**payload, "query": outcome.document}).encode()
    headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    return {**scope, "headers": headers}, _single_body(body)


def _cache_key(
    api_key: str | None, operation: str, operation_name: str | None, variables: Any
) -> str:
    auth = "anonymous" if api_key is None else hashlib.sha256(api_key.encode()).hexdigest()[:32]
    canonical = (
        "" if not variables else json.dumps(variables, sort_keys=True, separators=(",", ":"))
    )
    return f"{auth}\x00{operation}\x00{operation_name or ''}\x00{canonical}"
