"""Keep the simulated chain in `<data_dir>/chain.sqlite3` so a restart continues it.

Two tables: `meta` holds one JSON document with everything small (keys, coins, transactions,
subscriptions, mirrors, mempool, pending roots); `generations` is append-only, one row per
confirmed root with its net change list. A save rewrites the small document and appends only
the generations confirmed since the last save, so a chain with a thousand generations of a
hundred changes costs nothing per block. Faults are not persisted (they are start-time or
run-time switches).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from services.simulator.faults import Faults
from services.simulator.state import SimulatorConfig, SimulatorState
from services.simulator.store import Change

STATE_FILE = "chain.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS generations (
    store_id TEXT NOT NULL,
    generation INTEGER NOT NULL,
    root TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    height INTEGER NOT NULL,
    changes TEXT NOT NULL,
    PRIMARY KEY (store_id, generation)
);
"""


class SqlitePersistence:
    """Saves and loads one `SimulatorState`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(self.path)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.executescript(_SCHEMA)
        self._saved: dict[str, int] = {}

    def load(
        self,
        config: SimulatorConfig,
        *,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.time,
    ) -> SimulatorState | None:
        """The saved state, or None when the file is new."""
        row = self._connection.execute("SELECT value FROM meta WHERE name = 'state'").fetchone()
        if row is None:
            return None
        meta: dict[str, Any] = json.loads(row[0])
        state = SimulatorState.restore(
            config, meta, self._generations(), faults=faults, clock=clock
        )
        self._saved = {
            store_id: len(store.data.generations) for store_id, store in state.stores.items()
        }
        return state

    def _generations(self) -> Iterator[tuple[str, str, int, int, list[Change]]]:
        cursor = self._connection.execute(
            "SELECT store_id, root, timestamp, height, changes FROM generations "
            "ORDER BY store_id, generation"
        )
        for store_id, root, timestamp, height, changes in cursor:
            yield (
                store_id,
                root,
                timestamp,
                height,
                [tuple(change) for change in json.loads(changes)],
            )

    def save(self, state: SimulatorState, *, force: bool = False) -> None:
        """Write the state if it changed since the last save."""
        if not (state.dirty or force):
            return
        rows = []
        for store_id, store in state.stores.items():
            saved = self._saved.get(store_id, 0)
            generations = store.data.generations
            for index in range(saved, len(generations)):
                generation = generations[index]
                rows.append(
                    (
                        store_id,
                        index,
                        generation.root,
                        generation.timestamp,
                        generation.height,
                        json.dumps(generation.changes, separators=(",", ":")),
                    )
                )
        meta = json.dumps(state.export_meta(), separators=(",", ":"))
        with self._connection:
            self._connection.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES ('state', ?)", (meta,)
            )
            self._connection.executemany(
                "INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?, ?)", rows
            )
        for store_id, store in state.stores.items():
            self._saved[store_id] = len(store.data.generations)
        state.dirty = False

    def close(self) -> None:
        """Close the database."""
        self._connection.close()


def open_state(
    data_dir: Path,
    config: SimulatorConfig,
    *,
    faults: Faults | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[SimulatorState, SqlitePersistence]:
    """Load the chain saved in `data_dir`, or create (and seed) a new one and save it."""
    persistence = SqlitePersistence(Path(data_dir) / STATE_FILE)
    try:
        state = persistence.load(config, faults=faults, clock=clock)
        if state is None:
            state = SimulatorState.create(config, faults=faults, clock=clock)
            persistence.save(state, force=True)
    except Exception:
        persistence.close()
        raise
    return state, persistence
