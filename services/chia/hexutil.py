"""The one place that knows how Chia spells hex.

Chia is inconsistent: get_keys_values, get_keys, get_root and get_root_history answer with
`0x`-prefixed hex, get_value, get_kv_diff and get_sync_status with bare hex, and every input
accepts both (chia-rpc.md pitfall 8). Everything the gateway holds is bare lowercase hex, so
values compare equal no matter which endpoint produced them. Text is UTF-8 encoded to bare hex,
as CADT writes keys and values.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

#: The root hash of an empty store and the launch root of a fresh subscription.
ZERO_HASH = "0" * 64

_HEX_DIGITS = re.compile(r"[0-9a-fA-F]*")
_BYTES32_LENGTH = 64


class InvalidHex(ValueError):
    """A value that should be hex is not (bad characters, odd length or wrong size)."""


class InvalidStoreId(InvalidHex):
    """A DataLayer store id (launcher id) that is not exactly 32 bytes of hex."""


def strip_0x(value: str) -> str:
    """Return `value` without a leading `0x`/`0X`."""
    return value[2:] if value[:2] in ("0x", "0X") else value


def normalize_hex(value: str) -> str:
    """Return bare lowercase hex for `value` (with or without `0x`); raise InvalidHex if not hex."""
    if not isinstance(value, str):
        raise InvalidHex(f"expected a hex string, got {type(value).__name__}: {value!r}")
    bare = strip_0x(value.strip())
    if _HEX_DIGITS.fullmatch(bare) is None:
        raise InvalidHex(f"not hexadecimal: {value!r}")
    if len(bare) % 2:
        raise InvalidHex(f"hex has an odd number of digits: {value!r}")
    return bare.lower()


def normalize_hash(value: str) -> str:
    """Return a 32-byte hash (root hash, coin id, tx id) as 64 bare lowercase hex digits."""
    bare = normalize_hex(value)
    if len(bare) != _BYTES32_LENGTH:
        raise InvalidHex(f"expected 64 hex digits (32 bytes), got {len(bare)}: {value!r}")
    return bare


def normalize_store_id(value: str) -> str:
    """Return a store id as 64 bare lowercase hex digits; raise InvalidStoreId otherwise."""
    try:
        return normalize_hash(value)
    except InvalidHex as error:
        raise InvalidStoreId(
            f"invalid store id {value!r}: a store id is exactly 64 hex digits, "
            "optionally prefixed with 0x"
        ) from error


def is_store_id(value: str) -> bool:
    """Tell whether `value` is a well-formed store id (64 hex digits, `0x` optional)."""
    try:
        normalize_store_id(value)
    except InvalidHex:
        return False
    return True


def with_0x(value: str) -> str:
    """Return `value` as lowercase hex with a `0x` prefix, for places that insist on it."""
    return "0x" + normalize_hex(value)


def text_to_hex(text: str) -> str:
    """Encode UTF-8 `text` as bare lowercase hex, as CADT writes DataLayer keys and values."""
    return text.encode("utf-8").hex()


def hex_to_text(value: str, *, errors: str = "strict") -> str:
    """Decode hex (with or without `0x`) to UTF-8 text; `errors` as for `bytes.decode`."""
    return bytes.fromhex(normalize_hex(value)).decode("utf-8", errors=errors)


#: Pydantic field types that normalise whatever Chia sends to bare lowercase hex.
HexStr = Annotated[str, BeforeValidator(normalize_hex)]
Hash32 = Annotated[str, BeforeValidator(normalize_hash)]
StoreId = Annotated[str, BeforeValidator(normalize_store_id)]
