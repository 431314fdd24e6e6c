"""Health.state: the node as a whole from its parts (UP, DEGRADED, DOWN)."""

from __future__ import annotations

import pytest

from services.health import NodeHealth, PartHealth, PartState

UP, DOWN, DEGRADED = PartState.UP, PartState.DOWN, PartState.DEGRADED


def node(**states: PartState) -> NodeHealth:
    parts = {name: PartHealth(states.get(name, UP)) for name in PARTS}
    return NodeHealth(version="test", read_only=False, **parts)


PARTS = ("database", "redis", "datalayer", "wallet", "worker")


def test_every_part_up_is_up() -> None:
    health = node()
    assert (health.ok, health.state) == (True, UP)


@pytest.mark.parametrize(
    "states",
    [
        {"datalayer": DOWN},
        {"wallet": DOWN},
        {"wallet": DEGRADED},  # not synced
        {"worker": DOWN},
        {"datalayer": DOWN, "wallet": DOWN, "worker": DOWN},
    ],
)
def test_an_upstream_or_worker_part_down_is_degraded(states: dict[str, PartState]) -> None:
    health = node(**states)
    assert (health.ok, health.state) == (False, DEGRADED)


@pytest.mark.parametrize(
    "states", [{"database": DOWN}, {"redis": DOWN}, {"database": DOWN, "datalayer": DOWN}]
)
def test_the_database_or_redis_down_is_down(states: dict[str, PartState]) -> None:
    health = node(**states)
    assert (health.ok, health.state) == (False, DOWN)
