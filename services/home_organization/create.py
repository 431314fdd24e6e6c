"""Create the home organization: the mutation's checks, then the resumable state machine (3.1).

The mutation (`start_creation`) checks in CADT's order (2.4): read-only, a persisted creation
that is still running, the lock, then validation, which releases the lock on every failure.
It persists the INITIALIZING record under the lock before it enqueues the job, so an accepted
request survives a lost job (the database is the record, the queue only the trigger).

The job (`run_creation_job`) runs the state machine under the token it was given. Every step
re-reads what is already done before writing: a store id once saved is never created again,
a store whose creation was interrupted after Chia made it is adopted on resume, and data is
pushed only where the store does not hold it yet. A cancelled job (worker shutdown) keeps the
lock: arq runs it again and the same token carries on. A store creation whose answer was lost
after the request was sent (a read timeout, a dropped connection) may have created the store:
the run stops without failing (record and PENDING row kept, lock released) and the recovery
resumes it, adopting what Chia created. Any other failure saves FAILED with the error first
[#1546], then deletes the PENDING row, then releases the lock with the error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from services.chia import ZERO_HASH, ChiaRpcError, ChiaTransportError
from services.chia.models import CreateDataStoreResponse
from services.container import Services
from services.creation_state import (
    STORE_KINDS,
    WRITTEN_STORES,
    CreationRecord,
    CreationState,
)
from services.db.models import Organization, utcnow
from services.domain import LockSnapshot
from services.errors import (
    Conflict,
    ConflictReason,
    DomainError,
    PreconditionFailed,
)
from services.fencing import Fence, StaleLockHolder
from services.guards import (
    acquire_or_conflict,
    assert_datalayer_available,
    assert_wallet_synced,
    assert_writable,
    lock_conflict,
)
from services.home_organization.common import (
    CREATE_JOB,
    PENDING_ORG_UID,
    clear_record,
    creation_label,
    delete_pending_row,
    delete_rows,
    describe_failure,
    ensure_pending_row,
    find_home_row,
    home_row,
    known_store_ids,
    load_record,
    run_mirror_check_once,
    save_record,
    validate_icon,
    validate_name,
    version_tag,
)
from services.oplock import INITIAL_STATUS
from services.upstream import (
    CoinWaitTimeout,
    StoreRejected,
    clear_rejected_transactions,
    create_store_with_retry,
    owned_store_ids,
    read_store_data,
    wait_for_all_transactions_to_confirm,
    wait_for_spendable_coins,
    wait_for_store_confirmation,
    write_store_data,
)

logger = logging.getLogger(__name__)

# Lock status strings of the 3.1 table (plus the coin wait, which CADT does not announce).
STATUS_COINS = "Waiting for spendable coins"
STATUS_CREATING = "Creating stores on blockchain"
STATUS_CONFIRMING = "Waiting for stores to confirm on blockchain"
STATUS_WRITING = "Writing data to stores"
STATUS_FINALIZING = "Finalizing organization record"
STATUS_COMPLETE = "Organization creation complete"

TIMED_OUT_MESSAGE = "Organization creation timed out after maximum retries"


@dataclass(frozen=True)
class AcceptedOperation:
    """A long operation holds the lock and runs as a job."""

    message: str
    operation_status: LockSnapshot
    job_id: str


class CreationFailed(DomainError):
    """The creation stopped; `message` is what creationStatus.error shows."""


class CreationInterrupted(DomainError):
    """Chia may have done what this run could not confirm: stop, the recovery resumes it."""


def creation_in_progress(services: Services, record: CreationRecord | None) -> bool:
    """A persisted creation that is neither finished nor stale blocks a new one (2.4, #1546)."""
    if record is None or record.state.terminal:
        return False
    timeout = timedelta(seconds=services.settings.creation_timeout_seconds)
    return not record.is_stale(utcnow(), timeout)


async def creation_in_progress_conflict(services: Services, version: str) -> Conflict:
    """The Conflict for a persisted, still running creation: reason CREATION_IN_PROGRESS
    (checked before the lock, domain 2.4).

    While an operation holds the lock (the creation is live, not "from a previous session")
    it carries the lock's message and live operationStatus; otherwise none (the contract's
    "may be null"). Either way nothing was acquired or released.
    """
    live = await lock_conflict(services)
    if live.operation_status is not None:
        return Conflict(
            live.message,
            reason=ConflictReason.CREATION_IN_PROGRESS,
            operation_status=live.operation_status,
        )
    return Conflict(
        f"A {version_tag(version)} organization creation is still in progress (from a previous "
        "session). Follow it with the creationStatus query or subscription.",
        reason=ConflictReason.CREATION_IN_PROGRESS,
        operation_status=None,
    )


async def assert_no_home_organization(services: Services, version: str) -> None:
    """PreconditionFailed when a home organization exists, or a V1 one on a V2 node."""
    tag = version_tag(version)
    async with services.db.session() as session:
        if await find_home_row(session, version) is not None:
            raise PreconditionFailed(f"{tag} home organization already exists")
        if version == "v2" and await find_home_row(session, "v1") is not None:
            raise PreconditionFailed(
                "V1 organization detected. Please use the upgradeHomeOrganization mutation "
                "to upgrade it to V2."
            )


def new_record(*, name: str, icon: str | None, version: str) -> CreationRecord:
    """A fresh INITIALIZING record."""
    return CreationRecord(
        state=CreationState.INITIALIZING,
        name=name,
        icon=icon,
        data_version=version,
        api_version=version,
    )


async def start_creation(services: Services, *, name: str, icon: str | None) -> AcceptedOperation:
    """createHomeOrganization: checks, the lock, the persisted intent, then the job."""
    assert_writable(services)
    version = services.settings.data_model_version.value
    if creation_in_progress(services, await load_record(services, version)):
        raise await creation_in_progress_conflict(services, version)
    label = creation_label(version)
    token = await acquire_or_conflict(services, label)
    fence = Fence(services.lock, token)
    wrote_record = False
    try:
        clean_name = validate_name(name)
        clean_icon = validate_icon(icon)
        # Re-read under the lock: a creation may have started between the check and acquire.
        record = await load_record(services, version)
        if creation_in_progress(services, record):
            raise Conflict(
                f"A {version_tag(version)} organization creation started meanwhile.",
                reason=ConflictReason.CREATION_IN_PROGRESS,
            )
        await assert_no_home_organization(services, version)
        await assert_wallet_synced(services)
        await assert_datalayer_available(services)
        snapshot = await services.lock.status() or LockSnapshot(label, INITIAL_STATUS, utcnow())
        if record is None or record.state.terminal:
            await save_record(
                services, new_record(name=clean_name, icon=clean_icon, version=version), fence
            )
            wrote_record = True
        # A stale record is left as it is: the job resumes it (3.2) rather than starting over.
        job_id = f"{CREATE_JOB}:{token}"
        if not await services.queue.enqueue(
            CREATE_JOB, token, clean_name, clean_icon, job_id=job_id
        ):
            raise RuntimeError(f"job {job_id} is already queued")
    except BaseException:
        if wrote_record:
            try:
                await clear_record(services, version, fence)
            except Exception:
                logger.warning("could not remove the creation record", exc_info=True)
        await services.lock.release(token)
        raise
    return AcceptedOperation(
        message=(
            f"A {version_tag(version)} home organization is being created. Follow it with the "
            "creationStatus or operationProgress subscription."
        ),
        operation_status=snapshot,
        job_id=job_id,
    )


async def run_creation_job(services: Services, *, token: str, name: str, icon: str | None) -> str:
    """The create_home_organization job: run the creation under `token`, release it at the end.

    A token that no longer holds the lock (taken over after the TTL, or released) does nothing:
    whoever holds the lock now owns the creation. On cancellation the lock is kept for the
    re-run of this job; a StaleLockHolder cannot release anything.
    """
    if not await services.lock.is_holder(token):
        logger.info("creation job: token %s no longer holds the lock; nothing to do", token)
        return "skipped: the lock token was superseded or released"
    release = True
    error: str | None = None
    try:
        org_uid = await run_creation(services, token=token, name=name, icon=icon)
        return f"created home organization {org_uid}"
    except asyncio.CancelledError:
        release = False  # arq runs this job again and the same token resumes the creation
        raise
    except StaleLockHolder as stale:
        release = False
        logger.warning("creation job stopped: %s", stale.message)
        return f"stopped: {stale.message}"
    except CreationInterrupted as interrupted:
        # The record stays as it is (not FAILED): the recovery resumes and adopts the stores.
        error = interrupted.message
        logger.warning("home organization creation interrupted: %s", error)
        return f"interrupted: {error}"
    except Exception as failure:
        error = describe_failure(failure)
        logger.warning("home organization creation failed: %s", error)
        return f"failed: {error}"
    finally:
        if release:
            await services.lock.release(token, error=error)


async def run_creation(services: Services, *, token: str, name: str, icon: str | None) -> str:
    """Run (or resume) the creation state machine under `token`; returns the orgUid."""
    version = services.settings.data_model_version.value
    return await _Creation(services, Fence(services.lock, token), version).execute(name, icon)


class _Creation:
    """One run of the state machine over the persisted record."""

    def __init__(self, services: Services, fence: Fence, version: str) -> None:
        self.services = services
        self.settings = services.settings
        self.fence = fence
        self.version = version
        self._record: CreationRecord | None = None
        # Parallel steps update the one record; saves go one at a time.
        self._save_lock = asyncio.Lock()
        # Transaction ids per store of THIS run (a resumed run cannot tell them apart).
        self._tx_ids: dict[str, list[str]] = {}

    @property
    def record(self) -> CreationRecord:
        assert self._record is not None
        return self._record

    async def execute(self, name: str, icon: str | None) -> str:
        """The whole run; failures end as FAILED, cancellation and stale tokens leave all as is."""
        await self.fence.assert_current()
        existing = await home_row(self.services, self.version)
        record = await load_record(self.services, self.version)
        if existing is not None:
            # Done already (e.g. stopped after finalizing): tidy up, create nothing.
            if record is not None and not record.state.terminal:
                await clear_record(self.services, self.version, self.fence)
            await delete_pending_row(self.services, self.version, self.fence)
            return existing.org_uid
        try:
            await self._prepare(record, name, icon)
            if self.version == "v2" and await home_row(self.services, "v1") is not None:
                raise CreationFailed(
                    "V1 organization detected. Please use the upgradeHomeOrganization mutation."
                )
            await ensure_pending_row(self.services, self.version, self.fence)
            return await self._advance()
        except (asyncio.CancelledError, StaleLockHolder, CreationInterrupted):
            raise
        except Exception as error:
            message = describe_failure(error)
            await self._fail(message)
            if isinstance(error, CreationFailed):
                raise
            raise CreationFailed(message) from error

    # ------------------------------------------------------------------ bookkeeping

    async def _save(self) -> None:
        await save_record(self.services, self.record, self.fence)

    async def _status(self, status: str) -> None:
        org_uid = self._record.stores["orgUid"].id if self._record is not None else None
        if not await self.services.lock.update_status(self.fence.token, status, org_uid=org_uid):
            raise StaleLockHolder(
                f"the org-operation lock token {self.fence.token} was superseded; stopping"
            )

    async def _fail(self, message: str) -> None:
        # [#1546] FAILED first, then PENDING, each on its own: one failing must not skip the other.
        if self._record is not None:
            self._record.state = CreationState.FAILED
            self._record.error = message
            try:
                await self._save()
            except Exception:
                logger.warning("could not save the FAILED creation record", exc_info=True)
        try:
            await delete_pending_row(self.services, self.version, self.fence)
        except Exception:
            logger.warning("could not delete the PENDING row", exc_info=True)

    async def _prepare(self, record: CreationRecord | None, name: str, icon: str | None) -> None:
        """Start fresh, or resume (a stale record counts a retry, 3.2)."""
        now = utcnow()
        if record is None or record.state.terminal:
            self._record = new_record(name=name, icon=icon, version=self.version)
            await self._save()
            return
        self._record = record
        timeout = timedelta(seconds=self.settings.creation_timeout_seconds)
        if record.is_stale(now, timeout):
            record.retry_count += 1
            if record.retry_count >= self.settings.creation_max_retries:
                raise CreationFailed(TIMED_OUT_MESSAGE)
            logger.warning(
                "resuming a stale %s creation (retry %d of %d)",
                version_tag(self.version),
                record.retry_count,
                self.settings.creation_max_retries,
            )
            record.started_at = now
            record.error = None
            await self._save()

    def _missing(self) -> list[str]:
        return [kind for kind in STORE_KINDS if not self.record.stores[kind].id]

    # ------------------------------------------------------------------ the machine

    async def _advance(self) -> str:
        record = self.record
        resumed_creating = record.state is CreationState.STORES_CREATING
        if record.state is CreationState.INITIALIZING:
            await self._status(STATUS_COINS)
            await self._wait_for_coins(len(self._missing()), resume=False)
            record.state = CreationState.STORES_CREATING
            await self._save()
        if record.state is CreationState.STORES_CREATING:
            await self._create_and_confirm(resumed=resumed_creating)
        if record.state in (CreationState.STORES_CONFIRMED, CreationState.DATA_PUSHING):
            await self._push_data()
        if record.state is not CreationState.FINALIZING:
            raise CreationFailed(f"unexpected creation state {record.state.value}")
        org_uid = await self._finalize()
        await run_mirror_check_once(self.services)
        await self._status(STATUS_COMPLETE)
        await clear_record(self.services, self.version, self.fence)
        logger.info("home organization %s created", org_uid)
        return org_uid

    async def _wait_for_coins(self, count: int, *, resume: bool) -> None:
        if count <= 0:
            return
        try:
            await wait_for_spendable_coins(self.services, required=count)
        except CoinWaitTimeout as error:
            verb = "resume organization creation" if resume else "create organization"
            raise CreationFailed(
                f"Cannot {verb}: {error.message}. Please ensure wallet has sufficient balance, "
                "coin management has split coins, and no pending transactions."
            ) from error

    async def _create_and_confirm(self, *, resumed: bool) -> None:
        rejected_rounds = self.services.settings.creation_rejected_rounds
        for round_number in range(rejected_rounds):
            await self._status(STATUS_CREATING)
            if self._missing() and (resumed or round_number > 0):
                if resumed and round_number == 0:
                    await self._adopt_interrupted_stores()
                await self._wait_for_coins(len(self._missing()), resume=True)
            await self._create_missing()
            await self._status(STATUS_CONFIRMING)
            await wait_for_all_transactions_to_confirm(self.services)
            rejected = await self._confirm_stores()
            if not rejected:
                break
            await self._forget_rejected(rejected)
        else:
            raise CreationFailed(
                f"Stores were rejected by the network {rejected_rounds} times; "
                "check the wallet's transactions"
            )
        self.record.state = CreationState.STORES_CONFIRMED
        await self._save()

    async def _adopt_interrupted_stores(self) -> None:
        """Take over stores an interrupted run created but could not save (never create twice).

        Candidates are owned, empty stores this node has recorded nowhere; the wallet settles
        first so a launch still in the mempool shows up among the owned stores.
        """
        await wait_for_all_transactions_to_confirm(self.services)
        try:
            owned = await owned_store_ids(self.services)
        except ChiaRpcError as error:
            logger.warning("could not list owned stores before resuming: %s", error)
            return
        known = await known_store_ids(self.services)
        adopted = False
        for store_id in sorted(owned - known):
            missing = self._missing()
            if not missing:
                break
            try:
                root = await self.services.datalayer.get_root(store_id)
            except ChiaRpcError:
                continue
            if root.hash not in (None, ZERO_HASH):
                continue  # it holds data: not a store we just launched
            kind = missing[0]
            logger.warning(
                "adopting store %s as the %s store: an interrupted run created it", store_id, kind
            )
            self.record.stores[kind].id = store_id
            adopted = True
        if adopted:
            await self._save()

    async def _create_missing(self) -> None:
        missing = self._missing()
        if not missing:
            return
        results = await asyncio.gather(
            *(self._create_store(kind) for kind in missing), return_exceptions=True
        )
        failures: list[tuple[str, BaseException]] = []
        for kind, result in zip(missing, results, strict=True):
            if isinstance(result, asyncio.CancelledError | StaleLockHolder):
                raise result
            if isinstance(result, BaseException):
                failures.append((kind, result))
        if failures:
            details = ", ".join(f"{kind} ({describe_failure(error)})" for kind, error in failures)
            unanswered = [
                kind
                for kind, error in failures
                if isinstance(error, ChiaTransportError) and error.request_sent
            ]
            if unanswered:
                raise CreationInterrupted(
                    f"No answer to the creation of the {', '.join(unanswered)} store(s) "
                    f"({details}); Chia may have created them, so the recovery resumes this "
                    "creation and adopts them"
                )
            raise CreationFailed(f"Failed to create stores: {details}")

    async def _create_store(self, kind: str) -> None:
        async def saved(response: CreateDataStoreResponse) -> None:
            async with self._save_lock:
                self.record.stores[kind].id = response.id
                self._tx_ids[kind] = list(response.tx_ids)
                self.record.tx_ids.extend(
                    tx for tx in response.tx_ids if tx not in self.record.tx_ids
                )
                await self._save()
            if kind == "orgUid":
                await self._status(STATUS_CREATING)  # the lock now names the orgUid

        await create_store_with_retry(self.services, on_created=saved, label=f"{kind} store")

    async def _confirm_stores(self) -> list[str]:
        """Wait for every unconfirmed store; returns the kinds whose launch was rejected."""
        waiting = [
            kind
            for kind in STORE_KINDS
            if self.record.stores[kind].id and not self.record.stores[kind].confirmed
        ]

        async def confirm(kind: str) -> None:
            store_id = self.record.stores[kind].id
            assert store_id is not None
            await wait_for_store_confirmation(
                self.services, store_id, tx_ids=self._tx_ids.get(kind, ())
            )
            async with self._save_lock:
                self.record.stores[kind].confirmed = True
                await self._save()

        results = await asyncio.gather(*(confirm(kind) for kind in waiting), return_exceptions=True)
        rejected: list[str] = []
        failed: list[str] = []
        for kind, result in zip(waiting, results, strict=True):
            if isinstance(result, asyncio.CancelledError | StaleLockHolder):
                raise result
            if isinstance(result, StoreRejected):
                logger.warning("%s store: %s", kind, result.message)
                rejected.append(kind)
            elif isinstance(result, BaseException):
                logger.warning("%s store did not confirm: %s", kind, describe_failure(result))
                failed.append(kind)
        if failed:
            raise CreationFailed(f"Stores failed to confirm within timeout: {', '.join(failed)}")
        return rejected

    async def _forget_rejected(self, kinds: list[str]) -> None:
        """Drop stores whose launch the network rejected, so the next round creates them."""
        await clear_rejected_transactions(self.services)
        async with self._save_lock:
            for kind in kinds:
                dropped = set(self._tx_ids.pop(kind, []))
                self.record.tx_ids = [tx for tx in self.record.tx_ids if tx not in dropped]
                self.record.stores[kind].id = None
                self.record.stores[kind].confirmed = False
            await self._save()

    def _data_targets(self) -> dict[str, dict[str, str]]:
        """What the org store and the data-model-version store must hold (1.2)."""
        stores = self.record.stores
        registry, dmv, file_store = (
            stores["registry"].id,
            stores["dataModelVersion"].id,
            stores["fileStore"].id,
        )
        assert registry and dmv and file_store
        return {
            "orgUid": {
                "registryId": dmv,  # CADT's misnomer: the data-model-version store id
                "fileStoreId": file_store,
                "name": self.record.name,
                "icon": self.record.icon or "",
            },
            "dataModelVersion": {self.version: registry},
        }

    async def _push_data(self) -> None:
        record = self.record
        if record.state is not CreationState.DATA_PUSHING:
            record.state = CreationState.DATA_PUSHING
            await self._save()
        await self._status(STATUS_WRITING)
        targets = self._data_targets()
        todo = [kind for kind in WRITTEN_STORES if not record.stores[kind].data_written]
        failures: list[tuple[str, BaseException]] = []
        if self.version == "v1":
            # V1 pushes one store after the other with a stagger (3.1): the poll interval.
            for index, kind in enumerate(todo):
                if index:
                    await asyncio.sleep(self.services.poll_interval)
                try:
                    await self._write(kind, targets[kind], wait_until_available=False)
                except (asyncio.CancelledError, StaleLockHolder):
                    raise
                except Exception as error:
                    failures.append((kind, error))
        else:
            results = await asyncio.gather(
                *(self._write(kind, targets[kind], wait_until_available=True) for kind in todo),
                return_exceptions=True,
            )
            for kind, result in zip(todo, results, strict=True):
                if isinstance(result, asyncio.CancelledError | StaleLockHolder):
                    raise result
                if isinstance(result, BaseException):
                    failures.append((kind, result))
        if failures:
            await clear_rejected_transactions(self.services)
            details = ", ".join(f"{kind}: {describe_failure(error)}" for kind, error in failures)
            raise CreationFailed(f"Failed to push data to stores: {details}")
        await wait_for_all_transactions_to_confirm(self.services)
        record.state = CreationState.FINALIZING
        await self._save()

    async def _write(
        self, kind: str, values: Mapping[str, str], *, wait_until_available: bool
    ) -> None:
        store_id = self.record.stores[kind].id
        assert store_id is not None
        await write_store_data(
            self.services, store_id, values, wait_until_available=wait_until_available
        )
        async with self._save_lock:
            self.record.stores[kind].data_written = True
            await self._save()

    async def _root_hash(self, store_id: str, *, local_fallback: bool = False) -> str | None:
        try:
            root = await self.services.datalayer.get_root(store_id)
            if root.hash and root.hash != ZERO_HASH:
                return root.hash
            if local_fallback:
                return await self.services.datalayer.get_local_root(store_id)
            return root.hash
        except ChiaRpcError as error:
            logger.warning("could not read the root of %s: %s", store_id, error)
            return None

    async def _finalize(self) -> str:
        await self._status(STATUS_FINALIZING)
        stores = self.record.stores
        org_uid, registry, dmv, file_store = (
            stores["orgUid"].id,
            stores["registry"].id,
            stores["dataModelVersion"].id,
            stores["fileStore"].id,
        )
        assert org_uid and registry and dmv and file_store
        org_hash = await self._root_hash(org_uid)
        registry_hash = await self._root_hash(registry)
        dmv_hash = await self._root_hash(dmv, local_fallback=True)
        async with self.services.db.transaction() as session:
            await delete_rows(session, org_uid, self.version, self.fence)
            await delete_rows(session, PENDING_ORG_UID, self.version, self.fence)
            session.add(
                Organization(
                    org_uid=org_uid,
                    data_model_version=self.version,
                    name=self.record.name,
                    icon=self.record.icon,
                    org_hash=org_hash,
                    registry_id=registry,
                    registry_hash=registry_hash,
                    data_model_version_store_id=dmv,
                    data_model_version_store_hash=dmv_hash,
                    file_store_id=file_store,
                    is_home=True,
                    subscribed=False,
                    lock_fence=self.fence.number,
                )
            )
        if await self._org_store_readable(org_uid):
            table = Organization.__table__  # type: ignore[attr-defined]
            async with self.services.db.transaction() as session:
                await self.fence.assert_current()
                await session.execute(
                    sa.update(table)
                    .where(table.c.org_uid == org_uid)
                    .where(table.c.data_model_version == self.version)
                    .values(subscribed=True, updated_at=utcnow())
                )
        else:
            logger.warning("org store %s is not readable yet; left unsubscribed", org_uid)
        return org_uid

    async def _org_store_readable(self, org_uid: str) -> bool:
        for attempt in range(self.settings.store_data_retries):
            if attempt:
                await asyncio.sleep(self.services.poll_interval)
            try:
                data = await read_store_data(self.services, org_uid)
            except ChiaRpcError:
                continue
            if data.get("name") == self.record.name:
                return True
        return False
