"""The root Query, Mutation and Subscription types, merged from each domain's part."""

from __future__ import annotations

from strawberry.tools import merge_types

from schema.creation import CreationQuery, CreationSubscription
from schema.governance import GovernanceMutation, GovernanceQuery
from schema.health import HealthQuery
from schema.home_organization import HomeOrganizationMutation
from schema.lock import LockQuery, LockSubscription
from schema.mirror_operations import MirrorMutation, MirrorQuery
from schema.organization_operations import OrganizationMutation
from schema.organization_queries import OrganizationQuery
from schema.registry import SyncQuery
from schema.sync import SyncSubscription
from schema.wallet import WalletQuery

Query = merge_types(
    "Query",
    (
        HealthQuery,
        CreationQuery,
        LockQuery,
        OrganizationQuery,
        SyncQuery,
        MirrorQuery,
        GovernanceQuery,
        WalletQuery,
    ),
)

Mutation = merge_types(
    "Mutation",
    (HomeOrganizationMutation, OrganizationMutation, MirrorMutation, GovernanceMutation),
)

#: Each domain adds its part here (e.g. a SyncSubscription with syncProgress).
Subscription = merge_types(
    "Subscription", (LockSubscription, CreationSubscription, SyncSubscription)
)
