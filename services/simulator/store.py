"""One DataLayer store's content and confirmed history, built to diff fast.

Every confirmed generation keeps its net change list `(key, old, new)`; the newest content is
a plain dict. That makes the common reads cheap:

- the diff of two consecutive generations is the stored change list (no set work at all);
- the diff of any two generations folds the change lists in between;
- older content is rebuilt by undoing change lists from the newest backwards (LRU-cached).

Root hashes are deterministic in the key/value set only: the sum modulo 2**256 of one
SHA-256 per pair, hashed once more, so a new root costs O(changes), not O(store size). The
empty set hashes to 64 zeros like a freshly launched Chia store. Keys and values are bare
lowercase hex strings throughout, which is also the wire format.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from services.simulator.errors import RpcError
from services.simulator.hexfmt import ZERO_HASH, parse_hex

#: (key, value before, value after); None means absent. Both hex, bare, lowercase.
Change = tuple[str, str | None, str | None]

_MODULUS = 1 << 256
_SNAPSHOT_CACHE = 4


def leaf_hash(key: str, value: str) -> str:
    """The per-pair hash reported as `hash` in get_keys_values."""
    return hashlib.sha256(f"{key}:{value}".encode("ascii")).hexdigest()


def _leaf_int(key: str, value: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{key}:{value}".encode("ascii")).digest(), "big")


def _root_of(accumulator: int, size: int) -> str:
    if size == 0:
        return ZERO_HASH
    return hashlib.sha256(b"cadt-sim-root" + accumulator.to_bytes(32, "big")).hexdigest()


@dataclass(slots=True)
class Generation:
    """A confirmed root: its hash, block, timestamp and the net changes that produced it."""

    root: str
    timestamp: int
    height: int
    changes: tuple[Change, ...]


@dataclass(slots=True)
class PlannedRoot:
    """The outcome of a changelist, computed without touching the store."""

    changes: tuple[Change, ...]
    root: str
    accumulator: int
    size: int


class StoreData:
    """Content and history of one store; see the module docstring for the layout."""

    def __init__(self) -> None:
        self.generations: list[Generation] = []
        self.current: dict[str, str] = {}
        self._accumulator = 0
        self._first_generation_of_root: dict[str, int] = {}
        self._snapshots: OrderedDict[int, dict[str, str]] = OrderedDict()

    # ------------------------------------------------------------------ writing
    def launch(self, *, timestamp: int, height: int) -> None:
        """Record generation 0: the empty launch root."""
        if self.generations:
            raise RuntimeError("store already launched")
        self.generations.append(Generation(ZERO_HASH, timestamp, height, ()))
        self._first_generation_of_root.setdefault(ZERO_HASH, 0)

    def plan(self, changelist: list[Any]) -> PlannedRoot:
        """Apply a batch_update changelist in order on a scratch view; Chia's errors on failure."""
        if not isinstance(changelist, list):
            raise RpcError("changelist")
        overlay: dict[str, str | None] = {}
        current = self.current
        for change in changelist:
            if not isinstance(change, dict):
                raise RpcError("string indices must be integers, not 'str'")
            action = change.get("action")
            if "key" not in change:
                raise RpcError("key")
            key = parse_hex(change["key"])
            present = overlay[key] if key in overlay else current.get(key)
            if action == "insert":
                if "value" not in change:
                    raise RpcError("value")
                if present is not None:
                    raise RpcError(f"KeyId({self._key_number(key)})")
                overlay[key] = parse_hex(change["value"])
            elif action == "upsert":
                if "value" not in change:
                    raise RpcError("value")
                overlay[key] = parse_hex(change["value"])
            elif action == "delete":
                # Real Chia treats a missing key as nothing to do; an all-no-op list errors below.
                if present is not None:
                    overlay[key] = None
            else:
                raise RpcError(f"Unknown action: {action}")
        return self._plan_from_overlay(overlay)

    def plan_changes(self, changes: list[Change]) -> PlannedRoot:
        """Plan already-net changes (used by seeding helpers; no per-action validation)."""
        overlay: dict[str, str | None] = {key: new for key, _old, new in changes}
        return self._plan_from_overlay(overlay)

    def _plan_from_overlay(self, overlay: dict[str, str | None]) -> PlannedRoot:
        current = self.current
        accumulator = self._accumulator
        size = len(current)
        net: list[Change] = []
        for key, new in overlay.items():
            old = current.get(key)
            if old == new:
                continue
            if old is not None:
                accumulator -= _leaf_int(key, old)
                size -= 1
            if new is not None:
                accumulator += _leaf_int(key, new)
                size += 1
            net.append((key, old, new))
        if not net:
            raise RpcError("Changelist resulted in no change to tree data")
        accumulator %= _MODULUS
        return PlannedRoot(tuple(net), _root_of(accumulator, size), accumulator, size)

    def commit(self, planned: PlannedRoot, *, timestamp: int, height: int) -> Generation:
        """Confirm a planned root as the next generation."""
        current = self.current
        for key, _old, new in planned.changes:
            if new is None:
                del current[key]
            else:
                current[key] = new
        self._accumulator = planned.accumulator
        generation = Generation(planned.root, timestamp, height, planned.changes)
        self.generations.append(generation)
        self._first_generation_of_root.setdefault(planned.root, len(self.generations) - 1)
        return generation

    def _key_number(self, key: str) -> int:
        # Chia reports a duplicate insert as the key's row id; the insertion index is as opaque.
        for number, existing in enumerate(self.current, start=1):
            if existing == key:
                return number
        return len(self.current) + 1

    # ------------------------------------------------------------------ reading
    @property
    def latest(self) -> int:
        """Index of the newest confirmed generation (-1 before launch)."""
        return len(self.generations) - 1

    def generation_of(self, root: str) -> int | None:
        """The first generation index whose root is `root`."""
        return self._first_generation_of_root.get(root)

    def snapshot(self, generation: int) -> dict[str, str]:
        """Content at `generation`; the newest one is the live dict, do not mutate it."""
        if generation == self.latest:
            return self.current
        cached = self._snapshots.get(generation)
        if cached is not None:
            self._snapshots.move_to_end(generation)
            return cached
        content = dict(self.current)
        for index in range(self.latest, generation, -1):
            for key, old, _new in reversed(self.generations[index].changes):
                if old is None:
                    del content[key]
                else:
                    content[key] = old
        self._snapshots[generation] = content
        if len(self._snapshots) > _SNAPSHOT_CACHE:
            self._snapshots.popitem(last=False)
        return content

    def diff(self, generation_1: int, generation_2: int) -> list[tuple[str, str, str]]:
        """(type, key, value) records turning generation_1's content into generation_2's."""
        if generation_1 == generation_2:
            return []
        forward = generation_1 < generation_2
        low, high = sorted((generation_1, generation_2))
        out: list[tuple[str, str, str]] = []
        if high == low + 1:
            pairs: Any = ((key, old, new) for key, old, new in self.generations[high].changes)
        else:
            net: dict[str, list[str | None]] = {}
            for index in range(low + 1, high + 1):
                for key, old, new in self.generations[index].changes:
                    entry = net.get(key)
                    if entry is None:
                        net[key] = [old, new]
                    else:
                        entry[1] = new
            pairs = ((key, old, new) for key, (old, new) in net.items())
        for key, old, new in pairs:
            if old == new:
                continue
            before, after = (old, new) if forward else (new, old)
            if before is not None:
                out.append(("DELETE", key, before))
            if after is not None:
                out.append(("INSERT", key, after))
        return out

    def drop_caches(self) -> None:
        """Forget rebuilt snapshots (after bulk changes)."""
        self._snapshots.clear()
