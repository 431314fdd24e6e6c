"""The per-organization sync mismatch backoff of cadt-domain.md 3.15, as pure functions.

CADT re-checked a stuck remote store every 5 s and wrote about 17k WARN lines a day per stuck
organization (PR #1531). Its `SyncMismatchBackoff` keeps one entry per organization:

- the mismatch test runs on every tick BEFORE the entry is consulted, so a store that catches
  up in the middle of a window is synced on the very next tick (`RECOVERED`, one INFO);
- a first mismatch starts an episode: WARN when the local generation is behind the root
  history, DEBUG when only the target differs; the organization is skipped for 30 s;
- while the window is open the organization is skipped, with an INFO summary at most every
  5 minutes; when it closes the delay doubles (capped at 600 s) and is logged at DEBUG only.

Here the entry lives in the database (SyncState), not in memory, so it survives restarts and
is visible in `Organization.sync.backoff`; every timestamp comes from the caller (`now`), so
tests drive the schedule without sleeping.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from services.config import ServiceSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackoffPolicy:
    """The constants of the backoff (CADT: 30 s, x2, 600 s, 300 s summary)."""

    initial_seconds: float = 30.0
    multiplier: float = 2.0
    max_seconds: float = 600.0
    log_interval_seconds: float = 300.0

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> BackoffPolicy:
        """The policy configured by the CADT_SYNC_BACKOFF_* settings."""
        return cls(
            initial_seconds=settings.sync_backoff_initial_seconds,
            multiplier=settings.sync_backoff_multiplier,
            max_seconds=settings.sync_backoff_max_seconds,
            log_interval_seconds=settings.sync_backoff_log_interval_seconds,
        )


@dataclass(frozen=True)
class Observation:
    """What DataLayer said about a registry store in this tick."""

    root_history_length: int
    generation: int | None
    target_generation: int | None

    @property
    def highest_index(self) -> int:
        """Index of the newest root in the root history."""
        return self.root_history_length - 1

    @property
    def generation_mismatch(self) -> bool:
        """The local generation differs from the root history (None counts as a mismatch)."""
        return self.generation is None or self.generation != self.highest_index

    @property
    def target_mismatch(self) -> bool:
        """The chain's target generation differs from the root history."""
        return self.target_generation is None or self.target_generation != self.highest_index

    @property
    def mismatch(self) -> bool:
        """Either kind of mismatch: DataLayer has not caught up with the chain."""
        return self.generation_mismatch or self.target_mismatch

    def describe(self) -> str:
        """The reason shown in Organization.sync.backoff."""
        if self.generation is None:
            return f"nothing downloaded yet (root history {self.root_history_length})"
        target = "?" if self.target_generation is None else str(self.target_generation)
        return (
            f"generation {self.generation} of {target} downloaded "
            f"(root history {self.root_history_length})"
        )


@dataclass(frozen=True)
class BackoffEntry:
    """One backoff episode of an organization (persisted in SyncState)."""

    since: datetime
    delay_seconds: float
    next_retry_at: datetime
    last_logged_at: datetime

    @property
    def step_started_at(self) -> datetime:
        """When the current delay step began (a reset is allowed once per step)."""
        return self.next_retry_at - timedelta(seconds=self.delay_seconds)


class BackoffAction(StrEnum):
    """What one evaluation did."""

    NONE = "none"  # no mismatch, no episode
    STARTED = "started"  # first mismatch: episode opened, skip
    WAITING = "waiting"  # inside the window: skip
    SUMMARY = "summary"  # inside the window, periodic INFO summary due: skip
    EXTENDED = "extended"  # window over, still mismatched: delay grows, skip
    RECOVERED = "recovered"  # mismatch gone: episode closed, sync proceeds


@dataclass(frozen=True)
class BackoffDecision:
    """The outcome of one evaluation: skip or not, and the entry to persist (None = none)."""

    action: BackoffAction
    entry: BackoffEntry | None

    @property
    def skip(self) -> bool:
        """Every mismatched evaluation skips the sync (CADT's rule)."""
        return self.action in (
            BackoffAction.STARTED,
            BackoffAction.WAITING,
            BackoffAction.SUMMARY,
            BackoffAction.EXTENDED,
        )


def evaluate(
    entry: BackoffEntry | None,
    observation: Observation,
    now: datetime,
    policy: BackoffPolicy,
) -> BackoffDecision:
    """Apply `shouldSkip` + `clearIfResolved` of CADT to one tick."""
    if not observation.mismatch:
        if entry is None:
            return BackoffDecision(BackoffAction.NONE, None)
        return BackoffDecision(BackoffAction.RECOVERED, None)
    if entry is None:
        delay = policy.initial_seconds
        started = BackoffEntry(
            since=now,
            delay_seconds=delay,
            next_retry_at=now + timedelta(seconds=delay),
            last_logged_at=now,
        )
        return BackoffDecision(BackoffAction.STARTED, started)
    if now < entry.next_retry_at:
        if (now - entry.last_logged_at).total_seconds() >= policy.log_interval_seconds:
            return BackoffDecision(BackoffAction.SUMMARY, replace(entry, last_logged_at=now))
        return BackoffDecision(BackoffAction.WAITING, entry)
    delay = min(entry.delay_seconds * policy.multiplier, policy.max_seconds)
    extended = replace(
        entry,
        delay_seconds=delay,
        next_retry_at=now + timedelta(seconds=delay),
        last_logged_at=now,
    )
    return BackoffDecision(BackoffAction.EXTENDED, extended)


def log_decision(
    name: str,
    decision: BackoffDecision,
    observation: Observation,
    previous: BackoffEntry | None,
    now: datetime,
) -> None:
    """Write CADT's log line for this evaluation (one WARN per episode at most)."""
    hi = observation.highest_index
    gen = observation.generation
    action = decision.action
    if action is BackoffAction.STARTED:
        if observation.generation_mismatch:
            logger.warning(
                "Root history mismatch for %s: rootHistory.length-1=%s vs "
                "sync_status.generation=%s. Waiting for datalayer to sync. "
                "Will back off if this persists.",
                name,
                hi,
                gen,
            )
        else:
            logger.debug(
                "Target generation mismatch for %s: rootHistory.length-1=%s vs "
                "sync_status.target_generation=%s. Will back off if this persists.",
                name,
                hi,
                observation.target_generation,
            )
    elif action is BackoffAction.SUMMARY and decision.entry is not None:
        entry = decision.entry
        logger.info(
            "%s still waiting for datalayer sync (gen %s/%s, stuck for %ds, next retry in %ds)",
            name,
            gen,
            hi,
            (now - entry.since).total_seconds(),
            max(0.0, (entry.next_retry_at - now).total_seconds()),
        )
    elif action is BackoffAction.EXTENDED and decision.entry is not None:
        logger.debug(
            "Root history mismatch for %s persists (gen %s/%s). Next retry in %ds.",
            name,
            gen,
            hi,
            decision.entry.delay_seconds,
        )
    elif action is BackoffAction.RECOVERED and previous is not None:
        logger.info(
            "%s datalayer sync caught up after %ds. Resuming normal sync.",
            name,
            (now - previous.since).total_seconds(),
        )
