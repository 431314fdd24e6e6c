"""Domain knobs the services read: fees, task intervals, retry counts and waits.

The composition root's `Settings` (cadt_gateway/settings.py) inherits this model, so every
field here is also an environment variable `CADT_<NAME>`; services receive the settings object
typed as `ServiceSettings` and never import the composition root.

Defaults keep CADT's limits (timeouts, retry counts, see cadt-domain.md section 7); only the
polling intervals are faster ("Defaults that make it feel fast" in DESIGN.md).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

#: CADT's default GOVERNANCE_BODY_ID (cadt-domain.md section 1.3).
CADT_DEFAULT_GOVERNANCE_BODY_ID = "23f6498e015ebcd7190c97df30c032de8deb5c8934fc1caa928bc310e2b8a57e"


class DataModelVersion(StrEnum):
    """Which registry key of the data-model-version store this node reads and writes."""

    V1 = "v1"
    V2 = "v2"


class ServiceSettings(BaseModel):
    """Every domain setting; each field is `CADT_<FIELD_NAME>` in the environment."""

    # --- node role -------------------------------------------------------------------------
    read_only: bool = Field(False, description="Refuse every mutation (ReadOnly).")
    data_model_version: DataModelVersion = Field(
        DataModelVersion.V2, description="Data model this node creates and syncs (v1 or v2)."
    )
    is_governance_body: bool = Field(
        False, description="This node owns (or will create) a governance body."
    )
    governance_body_id: str | None = Field(
        None,
        description=(
            "Main governance store this node subscribes to. Unset: the embedded simulator's "
            "demo body, else CADT's default id. Empty string: none (required to create a body)."
        ),
    )
    governance_max_value_bytes: int = Field(
        1 << 20,
        ge=1024,
        description="Largest orgList, pickList or glossary a governance node publishes (bytes).",
    )

    datalayer_file_server_url: str | None = Field(
        None, description="URL announced in DataLayer mirrors. Unset: no mirrors anywhere."
    )
    auto_mirror_external_stores: bool = Field(
        True, description="Mirror subscribed organizations' stores and run the mirror job."
    )
    auto_subscribe_filestore: bool = Field(
        False, description="Also subscribe organizations' file stores."
    )

    # --- fees and amounts (mojos) --------------------------------------------------------
    default_fee: int = Field(3000, ge=0, description="Fee for every DataLayer write (mojos).")
    default_coin_amount: int = Field(300, ge=1, description="Mirror coin amount (mojos).")

    # --- polling ---------------------------------------------------------------------------
    poll_interval_seconds: float | None = Field(
        None,
        gt=0,
        description=(
            "How often jobs poll for confirmations and sync. Unset: 2 s against a real node, "
            "a quarter of the block time against the built-in simulator."
        ),
    )

    # --- task intervals (seconds) ----------------------------------------------------------
    sync_registries_task_interval: float = Field(5, gt=0, description="Registry sync fan-out.")
    sync_state_touch_interval_seconds: float = Field(
        60,
        ge=0,
        description=(
            "A sync run that finds nothing new writes nothing unless the organization's "
            "lastSyncedAt is this old (every write invalidates the response cache); 0 writes "
            "every run."
        ),
    )
    governance_sync_task_interval: float = Field(30, gt=0, description="Governance sync job.")
    default_organizations_sync_task_interval: float = Field(
        30, gt=0, description="Discovery of governance-listed organizations."
    )
    organization_meta_sync_task_interval: float = Field(
        300, gt=0, description="Organization metadata sync."
    )
    mirror_check_task_interval: float = Field(300, gt=0, description="Mirror announcement job.")
    validate_organization_table_task_interval: float = Field(
        1800, gt=0, description="Reconcile organization rows with DataLayer."
    )
    clean_up_failed_org_task_interval: float = Field(
        60,
        gt=0,
        description=(
            "Recovery check of interrupted creations (also run at worker start). CADT checks "
            "weekly; the check is one read, so a killed worker's creation resumes in minutes."
        ),
    )
    worker_heartbeat_interval: float = Field(
        10, gt=0, description="How often each worker records its heartbeat in Redis."
    )

    # --- org-operation lock ------------------------------------------------------------------
    lock_ttl_seconds: float = Field(3600, gt=0, description="Org-operation lock TTL (L7).")
    lock_heartbeat_seconds: float = Field(
        10, gt=0, description="How often a running org operation renews its lock heartbeat."
    )
    lock_heartbeat_timeout_seconds: float = Field(
        90,
        ge=0,
        description=(
            "A lock holder silent this long (a killed worker) may be taken over before the TTL; "
            "0 keeps CADT's TTL-only takeover."
        ),
    )

    lock_recovery_wait_seconds: float = Field(
        2,
        ge=0,
        description=(
            "A mutation that finds the lock held by the periodic creation recovery while it "
            "only tidies up (clears a finished record, it holds the lock for milliseconds) "
            "waits this long for it instead of answering Conflict; 0 answers at once (L2)."
        ),
    )

    # --- creation, confirmation and push (cadt-domain.md section 6) -------------------------
    creation_max_retries: int = Field(3, ge=1, description="Resume attempts of a creation.")
    creation_rejected_rounds: int = Field(
        3,
        ge=1,
        description=(
            "Rounds of create-and-confirm when the network rejects a store's launch (6.2); "
            "then the creation fails."
        ),
    )
    write_settled_mismatch_rounds: int = Field(
        3,
        ge=1,
        description=(
            "Polls a store may show other values with no pending transaction before a write "
            "is given up as not coming."
        ),
    )
    creation_timeout_seconds: float = Field(
        1800, gt=0, description="A non-terminal creation older than this is stale."
    )
    store_confirmation_max_polls: int = Field(
        120, ge=1, description="Polls of get_root before a new store is declared stuck."
    )
    transient_retry_attempts: int = Field(
        10, ge=1, description="Attempts of a store creation on transient wallet errors."
    )
    transient_retry_wait_seconds: float = Field(
        30, ge=0, description="Wait between attempts on transient wallet errors."
    )
    coin_shortage_budget_seconds: float = Field(
        900, ge=0, description="Time budget for store creation on coin-shortage errors."
    )
    spendable_coins_timeout_seconds: float = Field(
        300, ge=0, description="waitForSpendableCoins time limit."
    )
    transactions_confirm_timeout_seconds: float = Field(
        1800, ge=0, description="waitForAllTransactionsToConfirm time limit (then proceeds)."
    )
    stuck_transaction_seconds: float = Field(
        900, gt=0, description="An unconfirmed transaction older than this is stuck."
    )
    push_max_attempts: int = Field(60, ge=1, description="Push-when-available rounds.")
    pending_root_grace_seconds: float = Field(
        45, ge=0, description="Grace before clearing an orphaned pending root."
    )
    subscribe_timeout_seconds: float = Field(
        600, gt=0, description="Deadline for a subscribed store to become readable."
    )
    store_data_retries: int = Field(6, ge=1, description="Reads of new store data after a write.")
    unsubscribe_attempts: int = Field(60, ge=1, description="Attempts of one unsubscribe.")
    unsubscribe_wait_seconds: float = Field(0.6, ge=0, description="Wait between unsubscribes.")

    # --- sync mismatch backoff (cadt-domain.md 3.15) ---------------------------------------
    sync_backoff_initial_seconds: float = Field(30, gt=0, description="First backoff delay.")
    sync_backoff_multiplier: float = Field(2, ge=1, description="Backoff growth factor.")
    sync_backoff_max_seconds: float = Field(600, gt=0, description="Backoff delay cap.")
    sync_backoff_log_interval_seconds: float = Field(
        300, gt=0, description="Interval of the 'still waiting' summary log."
    )
    sync_stuck_reset_seconds: float = Field(
        120,
        gt=0,
        description=(
            "A subscribed store behind its target for this long (two DataLayer cycles) is reset "
            "with remove_subscriptions + subscribe."
        ),
    )
    sync_batch_size: int = Field(500, ge=1, description="Rows per insert batch during sync.")
