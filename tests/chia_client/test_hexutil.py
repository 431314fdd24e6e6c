"""Hex helpers: both spellings in, bare lowercase out, clear errors for anything else."""

from __future__ import annotations

import pytest

from services.chia import (
    ZERO_HASH,
    InvalidHex,
    InvalidStoreId,
    hex_to_text,
    is_store_id,
    normalize_hash,
    normalize_hex,
    normalize_store_id,
    strip_0x,
    text_to_hex,
)
from services.chia.hexutil import with_0x
from tests.chia_client.conftest import STORE_ID


def test_zero_hash_is_64_zeros() -> None:
    assert ZERO_HASH == "0" * 64
    assert normalize_hash("0x" + ZERO_HASH) == ZERO_HASH


@pytest.mark.parametrize(
    "spelling", [STORE_ID, "0x" + STORE_ID, STORE_ID.upper(), "0X" + STORE_ID.upper()]
)
def test_store_id_spellings_normalise_to_bare_lowercase(spelling: str) -> None:
    assert normalize_store_id(spelling) == STORE_ID
    assert is_store_id(spelling)


@pytest.mark.parametrize(
    "bad", ["", "0x", "ab" * 31, "ab" * 33, "zz" * 32, "0x0x" + "ab" * 31, None, 42]
)
def test_invalid_store_id_names_the_value(bad: object) -> None:
    with pytest.raises(InvalidStoreId) as caught:
        normalize_store_id(bad)  # type: ignore[arg-type]
    assert repr(bad) in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert not is_store_id(bad)  # type: ignore[arg-type]


def test_normalize_hex_accepts_any_even_length() -> None:
    assert normalize_hex("0x6B31") == "6b31"
    assert normalize_hex("") == ""
    assert strip_0x("0Xab") == "ab"
    assert with_0x("AB") == "0xab"


@pytest.mark.parametrize("bad", ["6b3", "0xg0", "hello"])
def test_normalize_hex_rejects_non_hex(bad: str) -> None:
    with pytest.raises(InvalidHex, match="hex"):
        normalize_hex(bad)


def test_hash_must_be_32_bytes() -> None:
    with pytest.raises(InvalidHex, match="64 hex digits"):
        normalize_hash("abab")


def test_text_round_trips_through_utf8_hex() -> None:
    assert text_to_hex("project|p1") == "70726f6a6563747c7031"
    assert hex_to_text("0x70726F6A6563747C7031") == "project|p1"
    assert hex_to_text(text_to_hex("Gezähmt ✓")) == "Gezähmt ✓"


def test_hex_to_text_errors_on_invalid_utf8_unless_told() -> None:
    with pytest.raises(UnicodeDecodeError):
        hex_to_text("ff")
    assert hex_to_text("ff", errors="replace") == "\ufffd"
