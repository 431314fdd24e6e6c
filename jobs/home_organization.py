"""Jobs of the home organization's long operations (thin: the work is in services).

- `create_home_organization(token, name, icon)`: the creation (or a resumed one) under the lock
  token the mutation or the recovery took; job id `create_home_organization:<token>`.
- `upgrade_home_organization(token)`: the V1 to V2 upgrade;
  job id `upgrade_home_organization:<token>`.
- `clean_up_failed_org()`: periodic and start-up recovery (clean_up_failed_org_task_interval).

arq runs a job again after a worker stop (and, after a kill, once its in-progress key expires);
the job then carries on under the same token, which still holds the lock.
"""

from __future__ import annotations

from typing import Any

from services import home_organization
from services.container import Services


def _services(ctx: dict[str, Any]) -> Services:
    services = ctx["services"]
    assert isinstance(services, Services)
    return services


async def create_home_organization(
    ctx: dict[str, Any], token: str, name: str, icon: str | None
) -> str:
    """Run or resume the home-organization creation under `token`."""
    services = _services(ctx)
    async with services.lock.keep_alive(token, interval=services.settings.lock_heartbeat_seconds):
        return await home_organization.run_creation_job(services, token=token, name=name, icon=icon)


async def upgrade_home_organization(ctx: dict[str, Any], token: str) -> str:
    """Run or resume the V1 to V2 upgrade under `token`."""
    services = _services(ctx)
    async with services.lock.keep_alive(token, interval=services.settings.lock_heartbeat_seconds):
        return await home_organization.run_upgrade_job(services, token=token)


async def clean_up_failed_org(ctx: dict[str, Any]) -> str:
    """Tidy up a finished creation record or resume an interrupted creation."""
    return await home_organization.recover_creation(_services(ctx))
