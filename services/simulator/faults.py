"""Fault switches: the failure modes a gateway meets on real nodes, on demand.

Set them at start (`EmbeddedSimulator(faults=...)`, or the env var `CADT_SIMULATOR_FAULTS`
holding the JSON below) and at run time through `/_simulator/faults` or
`cadt-gateway simulator faults`. JSON shape (every field optional):

```json
{
  "latency": {"get_keys_values": 0.2, "wallet.get_sync_status": 0.05, "*": 0.0},
  "fail_next": [{"method": "create_data_store", "count": 2,
                 "error": "DataLayer Wallet already exists for this key",
                 "key": 0, "service": "datalayer", "nested": true}],
  "wallet_unsynced": [0],
  "stuck": [{"store_id": "<id>", "generation": 3, "key": 0}],
  "lost_data": ["<id>"],
  "reject_transactions": [0],
  "spendable_coins": {"0": 1},
  "mirrors_down": ["http://127.0.0.1:8575"],
  "miss_downloads": [{"store_id": "<id>", "count": 1, "key": 0}]
}
```

- `latency`: seconds added before answering; keys are `method`, `service.method` or `*`.
- `fail_next`: the next `count` calls of `method` (on `key`/`service`, or any) fail with `error`.
  `nested` (default: true for DataLayer methods that go through the wallet) wraps it as
  "RPC response failure: {...}".
- `wallet_unsynced`: these keys' wallets report synced false and refuse transactions.
- `stuck`: subscribers (all but the owner, or `key`) never download past `generation`.
- `lost_data`: the owner's local copy is gone (get_sync_status generation 0, zero root).
- `reject_transactions`: new transactions of these keys fail in the mempool (sent_to status 3).
- `spendable_coins`: a key's wallet shows at most that many unspent coins.
- `mirrors_down`: downloads from these URLs miss (and put the URL on back-off).
- `miss_downloads`: the next `count` download attempts of a store miss, like the 404 race.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Service = Literal["datalayer", "wallet"]


def _bare_id(value: str) -> str:
    value = value.strip().lower()
    return value[2:] if value.startswith("0x") else value


class FailRule(BaseModel):
    """Fail the next `count` calls of a method with a given error text."""

    model_config = ConfigDict(extra="forbid")

    method: str
    error: str
    count: int = Field(1, ge=1)
    key: int | None = None
    service: Service | None = None
    nested: bool | None = None


class StuckRule(BaseModel):
    """A subscriber's copy of a store never goes past `generation`."""

    model_config = ConfigDict(extra="forbid")

    store_id: str
    generation: int = Field(ge=0)
    key: int | None = None

    @field_validator("store_id")
    @classmethod
    def _store_id(cls, value: str) -> str:
        return _bare_id(value)


class MissRule(BaseModel):
    """The next `count` download attempts of a store miss (mirror 404)."""

    model_config = ConfigDict(extra="forbid")

    store_id: str
    count: int = Field(1, ge=1)
    key: int | None = None

    @field_validator("store_id")
    @classmethod
    def _store_id(cls, value: str) -> str:
        return _bare_id(value)


class Faults(BaseModel):
    """Every fault switch; the default is a healthy node."""

    model_config = ConfigDict(extra="forbid")

    latency: dict[str, float] = Field(default_factory=dict)
    fail_next: list[FailRule] = Field(default_factory=list)
    wallet_unsynced: list[int] = Field(default_factory=list)
    stuck: list[StuckRule] = Field(default_factory=list)
    lost_data: list[str] = Field(default_factory=list)
    reject_transactions: list[int] = Field(default_factory=list)
    spendable_coins: dict[int, int] = Field(default_factory=dict)
    mirrors_down: list[str] = Field(default_factory=list)
    miss_downloads: list[MissRule] = Field(default_factory=list)

    @field_validator("lost_data")
    @classmethod
    def _bare_ids(cls, values: list[str]) -> list[str]:
        return [_bare_id(value) for value in values]

    @field_validator("mirrors_down")
    @classmethod
    def _urls(cls, values: list[str]) -> list[str]:
        return [value.rstrip("/") for value in values]

    # ------------------------------------------------------------------ queries
    def latency_for(self, service: Service, method: str) -> float:
        """Seconds to wait before answering this call."""
        for name in (f"{service}.{method}", method, "*"):
            if name in self.latency:
                return max(0.0, self.latency[name])
        return 0.0

    def take_failure(self, service: Service, method: str, key: int) -> FailRule | None:
        """Consume one matching fail_next rule, if any."""
        for index, rule in enumerate(self.fail_next):
            if rule.method != method:
                continue
            if rule.service is not None and rule.service != service:
                continue
            if rule.key is not None and rule.key != key:
                continue
            if rule.count <= 1:
                del self.fail_next[index]
            else:
                rule.count -= 1
            return rule
        return None

    def stuck_generation(self, store_id: str, key: int) -> int | None:
        """The generation a subscriber `key` is held at for `store_id`, if stuck."""
        caps = [
            rule.generation
            for rule in self.stuck
            if rule.store_id == store_id and (rule.key is None or rule.key == key)
        ]
        return min(caps) if caps else None

    def take_miss(self, store_id: str, key: int) -> bool:
        """Consume one pending download miss for this store and key."""
        for index, rule in enumerate(self.miss_downloads):
            if rule.store_id == store_id and (rule.key is None or rule.key == key):
                if rule.count <= 1:
                    del self.miss_downloads[index]
                else:
                    rule.count -= 1
                return True
        return False

    # ------------------------------------------------------------------ updates
    def merged(self, other: Faults, fields: set[str]) -> Faults:
        """These faults plus `other`'s given fields: lists extend, mappings update."""
        data = self.model_dump()
        incoming = other.model_dump()
        for name in fields:
            value = incoming[name]
            if isinstance(value, list):
                data[name] = data[name] + [item for item in value if item not in data[name]]
            elif isinstance(value, dict):
                data[name] = {**data[name], **value}
        return Faults.model_validate(data)
