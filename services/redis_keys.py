"""Every Redis key and channel name the gateway uses, in one place."""

from __future__ import annotations

#: arq queue of every job of the gateway.
QUEUE_NAME = "cadt:queue"
#: Each worker's arq health-check key (written with a TTL from its poll loop) starts with this:
#: the worker heartbeat. One key per worker, so a stopping worker does not erase the others'.
WORKER_HEALTH_PREFIX = f"{QUEUE_NAME}:health-check:"


def worker_health_key(worker_name: str) -> str:
    """The heartbeat key of one worker."""
    return WORKER_HEALTH_PREFIX + worker_name


#: Claims of the interval scheduler: one enqueue per task and time bucket across workers.
SCHEDULE_CLAIM_PREFIX = "cadt:schedule:"

#: Persisted operations registered by an operator (file setting or `cadt-gateway operations`):
#: a hash of operation id (sha256 of the document) -> document; the allow-list.
PERSISTED_ALLOWLIST_KEY = "cadt:persisted:allowlist"
#: Operations registered by clients through APQ: one string key per id, with a TTL.
PERSISTED_APQ_PREFIX = "cadt:persisted:apq:"
#: The data version: a counter every committed database write increments (response cache).
DATA_VERSION_KEY = "cadt:data-version"
