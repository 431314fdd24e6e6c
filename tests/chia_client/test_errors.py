"""Recognisers of Chia's error texts, on the messages recorded from chia-blockchain 2.7.5."""

from __future__ import annotations

import json

import pytest

from services.chia import (
    ChiaBusinessError,
    ChiaErrorKind,
    ChiaUnavailable,
    classify_error,
    is_coin_shortage_error,
    is_failed_to_get_root_error,
    is_invalid_launcher_error,
    is_key_already_present_error,
    is_no_change_error,
    is_no_generations_error,
    is_no_subscription_error,
    is_not_owned_error,
    is_pending_root_error,
    is_store_not_in_local_db_error,
    is_transient_wallet_error,
    is_unable_to_diff_error,
    is_wallet_unreachable_error,
    parse_error_text,
)
from tests.chia_client.conftest import UNKNOWN_ID, chia_error

RECORDED = {
    "Already have a pending root waiting for confirmation.": ChiaErrorKind.PENDING_ROOT,
    f"Singleton with launcher ID {UNKNOWN_ID} is currently pending": (
        ChiaErrorKind.SINGLETON_PENDING
    ),
    f"No store id stored in the local database for {UNKNOWN_ID}": (
        ChiaErrorKind.STORE_NOT_IN_LOCAL_DB
    ),
    f"No generations found for store ID: {UNKNOWN_ID}": ChiaErrorKind.NO_GENERATIONS,
    f"Failed to get root for {UNKNOWN_ID}": ChiaErrorKind.FAILED_TO_GET_ROOT,
    f"Singleton with launcher ID {UNKNOWN_ID} is not owned by DL Wallet": ChiaErrorKind.NOT_OWNED,
    "Changelist resulted in no change to tree data": ChiaErrorKind.NO_CHANGE,
    "KeyId(1)": ChiaErrorKind.KEY_ALREADY_PRESENT,
    "Key already present": ChiaErrorKind.KEY_ALREADY_PRESENT,
    f"Unable to diff: Can't find keys and values for {UNKNOWN_ID}": ChiaErrorKind.UNABLE_TO_DIFF,
    f"Can't find keys and values for {UNKNOWN_ID}": ChiaErrorKind.ROOT_NOT_DOWNLOADED,
    "Key not found: ffff": ChiaErrorKind.KEY_NOT_FOUND,
    f"Launcher ID {UNKNOWN_ID} is not a valid coin": ChiaErrorKind.INVALID_LAUNCHER,
    "No subscription found for the given store_id.": ChiaErrorKind.NO_SUBSCRIPTION,
    "Wallet needs to be fully synced before making transactions": ChiaErrorKind.WALLET_NOT_SYNCED,
    "DataLayerWallet not available": ChiaErrorKind.DL_WALLET_NOT_AVAILABLE,
    "DataLayer Wallet already exists for this key": ChiaErrorKind.DL_WALLET_ALREADY_EXISTS,
    "No spendable coins": ChiaErrorKind.COIN_SHORTAGE,
    "UNIQUE constraint failed: users_wallets.id": ChiaErrorKind.UNIQUE_CONSTRAINT,
    (
        "ConnectionKey(host='127.0.0.1', port=9256, is_ssl=True, ssl=<SSLContext>, proxy=None, "
        "proxy_auth=None, proxy_headers_hash=None, server_hostname=None)"
    ): ChiaErrorKind.WALLET_UNREACHABLE,
    "non-hexadecimal number found in fromhex() arg at position 0": ChiaErrorKind.INVALID_HEX,
    "Latest root is already confirmed": ChiaErrorKind.LATEST_ROOT_CONFIRMED,
}


def nested(message: str) -> str:
    """The wallet error as DataLayer relays it."""
    inner = chia_error(message)
    return "RPC response failure: " + json.dumps(inner)


@pytest.mark.parametrize(("message", "kind"), RECORDED.items())
def test_recorded_messages_are_classified(message: str, kind: ChiaErrorKind) -> None:
    assert classify_error(message) is kind
    assert classify_error(nested(message)) is kind


def test_unknown_message_has_no_kind() -> None:
    assert classify_error("999") is None
    assert classify_error("id") is None


def test_nested_error_is_unwrapped_from_full_json() -> None:
    raw = nested(f"Launcher ID {UNKNOWN_ID} is not a valid coin")
    assert parse_error_text(raw) == f"Launcher ID {UNKNOWN_ID} is not a valid coin"
    error = ChiaBusinessError.from_body(chia_error(raw), service="datalayer", method="subscribe")
    assert error.message == f"Launcher ID {UNKNOWN_ID} is not a valid coin"
    assert error.raw_error == raw
    assert is_invalid_launcher_error(error)


def test_nested_error_with_escapes_and_twice_nested() -> None:
    inner = 'Bad "quoted" value\nsecond line'
    assert parse_error_text(nested(inner)) == inner
    assert parse_error_text(nested(nested("No spendable coins"))) == "No spendable coins"


def test_error_without_text_falls_back_to_structured_message() -> None:
    body = {"success": False, "structuredError": {"code": "UNKNOWN", "message": "boom"}}
    error = ChiaBusinessError.from_body(body, service="wallet", method="get_sync_status")
    assert error.message == "boom"
    bare = ChiaBusinessError.from_body({"success": False}, service="wallet", method="x")
    assert bare.message == "success: false"


@pytest.mark.parametrize(
    "message",
    [
        "Wallet needs to be fully synced",
        "DataLayerWallet not available",
        "DataLayer Wallet already exists",
        "No spendable coins",
        "UNIQUE constraint failed: foo",
        "Can't select amount higher than our spendable balance. Amount: 3300",
        "Transaction amount is greater than max spendable balance in a block",
        "Not enough coins to create new data layer singleton",
    ],
)
def test_transient_wallet_errors(message: str) -> None:
    assert is_transient_wallet_error(message)
    assert is_transient_wallet_error(nested(message))
    assert is_transient_wallet_error(RuntimeError(message))


def test_coin_shortage_is_a_subset_of_transient() -> None:
    assert is_coin_shortage_error("No spendable coins")
    assert is_coin_shortage_error("Not enough coins to create new data layer singleton")
    assert not is_coin_shortage_error("Wallet needs to be fully synced")
    assert not is_coin_shortage_error("DataLayerWallet not available")


def test_non_transient_errors() -> None:
    for message in ("is not owned by DL Wallet", "KeyId(3)", "999", "Failed to get root for x"):
        assert not is_transient_wallet_error(message)
    # Matching is case-sensitive, as CADT's.
    assert not is_transient_wallet_error("no spendable coins")
    transport = ChiaUnavailable(
        "cannot connect", service="wallet", method="get_sync_status", url="x", request_sent=False
    )
    assert not is_transient_wallet_error(transport)


def test_recognisers() -> None:
    assert is_pending_root_error("Already have a pending root waiting for confirmation.")
    assert is_store_not_in_local_db_error(
        f"No store id stored in the local database for {UNKNOWN_ID}"
    )
    assert is_no_generations_error(f"No generations found for store ID: {UNKNOWN_ID}")
    assert is_failed_to_get_root_error(f"Failed to get root for {UNKNOWN_ID}")
    assert is_not_owned_error(nested("Singleton with launcher ID x is not owned by DL Wallet"))
    assert is_no_change_error("Changelist resulted in no change to tree data")
    assert is_key_already_present_error("KeyId(8)")
    assert not is_key_already_present_error("MyKeyId(8)")
    assert is_unable_to_diff_error("Unable to diff: Can't find keys and values for ab")
    assert is_no_subscription_error("No subscription found for the given store_id.")
    assert is_wallet_unreachable_error("ConnectionKey(host='127.0.0.1', port=9256)")
    assert not is_pending_root_error("Failed to get root for x")
