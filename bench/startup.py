"""startup: `cadt-gateway serve` with embedded defaults until `{ health { ok } }` is true.

Each round starts the installed console script in a fresh data dir (embedded SQLite, embedded
redis-server, built-in simulator, in-process worker: nothing configured but the port), polls
the health query every 20 ms and stops the node with SIGTERM. Byte-compiled modules are warm
(one unmeasured run first): "excluding the first install".

The baseline, in the same rounds: a uvicorn hello-world app (one route, no lifespan work)
started the same way until it answers: the floor of "a Python web process is up" here.

Target: at most 5 s for the value itself (the ratio is reported, not bounded).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench._processes import free_port, stop
from bench.registry import Options, Result, benchmark
from bench.stats import median

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 5.0
POLL_SECONDS = 0.02
GIVE_UP_SECONDS = 120.0
HEALTH = {"query": "{ health { ok } }"}

HELLO = """
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def hello(request):
    return JSONResponse({"data": {"health": {"ok": True}}})

app = Starlette(routes=[Route("/graphql", hello, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(__import__("sys").argv[1]), log_level="warning")
"""


def _gateway_command() -> list[str]:
    script = Path(sys.executable).with_name("cadt-gateway")
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "cadt_gateway.cli", "serve"]


async def _healthy(port: int, process: asyncio.subprocess.Process) -> None:
    """Poll until the health query answers ok (fails when the process exits first)."""
    deadline = time.monotonic() + GIVE_UP_SECONDS
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"the process exited with {process.returncode}")
            try:
                answer = await client.post(f"http://127.0.0.1:{port}/graphql", json=HEALTH)
                if answer.status_code == 200 and answer.json()["data"]["health"]["ok"]:
                    return
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("not healthy in time")
            await asyncio.sleep(POLL_SECONDS)


async def _start_once(command: list[str], env: dict[str, str], port: int) -> float:
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await _healthy(port, process)
        return time.perf_counter() - started
    finally:
        await stop(process, within=60)


def _clean_env() -> dict[str, str]:
    # Embedded defaults: none of the caller's CADT_* settings.
    return {key: value for key, value in os.environ.items() if not key.startswith("CADT_")}


async def _gateway(base: Path, index: int) -> float:
    port = free_port()
    env = _clean_env()
    env.update(
        {
            "CADT_DATA_DIR": str(base / f"data-{index}"),
            "CADT_PORT": str(port),
            "CADT_LOG_LEVEL": "warning",
        }
    )
    return await _start_once(_gateway_command(), env, port)


async def _hello(base: Path) -> float:
    port = free_port()
    script = base / "hello.py"
    script.write_text(HELLO)
    return await _start_once([sys.executable, str(script), str(port)], _clean_env(), port)


@benchmark("startup")
async def startup(options: Options) -> list[Result]:
    """Seconds to a healthy embedded node vs seconds to a hello-world uvicorn app."""
    rounds = options.rounds_or(5)
    gateway: list[float] = []
    hello: list[float] = []
    with tempfile.TemporaryDirectory(prefix="cadt-bench-") as temporary:
        base = Path(temporary)
        await _gateway(base, -1)  # warm: byte-compiled modules, page cache
        await _hello(base)
        for index in range(rounds):
            order = ("gateway", "hello") if index % 2 == 0 else ("hello", "gateway")
            for kind in order:
                if kind == "gateway":
                    gateway.append(await _gateway(base, index))
                else:
                    hello.append(await _hello(base))
            print(
                f"    round {index + 1}: serve healthy {gateway[-1]:.2f} s,"
                f" hello-world uvicorn {hello[-1]:.2f} s",
                flush=True,
            )
    return [
        Result(
            name="startup",
            value=round(median(gateway), 2),
            unit="s",
            baseline=round(median(hello), 2),
            target=TARGET_SECONDS,
            target_kind="value",
            details={
                "what": "`cadt-gateway serve`, embedded defaults, fresh data dir, until "
                "{ health { ok } } is true",
                "baseline_is": "uvicorn hello-world app until it answers",
                "rounds": rounds,
                "serve_seconds_all": [round(value, 2) for value in gateway],
                "hello_seconds_all": [round(value, 2) for value in hello],
                "poll_interval_seconds": POLL_SECONDS,
                "load_average": [round(value, 2) for value in os.getloadavg()],
            },
        )
    ]
