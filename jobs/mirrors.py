"""The mirror-check job (cadt-domain.md 3.14), periodic every `mirror_check_task_interval`.

Gated like CADT: with AUTO_MIRROR_EXTERNAL_STORES off the body does not run at all
(scenario 27); services.mirrors.run_mirror_check checks DATALAYER_FILE_SERVER_URL and the
wallet. Overlapping runs are harmless: every add_mirror is claimed per (store, url) in Redis.
"""

from __future__ import annotations

from typing import Any

from services import mirrors
from services.container import Services

MIRROR_CHECK_JOB = "mirror_check"


async def mirror_check(ctx: dict[str, Any]) -> str:
    """Announce this node's mirror URL for every store it should mirror."""
    services: Services = ctx["services"]
    if not services.settings.auto_mirror_external_stores:
        return "skipped: AUTO_MIRROR_EXTERNAL_STORES is off"
    return (await mirrors.run_mirror_check(services)).summary()
