"""The embedded redis-server: starts, keeps data across a restart, is joined by a 2nd process."""

from __future__ import annotations

from pathlib import Path

import redis

from cadt_gateway.embedded_redis import EmbeddedRedis


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def test_starts_and_keeps_data_across_a_restart(tmp_path: Path):
    first = EmbeddedRedis(tmp_path / "data")
    url = first.start()
    client = _client(url)
    try:
        assert client.ping()
        client.set("kept", "yes")
    finally:
        client.close()
        first.stop()

    second = EmbeddedRedis(tmp_path / "data")
    url = second.start()
    client = _client(url)
    try:
        assert client.get("kept") == b"yes"
    finally:
        client.close()
        second.stop()


def test_a_second_process_joins_the_running_server(tmp_path: Path):
    owner = EmbeddedRedis(tmp_path / "d")
    joiner = EmbeddedRedis(tmp_path / "d")
    try:
        url = owner.start()
        assert joiner.start() == url
        client = _client(url)
        client.set("shared", "1")
        client.close()
        joiner.stop()  # the joiner does not own the server: it keeps running
        client = _client(url)
        assert client.get("shared") == b"1"
        client.close()
    finally:
        owner.stop()


def test_long_data_dirs_fall_back_to_a_short_socket_path(tmp_path: Path):
    deep = tmp_path / ("x" * 60) / ("y" * 40)
    server = EmbeddedRedis(deep)
    try:
        url = server.start()
        assert len(url) < 110
        client = _client(url)
        assert client.ping()
        client.close()
    finally:
        server.stop()


def test_stop_shuts_the_server_down_even_with_clients_connected(tmp_path: Path):
    server = EmbeddedRedis(tmp_path / "d")
    url = server.start()
    lingering = _client(url)
    assert lingering.ping()
    server.stop()
    lingering.close()
    try:
        alive = _client(url).ping()
    except redis.RedisError:
        alive = False
    assert not alive
