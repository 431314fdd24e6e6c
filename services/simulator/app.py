"""The simulator's ASGI app: per-key DataLayer and Wallet RPC by path prefix, plus admin routes.

Paths (all keys share one port):

- `POST /key/<n>/datalayer/<method>`: key n's DataLayer RPC (like https://host:8562/<method>)
- `POST /key/<n>/wallet/<method>`: key n's Wallet RPC (like https://host:9256/<method>)
- `/_simulator/...`: admin routes, loopback clients only (403 otherwise):
  - `GET /_simulator/faults`, `PUT` (replace), `POST` (merge: lists extend, maps update),
    `DELETE` (clear); body and answer are the fault JSON of faults.py
  - `POST /_simulator/farm` `{"blocks": 1}` -> `{"height": h}`
  - `POST /_simulator/cycle` `{"key": null}` -> run manage-data cycles now (all keys or one)
  - `POST /_simulator/auto_farm` `{"enabled": false}` -> pause/resume the block timer
  - `GET /_simulator/state` -> summary (height, keys, balances, subscriptions, back-offs)

Wire details copied from Chia: application errors are HTTP 200 envelopes, an unparsable body
is HTTP 500 text/plain "500 Internal Server Error\\n\\nServer got itself in trouble", an
unknown method is HTTP 404 text "404: Not Found". JSON keys are sorted like Chia's.

`admin_only=True` builds the app for the plain-HTTP admin listener: RPC paths answer 404 there,
so only the TLS listener (client certificate required) serves RPC.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from services.simulator.faults import Faults
from services.simulator.rpc import UnknownRoute, call
from services.simulator.state import SimulatorState

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1", "localhost"})
_TROUBLE = "500 Internal Server Error\n\nServer got itself in trouble"
_NOT_FOUND = "404: Not Found"
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def json_response(body: Any, status_code: int = 200) -> Response:
    """JSON with sorted keys, as Chia's RPC server writes it."""
    return Response(
        json.dumps(body, sort_keys=True), status_code=status_code, media_type="application/json"
    )


def _not_found() -> Response:
    return PlainTextResponse(_NOT_FOUND, status_code=404)


def create_simulator_app(state: SimulatorState, *, admin_only: bool = False) -> Starlette:
    """The ASGI app serving `state` (RPC and admin routes; admin only when asked)."""

    async def rpc(request: Request, service: Literal["datalayer", "wallet"]) -> Response:
        """Answer one RPC call the way Chia does."""
        key_index = int(request.path_params["key"])
        method = str(request.path_params["method"])
        raw = await request.body()
        try:
            payload = json.loads(raw)
        except ValueError:
            return PlainTextResponse(_TROUBLE, status_code=500)
        delay = state.faults.latency_for(service, method)
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            body = call(state, service, key_index, method, payload)
        except UnknownRoute:
            return _not_found()
        return json_response(body)

    async def datalayer(request: Request) -> Response:
        """A DataLayer call."""
        return await rpc(request, "datalayer")

    async def wallet(request: Request) -> Response:
        """A Wallet call."""
        return await rpc(request, "wallet")

    async def not_found(request: Request) -> Response:
        """aiohttp's plain 404."""
        return _not_found()

    def loopback(request: Request) -> bool:
        """True for clients on 127.0.0.1 or ::1."""
        return request.client is not None and request.client.host in LOOPBACK_HOSTS

    async def _json_body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            return {}
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return data

    def _refused() -> Response:
        return json_response({"error": "admin routes are loopback-only", "success": False}, 403)

    async def faults(request: Request) -> Response:
        """Read, replace, merge or clear the fault switches."""
        if not loopback(request):
            return _refused()
        if request.method == "GET":
            return json_response(state.faults.model_dump())
        if request.method == "DELETE":
            state.faults = Faults()
            return json_response(state.faults.model_dump())
        try:
            data = await _json_body(request)
            incoming = Faults.model_validate(data)
        except (ValueError, ValidationError) as error:
            return json_response({"error": str(error), "success": False}, 400)
        if request.method == "PUT":
            state.faults = incoming
        else:
            state.faults = state.faults.merged(incoming, set(data))
        return json_response(state.faults.model_dump())

    async def farm(request: Request) -> Response:
        """Farm blocks now."""
        if not loopback(request):
            return _refused()
        try:
            blocks = int((await _json_body(request)).get("blocks", 1))
        except (ValueError, TypeError) as error:
            return json_response({"error": str(error), "success": False}, 400)
        height = state.farm_blocks(max(0, blocks))
        return json_response({"height": height, "success": True})

    async def cycle(request: Request) -> Response:
        """Run manage-data cycles now."""
        if not loopback(request):
            return _refused()
        try:
            wanted = (await _json_body(request)).get("key")
        except ValueError as error:
            return json_response({"error": str(error), "success": False}, 400)
        keys = state.keys if wanted is None else [state.key(int(wanted))]
        for key in keys:
            state.run_manage_cycle(key)
        return json_response({"height": state.height, "success": True})

    async def auto_farm(request: Request) -> Response:
        """Pause or resume the block timer."""
        if not loopback(request):
            return _refused()
        try:
            data = await _json_body(request)
        except ValueError as error:
            return json_response({"error": str(error), "success": False}, 400)
        if "enabled" in data:
            state.auto_farm = bool(data["enabled"])
        return json_response({"auto_farm_enabled": state.auto_farm, "success": True})

    async def summary(request: Request) -> Response:
        """The state summary."""
        if not loopback(request):
            return _refused()
        return json_response({**state.summary(), "auto_farm_enabled": state.auto_farm})

    routes = [
        Route("/_simulator/faults", faults, methods=["GET", "PUT", "POST", "DELETE"]),
        Route("/_simulator/farm", farm, methods=["POST"]),
        Route("/_simulator/cycle", cycle, methods=["POST"]),
        Route("/_simulator/auto_farm", auto_farm, methods=["POST"]),
        Route("/_simulator/state", summary, methods=["GET"]),
    ]
    if not admin_only:
        routes += [
            Route("/key/{key:int}/datalayer/{method}", datalayer, methods=["POST"]),
            Route("/key/{key:int}/wallet/{method}", wallet, methods=["POST"]),
        ]
    routes.append(Route("/{path:path}", not_found, methods=_ALL_METHODS))
    return Starlette(routes=routes)
