"""Upgrade the V1 home organization to V2 (3.8): a new V2 registry store and the `v2` key.

The upgrade reuses the org store, the data-model-version store ("singleton") and the file store
of the V1 home organization; it creates one V2 registry store, adds `v2 -> registry` to the
singleton and inserts the V2 home row (same orgUid). It runs like a creation: the mutation
checks and takes the lock ("V1 to V2 upgrade"), a job does the work under the token.

Resumable: the new registry store id is saved in Meta `pendingUpgrade:v2` the moment Chia
returns it, so a re-run waits for that store instead of creating another; a singleton that
already names a registry this wallet owns (the key was written, the row not yet) is finished
instead of refused. A failure keeps that Meta entry for the next attempt and, unlike CADT,
deletes no rows: the V2 row is the last thing written, so there is nothing half-made to remove.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

from services.chia import ZERO_HASH, ChiaBusinessError, ChiaRpcError
from services.chia.models import CreateDataStoreResponse
from services.container import Services
from services.db.models import Organization, utcnow
from services.domain import LockSnapshot
from services.errors import DomainError, PreconditionFailed
from services.fencing import Fence, StaleLockHolder, delete_meta, read_meta, write_meta
from services.guards import acquire_or_conflict, assert_wallet_synced, assert_writable
from services.home_organization.common import (
    UPGRADE_JOB,
    UPGRADE_LABEL,
    delete_rows,
    describe_failure,
    dumps,
    find_home_row,
    home_row,
    load_record,
    run_mirror_check_once,
)
from services.home_organization.create import (
    AcceptedOperation,
    creation_in_progress,
    creation_in_progress_conflict,
)
from services.oplock import INITIAL_STATUS
from services.sync import assert_home_writable
from services.upstream import (
    CoinWaitTimeout,
    assert_store_owned,
    create_store_with_retry,
    owned_store_ids,
    read_store_data,
    wait_for_all_transactions_to_confirm,
    wait_for_spendable_coins,
    wait_for_store_confirmation,
    wait_for_store_values,
    write_store_data,
)

logger = logging.getLogger(__name__)

UPGRADE_META_KEY = "pendingUpgrade:v2"

# Lock status strings of 3.8.
STATUS_VALIDATING = "Validating V1 singleton"
STATUS_CREATING_REGISTRY = "Creating V2 registry store"
STATUS_WAITING_REGISTRY = "Waiting for V2 registry store to confirm on blockchain"
STATUS_UPDATING_SINGLETON = "Updating singleton store with v2 key"
STATUS_WAITING_SINGLETON = "Waiting for data model version update to confirm on blockchain"
STATUS_ADDING_ROW = "Adding V2 home organization to database"
STATUS_COMPLETE = "V2 organization upgrade complete"

ALREADY_COMPLETE = "V2 organization upgrade is already complete."
_UNSET_HASHES = {None, "", "0", ZERO_HASH, "0x" + ZERO_HASH}


class UpgradeFailed(DomainError):
    """The upgrade stopped; `message` is the FAILED event's error."""


@dataclass(frozen=True)
class _V1Home:
    org_uid: str
    name: str
    icon: str | None
    org_hash: str | None
    dmv_store_id: str
    file_store_id: str | None


def _v1_home(row: Organization | None) -> _V1Home:
    """The V1 home organization, checked for what an upgrade needs (PreconditionFailed if not)."""
    if row is None:
        raise PreconditionFailed("No V1 home organization to upgrade")
    if not row.data_model_version_store_id:
        raise PreconditionFailed(
            f"The V1 home organization {row.org_uid} has no data-model-version store id"
        )
    if row.org_hash in _UNSET_HASHES:
        raise PreconditionFailed(
            f"The V1 home organization {row.org_uid} has no orgHash yet; wait for it to sync"
        )
    return _V1Home(
        org_uid=row.org_uid,
        name=row.name,
        icon=row.icon,
        org_hash=row.org_hash,
        dmv_store_id=row.data_model_version_store_id,
        file_store_id=row.file_store_id,
    )


async def start_upgrade(services: Services) -> AcceptedOperation:
    """upgradeHomeOrganization: checks, the lock, then the upgrade job."""
    assert_writable(services)
    if creation_in_progress(services, await load_record(services, "v2")):
        raise await creation_in_progress_conflict(services, "v2")
    token = await acquire_or_conflict(services, UPGRADE_LABEL)
    try:
        if services.settings.data_model_version.value != "v2":
            raise PreconditionFailed(
                "Upgrading to V2 needs a node running data model v2 (CADT_DATA_MODEL_VERSION=v2)"
            )
        v1 = _v1_home(await home_row(services, "v1"))
        if await home_row(services, "v2") is not None:
            try:
                singleton = await read_store_data(services, v1.dmv_store_id)
            except ChiaRpcError:
                singleton = {}  # the job reads it again, waiting for it
            if "v2" in singleton:
                raise PreconditionFailed(ALREADY_COMPLETE)
        await assert_wallet_synced(services)
        # DataLayer silently discards writes to a store whose local data was lost.
        await assert_home_writable(services)
        snapshot = await services.lock.status() or LockSnapshot(
            UPGRADE_LABEL, INITIAL_STATUS, utcnow()
        )
        job_id = f"{UPGRADE_JOB}:{token}"
        if not await services.queue.enqueue(UPGRADE_JOB, token, job_id=job_id):
            raise RuntimeError(f"job {job_id} is already queued")
    except BaseException:
        await services.lock.release(token)
        raise
    return AcceptedOperation(
        message=(
            f"The V1 home organization {v1.org_uid} is being upgraded to V2. Follow it with the "
            "operationProgress subscription."
        ),
        operation_status=snapshot,
        job_id=job_id,
    )


async def run_upgrade_job(services: Services, *, token: str) -> str:
    """The upgrade_home_organization job: the same lock rules as the creation job."""
    if not await services.lock.is_holder(token):
        return "skipped: the lock token was superseded or released"
    release = True
    error: str | None = None
    try:
        org_uid = await run_upgrade(services, token=token)
        return f"upgraded {org_uid} to V2"
    except asyncio.CancelledError:
        release = False  # the re-run of this job carries on with the same token
        raise
    except StaleLockHolder as stale:
        release = False
        return f"stopped: {stale.message}"
    except Exception as failure:
        error = describe_failure(failure)
        logger.warning("V1 to V2 upgrade failed: %s", error)
        return f"failed: {error}"
    finally:
        if release:
            await services.lock.release(token, error=error)


async def run_upgrade(services: Services, *, token: str) -> str:
    """Run (or resume) the upgrade under `token`; returns the orgUid."""
    return await _Upgrade(services, Fence(services.lock, token)).execute()


class _Upgrade:
    def __init__(self, services: Services, fence: Fence) -> None:
        self.services = services
        self.fence = fence
        self.org_uid: str | None = None

    async def _status(self, status: str) -> None:
        if not await self.services.lock.update_status(
            self.fence.token, status, org_uid=self.org_uid
        ):
            raise StaleLockHolder(f"the lock token {self.fence.token} was superseded; stopping")

    async def execute(self) -> str:
        await self.fence.assert_current()
        await self._status(STATUS_VALIDATING)
        v1 = _v1_home(await home_row(self.services, "v1"))
        self.org_uid = v1.org_uid
        await self._status(STATUS_VALIDATING)
        singleton = await self._read_singleton(v1.dmv_store_id)
        if "v1" not in singleton:
            raise UpgradeFailed(
                f"The data-model-version store {v1.dmv_store_id} has no v1 key; "
                "it is not a V1 organization's singleton"
            )
        v2_home = await home_row(self.services, "v2")
        if v2_home is not None:
            if "v2" in singleton:
                raise UpgradeFailed(ALREADY_COMPLETE)
            if not v2_home.registry_id:
                raise UpgradeFailed(f"The V2 home organization {v2_home.org_uid} has no registry")
            # Partial upgrade: the V2 row exists, the singleton lacks its key.
            await self._write_singleton(v1.dmv_store_id, v2_home.registry_id)
            await self._status(STATUS_COMPLETE)
            return v2_home.org_uid
        if "v2" in singleton:
            registry = singleton["v2"]
            if registry not in await owned_store_ids(self.services):
                raise UpgradeFailed(
                    f"The data-model-version store already names a V2 registry ({registry}) that "
                    "this wallet does not own, and there is no V2 home organization: import the "
                    "organization with importOrganization(isHome: true), or remove the v2 key."
                )
            logger.info(
                "singleton already names our V2 registry %s; finishing the upgrade", registry
            )
        else:
            registry = await self._registry_store(v1.org_uid)
            await self._write_singleton(v1.dmv_store_id, registry)
        await self._status(STATUS_ADDING_ROW)
        await self._insert_v2_row(v1, registry)
        await run_mirror_check_once(self.services)
        async with self.services.db.transaction() as session:
            await delete_meta(session, UPGRADE_META_KEY, fence=self.fence)
        await self._status(STATUS_COMPLETE)
        return v1.org_uid

    async def _read_singleton(self, store_id: str) -> dict[str, str]:
        """The singleton's data, waiting up to subscribe_timeout_seconds for it to be readable."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.services.settings.subscribe_timeout_seconds
        while True:
            try:
                data = await read_store_data(self.services, store_id)
                if data:
                    return data
                last = "it is empty"
            except ChiaRpcError as error:
                last = error.message
            if loop.time() >= deadline:
                raise UpgradeFailed(
                    f"The data-model-version store {store_id} is not readable ({last})"
                )
            await asyncio.sleep(self.services.poll_interval)

    async def _saved_registry(self, org_uid: str) -> str | None:
        async with self.services.db.session() as session:
            raw = await read_meta(session, UPGRADE_META_KEY)
        if not raw:
            return None
        try:
            saved = json.loads(raw)
        except ValueError:
            return None
        if saved.get("orgUid") != org_uid:
            return None
        registry = saved.get("registryId")
        return str(registry) if registry else None

    async def _registry_store(self, org_uid: str) -> str:
        """The new V2 registry store: the saved one of an interrupted attempt, or a new one."""
        registry = await self._saved_registry(org_uid)
        tx_ids: list[str] = []
        if registry is None:
            await self._status(STATUS_CREATING_REGISTRY)
            try:
                await wait_for_spendable_coins(self.services, required=1)
            except CoinWaitTimeout as error:
                raise UpgradeFailed(f"Cannot upgrade: {error.message}") from error

            async def saved(response: CreateDataStoreResponse) -> None:
                async with self.services.db.transaction() as session:
                    await write_meta(
                        session,
                        UPGRADE_META_KEY,
                        dumps(
                            {
                                "orgUid": org_uid,
                                "registryId": response.id,
                                "startedAt": utcnow().isoformat(),
                            }
                        ),
                        fence=self.fence,
                    )

            response = await create_store_with_retry(
                self.services, on_created=saved, label="V2 registry store"
            )
            registry, tx_ids = response.id, list(response.tx_ids)
        else:
            logger.info("reusing the V2 registry store %s of an interrupted upgrade", registry)
        await self._status(STATUS_WAITING_REGISTRY)
        await wait_for_store_confirmation(self.services, registry, tx_ids=tx_ids)
        await wait_for_all_transactions_to_confirm(self.services)
        return registry

    async def _write_singleton(self, dmv_store_id: str, registry: str) -> None:
        await self._status(STATUS_UPDATING_SINGLETON)
        await assert_store_owned(self.services, dmv_store_id, what="data-model-version store")
        await wait_for_all_transactions_to_confirm(self.services)
        # Only the v2 key: re-inserting v1 would fail with "Key already present" (3.8).
        await write_store_data(
            self.services, dmv_store_id, {"v2": registry}, wait_for_confirmation=False
        )
        await self._status(STATUS_WAITING_SINGLETON)
        if not await wait_for_store_values(self.services, dmv_store_id, {"v2": registry}):
            raise UpgradeFailed(
                f"The v2 key of the data-model-version store {dmv_store_id} did not confirm"
            )
        await wait_for_all_transactions_to_confirm(self.services)

    async def _root_hash(self, store_id: str) -> str | None:
        try:
            root = await self.services.datalayer.get_root(store_id)
        except ChiaBusinessError:
            return None
        return root.hash

    async def _insert_v2_row(self, v1: _V1Home, registry: str) -> None:
        org_hash = await self._root_hash(v1.org_uid) or v1.org_hash
        registry_hash = await self._root_hash(registry) or ZERO_HASH
        dmv_hash = await self._root_hash(v1.dmv_store_id)
        async with self.services.db.transaction() as session:
            if await find_home_row(session, "v2") is not None:
                raise UpgradeFailed("A V2 home organization appeared during the upgrade")
            # A non-home V2 row of the same org (e.g. imported earlier) gives way to the home row.
            await delete_rows(session, v1.org_uid, "v2", self.fence)
            session.add(
                Organization(
                    org_uid=v1.org_uid,
                    data_model_version="v2",
                    name=v1.name,
                    icon=v1.icon,
                    org_hash=org_hash,
                    registry_id=registry,
                    registry_hash=registry_hash,
                    data_model_version_store_id=v1.dmv_store_id,
                    data_model_version_store_hash=dmv_hash,
                    file_store_id=v1.file_store_id,
                    is_home=True,
                    subscribed=True,
                    lock_fence=self.fence.number,
                )
            )
