"""`cadt-gateway simulator`: run the built-in Chia RPC simulator, or drive a running one.

    cadt-gateway simulator [--port 18562] [--admin-port 18563] [--keys N] [--block-seconds S]
                           [--seed demo|none] [--data-dir DIR] [--faults JSON]
    cadt-gateway simulator faults show | clear | set JSON | merge JSON
    cadt-gateway simulator faults fail METHOD --error TEXT [--count N] [--key K] [--service S]
    cadt-gateway simulator faults latency METHOD SECONDS
    cadt-gateway simulator farm [--blocks N]
    cadt-gateway simulator status

The control commands talk to the admin routes (`/_simulator/...`, loopback only) of the
simulator whose data dir is given (its `runtime.json` says where it listens) or of
`--admin-url`. Defaults come from the CADT_* settings (data dir, block time, seed, keys).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

import httpx

from cadt_gateway.settings import SettingsError, load_settings

DEFAULT_PORT = 18562
DEFAULT_ADMIN_PORT = 18563


def add_simulator_parser(subparsers: Any) -> None:
    """Register `simulator` and its control subcommands on the main CLI's subparsers."""
    parser = subparsers.add_parser(
        "simulator",
        help="run the built-in Chia DataLayer/Wallet RPC simulator (or control a running one)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data-dir", type=Path, help="simulator data dir (default <CADT_DATA_DIR>/simulator)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (loopback)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"HTTPS RPC port (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--admin-port",
        type=int,
        default=DEFAULT_ADMIN_PORT,
        help=f"plain-HTTP admin port, -1 to disable (default {DEFAULT_ADMIN_PORT})",
    )
    parser.add_argument("--keys", type=int, help="simulated keys (default CADT_SIMULATOR_KEYS)")
    parser.add_argument(
        "--block-seconds", type=float, help="block time (default CADT_SIMULATOR_BLOCK_SECONDS)"
    )
    parser.add_argument(
        "--seed", choices=["demo", "none"], help="initial data (default CADT_SIMULATOR_SEED)"
    )
    parser.add_argument(
        "--manage-data-blocks", type=int, default=2, help="blocks per DataLayer cycle"
    )
    parser.add_argument(
        "--faults", help="initial fault switches as JSON (else CADT_SIMULATOR_FAULTS)"
    )
    parser.add_argument(
        "--admin-url", help="admin base URL of a running simulator (control commands)"
    )
    parser.set_defaults(handler=run_simulator, simulator_action=None)

    actions = parser.add_subparsers(dest="simulator_action", metavar="{faults,farm,status}")
    faults = actions.add_parser("faults", help="show or change fault switches")
    fault_actions = faults.add_subparsers(dest="faults_action", required=True)
    fault_actions.add_parser("show", help="print the current faults")
    fault_actions.add_parser("clear", help="turn every fault off")
    replace = fault_actions.add_parser("set", help="replace all faults with this JSON")
    replace.add_argument("json")
    merge = fault_actions.add_parser("merge", help="merge this JSON into the faults")
    merge.add_argument("json")
    fail = fault_actions.add_parser("fail", help="fail the next calls of a method")
    fail.add_argument("method")
    fail.add_argument(
        "--error",
        required=True,
        help="error text, e.g. 'DataLayer Wallet already exists for this key'",
    )
    fail.add_argument("--count", type=int, default=1)
    fail.add_argument("--key", type=int)
    fail.add_argument("--service", choices=["datalayer", "wallet"])
    fail.add_argument("--nested", action=argparse.BooleanOptionalAction, default=None)
    latency = fault_actions.add_parser("latency", help="delay a method (or '*') by SECONDS")
    latency.add_argument("method")
    latency.add_argument("seconds", type=float)
    farm = actions.add_parser("farm", help="farm blocks now")
    farm.add_argument("--blocks", type=int, default=1)
    actions.add_parser("status", help="print the state summary")


def run_simulator(args: argparse.Namespace) -> int:
    """Entry point of `cadt-gateway simulator`; returns the exit code."""
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    data_dir: Path = args.data_dir or settings.data_dir / "simulator"
    if args.simulator_action is None:
        return _serve(args, data_dir, settings)
    try:
        return _control(args, data_dir)
    except (httpx.HTTPError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


# ------------------------------------------------------------------------------ serving
def _serve(args: argparse.Namespace, data_dir: Path, settings: Any) -> int:
    from pydantic import ValidationError

    from cadt_gateway.settings import describe_faults_error
    from services.simulator import EmbeddedSimulator
    from services.simulator.faults import Faults

    if args.faults is not None:
        try:
            Faults.model_validate_json(args.faults)
        except ValidationError as error:
            print(f"error: --faults: {describe_faults_error(error)}", file=sys.stderr)
            return 2
    simulator = EmbeddedSimulator(
        data_dir,
        block_seconds=args.block_seconds or settings.simulator_block_seconds,
        seed=args.seed or settings.simulator_seed.value,
        keys=args.keys or settings.simulator_keys,
        host=args.host,
        port=args.port,
        admin_port=None if args.admin_port is not None and args.admin_port < 0 else args.admin_port,
        manage_data_blocks=args.manage_data_blocks,
        faults=args.faults,
    )

    async def main() -> None:
        """Run until SIGINT/SIGTERM, then stop cleanly."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        async with simulator:
            state = simulator.state
            block = simulator.config.block_seconds
            print(f"cadt-gateway simulator: {len(state.keys)} keys, a block every {block}s")
            for key in range(len(state.keys)):
                print(f"  key {key} (fingerprint {state.keys[key].fingerprint}):")
                print(f"    DataLayer  {simulator.datalayer_url(key)}")
                print(f"    Wallet     {simulator.wallet_url(key)}")
                print(f"    ssl folder {simulator.ssl_folder(key)}")
            print(f"  admin      {simulator.admin_url}")
            print(f"  data dir   {simulator.data_dir}   (Ctrl-C to stop)")
            sys.stdout.flush()
            await stop.wait()

    try:
        asyncio.run(main())
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------------ control
def _admin_url(args: argparse.Namespace, data_dir: Path) -> str:
    if args.admin_url:
        return str(args.admin_url).rstrip("/")
    runtime = data_dir / "runtime.json"
    if not runtime.is_file():
        raise ValueError(f"no running simulator found ({runtime} missing); pass --admin-url")
    return str(json.loads(runtime.read_text())["admin_url"]).rstrip("/")


def _control(args: argparse.Namespace, data_dir: Path) -> int:
    base = _admin_url(args, data_dir)
    cert: tuple[str, str] | None = None
    if base.startswith("https://"):
        # The TLS listener wants a client certificate: use key 0's from the data dir.
        folder = data_dir / "keys" / "0" / "config" / "ssl" / "data_layer"
        cert = (str(folder / "private_data_layer.crt"), str(folder / "private_data_layer.key"))
    with httpx.Client(
        base_url=base, timeout=30, verify=False, cert=cert, trust_env=False
    ) as client:
        response = _request(client, args)
    body = response.json()
    print(json.dumps(body, indent=2, sort_keys=True))
    return 0 if response.is_success else 1


def _request(client: httpx.Client, args: argparse.Namespace) -> httpx.Response:
    if args.simulator_action == "farm":
        return client.post("/farm", json={"blocks": args.blocks})
    if args.simulator_action == "status":
        return client.get("/state")
    action = args.faults_action
    if action == "show":
        return client.get("/faults")
    if action == "clear":
        return client.delete("/faults")
    if action == "set":
        return client.put("/faults", json=json.loads(args.json))
    if action == "merge":
        return client.post("/faults", json=json.loads(args.json))
    if action == "fail":
        rule: dict[str, Any] = {"method": args.method, "error": args.error, "count": args.count}
        for name in ("key", "service", "nested"):
            if getattr(args, name) is not None:
                rule[name] = getattr(args, name)
        return client.post("/faults", json={"fail_next": [rule]})
    if action == "latency":
        return client.post("/faults", json={"latency": {args.method: args.seconds}})
    raise ValueError(f"unknown action {action}")
