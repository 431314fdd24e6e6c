"""Hex parsing and formatting the way Chia's RPC does it.

Inputs accept ids and hashes with or without `0x`; outputs differ per method (chia-rpc.md
pitfall 8), so the simulator keeps everything as bare lowercase hex internally and adds the
prefix only where real Chia does. Parse errors carry Python's own messages because that is
what Chia returns ("non-hexadecimal number found in fromhex() arg at position 0",
"bad bytes32 initializer b'\\xab\\xab'").
"""

from __future__ import annotations

from typing import Any

from services.simulator.errors import RpcError

ZERO_HASH = "0" * 64


def _strip(value: str) -> str:
    return value[2:] if value[:2].lower() == "0x" else value


def parse_hex(value: Any) -> str:
    """Normalise a hex string (optional 0x) to bare lowercase; Chia's error text on failure."""
    if not isinstance(value, str):
        raise RpcError(f"fromhex() argument must be str, not {type(value).__name__}")
    bare = _strip(value)
    try:
        return bytes.fromhex(bare).hex()
    except ValueError as error:
        raise RpcError(str(error)) from None


def parse_bytes32(value: Any) -> str:
    """Normalise a 32-byte id or hash; wrong length gives Chia's bytes32 initializer error."""
    bare = parse_hex(value)
    if len(bare) != 64:
        raise RpcError(f"bad bytes32 initializer {bytes.fromhex(bare)!r}")
    return bare


def prefixed(bare: str) -> str:
    """Add the 0x prefix real Chia puts on most hashes."""
    return f"0x{bare}"
