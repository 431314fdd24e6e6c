"""DataLayer side of organization operations: subscriptions, sync checks and store reads.

Every Chia error leaves this module as a domain exception (UpstreamFailure, or a more precise
one), so GraphQL clients see a typed error, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from services import mirrors
from services.chia import (
    ChiaBusinessError,
    ChiaErrorKind,
    ChiaRpcError,
    has_error_kind,
    hex_to_text,
    is_invalid_launcher_error,
    is_no_generations_error,
    is_no_subscription_error,
    is_store_id,
    is_store_not_in_local_db_error,
    normalize_store_id,
)
from services.container import Services
from services.errors import (
    DomainError,
    UpstreamFailure,
    UpstreamServiceName,
)
from services.mirrors import MirrorAddStatus
from services.upstream import upstream_failure as shared_upstream_failure

logger = logging.getLogger(__name__)


class StoreNotOnChain(DomainError):
    """subscribe refused: no DataLayer store with this launcher id exists on chain."""

    def __init__(self, store_id: str) -> None:
        super().__init__(f"No DataLayer store {store_id} exists on chain")
        self.store_id = store_id


def upstream_failure(error: ChiaRpcError, action: str) -> UpstreamFailure:
    """The UpstreamFailure for a Chia error met while doing `action` (the shared mapping)."""
    return shared_upstream_failure(error, context=action)


@contextlib.contextmanager
def upstream(action: str) -> Iterator[None]:
    """Turn a Chia error inside the block into UpstreamFailure naming `action`."""
    try:
        yield
    except ChiaRpcError as error:
        raise upstream_failure(error, action) from error


@dataclass(frozen=True)
class StoreSync:
    """How far local DataLayer holds one store (None before anything was downloaded)."""

    store_id: str
    generation: int | None
    target_generation: int | None

    @property
    def synced(self) -> bool:
        """Downloaded up to the chain's generation; 0 is a valid generation (#1531)."""
        return (
            self.generation is not None
            and self.target_generation is not None
            and self.generation >= self.target_generation
        )

    def describe(self) -> str:
        """Progress in words, for messages."""
        if self.generation is None:
            return "nothing downloaded yet"
        return f"generation {self.generation} of {self.target_generation}"


async def store_sync(services: Services, store_id: str) -> StoreSync:
    """The local and on-chain generation of a subscribed or owned store."""
    try:
        status = await services.datalayer.get_sync_status(store_id)
    except ChiaBusinessError as error:
        # Subscribed but nothing downloaded yet reads the same as unknown (chia-two-node 2).
        if is_store_not_in_local_db_error(error):
            return StoreSync(store_id, None, None)
        raise upstream_failure(
            error, f"Could not read the sync status of store {store_id}"
        ) from error
    except ChiaRpcError as error:
        raise upstream_failure(
            error, f"Could not read the sync status of store {store_id}"
        ) from error
    return StoreSync(store_id, status.generation, status.target_generation)


async def read_store(services: Services, store_id: str) -> dict[str, str]:
    """Decoded keys and values of the store's local root (never beyond the local generation)."""
    with upstream(f"Could not read store {store_id}"):
        try:
            response = await services.datalayer.get_keys_values(store_id)
        except ChiaBusinessError as error:
            if is_no_generations_error(error):
                return {}
            raise
    return {
        hex_to_text(entry.key, errors="replace"): hex_to_text(entry.value, errors="replace")
        for entry in response.keys_values
    }


async def local_root(services: Services, store_id: str) -> str | None:
    """The hash of the newest locally held root (None when unknown); never raises."""
    try:
        return await services.datalayer.get_local_root(store_id)
    except ChiaRpcError as error:
        logger.debug("no local root of %s: %s", store_id, error)
        return None


async def owned_store_ids(services: Services) -> set[str]:
    """Stores this wallet owns (empty on a fresh wallet without a DataLayer wallet)."""
    try:
        return set(await services.datalayer.get_owned_stores())
    except ChiaBusinessError as error:
        if has_error_kind(error, ChiaErrorKind.DL_WALLET_NOT_AVAILABLE):
            return set()
        raise upstream_failure(error, "Could not list the stores this wallet owns") from error
    except ChiaRpcError as error:
        raise upstream_failure(error, "Could not list the stores this wallet owns") from error


def store_id_or_none(value: str | None) -> str | None:
    """A store id read from store data, normalised, or None when it is not one."""
    if value is None or not is_store_id(value):
        return None
    return normalize_store_id(value)


class Subscriptions:
    """One operation's view of DataLayer subscriptions (`subscriptions` is read once)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._ids: set[str] | None = None

    async def ids(self) -> set[str]:
        """Ids of the subscribed stores."""
        if self._ids is None:
            with upstream("Could not list DataLayer subscriptions"):
                self._ids = set(await self.services.datalayer.subscriptions())
        return self._ids

    async def contains(self, store_id: str) -> bool:
        """True when DataLayer is subscribed to the store."""
        return store_id in await self.ids()

    async def ensure(self, store_id: str) -> bool:
        """Subscribe unless already subscribed (CADT's wrapper); True when newly subscribed."""
        if await self.contains(store_id):
            return False
        try:
            await self.services.datalayer.subscribe(
                store_id, fee=self.services.settings.default_fee
            )
        except ChiaRpcError as error:
            if is_invalid_launcher_error(error):
                raise StoreNotOnChain(store_id) from error
            raise upstream_failure(error, f"Could not subscribe to store {store_id}") from error
        (await self.ids()).add(store_id)
        await announce_mirror(self.services, store_id)
        return True


async def announce_mirror(services: Services, store_id: str) -> None:
    """Mirror a newly subscribed store when AUTO_MIRROR_EXTERNAL_STORES and a URL are set."""
    settings = services.settings
    if not settings.auto_mirror_external_stores or not settings.datalayer_file_server_url:
        return
    try:
        # add_mirror dedupes per (store, url) across workers and never raises for Chia errors.
        result = await mirrors.add_mirror(services, store_id, settings.datalayer_file_server_url)
    except Exception:  # a mirror is best effort; the subscription stands (CADT 3.4)
        logger.warning("could not mirror subscribed store %s", store_id, exc_info=True)
        return
    if result.status in (MirrorAddStatus.FAILED, MirrorAddStatus.INSUFFICIENT_FUNDS):
        # The mirror-check job retries; the subscription stands.
        logger.warning("could not mirror subscribed store %s: %s", store_id, result.detail)


async def unsubscribe_stores(services: Services, store_ids: Sequence[str]) -> list[str]:
    """Unsubscribe every listed store DataLayer is subscribed to (CADT 3.5).

    Each unsubscribe is retried `unsubscribe_attempts` times, `unsubscribe_wait_seconds` apart;
    "No subscription found" counts as done. Returns the stores unsubscribed; raises
    UpstreamFailure naming every store that could not be unsubscribed.
    """
    subscriptions = Subscriptions(services)
    subscribed = await subscriptions.ids()
    done: list[str] = []
    failed: list[str] = []
    for store_id in dict.fromkeys(store_ids):
        if store_id not in subscribed:
            continue
        error = await _unsubscribe_with_retry(services, store_id)
        if error is None:
            done.append(store_id)
        else:
            failed.append(f"{store_id} ({error.message})")
    if failed:
        raise UpstreamFailure(
            "failed to unsubscribe from the following organization stores: " + ", ".join(failed),
            service=UpstreamServiceName.DATALAYER,
        )
    return done


async def _unsubscribe_with_retry(services: Services, store_id: str) -> ChiaRpcError | None:
    settings = services.settings
    last: ChiaRpcError | None = None
    for attempt in range(settings.unsubscribe_attempts):
        try:
            await services.datalayer.unsubscribe(store_id)
            return None
        except ChiaRpcError as error:
            if is_no_subscription_error(error):
                return None
            last = error
            logger.info(
                "unsubscribe %s failed (attempt %d/%d): %s",
                store_id,
                attempt + 1,
                settings.unsubscribe_attempts,
                error.message,
            )
        if attempt + 1 < settings.unsubscribe_attempts:
            await asyncio.sleep(settings.unsubscribe_wait_seconds)
    return last
