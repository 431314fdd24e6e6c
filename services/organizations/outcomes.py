"""What organization operations return (the GraphQL layer maps these to payload types)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from services.db.models import Organization
from services.views import OrganizationView


@dataclass(frozen=True)
class OrganizationOutcome:
    """A finished short operation: a message, and the organization when one remains."""

    message: str
    organization: OrganizationView | None = None

    @classmethod
    def of_row(cls, message: str, row: Organization) -> OrganizationOutcome:
        """An outcome showing `row` as it is now."""
        return cls(message=message, organization=OrganizationView.from_row(row))


class ImportStatus(StrEnum):
    """How an import ended."""

    #: The row exists now.
    IMPORTED = "IMPORTED"
    #: DataLayer is still syncing; a background job finishes the import.
    WAITING = "WAITING"
    #: Governance discovery skipped an organization the user deleted.
    SKIPPED = "SKIPPED"


@dataclass(frozen=True)
class ImportOutcome(OrganizationOutcome):
    """The result of import_organization."""

    status: ImportStatus = ImportStatus.IMPORTED
    #: The arq job finishing a WAITING import (None when it was already queued or not needed).
    job_id: str | None = None
