"""SQLModel tables: the system of record of a node (cadt-domain.md section 1.6).

One organizations table serves both data models (column `data_model_version`); a V1 and a V2
row of an upgraded organization share the orgUid. Rows written under the org-operation lock
carry `lock_fence`, the fencing number of the lock token that wrote them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            value = datetime.fromisoformat(str(value))
        result: datetime = (
            value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        )
        return result


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _ts(nullable: bool = False) -> Any:
    return sa.Column(UTCDateTime(), nullable=nullable)


class Organization(SQLModel, table=True):
    """A home, subscribed or imported organization (one row per data-model version)."""

    __tablename__ = "organizations"
    __table_args__ = (
        sa.UniqueConstraint("org_uid", "data_model_version", name="uq_organizations_uid_version"),
        sa.Index(
            "uq_organizations_one_home",
            "data_model_version",
            unique=True,
            sqlite_where=sa.text("is_home = 1"),
            postgresql_where=sa.text("is_home"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    org_uid: str = Field(max_length=80, index=True)
    data_model_version: str = Field(default="v2", max_length=4)
    name: str = Field(default="", sa_type=sa.Text)
    icon: str | None = Field(default=None, sa_type=sa.Text)
    org_hash: str | None = Field(default=None, max_length=80)
    registry_id: str | None = Field(default=None, max_length=80)
    registry_hash: str | None = Field(default=None, max_length=80)
    data_model_version_store_id: str | None = Field(default=None, max_length=80)
    data_model_version_store_hash: str | None = Field(default=None, max_length=80)
    file_store_id: str | None = Field(default=None, max_length=80)
    subscribed: bool = Field(default=False)
    is_home: bool = Field(default=False)
    metadata_json: str = Field(default="{}", sa_type=sa.Text)
    synced: bool = Field(default=False)
    sync_remaining: int = Field(default=0)
    lock_fence: int | None = Field(default=None, sa_type=sa.BigInteger)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class Meta(SQLModel, table=True):
    """Key/value node state: pendingOrgCreation, userDeletedOrgs, governance ids, ..."""

    __tablename__ = "meta"

    key: str = Field(primary_key=True, max_length=120)
    value: str = Field(default="", sa_type=sa.Text)
    lock_fence: int | None = Field(default=None, sa_type=sa.BigInteger)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class Audit(SQLModel, table=True):
    """One applied kv-diff entry (or one NO CHANGE / CREATE REGISTRY row) of a generation."""

    __tablename__ = "audit"
    __table_args__ = (
        sa.UniqueConstraint("registry_id", "generation", "seq", name="uq_audit_entry"),
        sa.Index("ix_audit_org_generation", "org_uid", "generation"),
    )

    id: int | None = Field(default=None, primary_key=True)
    org_uid: str = Field(max_length=80)
    registry_id: str = Field(max_length=80)
    generation: int
    seq: int = Field(default=0)
    root_hash: str = Field(max_length=80)
    type: str = Field(max_length=20)
    table: str | None = Field(default=None, max_length=120)
    change: str | None = Field(default=None, sa_type=sa.Text)
    author: str | None = Field(default=None, sa_type=sa.Text)
    comment: str | None = Field(default=None, sa_type=sa.Text)
    onchain_confirmed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class RegistryRecord(SQLModel, table=True):
    """The current value of one registry key `<table>|<key>` of an organization."""

    __tablename__ = "registry_records"

    org_uid: str = Field(primary_key=True, max_length=80)
    table: str = Field(primary_key=True, max_length=120)
    key: str = Field(primary_key=True, max_length=400)
    record: str = Field(sa_type=sa.Text)
    generation: int


class Governance(SQLModel, table=True):
    """One governance value (orgList, pickList, glossary) as a JSON string."""

    __tablename__ = "governance"

    key: str = Field(primary_key=True, max_length=40)
    value: str = Field(sa_type=sa.Text)
    confirmed: bool = Field(default=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class SyncState(SQLModel, table=True):
    """What the sync engine last saw of an organization's registry store, and its backoff."""

    __tablename__ = "sync_state"

    org_uid: str = Field(primary_key=True, max_length=80)
    registry_id: str | None = Field(default=None, max_length=80)
    root_history_length: int | None = None
    datalayer_generation: int | None = None
    datalayer_target_generation: int | None = None
    last_synced_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    behind_since: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    backoff_since: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    backoff_delay_seconds: float | None = None
    backoff_next_retry_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    backoff_last_logged_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    backoff_reason: str | None = Field(default=None, sa_type=sa.Text)
    backoff_resets: int = Field(default=0)
    last_reset_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class Mirror(SQLModel, table=True):
    """A DataLayer mirror coin as last read from get_mirrors (refreshed by the mirror job)."""

    __tablename__ = "mirrors"

    coin_id: str = Field(primary_key=True, max_length=80)
    store_id: str = Field(max_length=80, index=True)
    urls_json: str = Field(default="[]", sa_type=sa.Text)
    amount: int = Field(default=0, sa_type=sa.BigInteger)
    ours: bool = Field(default=False)
    confirmed_at_height: int | None = None
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


ALL_TABLES = (Organization, Meta, Audit, RegistryRecord, Governance, SyncState, Mirror)
