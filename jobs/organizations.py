"""Jobs of the short organization operations: finishing imports that waited for DataLayer.

- `finish_import_organization(org_uid)`, job id `import-organization:<orgUid>` (one per
  organization, so never twice at once): completes an import once DataLayer has synced.
- `resume_pending_imports`, periodic (every `default_organizations_sync_task_interval`):
  re-enqueues every import still recorded in Meta `pendingImports`, so none is lost when a
  job, Redis or the process goes away.
Both are idempotent: an import that already happened just clears its record.
"""

from __future__ import annotations

from typing import Any

from services import organizations
from services.container import Services


async def finish_import_organization(ctx: dict[str, Any], org_uid: str) -> str:
    """Finish the waiting import of `org_uid` (polls until synced or the deadline)."""
    services: Services = ctx["services"]
    return await organizations.finish_pending_import(services, org_uid)


async def resume_pending_imports(ctx: dict[str, Any]) -> int:
    """Enqueue the finishing job of every waiting import; how many were enqueued."""
    services: Services = ctx["services"]
    return await organizations.resume_pending_imports(services)
