"""The org-operation lock: one home-organization operation at a time across every process.

Rules L1-L14 of cadt-domain.md section 5, moved from CADT's in-memory lock into Redis:
- the token is `orglock-<n>` with `n` from INCR, a monotonically increasing fencing number;
- acquire, compare-and-set status and compare-and-delete release are single Lua scripts;
- TTL takeover happens only inside acquire (L7: no timer), logging the stale holder and its age;
- every change publishes an OperationEvent on Redis, identical consecutive statuses are dropped;
- release is shielded from cancellation so a cancelled job never leaves the key behind;
- the calls a running operation makes (status, its holder check, release) ride out a
  Redis restart: a connection error is retried with a growing pause for up to the heartbeat
  timeout (the key is persisted by Redis; a holder that cannot reach it cannot be overtaken
  either), so a short outage pauses a creation instead of failing it. Acquire is never
  retried: a lost reply could hold the lock for a token nobody knows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

import services.events as events
from services.domain import LockSnapshot
from services.renewal import renewing

logger = logging.getLogger(__name__)

#: The logical channel of lock events (looked up at call time so benchmarks can redirect it).
OPERATION_CHANNEL = events.OPERATION_CHANNEL

T = TypeVar("T")

#: How long the holder's calls wait for Redis to come back when the heartbeat timeout is 0.
DEFAULT_OUTAGE_SECONDS = 30.0
#: Longest pause between two attempts while Redis is unreachable.
OUTAGE_RETRY_MAX_SECONDS = 1.0

HOLDER_KEY = "cadt:oplock:holder"
SEQUENCE_KEY = "cadt:oplock:seq"
TOKEN_PREFIX = "orglock-"
INITIAL_STATUS = "Starting..."
#: Label suffix of the periodic creation recovery ("V2 organization recovery").
RECOVERY_LABEL_SUFFIX = " organization recovery"

# KEYS: holder, sequence. ARGV: label, now_ms, ttl_ms, started_at_iso, channel, silence_ms.
# Returns {token, stale_holder_json_or_false} or false when the lock is held.
# A holder is stale at the TTL (L7) or, beyond CADT, once its heartbeats stopped for silence_ms
# (a killed worker) when silence_ms > 0.
_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
local stale = false
if current then
  local holder = cjson.decode(current)
  local now = tonumber(ARGV[2])
  local young = now - tonumber(holder.started_ms) < tonumber(ARGV[3])
  local silence = tonumber(ARGV[6])
  local beating = silence <= 0 or now - tonumber(holder.beat_ms or holder.started_ms) < silence
  if young and beating then
    return false
  end
  stale = current
end
local fence = redis.call('INCR', KEYS[2])
local token = 'orglock-' .. fence
local holder = cjson.encode({token = token, fence = fence, label = ARGV[1],
  status = 'Starting...', started_ms = tonumber(ARGV[2]), started_at = ARGV[4], org_uid = '',
  beat_ms = tonumber(ARGV[2])})
redis.call('SET', KEYS[1], holder)
redis.call('PUBLISH', ARGV[5], cjson.encode({kind = 'STARTED', holder = cjson.decode(holder),
  at_ms = tonumber(ARGV[2])}))
return {token, stale}
"""

# KEYS: holder. ARGV: token, status, org_uid, now_ms, channel.
# Returns 1 updated, 2 unchanged (not published), 0 not the holder.
_UPDATE = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local holder = cjson.decode(current)
if holder.token ~= ARGV[1] then return 0 end
if holder.status == ARGV[2] and (ARGV[3] == '' or holder.org_uid == ARGV[3]) then return 2 end
holder.status = ARGV[2]
if ARGV[3] ~= '' then holder.org_uid = ARGV[3] end
redis.call('SET', KEYS[1], cjson.encode(holder))
redis.call('PUBLISH', ARGV[5], cjson.encode({kind = 'PROGRESS', holder = holder,
  at_ms = tonumber(ARGV[4])}))
return 1
"""

# KEYS: holder. ARGV: token, now_ms. Returns 1 when the token holds the lock (heartbeat stored).
_HEARTBEAT = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local holder = cjson.decode(current)
if holder.token ~= ARGV[1] then return 0 end
holder.beat_ms = tonumber(ARGV[2])
redis.call('SET', KEYS[1], cjson.encode(holder))
return 1
"""

# KEYS: holder. ARGV: token, now_ms, channel, error ('' = success).
_RELEASE = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local holder = cjson.decode(current)
if holder.token ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
local kind = 'FINISHED'
if ARGV[4] ~= '' then kind = 'FAILED' end
redis.call('PUBLISH', ARGV[3], cjson.encode({kind = kind, holder = holder,
  at_ms = tonumber(ARGV[2]), error = ARGV[4]}))
return 1
"""


def fence_of(token: str) -> int:
    """The fencing number carried by a token."""
    if not token.startswith(TOKEN_PREFIX):
        raise ValueError(f"not an org-operation lock token: {token!r}")
    return int(token.removeprefix(TOKEN_PREFIX))


@dataclass(frozen=True)
class Holder:
    """The full lock record (the snapshot plus token and orgUid)."""

    token: str
    label: str
    status: str
    started_at: datetime
    org_uid: str | None
    beat_ms: int = 0

    @property
    def fence(self) -> int:
        """The fencing number of the holder's token."""
        return fence_of(self.token)

    def snapshot(self) -> LockSnapshot:
        """The public view of the holder."""
        return LockSnapshot(label=self.label, status=self.status, started_at=self.started_at)

    @classmethod
    def from_json(cls, raw: str | bytes | dict[str, Any]) -> Holder:
        """Parse the stored record."""
        data = raw if isinstance(raw, dict) else json.loads(raw)
        return cls(
            token=str(data["token"]),
            label=str(data["label"]),
            status=str(data["status"]),
            started_at=datetime.fromtimestamp(int(data["started_ms"]) / 1000, UTC),
            org_uid=str(data.get("org_uid") or "") or None,
            beat_ms=int(data.get("beat_ms") or data["started_ms"]),
        )


class OrgOperationLock:
    """The shared lock (one per Redis); `clock` returns epoch seconds and is injectable."""

    def __init__(
        self,
        redis: Redis,
        *,
        ttl_seconds: float,
        heartbeat_timeout_seconds: float = 0,
        outage_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.ttl_ms = int(ttl_seconds * 1000)
        self.silence_ms = int(heartbeat_timeout_seconds * 1000)
        if outage_seconds is None:
            outage_seconds = heartbeat_timeout_seconds or DEFAULT_OUTAGE_SECONDS
        self.outage_seconds = outage_seconds
        self.clock = clock
        self._acquire = redis.register_script(_ACQUIRE)
        self._update = redis.register_script(_UPDATE)
        self._release = redis.register_script(_RELEASE)
        self._heartbeat = redis.register_script(_HEARTBEAT)

    async def _riding_out(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`, tried again while Redis is unreachable, for up to `outage_seconds`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.outage_seconds
        pause = 0.05
        while True:
            try:
                return await call()
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                if loop.time() + pause > deadline:
                    raise
                if pause == 0.05:
                    logger.warning("org-operation lock: Redis unreachable (%s); retrying", error)
            await asyncio.sleep(pause)
            pause = min(pause * 2, OUTAGE_RETRY_MAX_SECONDS)

    def _channel(self) -> str:
        return events.wire_channel(self.redis, OPERATION_CHANNEL)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def try_acquire(self, label: str) -> str | None:
        """A token when the lock was free or its holder stale (L1, L7), else None (L2)."""
        now_ms = self._now_ms()
        started_at = datetime.fromtimestamp(now_ms / 1000, UTC).isoformat()
        result = await self._acquire(
            keys=[HOLDER_KEY, SEQUENCE_KEY],
            args=[label, now_ms, self.ttl_ms, started_at, self._channel(), self.silence_ms],
        )
        if not result:
            return None
        token_raw, stale = result[0], result[1]
        token = token_raw.decode() if isinstance(token_raw, bytes) else str(token_raw)
        if stale:
            previous = Holder.from_json(stale)
            age = (now_ms - previous.started_at.timestamp() * 1000) / 1000
            silent = (now_ms - previous.beat_ms) / 1000
            reason = (
                f"TTL {self.ttl_ms / 1000:.0f} s"
                if age * 1000 >= self.ttl_ms
                else f"no heartbeat for {silent:.0f} s"
            )
            logger.warning(
                "org-operation lock: took over from stale holder %r (status %r, token %s) "
                "after %.0f s (%s)",
                previous.label,
                previous.status,
                previous.token,
                age,
                reason,
            )
        return token

    async def update_status(self, token: str, status: str, *, org_uid: str | None = None) -> bool:
        """Set the holder's status if `token` still holds the lock (L6); False otherwise."""
        result = await self._riding_out(
            lambda: self._update(
                keys=[HOLDER_KEY],
                args=[token, status, org_uid or "", self._now_ms(), self._channel()],
            )
        )
        return int(result) != 0

    async def release(self, token: str | None, *, error: str | None = None) -> bool:
        """Release exactly `token` (L4, L5, L8); survives cancellation of the caller."""
        if not token:
            return False
        call = self._riding_out(
            lambda: self._release(
                keys=[HOLDER_KEY], args=[token, self._now_ms(), self._channel(), error or ""]
            )
        )
        # Shielded: a cancelled job must still delete its own key (redis-py 5 lacks that fix).
        return int(await asyncio.shield(call)) == 1

    async def heartbeat(self, token: str) -> bool:
        """Record that the holder of `token` is alive; False when it no longer holds the lock."""
        return int(await self._heartbeat(keys=[HOLDER_KEY], args=[token, self._now_ms()])) == 1

    @asynccontextmanager
    async def keep_alive(self, token: str, *, interval: float) -> AsyncIterator[None]:
        """Send heartbeats for `token` every `interval` seconds while the block runs."""

        async def beat() -> bool:
            try:
                # False once superseded: fenced writes will stop the job
                return await self.heartbeat(token)
            except RedisError:
                logger.warning("lock heartbeat for %s failed; retrying", token)
                return True

        async with renewing(
            beat, interval=interval, name=f"lock-heartbeat-{token}", immediately=True
        ):
            yield

    async def holder(self) -> Holder | None:
        """The full current holder record, or None when free."""
        raw = await self.redis.get(HOLDER_KEY)
        return None if raw is None else Holder.from_json(raw)

    async def status(self) -> LockSnapshot | None:
        """The public status (L12): None when free."""
        holder = await self.holder()
        return None if holder is None else holder.snapshot()

    async def is_holder(self, token: str) -> bool:
        """True while `token` holds the lock (the holder's own check: rides out an outage)."""
        raw = await self._riding_out(lambda: self.redis.get(HOLDER_KEY))
        return raw is not None and Holder.from_json(raw).token == token

    async def force_release(self) -> bool:
        """Test-only: free the lock whoever holds it; True even when already free (L8)."""
        await self.redis.delete(HOLDER_KEY)
        return True
