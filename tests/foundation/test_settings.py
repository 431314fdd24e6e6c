"""Settings: defaults, environment, and one clear line for a bad value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cadt_gateway.settings import Settings, SettingsError, load_settings


def test_defaults_are_an_embedded_node(make_settings):
    settings: Settings = make_settings()
    assert settings.uses_embedded_redis
    assert settings.uses_embedded_simulator
    assert settings.resolved_database_url.startswith("sqlite+aiosqlite:///")
    assert settings.resolved_database_url.endswith("cadt.sqlite3")
    assert settings.data_model_version.value == "v2"
    assert settings.auto_mirror_external_stores is True
    assert settings.port == 31310
    assert settings.lock_ttl_seconds == 3600
    assert settings.sync_backoff_initial_seconds == 30
    assert settings.sync_backoff_max_seconds == 600


def test_poll_interval_is_fast_against_the_simulator(make_settings):
    assert make_settings(simulator_block_seconds=0.2).effective_poll_interval == pytest.approx(0.05)
    real = make_settings(
        datalayer_url="https://127.0.0.1:8562", wallet_url="https://127.0.0.1:9256"
    )
    assert real.effective_poll_interval == 2.0
    assert make_settings(poll_interval_seconds=0.3).effective_poll_interval == 0.3


def test_environment_variables_are_read(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("CADT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CADT_MIRROR_CHECK_TASK_INTERVAL", "0.5")
    monkeypatch.setenv("CADT_DATABASE_URL", "postgres://user@db/cadt")
    settings = load_settings(_env_file=None)
    assert settings.data_dir == tmp_path
    assert settings.mirror_check_task_interval == 0.5
    assert settings.database_url == "postgresql+asyncpg://user@db/cadt"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CADT_PORT", "not-a-port", "CADT_PORT"),
        ("CADT_LOCK_TTL_SECONDS", "-1", "CADT_LOCK_TTL_SECONDS"),
        ("CADT_DATABASE_URL", "mysql://x", "CADT_DATABASE_URL: must start with"),
        ("CADT_REDIS_URL", "http://x", "CADT_REDIS_URL"),
        ("CADT_DATA_MODEL_VERSION", "v3", "CADT_DATA_MODEL_VERSION"),
        ("CADT_SIMULATOR_FAULTS", "{bad", "CADT_SIMULATOR_FAULTS: invalid fault switches"),
        (
            "CADT_SIMULATOR_FAULTS",
            '{"wallet_unsynced": "x"}',
            "CADT_SIMULATOR_FAULTS: invalid fault switches: wallet_unsynced",
        ),
    ],
)
def test_bad_value_is_one_line_naming_the_variable(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings(_env_file=None)
    message = str(raised.value)
    assert expected in message
    assert "\n" not in message


def test_upstream_urls_come_in_pairs(monkeypatch):
    monkeypatch.setenv("CADT_DATALAYER_URL", "https://127.0.0.1:8562")
    with pytest.raises(SettingsError, match="CADT_WALLET_URL"):
        load_settings(_env_file=None)


def test_cli_reports_a_bad_setting_without_a_traceback(tmp_path: Path):
    env = {**os.environ, "CADT_DATA_DIR": str(tmp_path), "CADT_LOCK_TTL_SECONDS": "soon"}
    done = subprocess.run(
        [sys.executable, "-m", "cadt_gateway.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "CADT_LOCK_TTL_SECONDS" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ([], {"CADT_SIMULATOR_FAULTS": "{bad"}, "CADT_SIMULATOR_FAULTS"),
        (["--faults", '{"latency": "x"}'], {}, "--faults: invalid fault switches: latency"),
    ],
)
def test_bad_simulator_faults_stop_the_simulator_with_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
):
    done = subprocess.run(
        [sys.executable, "-m", "cadt_gateway.cli", "simulator", "--port", "0", *args],
        env={**os.environ, "CADT_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_api_key_never_appears_in_the_error(monkeypatch):
    monkeypatch.setenv("CADT_API_KEY", "s3cret-key-value")
    monkeypatch.setenv("CADT_PORT", "nope")
    with pytest.raises(SettingsError) as raised:
        load_settings(_env_file=None)
    assert "s3cret-key-value" not in str(raised.value)
