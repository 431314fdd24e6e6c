"""Success members shared by mutation result unions: OrganizationPayload and Done.

Short organization operations (import, subscribe, edit, ...) and reclaim return
`OrganizationPayload`; operations that leave no organization to show (delete, an import that
finishes in the background) return `Done`.
"""

from __future__ import annotations

import strawberry

from schema.organizations import Organization
from services.views import OrganizationView


@strawberry.type(description="The operation succeeded; the organization as it is now.")
class OrganizationPayload:
    message: str = strawberry.field(description="What happened, for people.")
    organization: Organization = strawberry.field(description="The organization afterwards.")

    @classmethod
    def from_domain(cls, message: str, organization: OrganizationView) -> OrganizationPayload:
        """Build from a message and the organization's read model."""
        return cls(message=message, organization=Organization.from_domain(organization))


@strawberry.type(description="The operation succeeded (or was accepted); nothing else to show.")
class Done:
    message: str = strawberry.field(description="What happened, for people.")
