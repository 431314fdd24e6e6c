"""Base classes and records shared by the DataLayer and Wallet models.

Responses are lenient: unknown fields are kept (`extra="allow"`) so a newer Chia adding fields
never breaks a read. Requests are strict (`extra="forbid"`) so a typo never reaches the wire.
Amounts are plain Python ints: mojo amounts exceed 2**53 (the test wallet holds 2.1e19).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from services.chia.hexutil import Hash32


class ChiaModel(BaseModel):
    """A response record: immutable, extra fields kept, hex already normalised."""

    model_config = ConfigDict(extra="allow", frozen=True)


class ChiaRequest(BaseModel):
    """A request body: unknown fields refused; `payload()` drops unset optional fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def payload(self) -> dict[str, Any]:
        """The JSON body sent to Chia."""
        return self.model_dump(mode="json", exclude_none=True)


class EmptyRequest(ChiaRequest):
    """The `{}` body of the methods that take no arguments."""


class EmptyResponse(ChiaModel):
    """A response whose only field is `success`."""


class Coin(ChiaModel):
    """A coin as Chia serialises it."""

    parent_coin_info: Hash32
    puzzle_hash: Hash32
    amount: int


class MempoolInclusionStatus(IntEnum):
    """Status codes in `TransactionRecord.sent_to` (chia.types.mempool_inclusion_status)."""

    SUCCESS = 1
    PENDING = 2
    FAILED = 3


class SentTo(NamedTuple):
    """One `[peer, status, error]` entry of a transaction's `sent_to`."""

    peer: str
    status: int
    error: str | None


class TransactionRecord(ChiaModel):
    """A wallet transaction (chia.wallet.transaction_record.TransactionRecord)."""

    name: Hash32
    confirmed: bool
    created_at_time: int
    wallet_id: int
    confirmed_at_height: int = 0
    amount: int = 0
    fee_amount: int = 0
    sent: int = 0
    sent_to: list[SentTo] = Field(default_factory=list)
    to_puzzle_hash: Hash32 | None = None
    to_address: str | None = None
    trade_id: Hash32 | None = None
    type: int = 0
    additions: list[Coin] = Field(default_factory=list)
    removals: list[Coin] = Field(default_factory=list)

    @property
    def in_mempool(self) -> bool:
        """A peer accepted the spend into its mempool."""
        return any(entry.status == MempoolInclusionStatus.SUCCESS for entry in self.sent_to)

    @property
    def rejected(self) -> bool:
        """Every peer it was sent to refused it (CADT's 'rejected by the network')."""
        return bool(self.sent_to) and all(
            entry.status == MempoolInclusionStatus.FAILED for entry in self.sent_to
        )
