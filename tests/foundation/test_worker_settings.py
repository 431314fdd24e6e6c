"""arq's own command can run a worker: `arq cadt_gateway.worker.WorkerSettings`."""

from __future__ import annotations

from typing import Any

import pytest
from arq.connections import create_pool
from arq.worker import get_kwargs

import cadt_gateway.worker
from cadt_gateway.settings import SettingsError
from tests.conftest import TEST_REDIS_URL


def test_worker_settings_needs_an_external_redis(make_settings: Any) -> None:
    with pytest.raises(SettingsError, match="CADT_REDIS_URL"):
        cadt_gateway.worker.worker_settings_class(make_settings())


def test_worker_settings_is_built_lazily_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("CADT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CADT_REDIS_URL", TEST_REDIS_URL)
    settings_class = cadt_gateway.worker.WorkerSettings  # module __getattr__
    names = {function.name for function in get_kwargs(settings_class)["functions"]}
    assert {"create_home_organization", "sync_registries", "mirror_check"} <= names
    with pytest.raises(AttributeError):
        cadt_gateway.worker.NoSuchThing  # noqa: B018


async def test_worker_settings_open_and_close_the_node(
    make_settings: Any, redis_client: Any, simulator: Any, database_url: str
) -> None:
    settings = make_settings(
        redis_url=TEST_REDIS_URL,
        database_url=database_url,
        datalayer_url=simulator.datalayer_url(0),
        wallet_url=simulator.wallet_url(0),
        certificate_folder_path=simulator.ssl_folder(0),
    )
    options = get_kwargs(cadt_gateway.worker.worker_settings_class(settings))
    assert options["redis_settings"].database == int(TEST_REDIS_URL.rsplit("/", 1)[1])
    pool = await create_pool(options["redis_settings"])
    ctx: dict[str, Any] = {"redis": pool}
    try:
        await options["on_startup"](ctx)
        services = ctx["services"]
        assert await services.redis.ping()
        assert (await services.wallet.get_sync_status()).synced
    finally:
        await options["on_shutdown"](ctx)
        await pool.aclose()
    assert "services" not in ctx and "scheduler" not in ctx
