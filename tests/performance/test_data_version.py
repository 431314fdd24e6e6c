"""The data version: local writes, increments of other processes, late messages, resets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from cadt_gateway.response_cache import DataVersion
from services.redis_keys import DATA_VERSION_KEY


@pytest.fixture
async def versions(redis_client: Any) -> AsyncIterator[list[DataVersion]]:
    """Two processes' views of the data version on the test Redis."""
    started = [DataVersion(redis_client), DataVersion(redis_client)]
    for version in started:
        await version.start()
    try:
        yield started
    finally:
        for version in started:
            await version.stop()


async def test_a_local_write_moves_the_generation_at_once_and_only_once(versions: Any):
    mine, _ = versions
    before = mine.current

    mine.wrote()
    at_commit = mine.current
    await mine.flush()

    assert before is not None and at_commit != before
    # Our own increment right after the last known version: nothing new to drop.
    assert mine.current == at_commit
    assert mine.highest == 1


async def test_another_process_write_moves_the_generation_when_it_arrives(versions: Any):
    mine, other = versions
    before = mine.current

    other.wrote()
    await other.flush()
    await mine.wait_until(other.highest)

    assert mine.current != before


async def test_a_late_message_of_an_older_version_is_ignored(versions: Any):
    mine, _ = versions
    await mine.wait_until(0)
    mine._learn(5)
    generation = mine.current

    mine._learn(4)

    assert mine.current == generation
    assert mine.highest == 5


async def test_a_reset_counter_is_noticed_by_the_next_own_increment(
    versions: Any, redis_client: Any
):
    mine, _ = versions
    mine._learn(50)
    await redis_client.set(DATA_VERSION_KEY, 3)  # e.g. Redis restarted without its data

    mine.wrote()
    generation = mine.current
    await mine.flush()

    assert mine.highest == 4
    assert mine.current != generation


async def test_nothing_is_cacheable_while_the_version_is_unknown(redis_client: Any):
    version = DataVersion(redis_client)  # not following: never learned a version

    assert version.current is None
