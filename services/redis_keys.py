"""Every Redis key and channel name the gateway uses, in one place."""

from __future__ import annotations

#: arq queue of every job of the gateway.
QUEUE_NAME = "cadt:queue"
#: arq writes this key (with a TTL) from every running worker's poll loop: the worker heartbeat.
WORKER_HEALTH_KEY = f"{QUEUE_NAME}:health-check"
#: Claims of the interval scheduler: one enqueue per task and time bucket across workers.
SCHEDULE_CLAIM_PREFIX = "cadt:schedule:"
