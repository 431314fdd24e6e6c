"""Errors raised by simulated RPC methods and how they look on the wire.

Real Chia answers application errors with HTTP 200 and a JSON envelope; errors that the
DataLayer service got back from its wallet are nested as a JSON string after
"RPC response failure: ". `RpcError` carries the message and whether it is nested, and
`error_envelope` renders both shapes exactly like chia-blockchain 2.7.5 does.
"""

from __future__ import annotations

import json
import traceback
from typing import Any

#: The traceback text real Chia puts in every error; ours is short but has the same shape.
_TRACEBACK_HEAD = (
    'Traceback (most recent call last):\n  File "chia/rpc/util.py", line 81, in inner\n'
)


class RpcError(Exception):
    """An application error of a simulated RPC method (HTTP 200, success false)."""

    def __init__(self, message: str, *, nested: bool = False, code: str = "UNKNOWN") -> None:
        super().__init__(message)
        self.message = message
        self.nested = nested
        #: structuredError.code: "UNKNOWN" for most errors, "INTERNAL_ERROR" for a failed assert.
        self.code = code


class WalletRpcError(RpcError):
    """An error the wallet produced; seen through DataLayer it arrives nested."""

    def __init__(self, message: str, *, code: str = "UNKNOWN") -> None:
        super().__init__(message, nested=True, code=code)


def _traceback_text(error: BaseException) -> str:
    frames = "".join(traceback.format_tb(error.__traceback__)[-2:])
    return f"{_TRACEBACK_HEAD}{frames}{type(error).__name__}: {error}\n"


def plain_envelope(message: str, trace: str, code: str = "UNKNOWN") -> dict[str, Any]:
    """The success:false body Chia returns for `message`."""
    return {
        "error": message,
        "structuredError": {"code": code, "data": {}, "message": message},
        "success": False,
        "traceback": trace,
    }


def error_envelope(error: BaseException, *, nest_wallet_errors: bool) -> dict[str, Any]:
    """Render `error` as Chia's error body, nesting wallet errors when DataLayer relays them."""
    message = error.message if isinstance(error, RpcError) else str(error)
    trace = _traceback_text(error)
    code = error.code if isinstance(error, RpcError) else "UNKNOWN"
    if isinstance(error, RpcError) and error.nested and nest_wallet_errors:
        inner = json.dumps(plain_envelope(message, trace, code))
        # The DataLayer re-raises the wallet's error as a plain exception: code UNKNOWN.
        return plain_envelope(f"RPC response failure: {inner}", trace)
    return plain_envelope(message, trace, code)
