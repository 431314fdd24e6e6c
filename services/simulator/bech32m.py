"""bech32m addresses (BIP-350), the `txch1...` format Chia wallets hand out.

Only what the simulator needs: puzzle hash to address and back, so `send_transaction` can
pay another simulated key and `get_next_address` looks like a real wallet's answer.
"""

from __future__ import annotations

from services.simulator.errors import RpcError

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32M_CONSTANT = 0x2BC830A3


def _polymod(values: list[int]) -> int:
    generator = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for index in range(5):
            checksum ^= generator[index] if ((top >> index) & 1) else 0
    return checksum


def _expand_prefix(prefix: str) -> list[int]:
    return [ord(char) >> 5 for char in prefix] + [0] + [ord(char) & 31 for char in prefix]


def _convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    accumulator = 0
    bits = 0
    out: list[int] = []
    max_value = (1 << to_bits) - 1
    for value in data:
        accumulator = (accumulator << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((accumulator >> bits) & max_value)
    if pad and bits:
        out.append((accumulator << (to_bits - bits)) & max_value)
    elif not pad and (bits >= from_bits or ((accumulator << (to_bits - bits)) & max_value)):
        raise ValueError("invalid padding")
    return out


def encode_puzzle_hash(puzzle_hash: str, prefix: str = "txch") -> str:
    """The address of a bare-hex puzzle hash."""
    data = _convert_bits(bytes.fromhex(puzzle_hash), 8, 5, True)
    values = _expand_prefix(prefix) + data
    checksum_value = _polymod([*values, 0, 0, 0, 0, 0, 0]) ^ _BECH32M_CONSTANT
    checksum = [(checksum_value >> 5 * (5 - index)) & 31 for index in range(6)]
    return prefix + "1" + "".join(_CHARSET[value] for value in data + checksum)


def decode_puzzle_hash(address: str) -> str:
    """The bare-hex puzzle hash of an address; Chia's style of error when it is not one."""
    text = address.strip().lower()
    separator = text.rfind("1")
    if (
        separator < 1
        or separator + 7 > len(text)
        or any(c not in _CHARSET for c in text[separator + 1 :])
    ):
        raise RpcError(f"Invalid address: {address}")
    prefix = text[:separator]
    values = [_CHARSET.index(char) for char in text[separator + 1 :]]
    if _polymod(_expand_prefix(prefix) + values) != _BECH32M_CONSTANT:
        raise RpcError(f"Invalid address: {address}")
    try:
        decoded = bytes(_convert_bits(values[:-6], 5, 8, False))
    except ValueError:
        raise RpcError(f"Invalid address: {address}") from None
    if len(decoded) != 32:
        raise RpcError(f"Invalid address: {address}")
    return decoded.hex()
