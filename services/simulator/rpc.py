"""One RPC call against the state, without HTTP: handler lookup, injected failures, envelope.

`call(state, "datalayer", 0, "get_root", {"id": ...})` returns exactly the JSON body the
HTTP app would send, so tests and benchmarks can drive the simulator in-process.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from services.simulator import datalayer_api, wallet_api
from services.simulator.errors import RpcError, error_envelope
from services.simulator.faults import FailRule
from services.simulator.state import SimulatorState

Service = Literal["datalayer", "wallet"]
logger = logging.getLogger(__name__)

HANDLERS = {"datalayer": datalayer_api.HANDLERS, "wallet": wallet_api.HANDLERS}


class UnknownRoute(LookupError):
    """No such key or method: the HTTP layer answers 404."""


def _injected(service: Service, method: str, rule: FailRule) -> RpcError:
    nested = rule.nested
    if nested is None:
        nested = service == "datalayer" and method in datalayer_api.WALLET_BACKED
    return RpcError(rule.error, nested=nested)


def call(
    state: SimulatorState, service: Service, key_index: int, method: str, payload: Any
) -> dict[str, Any]:
    """Run one call and return Chia's response body (success or error envelope)."""
    handlers = HANDLERS.get(service)
    if handlers is None or method not in handlers or not 0 <= key_index < len(state.keys):
        raise UnknownRoute(f"/{service}/{method}")
    nest = service == "datalayer"
    rule = state.faults.take_failure(service, method, key_index)
    try:
        if rule is not None:
            raise _injected(service, method, rule)
        if not isinstance(payload, dict):
            raise RpcError(f"{type(payload).__name__} indices must be integers or slices, not str")
        body = handlers[method](state, state.keys[key_index], payload)
    except RpcError as error:
        return error_envelope(error, nest_wallet_errors=nest)
    except Exception as error:  # real Chia turns any exception into the same envelope
        logger.exception("simulator %s %s failed", service, method)
        return error_envelope(error, nest_wallet_errors=False)
    body.setdefault("success", True)
    return body
