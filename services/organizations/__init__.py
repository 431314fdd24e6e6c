"""Short organization operations and the organization queries (issue 5, part 2).

Reusable entry points (all keyword-safe, all raise domain exceptions from services.errors):
- `import_organization(services, org_uid, *, is_home=False, user_request=True)`: subscribe
  first, then check sync (#1534); finishes in the background while DataLayer syncs. Governance
  discovery passes `user_request=False` so user-deleted organizations stay deleted;
- `subscribe_organization`, `unsubscribe_organization`, `unsubscribe_stores(services, ids)`;
- `resync_organization`, `delete_organization`;
- `edit_home_organization(services, changes)` with `profile_changes` / `metadata_changes`;
- `list_organizations`, `home_organization`;
- `user_deleted_org_uids(db)`, `pending_imports(db)`.
The `requests` module adds the mutation checks (read-only, arguments, synced wallet).
"""

from services.organizations.editing import (
    edit_home_organization,
    metadata_changes,
    profile_changes,
)
from services.organizations.importing import (
    FINISH_IMPORT_JOB,
    RESUME_IMPORTS_JOB,
    attempt_import,
    cancel_pending_import,
    finish_pending_import,
    import_job_id,
    import_organization,
    resume_pending_imports,
)
from services.organizations.listing import (
    MAX_PAGE_SIZE,
    OrganizationCriteria,
    OrganizationPage,
    decode_cursor,
    encode_cursor,
    home_organization,
    list_organizations,
)
from services.organizations.membership import (
    subscribe_organization,
    unsubscribe_organization,
)
from services.organizations.outcomes import ImportOutcome, ImportStatus, OrganizationOutcome
from services.organizations.records import (
    PENDING_IMPORTS,
    USER_DELETED_ORGS,
    pending_imports,
    user_deleted_org_uids,
)
from services.organizations.removal import delete_organization, resync_organization
from services.organizations.stores import unsubscribe_stores

__all__ = [
    "FINISH_IMPORT_JOB",
    "MAX_PAGE_SIZE",
    "PENDING_IMPORTS",
    "RESUME_IMPORTS_JOB",
    "USER_DELETED_ORGS",
    "ImportOutcome",
    "ImportStatus",
    "OrganizationCriteria",
    "OrganizationOutcome",
    "OrganizationPage",
    "attempt_import",
    "cancel_pending_import",
    "decode_cursor",
    "delete_organization",
    "edit_home_organization",
    "encode_cursor",
    "finish_pending_import",
    "home_organization",
    "import_job_id",
    "import_organization",
    "list_organizations",
    "metadata_changes",
    "pending_imports",
    "profile_changes",
    "resume_pending_imports",
    "resync_organization",
    "subscribe_organization",
    "unsubscribe_organization",
    "unsubscribe_stores",
    "user_deleted_org_uids",
]
