"""The embedded runner: persistence across restarts, mutual TLS, admin access rules, the CLI."""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
from pathlib import Path

import httpx
import pytest

from cadt_gateway.cli_simulator import add_simulator_parser, run_simulator
from services.simulator import (
    EmbeddedSimulator,
    SimulatorConfig,
    SimulatorState,
    create_simulator_app,
    ensure_certificates,
)
from tests.simulator.conftest import Admin, Node, create_store, write


async def test_restart_keeps_the_chain_and_the_certificates(sim_dir: Path):
    async with EmbeddedSimulator(
        sim_dir, block_seconds=0.05, seed="none", keys=2, faults={}
    ) as first:
        ca_before = first.ca_cert.read_bytes()
        owner, reader, admin = Node(first, 1), Node(first, 0), Admin(first)
        await admin.auto_farm(False)
        store_id = await create_store(owner, admin, fee=1000)
        root = await write(
            owner, admin, store_id, [{"action": "insert", "key": "01", "value": "01"}]
        )
        await reader.ok("subscribe", {"id": store_id, "urls": []})
        await admin.cycle()
        await reader.ok("unsubscribe", {"id": store_id})  # queued in memory: lost on restart
        await owner.ok(
            "batch_update",
            {"id": store_id, "changelist": [{"action": "insert", "key": "02", "value": "02"}]},
        )
        balance = (await owner.wallet("get_wallet_balance", {"wallet_id": 1}))["wallet_balance"]
        height = (await admin.state())["height"]
        for client in (owner, reader):
            await client.aclose()
        await admin.http.aclose()

    async with EmbeddedSimulator(
        sim_dir, block_seconds=0.05, seed="none", keys=2, faults={}
    ) as second:
        assert second.ca_cert.read_bytes() == ca_before
        owner, reader, admin = Node(second, 1), Node(second, 0), Admin(second)
        await admin.auto_farm(False)
        assert (await admin.state())["height"] >= height
        assert (await owner.ok("get_root", {"id": store_id}))["hash"] == root
        assert (await reader.ok("get_sync_status", {"id": store_id}))["sync_status"][
            "generation"
        ] == 1
        await admin.cycle()
        assert (await reader.ok("subscriptions"))["store_ids"] == [store_id]
        assert (await owner.wallet("get_wallet_balance", {"wallet_id": 1}))[
            "wallet_balance"
        ] == balance
        # The write that was pending at shutdown confirms at the next block after the restart.
        await admin.farm()
        history = (await owner.ok("get_root_history", {"id": store_id}))["root_history"]
        assert len(history) == 3 and history[1]["root_hash"] == root
        for client in (owner, reader):
            await client.aclose()
        await admin.http.aclose()


async def test_one_data_dir_serves_one_simulator(sim: EmbeddedSimulator):
    with pytest.raises(RuntimeError, match="already running"):
        await EmbeddedSimulator(sim.data_dir, seed="none").start()
    runtime = json.loads((sim.data_dir / "runtime.json").read_text())
    runtime["pid"] = 1  # init: alive, and not us
    (sim.data_dir / "runtime.json").write_text(json.dumps(runtime))
    EmbeddedSimulator._active_dirs.discard(sim.data_dir)
    try:
        with pytest.raises(RuntimeError, match=r"another simulator \(pid 1\)"):
            await EmbeddedSimulator(sim.data_dir, seed="none").start()
    finally:
        EmbeddedSimulator._active_dirs.add(sim.data_dir)


async def test_rpc_requires_a_client_certificate_from_the_private_ca(
    sim: EmbeddedSimulator, tmp_path: Path
):
    bare = ssl.create_default_context()
    bare.check_hostname = False
    bare.verify_mode = ssl.CERT_NONE
    async with httpx.AsyncClient(verify=bare, trust_env=False) as client:
        with pytest.raises(httpx.TransportError):
            await client.post(f"{sim.datalayer_url(0)}/get_routes", json={})

    other = ensure_certificates(tmp_path / "other", 1)
    foreign = ssl.create_default_context()
    foreign.check_hostname = False
    foreign.verify_mode = ssl.CERT_NONE
    foreign.load_cert_chain(*other.client_pair(0, "datalayer"))
    async with httpx.AsyncClient(verify=foreign, trust_env=False) as client:
        with pytest.raises(httpx.TransportError):
            await client.post(f"{sim.datalayer_url(0)}/get_routes", json={})

    # The server certificate verifies against the private CA too (SAN 127.0.0.1).
    verified = ssl.create_default_context(cafile=str(sim.ca_cert))
    verified.load_cert_chain(*sim.client_cert(0, "wallet"))
    async with httpx.AsyncClient(verify=verified, trust_env=False) as client:
        answer = await client.post(f"{sim.wallet_url(0)}/get_sync_status", json={})
        assert answer.json()["synced"] is True
        admin_over_tls = await client.get(f"{sim.base_url}/_simulator/state")
        assert admin_over_tls.status_code == 200


async def test_ssl_folder_is_laid_out_like_chia_root(sim: EmbeddedSimulator):
    folder = sim.ssl_folder(1)
    assert folder == sim.chia_root(1) / "config" / "ssl"
    for relative in (
        "data_layer/private_data_layer.crt",
        "data_layer/private_data_layer.key",
        "wallet/private_wallet.crt",
        "wallet/private_wallet.key",
        "ca/private_ca.crt",
    ):
        assert (folder / relative).is_file(), relative
    assert (folder / "wallet/private_wallet.key").stat().st_mode & 0o077 == 0
    runtime = json.loads((sim.data_dir / "runtime.json").read_text())
    assert runtime["port"] == sim.port and runtime["admin_url"] == sim.admin_url


async def test_admin_routes_are_loopback_only():
    state = SimulatorState(SimulatorConfig(seed="none", keys=1))
    app = create_simulator_app(state)
    remote = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))
    async with httpx.AsyncClient(transport=remote, base_url="http://sim") as client:
        for method, path in (
            ("GET", "/_simulator/state"),
            ("POST", "/_simulator/farm"),
            ("DELETE", "/_simulator/faults"),
        ):
            response = await client.request(method, path)
            assert response.status_code == 403, path
        assert (await client.post("/key/0/wallet/get_sync_status", json={})).json()[
            "synced"
        ] is True
    local = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=local, base_url="http://sim") as client:
        assert (await client.post("/_simulator/farm", json={"blocks": 2})).json()["height"] == 3
    ipv6 = httpx.ASGITransport(app=app, client=("::1", 40000))
    async with httpx.AsyncClient(transport=ipv6, base_url="http://sim") as client:
        assert (await client.get("/_simulator/state")).status_code == 200


async def test_the_plain_admin_listener_serves_no_rpc(sim: EmbeddedSimulator):
    async with httpx.AsyncClient(trust_env=False) as client:
        rpc = await client.post(
            sim.admin_url.replace("/_simulator", "/key/0/wallet/get_sync_status"), json={}
        )
        assert (rpc.status_code, rpc.text) == (404, "404: Not Found")


async def test_cli_controls_a_running_simulator(
    sim: EmbeddedSimulator, capsys: pytest.CaptureFixture[str]
):
    parser = argparse.ArgumentParser(prog="cadt-gateway")
    add_simulator_parser(parser.add_subparsers(dest="command"))

    async def run(*argv: str) -> tuple[int, object]:
        args = parser.parse_args(["simulator", "--data-dir", str(sim.data_dir), *argv])
        code = await asyncio.to_thread(args.handler, args)
        return code, json.loads(capsys.readouterr().out)

    code, faults = await run(
        "faults", "fail", "create_data_store", "--error", "boom", "--count", "2", "--key", "0"
    )
    assert code == 0 and faults["fail_next"][0]["count"] == 2
    code, faults = await run("faults", "latency", "get_root", "0.5")
    assert faults["latency"] == {"get_root": 0.5}
    code, faults = await run("faults", "merge", '{"wallet_unsynced": [0]}')
    assert faults["wallet_unsynced"] == [0] and faults["latency"] == {"get_root": 0.5}
    code, faults = await run("faults", "clear")
    assert faults["wallet_unsynced"] == [] and faults["fail_next"] == []
    code, farmed = await run("farm", "--blocks", "3")
    assert code == 0 and farmed["height"] >= 4
    code, status = await run("status")
    assert len(status["keys"]) == 3

    args = parser.parse_args(
        ["simulator", "--data-dir", str(sim.data_dir / "nothing-here"), "status"]
    )
    assert run_simulator(args) == 1
