"""DataLayer mirrors: the mirror-check job of cadt-domain.md 3.14 and the mirror mutations.

A mirror is an on-chain coin announcing URLs where a store's files can be downloaded. CADT
announces `DATALAYER_FILE_SERVER_URL` for its own stores, the subscribed organizations' stores
and the governance stores. What this module adds to CADT:

- "at most one add_mirror per (store, url)" holds across every worker and replica: the claim is
  a Redis `SET NX` with a TTL (CADT kept an in-memory set per process, PR #1512), released when
  nothing was spent so the next run retries; until add_mirror is sent it is a lease renewed
  every `lock_heartbeat_seconds` and lapsing after `lock_heartbeat_timeout_seconds`, so a
  worker killed before sending blocks the pair for that long, not for the whole claim TTL;
- the `mirrors` table is refreshed from `get_mirrors` for every store checked, so dashboards
  read it without calling DataLayer;
- on subscriber nodes the governance body's main store AND its version store (`v2`, falling
  back to `v1`) are mirrored (PR #1531 resolved only `v1`);
- `run_mirror_check(services)` is callable right after a creation or upgrade: it always mirrors
  the node's own stores when a URL is set; external stores only with AUTO_MIRROR_EXTERNAL_STORES
  (the periodic job does not run at all without it, scenario 27).
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit

import sqlalchemy as sa
from redis.exceptions import RedisError
from sqlalchemy.dialects import postgresql, sqlite

from services import views
from services.chia import (
    ChiaErrorKind,
    ChiaRpcError,
    ChiaTransportError,
    has_error_kind,
    hex_to_text,
    is_coin_shortage_error,
    is_key_not_found_error,
    is_store_id,
    normalize_store_id,
    text_to_hex,
)
from services.chia.models.datalayer import Mirror as ChiaMirror
from services.container import Services
from services.db.models import Meta, Mirror, utcnow
from services.errors import (
    InvalidInput,
    NotFound,
    PreconditionFailed,
    UpstreamCode,
    UpstreamFailure,
    UpstreamServiceName,
)
from services.guards import assert_wallet_synced, assert_writable, store_id_argument
from services.renewal import renewing
from services.views import MirrorView

logger = logging.getLogger(__name__)

#: Redis key prefix of the per-(store, url) add_mirror claims.
MIRROR_CLAIM_PREFIX = "cadt:mirror:claim:"
#: How long a claim blocks another add_mirror of the same (store, url): long enough for the
#: new mirror coin to confirm and show in get_mirrors, short enough to retry a lost one.
MIRROR_CLAIM_TTL_SECONDS = 900
#: Extend a claim to `ARGV[2]` ms only while it is still ours (`ARGV[1]`): 1 done, 0 not ours.
_COMMIT_CLAIM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
#: Delete a claim only while it is still ours: a lapsed lease may be another worker's by now.
_RELEASE_CLAIM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
#: Meta keys of a governance node (CADT's names; "Goverance" is misspelled on purpose).
GOVERNANCE_VERSION_META_KEY = "governanceBodyId"
GOVERNANCE_MAIN_META_KEY = "mainGoveranceBodyId"
#: Meta key of the version store a subscriber's governance sync last read.
GOVERNANCE_LAST_READ_META_KEY = "governanceVersionStoreId"

_MIRRORS = Mirror.__table__  # type: ignore[attr-defined]


class MirrorAddStatus(StrEnum):
    """How one add_mirror attempt ended."""

    ADDED = "added"  # add_mirror was sent
    EXISTS = "exists"  # get_mirrors already lists (store, url)
    IN_FLIGHT = "in_flight"  # another worker holds the claim for (store, url)
    INSUFFICIENT_FUNDS = "insufficient_funds"  # balance below the coin amount
    FAILED = "failed"  # DataLayer or the wallet refused


@dataclass(frozen=True)
class MirrorAddResult:
    """The outcome of `add_mirror`."""

    store_id: str
    url: str
    status: MirrorAddStatus
    fee: int | None = None
    detail: str = ""
    mirror: MirrorView | None = None


@dataclass
class MirrorCheckReport:
    """What one mirror check did (the job's result and the log summary)."""

    skipped: str | None = None
    stores: list[str] = field(default_factory=list)
    results: list[MirrorAddResult] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def count(self, status: MirrorAddStatus) -> int:
        """Results with this status."""
        return sum(1 for result in self.results if result.status is status)

    def summary(self) -> str:
        """One line for the log and the job result."""
        if self.skipped:
            return f"skipped: {self.skipped}"
        parts = [f"{len(self.stores)} store(s)"]
        parts += [
            f"{self.count(status)} {status.value}"
            for status in MirrorAddStatus
            if self.count(status)
        ]
        if self.errors:
            parts.append(f"{len(self.errors)} error(s)")
        return ", ".join(parts)


# ---------------------------------------------------------------------------- validation


def validate_mirror_url(url: str) -> str:
    """A mirror URL: http or https with a host and no credentials, else InvalidInput('url')."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        raise InvalidInput(f"invalid mirror URL {url!r}", field="url") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            "a mirror URL must be an http:// or https:// URL with a host", field="url"
        )
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidInput(
            "a mirror URL must not contain credentials (it is published on chain)", field="url"
        )
    if any(char.isspace() for char in text):
        raise InvalidInput("a mirror URL must not contain spaces", field="url")
    return text.rstrip("/")


def _same_url(first: str, second: str) -> bool:
    return first.rstrip("/") == second.rstrip("/")


def _claim_key(store_id: str, url: str) -> str:
    digest = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:24]
    return f"{MIRROR_CLAIM_PREFIX}{store_id}:{digest}"


@asynccontextmanager
async def _renewing(services: Services, claim: str, owner: str, ttl_ms: int) -> AsyncIterator[None]:
    """Renew our claim's lease every lock_heartbeat_seconds while the block runs."""

    script = services.redis.register_script(_COMMIT_CLAIM)

    async def renew() -> bool:
        try:
            return bool(await script(keys=[claim], args=[owner, ttl_ms]))  # False: lapsed
        except RedisError as error:
            logger.debug("could not renew the mirror claim %s: %s", claim, error)
            return True

    interval = services.settings.lock_heartbeat_seconds
    async with renewing(renew, interval=interval, name=f"mirror-claim-{claim}"):
        yield


def _prepare_seconds(services: Services) -> float:
    """How long a claim lives, renewed, before add_mirror is sent: the lease of a live worker.

    The same silence after which the org-operation lock presumes its holder dead (a killed
    worker); 0 there (TTL-only, like CADT) keeps the whole claim TTL here too.
    """
    timeout = services.settings.lock_heartbeat_timeout_seconds
    return timeout if timeout > 0 else MIRROR_CLAIM_TTL_SECONDS


# ---------------------------------------------------------------------------- the table


def _view(mirror: ChiaMirror) -> MirrorView:
    return MirrorView(
        coin_id=mirror.coin_id,
        store_id=mirror.launcher_id,
        urls=list(mirror.urls),
        amount=mirror.amount,
        ours=mirror.ours,
    )


async def _replace_rows(services: Services, store_id: str, mirrors: Sequence[ChiaMirror]) -> None:
    """Make the table hold exactly these mirrors of the store."""
    rows = [
        {
            "coin_id": mirror.coin_id,
            "store_id": store_id,
            "urls_json": json.dumps(list(mirror.urls)),
            "amount": mirror.amount,
            "ours": mirror.ours,
            "confirmed_at_height": mirror.confirmed_at_height,
            "updated_at": utcnow(),
        }
        for mirror in mirrors
        if mirror.launcher_id == store_id
    ]
    insert = (
        postgresql.insert(_MIRRORS)
        if services.db.dialect == "postgresql"
        else sqlite.insert(_MIRRORS)
    )
    upsert = insert.on_conflict_do_update(
        index_elements=[_MIRRORS.c.coin_id],
        set_={
            name: insert.excluded[name]
            for name in (
                "store_id",
                "urls_json",
                "amount",
                "ours",
                "confirmed_at_height",
                "updated_at",
            )
        },
    )
    async with services.db.transaction() as session:
        delete = sa.delete(_MIRRORS).where(_MIRRORS.c.store_id == store_id)
        if rows:
            delete = delete.where(_MIRRORS.c.coin_id.not_in([row["coin_id"] for row in rows]))
            await session.execute(upsert, rows)
        await session.execute(delete)


async def refresh_mirrors(
    services: Services, store_ids: Iterable[str]
) -> dict[str, list[MirrorView]]:
    """Read get_mirrors for these stores and store the answer in the mirrors table."""
    found: dict[str, list[MirrorView]] = {}
    for store_id in dict.fromkeys(store_ids):
        mirrors = await services.datalayer.get_mirrors(store_id)
        await _replace_rows(services, store_id, mirrors)
        found[store_id] = [_view(mirror) for mirror in mirrors if mirror.launcher_id == store_id]
    return found


async def list_mirrors(
    services: Services, store_id: str, *, refresh: bool = False
) -> list[MirrorView]:
    """Mirrors of a store from the table; from DataLayer when asked or when none are known.

    The table is what the mirror job last saw (every `mirror_check_task_interval`); a store
    nobody checked yet is read from DataLayer once and remembered, so the first answer is
    never an empty list just because the job has not run.
    """
    if not refresh:
        known = (await views.mirrors_by_store(services.db, [store_id])).get(store_id, [])
        if known:
            return known
    try:
        return (await refresh_mirrors(services, [store_id]))[store_id]
    except ChiaRpcError as error:
        raise UpstreamFailure(
            f"Could not read the mirrors of store {store_id}: {error.message}",
            service=UpstreamServiceName.DATALAYER,
        ) from error


# ---------------------------------------------------------------------------- add / remove


async def _existing_mirror(services: Services, store_id: str, url: str) -> MirrorView | None:
    """get_mirrors of the store (stored in the table); the mirror announcing `url`, if any."""
    mirrors = await services.datalayer.get_mirrors(store_id)
    await _replace_rows(services, store_id, mirrors)
    return next(
        (
            _view(mirror)
            for mirror in mirrors
            if mirror.launcher_id == store_id and any(_same_url(u, url) for u in mirror.urls)
        ),
        None,
    )


async def add_mirror(services: Services, store_id: str, url: str) -> MirrorAddResult:
    """Announce `url` for a store unless it is announced already (at most once per pair).

    Order: get_mirrors (an existing (launcher_id, url) means done; the table is refreshed),
    claim (Redis SET NX with a TTL, shared by all workers and replicas), balance check with
    CADT's fee fallback (>= amount + fee: pay the fee; >= amount: fee 0; else skip),
    add_mirror. The claim is a renewed lease until add_mirror is sent (a killed worker's
    claim lapses soon); right before sending it is extended to the full TTL if it is still
    ours, else another worker took the pair over and nothing is sent. It is kept after an
    add (the new coin shows in get_mirrors once it confirms) and released otherwise (only if
    still ours). Errors of DataLayer or the wallet come back as FAILED.
    """
    settings = services.settings
    store_id = normalize_store_id(store_id)
    url = url.rstrip("/")
    try:
        existing = await _existing_mirror(services, store_id, url)
    except ChiaRpcError as error:
        logger.warning("Could not read the mirrors of store %s: %s", store_id, error)
        return MirrorAddResult(store_id, url, MirrorAddStatus.FAILED, detail=error.message)
    if existing is not None:
        return MirrorAddResult(store_id, url, MirrorAddStatus.EXISTS, mirror=existing)
    claim = _claim_key(store_id, url)
    owner = uuid.uuid4().hex
    prepare_ms = max(1, int(_prepare_seconds(services) * 1000))
    if not await services.redis.set(claim, owner, nx=True, px=prepare_ms):
        logger.debug("mirror of %s at %s is being added elsewhere", store_id, url)
        return MirrorAddResult(store_id, url, MirrorAddStatus.IN_FLIGHT)
    keep_claim = sending = False
    try:
        async with _renewing(services, claim, owner, prepare_ms):
            amount, fee = settings.default_coin_amount, settings.default_fee
            balance = (await services.wallet.get_wallet_balance(1)).spendable_balance or 0
            if balance < amount:
                logger.warning(
                    "Not enough XCH to mirror store %s at %s: %s mojos spendable, %s needed; "
                    "will retry",
                    store_id,
                    url,
                    balance,
                    amount,
                )
                return MirrorAddResult(
                    store_id,
                    url,
                    MirrorAddStatus.INSUFFICIENT_FUNDS,
                    detail=f"{balance} mojos spendable, {amount} needed",
                )
            if balance < amount + fee:
                fee = 0  # CADT: enough for the coin but not the fee -> no fee
        committed = await services.redis.register_script(_COMMIT_CLAIM)(
            keys=[claim], args=[owner, MIRROR_CLAIM_TTL_SECONDS * 1000]
        )
        if not committed:
            # The lease lapsed (this process stalled past the heartbeat timeout): another
            # worker may own the pair now.
            logger.info("mirror claim of %s at %s lapsed before sending; skipped", store_id, url)
            keep_claim = True  # not ours to delete
            return MirrorAddResult(store_id, url, MirrorAddStatus.IN_FLIGHT)
        sending = True
        await services.datalayer.add_mirror(store_id, [url], amount=amount, fee=fee)
        keep_claim = True
        logger.info("Added mirror of store %s at %s (fee %s)", store_id, url, fee)
        mirror = None
        try:
            mirror = await _existing_mirror(services, store_id, url)
        except ChiaRpcError as error:
            logger.debug("could not re-read the mirrors of %s: %s", store_id, error)
        return MirrorAddResult(store_id, url, MirrorAddStatus.ADDED, fee=fee, mirror=mirror)
    except ChiaRpcError as error:
        # A lost answer to a sent add_mirror may still have created the coin: keep the claim.
        keep_claim = sending and isinstance(error, ChiaTransportError) and error.request_sent
        status = (
            MirrorAddStatus.INSUFFICIENT_FUNDS
            if is_coin_shortage_error(error)
            else MirrorAddStatus.FAILED
        )
        logger.warning("Could not mirror store %s at %s: %s", store_id, url, error)
        return MirrorAddResult(store_id, url, status, detail=error.message)
    finally:
        if not keep_claim:
            # Nothing was spent: let the next run (or another worker) try again.
            await services.redis.register_script(_RELEASE_CLAIM)(keys=[claim], args=[owner])


async def remove_mirror(services: Services, store_id: str, coin_id: str) -> MirrorView:
    """Delete our mirror `coin_id` of `store_id` (NotFound unless get_mirrors lists it there)."""
    try:
        mirrors = await services.datalayer.get_mirrors(store_id)
    except ChiaRpcError as error:
        raise UpstreamFailure(
            f"Could not read the mirrors of store {store_id}: {error.message}"
        ) from error
    await _replace_rows(services, store_id, mirrors)
    target = next((m for m in mirrors if m.coin_id == coin_id and m.launcher_id == store_id), None)
    if target is None:
        raise NotFound(f"store {store_id} has no mirror with coin id {coin_id}")
    if not target.ours:
        raise PreconditionFailed(
            f"mirror {coin_id} of store {store_id} belongs to another wallet; only its owner "
            "can remove it"
        )
    fee = services.settings.default_fee
    try:
        balance = (await services.wallet.get_wallet_balance(1)).spendable_balance or 0
        if balance < fee:
            fee = 0
        await services.datalayer.delete_mirror(coin_id, fee=fee)
    except ChiaRpcError as error:
        code = (
            UpstreamCode.WALLET_NOT_SYNCED
            if has_error_kind(error, ChiaErrorKind.WALLET_NOT_SYNCED)
            else UpstreamCode.UPSTREAM_UNAVAILABLE
        )
        raise UpstreamFailure(
            f"Could not remove mirror {coin_id}: {error.message}",
            code=code,
            service=UpstreamServiceName.WALLET
            if code is UpstreamCode.WALLET_NOT_SYNCED
            else UpstreamServiceName.DATALAYER,
        ) from error
    logger.info("Removing mirror %s of store %s (fee %s)", coin_id, store_id, fee)
    async with services.db.transaction() as session:
        await session.execute(sa.delete(_MIRRORS).where(_MIRRORS.c.coin_id == coin_id))
    return _view(target)


# ---------------------------------------------------------------------------- the job


async def _meta_value(services: Services, key: str) -> str | None:
    async with services.db.session() as session:
        meta = await session.get(Meta, key)
    return meta.value if meta is not None and meta.value else None


async def _governance_version_store(services: Services, main_store_id: str) -> str | None:
    """The version store named by the main governance store: `v2` (this node), else `v1`."""
    version = services.settings.data_model_version.value
    for key in dict.fromkeys((version, "v2", "v1")):
        try:
            value = await services.datalayer.get_value(main_store_id, text_to_hex(key))
        except ChiaRpcError as error:
            if is_key_not_found_error(error):
                continue
            raise
        if value and is_store_id(hex_to_text(value, errors="replace").strip()):
            return normalize_store_id(hex_to_text(value).strip())
    return None


async def governance_store_ids(services: Services, report: MirrorCheckReport) -> list[str]:
    """Governance stores to mirror: both of a governance node, or the followed body's two.

    Governance node: Meta `mainGoveranceBodyId` (main) and `governanceBodyId` (version).
    Subscriber: CADT_GOVERNANCE_BODY_ID, else the body subscribeGovernanceBody recorded in
    Meta `governanceBodyId`; its version store is read from the main store (`v2` for a V2
    node, then `v1`: PR #1531 resolved only `v1`), else the one the governance sync last read.
    """
    main = await _meta_value(services, GOVERNANCE_MAIN_META_KEY)
    version = await _meta_value(services, GOVERNANCE_VERSION_META_KEY)
    if main:
        return [store for store in (main, version) if store and is_store_id(store)]
    body = (services.settings.governance_body_id or "").strip() or (version or "")
    if not body or not is_store_id(body):
        return []
    body = normalize_store_id(body)
    stores = [body]
    try:
        version_store = await _governance_version_store(services, body)
    except ChiaRpcError as error:
        # Each step on its own (scenario 28): a failure here still mirrors the main store.
        report.errors[body] = f"could not read the governance version store: {error.message}"
        logger.warning("Could not resolve the governance version store of %s: %s", body, error)
        version_store = None
    if version_store is None:
        last_read = await _meta_value(services, GOVERNANCE_LAST_READ_META_KEY)
        version_store = last_read if last_read and is_store_id(last_read) else None
    if version_store:
        stores.append(normalize_store_id(version_store))
    return stores


async def mirror_targets(
    services: Services, report: MirrorCheckReport, *, include_external: bool
) -> list[str]:
    """Store ids the mirror check announces: own, governance and (optionally) subscribed."""
    version = services.settings.data_model_version.value
    stores: list[str] = []
    home = await views.home_organization(services.db, version)
    if home is not None:
        stores += home.store_ids
    if include_external:
        stores += await governance_store_ids(services, report)
        for org in await views.subscribed_organizations(services.db, version):
            stores += org.store_ids
    elif await _meta_value(services, GOVERNANCE_MAIN_META_KEY):
        # A governance body this node owns is its own store: mirror it in any case.
        stores += await governance_store_ids(services, report)
    return [store for store in dict.fromkeys(stores) if is_store_id(store)]


async def run_mirror_check(services: Services) -> MirrorCheckReport:
    """Announce DATALAYER_FILE_SERVER_URL for every store this node should mirror.

    Call it right after a home organization creation or upgrade too: the node's own stores are
    always mirrored when a URL is set; external stores need AUTO_MIRROR_EXTERNAL_STORES.
    """
    settings = services.settings
    report = MirrorCheckReport()
    url = (settings.datalayer_file_server_url or "").strip()
    if not url:
        logger.info("DATALAYER_FILE_SERVER_URL not set, skipping mirror announcements")
        report.skipped = "DATALAYER_FILE_SERVER_URL not set"
        return report
    try:
        url = validate_mirror_url(url)
    except InvalidInput as error:
        logger.error("DATALAYER_FILE_SERVER_URL is not usable: %s", error.message)
        report.skipped = error.message
        return report
    try:
        if not (await services.wallet.get_sync_status()).synced:
            logger.info("Wallet not synced; mirror check postponed")
            report.skipped = "wallet not synced"
            return report
    except ChiaRpcError as error:
        logger.warning("Mirror check postponed, wallet unavailable: %s", error)
        report.skipped = "wallet unavailable"
        return report
    try:
        stores = await mirror_targets(
            services, report, include_external=settings.auto_mirror_external_stores
        )
    except ChiaRpcError as error:
        logger.warning("Mirror check failed, retrying next run: %s", error)
        report.skipped = f"DataLayer unavailable: {error.message}"
        return report
    report.stores = stores
    for store_id in stores:
        # Each store on its own: one failure never stops the others (CADT 3.14 step 4).
        try:
            result = await add_mirror(services, store_id, url)
        except Exception as error:  # Redis or the database: log and go on with the next
            logger.warning("Mirror check of store %s failed: %s", store_id, error)
            report.errors[store_id] = str(error)
            continue
        report.results.append(result)
        if result.status is MirrorAddStatus.FAILED:
            report.errors[store_id] = result.detail
    logger.info("Mirror check: %s", report.summary())
    return report


# ---------------------------------------------------------------------------- mutations


@dataclass(frozen=True)
class MirrorOutcome:
    """A finished mirror mutation: a message, and the mirror when there is one to show."""

    message: str
    mirror: MirrorView | None = None
    done: bool = False


def coin_id_argument(value: str) -> str:
    """A coin id argument (64 hex, 0x optional) normalised, or InvalidInput('coinId')."""
    if not is_store_id(value):  # same shape as a store id: 32 bytes of hex
        raise InvalidInput(
            "coinId must be a coin id of 64 hex characters (with or without 0x)", field="coinId"
        )
    return normalize_store_id(value)


async def add_mirror_request(services: Services, store_id: str, url: str) -> MirrorOutcome:
    """addMirror: checks (read-only, arguments, synced wallet), then add_mirror once."""
    assert_writable(services)
    store_id = store_id_argument(store_id, field="storeId")
    url = validate_mirror_url(url)
    await assert_wallet_synced(services)
    result = await add_mirror(services, store_id, url)
    if result.status is MirrorAddStatus.ADDED:
        return MirrorOutcome(
            f"Mirror of store {store_id} at {url} submitted (fee {result.fee} mojos); it is "
            "listed once its coin confirms",
            result.mirror,
        )
    if result.status is MirrorAddStatus.EXISTS:
        return MirrorOutcome(f"Store {store_id} is already mirrored at {url}", result.mirror)
    if result.status is MirrorAddStatus.IN_FLIGHT:
        return MirrorOutcome(
            f"A mirror of store {store_id} at {url} is already being added", done=True
        )
    if result.status is MirrorAddStatus.INSUFFICIENT_FUNDS:
        raise UpstreamFailure(
            f"Not enough spendable XCH to add a mirror: {result.detail}",
            code=UpstreamCode.INSUFFICIENT_FUNDS,
            service=UpstreamServiceName.WALLET,
        )
    raise UpstreamFailure(f"Could not add the mirror: {result.detail}")


async def remove_mirror_request(services: Services, store_id: str, coin_id: str) -> MirrorOutcome:
    """removeMirror: checks, then delete_mirror of our mirror `coin_id` of `store_id`."""
    assert_writable(services)
    store_id = store_id_argument(store_id, field="storeId")
    coin_id = coin_id_argument(coin_id)
    await assert_wallet_synced(services)
    removed = await remove_mirror(services, store_id, coin_id)
    return MirrorOutcome(
        f"Mirror {coin_id} of store {store_id} removed; its coin is spent at the next block",
        removed,
    )
