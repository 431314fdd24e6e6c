"""Upstream helpers every long operation shares: wallet readiness, store creation, pushes, reads.

These are CADT's helpers of cadt-domain sections 4.2, 6.1-6.3, written once for create, upgrade,
governance and mirror code:

- `wait_for_spendable_coins`: enough usable coins (and total balance, [later #1728]) before spends;
- `pending_transactions`, `wait_for_all_transactions_to_confirm`: the standard wallet (1) and the
  DataLayer wallet (type 11) settle; the wait proceeds on timeout like CADT's;
- `create_store_with_retry`: create_data_store with the transient-error retry (attempt budget) and
  the coin-shortage retry (time budget); the RPC and the caller's `on_created` bookkeeping run to
  completion even when the task is cancelled, so a created store id is never lost;
- `wait_for_store_confirmation`: a new store's get_root confirms, failing early when one of its
  transactions is rejected;
- `push_changes` and `write_store_data`: batch_update with the pending-root handling and
  push-when-available of 4.2/6.3, and an idempotent "make the store hold these values" on top;
- `read_store_data`, `owned_store_ids`, `assert_store_owned`, `upstream_failure`.

Every wait polls at `services.poll_interval` and is bounded by a `ServiceSettings` knob, so tests
shrink them instead of sleeping. Where a setting counts polls or rounds (CADT polled every 30 s)
the helpers also honour CADT's time limit, so polling faster never ends a wait sooner than CADT.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from services.chia import (
    ZERO_HASH,
    Change,
    ChiaBusinessError,
    ChiaRpcError,
    ChiaTransportError,
    WalletClient,
    hex_to_text,
    is_coin_shortage_error,
    is_failed_to_get_root_error,
    is_key_already_present_error,
    is_latest_root_confirmed_error,
    is_no_change_error,
    is_no_generations_error,
    is_not_owned_error,
    is_pending_root_error,
    is_singleton_pending_error,
    is_transient_wallet_error,
    is_wallet_unreachable_error,
    normalize_store_id,
    text_to_hex,
)
from services.chia.errors import ChiaErrorKind, has_error_kind
from services.chia.models import CreateDataStoreResponse, Root, TransactionRecord
from services.chia.models.wallet import WalletType
from services.container import Services
from services.errors import (
    PreconditionFailed,
    UpstreamCode,
    UpstreamFailure,
    UpstreamServiceName,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

STANDARD_WALLET_ID = 1
#: Log the "still waiting" lines of long waits at most this often (CADT: 30 s).
PROGRESS_LOG_SECONDS = 30.0
#: Push-when-available: every this many waiting rounds, clear fully rejected transactions.
HEALTH_CHECK_EVERY_ROUNDS = 5


# ------------------------------------------------------------------------------ errors


class CoinWaitTimeout(UpstreamFailure):
    """Not enough usable coins appeared before the time limit."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message, code=UpstreamCode.INSUFFICIENT_FUNDS, service=UpstreamServiceName.WALLET
        )


class StoreRejected(UpstreamFailure):
    """A transaction creating or updating a store was rejected by the network."""

    def __init__(self, message: str, *, store_id: str) -> None:
        super().__init__(message, service=UpstreamServiceName.DATALAYER)
        self.store_id = store_id


class StoreConfirmationTimeout(UpstreamFailure):
    """A new store did not confirm in time (its transaction may be stuck)."""

    def __init__(self, message: str, *, store_id: str) -> None:
        super().__init__(message, service=UpstreamServiceName.DATALAYER)
        self.store_id = store_id


class PushFailed(UpstreamFailure):
    """A changelist could not be pushed to a store."""

    def __init__(self, message: str, *, store_id: str, permanent: bool = False) -> None:
        super().__init__(message, service=UpstreamServiceName.DATALAYER)
        self.store_id = store_id
        self.permanent = permanent


def upstream_failure(error: ChiaRpcError, *, context: str | None = None) -> UpstreamFailure:
    """Map a Chia RPC error to UpstreamFailure (WALLET_NOT_SYNCED, INSUFFICIENT_FUNDS, ...)."""
    text = error.message
    prefix = f"{context}: " if context else ""
    service = (
        UpstreamServiceName.WALLET if error.service == "wallet" else UpstreamServiceName.DATALAYER
    )
    code = UpstreamCode.UPSTREAM_UNAVAILABLE
    if isinstance(error, ChiaBusinessError):
        if has_error_kind(error, ChiaErrorKind.WALLET_NOT_SYNCED):
            code, service = UpstreamCode.WALLET_NOT_SYNCED, UpstreamServiceName.WALLET
        elif is_coin_shortage_error(error):
            code, service = UpstreamCode.INSUFFICIENT_FUNDS, UpstreamServiceName.WALLET
        elif is_wallet_unreachable_error(error) or has_error_kind(
            error, ChiaErrorKind.DL_WALLET_NOT_AVAILABLE
        ):
            service = UpstreamServiceName.WALLET
        message = f"{prefix}{text}"
    else:
        where = "Chia wallet" if service is UpstreamServiceName.WALLET else "Chia DataLayer"
        message = f"{prefix}the {where} RPC is unavailable ({error.method}: {text})"
    return UpstreamFailure(message, code=code, service=service)


# ------------------------------------------------------------------------------ helpers


class _Budget:
    """A wait limit counted in rounds AND seconds: exhausted only when both are used up."""

    def __init__(self, rounds: int, seconds: float) -> None:
        self.rounds = rounds
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + seconds
        self.used = 0

    def spend(self) -> bool:
        """Count one round; True while the budget lasts."""
        self.used += 1
        return self.used < self.rounds or self.loop.time() < self.deadline

    @property
    def elapsed_rounds(self) -> int:
        """Rounds spent so far."""
        return self.used


class _Throttle:
    """Lets a message through at most once per `seconds`."""

    def __init__(self, seconds: float = PROGRESS_LOG_SECONDS) -> None:
        self.seconds = seconds
        self.loop = asyncio.get_running_loop()
        self.last: float | None = None

    def ready(self) -> bool:
        """True when the message may be logged now."""
        now = self.loop.time()
        if self.last is None or now - self.last >= self.seconds:
            self.last = now
            return True
        return False


async def run_to_completion(work: Awaitable[T]) -> T:
    """Await `work` so that cancelling the caller lets it finish first, then re-raises.

    For the few steps whose result must not be lost halfway: a store created by Chia whose id is
    not yet saved would otherwise be created again on resume.
    """
    task = asyncio.ensure_future(work)
    interrupted = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                break
            interrupted = True
    if interrupted:
        if not task.cancelled() and task.exception() is not None:
            logger.warning("interrupted step failed: %s", task.exception())
        raise asyncio.CancelledError
    return task.result()


# ------------------------------------------------------------------------------ wallet


_dl_wallet_ids: weakref.WeakKeyDictionary[WalletClient, int] = weakref.WeakKeyDictionary()


async def datalayer_wallet_id(services: Services) -> int | None:
    """The id of the DataLayer wallet (type 11), None before the first store exists; cached."""
    cached = _dl_wallet_ids.get(services.wallet)
    if cached is not None:
        return cached
    wallets = await services.wallet.get_wallets()
    for wallet in wallets.wallets:
        if wallet.type == WalletType.DATA_LAYER:
            _dl_wallet_ids[services.wallet] = wallet.id
            return wallet.id
    return None


async def unconfirmed_transactions(services: Services, wallet_id: int) -> list[TransactionRecord]:
    """Unconfirmed transactions of one wallet (rejected ones included)."""
    records = await services.wallet.get_transactions(
        wallet_id, sort_key="RELEVANCE", confirmed=False
    )
    return [record for record in records if not record.confirmed]


async def pending_transactions(services: Services) -> list[TransactionRecord]:
    """Unconfirmed, not rejected transactions of the standard and the DataLayer wallet.

    Rejected ones never confirm; counting them would turn every wait into a timeout.
    """
    wallet_ids = [STANDARD_WALLET_ID]
    dl_wallet = await datalayer_wallet_id(services)
    if dl_wallet is not None:
        wallet_ids.append(dl_wallet)
    pending: list[TransactionRecord] = []
    for wallet_id in wallet_ids:
        pending.extend(
            tx for tx in await unconfirmed_transactions(services, wallet_id) if not tx.rejected
        )
    return pending


async def wait_for_all_transactions_to_confirm(
    services: Services, *, limit_seconds: float | None = None
) -> bool:
    """Wait until both wallets have no pending transaction; False (and proceed) on timeout."""
    limit = (
        services.settings.transactions_confirm_timeout_seconds
        if limit_seconds is None
        else limit_seconds
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    throttle = _Throttle()
    while True:
        try:
            pending = await pending_transactions(services)
        except ChiaRpcError as error:
            logger.warning("could not list wallet transactions: %s", error)
            pending = None
        if pending == []:
            return True
        if loop.time() >= deadline:
            logger.warning(
                "transactions still unconfirmed after %gs (%s); proceeding",
                limit,
                ", ".join(tx.name[:12] for tx in pending or []) or "wallet unreachable",
            )
            return False
        if pending and throttle.ready():
            logger.info("waiting for %d wallet transaction(s) to confirm", len(pending))
        await asyncio.sleep(services.poll_interval)


@dataclass(frozen=True)
class CoinReadiness:
    """What `wait_for_spendable_coins` found."""

    coin_count: int
    total_mojos: int


async def wait_for_spendable_coins(
    services: Services,
    *,
    required: int,
    min_mojos_per_coin: int | None = None,
    min_total_mojos: int | None = None,
    limit_seconds: float | None = None,
) -> CoinReadiness:
    """Wait for `required` unspent coins of `min_mojos_per_coin`+ mojos (CoinWaitTimeout if not).

    Defaults: coins of default_coin_amount + default_fee, a total of `required` such coins
    [later #1728], spendable_coins_timeout_seconds. Waits while the standard wallet has pending
    transactions: their change is not spendable yet.
    """
    settings = services.settings
    per_coin = (
        settings.default_coin_amount + settings.default_fee
        if min_mojos_per_coin is None
        else min_mojos_per_coin
    )
    total_needed = required * per_coin if min_total_mojos is None else min_total_mojos
    limit = settings.spendable_coins_timeout_seconds if limit_seconds is None else limit_seconds
    loop = asyncio.get_running_loop()
    started = loop.time()
    throttle = _Throttle()
    warned_slow = False
    while True:
        try:
            pending = [
                tx
                for tx in await unconfirmed_transactions(services, STANDARD_WALLET_ID)
                if not tx.rejected
            ]
            if pending:
                if throttle.ready():
                    logger.info("waiting for pending transactions to confirm before spending")
            else:
                records = (
                    await services.wallet.get_coin_records(
                        wallet_id=STANDARD_WALLET_ID, unspent_only=True
                    )
                ).coin_records
                usable = [r for r in records if r.spent_height == 0 and r.amount >= per_coin]
                total = sum(r.amount for r in usable)
                if len(usable) >= required and total >= total_needed:
                    return CoinReadiness(coin_count=len(usable), total_mojos=total)
                if throttle.ready():
                    logger.info(
                        "%d/%d usable coins of %d+ mojos (total %d mojos)",
                        len(usable),
                        required,
                        per_coin,
                        total,
                    )
                if not warned_slow and loop.time() - started > 60:
                    warned_slow = True
                    logger.warning(
                        "only %d/%d usable coins available after %.0fs; coin management may "
                        "need to split coins first",
                        len(usable),
                        required,
                        loop.time() - started,
                    )
        except ChiaRpcError as error:
            logger.warning("could not read the wallet's coins: %s", error)
        if loop.time() - started >= limit:
            raise CoinWaitTimeout(
                f"Timeout waiting for {required} coins of {per_coin}+ mojos after {limit:g}s"
            )
        await asyncio.sleep(services.poll_interval)


async def clear_rejected_transactions(services: Services) -> int:
    """Delete unconfirmed transactions of a wallet whose every unconfirmed one was rejected.

    delete_unconfirmed_transactions is wallet-wide, so a wallet with any live pending
    transaction is left alone. Returns how many wallets were cleared; never raises.
    """
    cleared = 0
    try:
        wallet_ids = [STANDARD_WALLET_ID]
        dl_wallet = await datalayer_wallet_id(services)
        if dl_wallet is not None:
            wallet_ids.append(dl_wallet)
        for wallet_id in wallet_ids:
            unconfirmed = await unconfirmed_transactions(services, wallet_id)
            if unconfirmed and all(tx.rejected for tx in unconfirmed):
                logger.warning(
                    "clearing %d rejected transaction(s) of wallet %d", len(unconfirmed), wallet_id
                )
                await services.wallet.delete_unconfirmed_transactions(wallet_id)
                cleared += 1
    except ChiaRpcError as error:
        logger.warning("could not clear rejected transactions: %s", error)
    return cleared


async def rejection_of(services: Services, tx_ids: Iterable[str]) -> str | None:
    """Why one of `tx_ids` was rejected by the network, or None when none was."""
    wanted = {tx_id.lower().removeprefix("0x") for tx_id in tx_ids}
    if not wanted:
        return None
    wallet_ids = [STANDARD_WALLET_ID]
    dl_wallet = await datalayer_wallet_id(services)
    if dl_wallet is not None:
        wallet_ids.append(dl_wallet)
    for wallet_id in wallet_ids:
        for tx in await unconfirmed_transactions(services, wallet_id):
            if tx.name in wanted and tx.rejected:
                reasons = sorted({entry.error for entry in tx.sent_to if entry.error})
                return ", ".join(reasons) or "rejected by every peer"
    return None


# ------------------------------------------------------------------------------ stores


async def create_store_with_retry(
    services: Services,
    *,
    fee: int | None = None,
    on_created: Callable[[CreateDataStoreResponse], Awaitable[None]] | None = None,
    label: str = "store",
) -> CreateDataStoreResponse:
    """create_data_store with CADT's retries (6.2): attempts for transient, time for shortages.

    Transient wallet errors retry up to transient_retry_attempts, transient_retry_wait_seconds
    apart; coin shortages retry for coin_shortage_budget_seconds; anything else fails at once.
    Each attempt and `on_created` (the caller saving the id) run to completion if the caller is
    cancelled meanwhile: a store Chia created is always handed over.
    """
    settings = services.settings
    amount = settings.default_fee if fee is None else fee
    loop = asyncio.get_running_loop()
    transient_failures = 0
    shortage_deadline: float | None = None

    async def attempt() -> CreateDataStoreResponse:
        response = await services.datalayer.create_data_store(fee=amount, verbose=True)
        if on_created is not None:
            await on_created(response)
        return response

    while True:
        try:
            return await run_to_completion(attempt())
        except ChiaBusinessError as error:
            if is_coin_shortage_error(error):
                now = loop.time()
                if shortage_deadline is None:
                    shortage_deadline = now + settings.coin_shortage_budget_seconds
                if now >= shortage_deadline:
                    raise
                logger.info("%s: coin shortage (%s); retrying", label, error.message)
                wait = max(settings.transient_retry_wait_seconds, services.poll_interval)
            elif is_transient_wallet_error(error):
                transient_failures += 1
                if transient_failures >= settings.transient_retry_attempts:
                    raise
                logger.info(
                    "%s: transient wallet error (%s); attempt %d/%d",
                    label,
                    error.message,
                    transient_failures,
                    settings.transient_retry_attempts,
                )
                wait = settings.transient_retry_wait_seconds
            else:
                raise
        await asyncio.sleep(wait)


async def wait_for_store_confirmation(
    services: Services,
    store_id: str,
    *,
    tx_ids: Iterable[str] = (),
    limit_seconds: float | None = None,
) -> Root:
    """Poll get_root until the store is confirmed; StoreRejected early, timeout at the limit.

    The limit is store_confirmation_max_polls polls, but never less than `limit_seconds`
    (default creation_timeout_seconds, CADT's STORE_CONFIRMATION_TIMEOUT).
    """
    settings = services.settings
    store_id = normalize_store_id(store_id)
    wanted_txs = list(tx_ids)
    seconds = settings.creation_timeout_seconds if limit_seconds is None else limit_seconds
    budget = _Budget(settings.store_confirmation_max_polls, seconds)
    while True:
        try:
            root = await services.datalayer.get_root(store_id)
            if root.confirmed:
                return root
        except ChiaBusinessError as error:
            # Unknown until confirmed ("Failed to get root"), or the wallet is busy: keep polling.
            if not (
                is_failed_to_get_root_error(error)
                or is_transient_wallet_error(error)
                or is_wallet_unreachable_error(error)
            ):
                raise
        except ChiaTransportError as error:
            logger.info("get_root of %s failed (%s); still waiting", store_id, error)
        if wanted_txs and budget.elapsed_rounds % HEALTH_CHECK_EVERY_ROUNDS == 1:
            try:
                reason = await rejection_of(services, wanted_txs)
            except ChiaRpcError as error:
                logger.info("could not check transactions of %s: %s", store_id, error)
                reason = None
            if reason is not None:
                raise StoreRejected(
                    f"Store {store_id} was rejected by the network: {reason}", store_id=store_id
                )
        if not budget.spend():
            raise StoreConfirmationTimeout(
                f"Store {store_id} did not confirm after {budget.elapsed_rounds} polls. "
                "It's possible the transaction is stuck.",
                store_id=store_id,
            )
        await asyncio.sleep(services.poll_interval)


async def read_store_data(
    services: Services, store_id: str, *, root_hash: str | None = None
) -> dict[str, str]:
    """The store's keys and values as UTF-8 text, sorted by key (Chia answers in tree order)."""
    response = await services.datalayer.get_keys_values(store_id, root_hash=root_hash)
    pairs = [
        (hex_to_text(item.key, errors="replace"), hex_to_text(item.value, errors="replace"))
        for item in response.keys_values
    ]
    return dict(sorted(pairs))


async def owned_store_ids(services: Services) -> set[str]:
    """Ids of the confirmed stores this wallet owns (none before its first store exists)."""
    try:
        return set(await services.datalayer.get_owned_stores())
    except ChiaBusinessError as error:
        # A fresh wallet has no DataLayer wallet yet: it owns nothing (chia-rpc.md).
        if has_error_kind(error, ChiaErrorKind.DL_WALLET_NOT_AVAILABLE):
            return set()
        raise


async def assert_store_owned(services: Services, store_id: str, *, what: str = "store") -> None:
    """PreconditionFailed unless this wallet owns the store."""
    store_id = normalize_store_id(store_id)
    if store_id not in await owned_store_ids(services):
        raise PreconditionFailed(f"{what} id {store_id} is not owned by this chia wallet")


async def has_lost_local_data(services: Services, store_id: str) -> bool:
    """An owned store whose local copy is gone (generation 0, zero root, target > 0; 1.5)."""
    try:
        status = await services.datalayer.get_sync_status(store_id)
    except ChiaRpcError:
        return False  # not subscribed or unreachable: nothing to conclude
    return status.generation == 0 and status.root_hash == ZERO_HASH and status.target_generation > 0


@dataclass(frozen=True)
class PushOutcome:
    """What a push did: a new root was submitted (`tx_id`), or Chia already had the change."""

    pushed: bool
    tx_id: str | None = None


async def _store_available(services: Services, store_id: str) -> bool:
    """No pending wallet transaction and the store's latest root is confirmed."""
    try:
        if await pending_transactions(services):
            return False
        root = await services.datalayer.get_root(store_id)
    except ChiaBusinessError as error:
        if is_not_owned_error(error):
            raise
        return False
    except ChiaTransportError:
        return False
    return root.confirmed


async def push_changes(
    services: Services,
    store_id: str,
    changes: Sequence[Change],
    *,
    fee: int | None = None,
    wait_until_available: bool = True,
) -> PushOutcome:
    """batch_update with the pending-root handling of 4.2 and push-when-available of 6.3.

    - waits (when asked) until the wallets have no pending transaction and the store's root is
      confirmed; a store that lost its local data fails at once;
    - "Already have a pending root": wait and retry; once the root has stayed pending for
      pending_root_grace_seconds over two sightings with settled wallets, clear it as orphaned;
    - "Key already present", "no change", "Latest root is already confirmed": success;
    - "is not owned by DL Wallet": permanent PushFailed;
    - "Singleton ... is currently pending" (the previous spend is unconfirmed): wait and retry;
    - transient wallet errors: retried.
    Rounds: push_max_attempts, but never less than transactions_confirm_timeout_seconds.
    """
    settings = services.settings
    store_id = normalize_store_id(store_id)
    amount = settings.default_fee if fee is None else fee
    loop = asyncio.get_running_loop()
    budget = _Budget(settings.push_max_attempts, settings.transactions_confirm_timeout_seconds)
    pending_root_since: float | None = None
    pending_root_sightings = 0
    last_error = "the store never became available"
    while True:
        if wait_until_available:
            if await has_lost_local_data(services, store_id):
                raise PushFailed(
                    f"Store {store_id} has lost its local DataLayer data; writes would be "
                    "discarded. Restore the DataLayer database before writing.",
                    store_id=store_id,
                    permanent=True,
                )
            try:
                available = await _store_available(services, store_id)
            except ChiaBusinessError as error:
                raise PushFailed(
                    f"Store {store_id}: {error.message}", store_id=store_id, permanent=True
                ) from error
            if not available:
                if budget.elapsed_rounds % HEALTH_CHECK_EVERY_ROUNDS == 1:
                    await clear_rejected_transactions(services)
                if not budget.spend():
                    break
                await asyncio.sleep(services.poll_interval)
                continue
        try:
            response = await services.datalayer.batch_update(store_id, changes, fee=amount)
            return PushOutcome(pushed=True, tx_id=response.tx_id)
        except ChiaBusinessError as error:
            last_error = error.message
            if (
                is_key_already_present_error(error)
                or is_no_change_error(error)
                or is_latest_root_confirmed_error(error)
            ):
                return PushOutcome(pushed=False)
            if is_not_owned_error(error):
                raise PushFailed(
                    f"Store {store_id}: {error.message}", store_id=store_id, permanent=True
                ) from error
            if is_pending_root_error(error):
                now = loop.time()
                pending_root_sightings += 1
                pending_root_since = now if pending_root_since is None else pending_root_since
                if (
                    pending_root_sightings >= 2
                    and now - pending_root_since >= settings.pending_root_grace_seconds
                    and not await _wallets_busy(services)
                ):
                    await _clear_orphaned_root(services, store_id)
                    pending_root_since, pending_root_sightings = None, 0
            elif is_singleton_pending_error(error):
                # Real Chia 2.7.5: the singleton's previous spend is still unconfirmed; the
                # next block settles it, so this is a wait, not a failure.
                pass
            elif not is_transient_wallet_error(error):
                raise PushFailed(f"Store {store_id}: {error.message}", store_id=store_id) from error
        except ChiaTransportError as error:
            if error.request_sent:
                # The update may have arrived; the next round sees a pending root or the data.
                logger.warning("batch_update of %s may not have arrived: %s", store_id, error)
            last_error = str(error)
        if not budget.spend():
            break
        await asyncio.sleep(services.poll_interval)
    wallet_hint = await datalayer_wallet_id(services) or STANDARD_WALLET_ID
    raise PushFailed(
        f"Changes could not be pushed to store {store_id} after {budget.elapsed_rounds} "
        f"rounds ({last_error}). If a transaction is stuck, run "
        f"'chia wallet delete_unconfirmed_transactions -i {wallet_hint}'.",
        store_id=store_id,
    )


async def _wallets_busy(services: Services) -> bool:
    try:
        return bool(await pending_transactions(services))
    except ChiaRpcError:
        return True


async def _clear_orphaned_root(services: Services, store_id: str) -> None:
    try:
        result = await services.datalayer.clear_pending_roots(store_id)
    except ChiaRpcError as error:
        logger.warning("could not clear the pending root of %s: %s", store_id, error)
        return
    if result.cleared:
        logger.warning("cleared an orphaned pending root of store %s", store_id)


def changes_for(current: Mapping[str, str], wanted: Mapping[str, str]) -> list[Change]:
    """The changelist turning `current` into a store holding `wanted` (delete + insert on change).

    Keys not in `wanted` are left alone; a bare insert on an existing key would fail.
    """
    changes: list[Change] = []
    for key, value in wanted.items():
        if key in current:
            if current[key] == value:
                continue
            changes.append(Change.delete(text_to_hex(key)))
        changes.append(Change.insert(text_to_hex(key), text_to_hex(value)))
    return changes


async def _current_data(services: Services, store_id: str) -> dict[str, str] | None:
    """The store's data, or None while it is not readable yet."""
    try:
        return await read_store_data(services, store_id)
    except ChiaBusinessError as error:
        if (
            is_no_generations_error(error)
            or is_failed_to_get_root_error(error)
            or is_transient_wallet_error(error)
            or is_wallet_unreachable_error(error)
        ):
            return None
        raise
    except ChiaTransportError:
        return None


async def write_store_data(
    services: Services,
    store_id: str,
    values: Mapping[str, str],
    *,
    fee: int | None = None,
    wait_until_available: bool = True,
    wait_for_confirmation: bool = True,
) -> bool:
    """Make the store hold `values` (text keys and values); idempotent.

    Reads the store first and pushes only what differs, so a retried or resumed write never
    duplicates a key. With `wait_for_confirmation` it returns once the values are readable.
    Returns True when a changelist was pushed, False when the store already held the values.
    """
    store_id = normalize_store_id(store_id)
    if wait_until_available:
        await wait_for_store_confirmation(services, store_id)
    pushed = False
    # Two rounds: a push refused as "already there" (our own earlier pending root) is re-read.
    for _ in range(2):
        current = await _current_data(services, store_id)
        changes = changes_for(current or {}, values)
        if current is not None and not changes:
            return pushed
        outcome = await push_changes(
            services, store_id, changes, fee=fee, wait_until_available=wait_until_available
        )
        pushed = pushed or outcome.pushed
        if not wait_for_confirmation:
            return pushed
        if await wait_for_store_values(services, store_id, values):
            return pushed
    raise PushFailed(
        f"Store {store_id} does not hold the written values after the push", store_id=store_id
    )


async def wait_for_store_values(
    services: Services, store_id: str, values: Mapping[str, str]
) -> bool:
    """Poll until the store shows `values` (a write confirmed); False if it settled otherwise."""
    settings = services.settings
    budget = _Budget(settings.store_confirmation_max_polls, settings.creation_timeout_seconds)
    settled_rounds = 0
    while True:
        current = await _current_data(services, store_id)
        if current is not None and all(current.get(k) == v for k, v in values.items()):
            return True
        try:
            settled = current is not None and not await pending_transactions(services)
        except ChiaRpcError:
            settled = False
        # Nothing pending and still different for a few polls: our write is not coming (it was
        # refused as "already there" by a root that then changed, or it was dropped).
        settled_rounds = settled_rounds + 1 if settled else 0
        if settled_rounds >= settings.write_settled_mismatch_rounds:
            return False
        if not budget.spend():
            return False
        await asyncio.sleep(services.poll_interval)
