"""The home organization's long operations: create, resume/recover, upgrade V1 to V2, reclaim.

Mutations call `start_creation`, `start_upgrade` and `reclaim_home_organization`; the arq jobs
of jobs/home_organization.py call `run_creation_job`, `run_upgrade_job` and `recover_creation`.
The walkthrough with GraphQL examples is docs/home-organization.md.
"""

from services.home_organization.common import (
    CREATE_JOB,
    PENDING_ORG_UID,
    RECOVERY_JOB,
    UPGRADE_JOB,
    UPGRADE_LABEL,
    creation_label,
    reclaim_label,
    recovery_label,
    validate_icon,
    validate_name,
)
from services.home_organization.create import (
    AcceptedOperation,
    CreationFailed,
    run_creation,
    run_creation_job,
    start_creation,
)
from services.home_organization.reclaim import (
    ReclaimOutcome,
    promote_home,
    reclaim_home_organization,
)
from services.home_organization.recovery import recover_creation
from services.home_organization.upgrade import run_upgrade, run_upgrade_job, start_upgrade

__all__ = [
    "CREATE_JOB",
    "PENDING_ORG_UID",
    "RECOVERY_JOB",
    "UPGRADE_JOB",
    "UPGRADE_LABEL",
    "AcceptedOperation",
    "CreationFailed",
    "ReclaimOutcome",
    "creation_label",
    "promote_home",
    "reclaim_home_organization",
    "reclaim_label",
    "recover_creation",
    "recovery_label",
    "run_creation",
    "run_creation_job",
    "run_upgrade",
    "run_upgrade_job",
    "start_creation",
    "start_upgrade",
    "validate_icon",
    "validate_name",
]
