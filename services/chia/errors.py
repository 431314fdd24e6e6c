"""Typed errors of the Chia RPC clients and the recognisers for Chia's error messages.

Chia answers application errors with HTTP 200 and `{"success": false, "error": "<text>"}`;
`structuredError.code` was "UNKNOWN" in every recorded case, so errors can only be told apart by
their text (chia-rpc.md, "Envelope and error shapes"). Errors that DataLayer relays from the
wallet are nested: `"RPC response failure: {\"error\": \"<text>\", ...}"`. `parse_error_text`
digs out the innermost text, and every recogniser here matches on that text, so callers never
repeat substring checks of their own.

Exception tree (all carry `service` and `method`):

    ChiaRpcError
    ├── ChiaBusinessError      success:false body; never retried by the client
    ├── ChiaHTTPError          non-200 status (404 unknown endpoint, 500 bad request body, 502-504)
    ├── ChiaBadResponse        200 whose body is not the JSON envelope we expect
    └── ChiaTransportError     no HTTP response; `request_sent` says whether it may have arrived
        ├── ChiaUnavailable    could not connect (refused, DNS, network down)
        │   └── ChiaTLSError   the TLS handshake failed (client certificate missing or refused)
        ├── ChiaConnectionLost the connection broke after the request went out
        └── ChiaTimeout        connect, write, read or pool timeout (`phase`)

`ChiaCertificateError` is separate: it is a configuration problem raised while building a client.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

Service = Literal["datalayer", "wallet"]

_NESTED_MARKER = "RPC response failure: "
_NESTED_ERROR_FIELD = re.compile(r'"error"\s*:\s*"((?:[^"\\]|\\.)*)"')
_MAX_NESTING = 5


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ChiaRpcError(Exception):
    """A Chia RPC call failed; `service` is 'datalayer' or 'wallet', `method` the RPC name."""

    def __init__(self, message: str, *, service: Service, method: str) -> None:
        super().__init__(message)
        self.message = message
        self.service: Service = service
        self.method = method

    def __str__(self) -> str:
        return f"{self.service} {self.method}: {self.message}"

    # Keyword-only constructors break default exception pickling; arq pickles job errors.
    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class ChiaBusinessError(ChiaRpcError):
    """Chia answered `success: false`; `message` is the innermost text, `raw_error` verbatim."""

    def __init__(
        self,
        message: str,
        *,
        service: Service,
        method: str,
        raw_error: str,
        code: str | None = None,
        structured_error: Mapping[str, Any] | None = None,
        traceback_text: str | None = None,
    ) -> None:
        super().__init__(message, service=service, method=method)
        self.raw_error = raw_error
        self.code = code
        self.structured_error = dict(structured_error) if structured_error else None
        self.traceback_text = traceback_text

    @property
    def nested(self) -> bool:
        """True when the error was relayed from the wallet (`RPC response failure: {...}`)."""
        return _NESTED_MARKER in self.raw_error

    @property
    def kind(self) -> ChiaErrorKind | None:
        """The recognised kind of this error, or None for a message we do not know."""
        return classify_error(self.message)

    @classmethod
    def from_body(
        cls, body: Mapping[str, Any], *, service: Service, method: str
    ) -> ChiaBusinessError:
        """Build the error from a `success: false` response body."""
        structured = body.get("structuredError")
        structured_map = structured if isinstance(structured, Mapping) else None
        raw = body.get("error")
        if not isinstance(raw, str) or not raw:
            fallback = structured_map.get("message") if structured_map else None
            raw = fallback if isinstance(fallback, str) and fallback else "success: false"
        code = structured_map.get("code") if structured_map else None
        traceback_text = body.get("traceback")
        return cls(
            parse_error_text(raw),
            service=service,
            method=method,
            raw_error=raw,
            code=code if isinstance(code, str) else None,
            structured_error=structured_map,
            traceback_text=traceback_text if isinstance(traceback_text, str) else None,
        )


class ChiaHTTPError(ChiaRpcError):
    """Chia answered with a non-200 status; `body` is the (plain-text) body, truncated."""

    def __init__(self, *, service: Service, method: str, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body.strip()}", service=service, method=method)
        self.status = status
        self.body = body


class ChiaBadResponse(ChiaRpcError):
    """A 200 response that is not the JSON envelope expected for this method."""

    def __init__(
        self, reason: str, *, service: Service, method: str, status: int, body: str
    ) -> None:
        super().__init__(reason, service=service, method=method)
        self.status = status
        self.body = body


class ChiaTransportError(ChiaRpcError):
    """No HTTP response; `request_sent` is False only when the request provably never left."""

    def __init__(
        self, message: str, *, service: Service, method: str, url: str, request_sent: bool
    ) -> None:
        super().__init__(message, service=service, method=method)
        self.url = url
        self.request_sent = request_sent


class ChiaUnavailable(ChiaTransportError):
    """The service could not be reached (connection refused, unknown host, network down)."""


class ChiaTLSError(ChiaUnavailable):
    """The TLS handshake failed: the client certificate is missing, wrong or refused."""


class ChiaConnectionLost(ChiaTransportError):
    """The connection broke after the request was (possibly) sent."""


class ChiaTimeout(ChiaTransportError):
    """A timeout; `phase` is 'connect', 'write', 'read' or 'pool'."""

    def __init__(
        self,
        message: str,
        *,
        service: Service,
        method: str,
        url: str,
        request_sent: bool,
        phase: Literal["connect", "write", "read", "pool"],
    ) -> None:
        super().__init__(
            message, service=service, method=method, url=url, request_sent=request_sent
        )
        self.phase = phase


class ChiaCertificateError(Exception):
    """A client certificate or key is missing or unreadable; `path` names the file."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


# --- recognising Chia's error texts ---------------------------------------------------------


class ChiaErrorKind(StrEnum):
    """The Chia error messages the gateway reacts to (cadt-domain 4.2 and 6.2, chia-rpc.md)."""

    PENDING_ROOT = "pending_root"
    SINGLETON_PENDING = "singleton_pending"
    LATEST_ROOT_CONFIRMED = "latest_root_confirmed"
    STORE_NOT_IN_LOCAL_DB = "store_not_in_local_db"
    NO_GENERATIONS = "no_generations"
    FAILED_TO_GET_ROOT = "failed_to_get_root"
    NOT_OWNED = "not_owned"
    NO_CHANGE = "no_change"
    KEY_ALREADY_PRESENT = "key_already_present"
    UNABLE_TO_DIFF = "unable_to_diff"
    ROOT_NOT_DOWNLOADED = "root_not_downloaded"
    KEY_NOT_FOUND = "key_not_found"
    INVALID_LAUNCHER = "invalid_launcher"
    NO_SUBSCRIPTION = "no_subscription"
    WALLET_NOT_SYNCED = "wallet_not_synced"
    DL_WALLET_NOT_AVAILABLE = "dl_wallet_not_available"
    DL_WALLET_ALREADY_EXISTS = "dl_wallet_already_exists"
    COIN_SHORTAGE = "coin_shortage"
    UNIQUE_CONSTRAINT = "unique_constraint"
    WALLET_UNREACHABLE = "wallet_unreachable"
    INVALID_HEX = "invalid_hex"


#: cadt-domain 6.2 [later #1728]: errors that mean "not enough coins yet", retried on a time budget.
COIN_SHORTAGE_ERRORS: tuple[str, ...] = (
    "No spendable coins",
    "Can't select amount higher than our spendable balance",
    "greater than max spendable balance in a block",
    "Not enough coins to create new data layer singleton",
)

#: cadt-domain 6.2 [#1531] TRANSIENT_WALLET_ERRORS plus the coin-shortage list (case-sensitive).
TRANSIENT_WALLET_ERRORS: tuple[str, ...] = (
    "Wallet needs to be fully synced",
    "DataLayerWallet not available",
    "DataLayer Wallet already exists",
    "UNIQUE constraint failed",
    *COIN_SHORTAGE_ERRORS,
)

# Order matters only for classify_error: the more specific text comes first ("Unable to diff:
# Can't find keys and values for ..." is UNABLE_TO_DIFF, not ROOT_NOT_DOWNLOADED).
_KIND_PATTERNS: tuple[tuple[ChiaErrorKind, tuple[re.Pattern[str], ...]], ...] = tuple(
    (kind, tuple(re.compile(pattern) for pattern in patterns))
    for kind, patterns in (
        (ChiaErrorKind.PENDING_ROOT, [r"Already have a pending root waiting for confirmation"]),
        # The wallet's side of it: the DataLayer's pending root was cleared, the spend was not.
        (ChiaErrorKind.SINGLETON_PENDING, [r"Singleton with launcher ID \S+ is currently pending"]),
        (ChiaErrorKind.LATEST_ROOT_CONFIRMED, [r"Latest root is already confirmed"]),
        (ChiaErrorKind.STORE_NOT_IN_LOCAL_DB, [r"No store id stored in the local database"]),
        (ChiaErrorKind.NO_GENERATIONS, [r"No generations found"]),
        (ChiaErrorKind.FAILED_TO_GET_ROOT, [r"Failed to get root"]),
        (ChiaErrorKind.NOT_OWNED, [r"is not owned by DL Wallet"]),
        (ChiaErrorKind.NO_CHANGE, [r"Changelist resulted in no change to tree data"]),
        # A duplicate insert surfaces as the repr of Chia's internal KeyId, e.g. "KeyId(8)".
        (ChiaErrorKind.KEY_ALREADY_PRESENT, [r"Key already present", r"\bKeyId\("]),
        (ChiaErrorKind.UNABLE_TO_DIFF, [r"Unable to diff"]),
        (
            ChiaErrorKind.ROOT_NOT_DOWNLOADED,
            [r"Can't find keys and values for", r"Can't find keys for"],
        ),
        (ChiaErrorKind.KEY_NOT_FOUND, [r"Key not found"]),
        (ChiaErrorKind.INVALID_LAUNCHER, [r"Launcher ID .*?is not a valid coin"]),
        (ChiaErrorKind.NO_SUBSCRIPTION, [r"No subscription found"]),
        (ChiaErrorKind.WALLET_NOT_SYNCED, [r"Wallet needs to be fully synced"]),
        (ChiaErrorKind.DL_WALLET_NOT_AVAILABLE, [r"DataLayerWallet not available"]),
        (ChiaErrorKind.DL_WALLET_ALREADY_EXISTS, [r"DataLayer Wallet already exists"]),
        (ChiaErrorKind.COIN_SHORTAGE, [re.escape(text) for text in COIN_SHORTAGE_ERRORS]),
        (ChiaErrorKind.UNIQUE_CONSTRAINT, [r"UNIQUE constraint failed"]),
        # DataLayer relays its failed aiohttp connection to the wallet as a ConnectionKey repr.
        (ChiaErrorKind.WALLET_UNREACHABLE, [r"^ConnectionKey\(", r"Cannot connect to host"]),
        (
            ChiaErrorKind.INVALID_HEX,
            [r"non-hexadecimal number found in fromhex", r"bad bytes32 initializer"],
        ),
    )
)
_PATTERNS_BY_KIND = dict(_KIND_PATTERNS)


def parse_error_text(raw: str) -> str:
    """Return the innermost error text of a Chia error, unwrapping `RPC response failure: {...}`."""
    text = raw
    for _ in range(_MAX_NESTING):
        index = text.find(_NESTED_MARKER)
        if index < 0:
            return text
        inner = _nested_error(text[index + len(_NESTED_MARKER) :])
        if inner is None:
            return text
        text = inner
    return text


def _nested_error(payload: str) -> str | None:
    try:
        decoded = json.loads(payload)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        error = decoded.get("error")
        return error if isinstance(error, str) else None
    # Recorded tracebacks are often cut, leaving the JSON unparseable; the "error" field
    # comes first, so read it on its own.
    match = _NESTED_ERROR_FIELD.search(payload)
    if match is None:
        return None
    try:
        value = json.loads(f'"{match.group(1)}"')
    except ValueError:
        return match.group(1)
    return value if isinstance(value, str) else None


def error_text(error_or_text: BaseException | str) -> str:
    """The innermost message of a Chia error, an exception or a raw error string."""
    if isinstance(error_or_text, ChiaRpcError):
        return error_or_text.message
    if isinstance(error_or_text, BaseException):
        return parse_error_text(str(error_or_text))
    return parse_error_text(error_or_text)


def classify_error(error_or_text: BaseException | str) -> ChiaErrorKind | None:
    """The first ChiaErrorKind whose message matches, or None."""
    text = error_text(error_or_text)
    for kind, patterns in _KIND_PATTERNS:
        if any(pattern.search(text) for pattern in patterns):
            return kind
    return None


def has_error_kind(error_or_text: BaseException | str, kind: ChiaErrorKind) -> bool:
    """Tell whether the error's message matches `kind` (independent of classify_error's order)."""
    text = error_text(error_or_text)
    return any(pattern.search(text) for pattern in _PATTERNS_BY_KIND[kind])


def is_transient_wallet_error(error_or_text: BaseException | str) -> bool:
    """cadt-domain 6.2: a wallet error worth retrying at the job level (incl. coin shortage)."""
    text = error_text(error_or_text)
    return any(fragment in text for fragment in TRANSIENT_WALLET_ERRORS)


def is_coin_shortage_error(error_or_text: BaseException | str) -> bool:
    """cadt-domain 6.2 [later #1728]: the wallet has not enough usable coins (yet)."""
    text = error_text(error_or_text)
    return any(fragment in text for fragment in COIN_SHORTAGE_ERRORS)


def is_pending_root_error(error_or_text: BaseException | str) -> bool:
    """batch_update refused: the store already has a root waiting for confirmation."""
    return has_error_kind(error_or_text, ChiaErrorKind.PENDING_ROOT)


def is_singleton_pending_error(error_or_text: BaseException | str) -> bool:
    """batch_update refused by the wallet: the store's previous spend is still unconfirmed."""
    return has_error_kind(error_or_text, ChiaErrorKind.SINGLETON_PENDING)


def is_latest_root_confirmed_error(error_or_text: BaseException | str) -> bool:
    """'Latest root is already confirmed': CADT treats it as success."""
    return has_error_kind(error_or_text, ChiaErrorKind.LATEST_ROOT_CONFIRMED)


def is_store_not_in_local_db_error(error_or_text: BaseException | str) -> bool:
    """get_sync_status: the store is unknown here or subscribed but nothing downloaded yet."""
    return has_error_kind(error_or_text, ChiaErrorKind.STORE_NOT_IN_LOCAL_DB)


def is_no_generations_error(error_or_text: BaseException | str) -> bool:
    """get_keys_values/get_local_root: no generation of the store is held locally."""
    return has_error_kind(error_or_text, ChiaErrorKind.NO_GENERATIONS)


def is_failed_to_get_root_error(error_or_text: BaseException | str) -> bool:
    """get_root: the store is unknown or not confirmed yet."""
    return has_error_kind(error_or_text, ChiaErrorKind.FAILED_TO_GET_ROOT)


def is_not_owned_error(error_or_text: BaseException | str) -> bool:
    """A write to a store whose singleton this wallet does not own (permanent)."""
    return has_error_kind(error_or_text, ChiaErrorKind.NOT_OWNED)


def is_no_change_error(error_or_text: BaseException | str) -> bool:
    """batch_update changed nothing (empty changelist, deleting a missing key): CADT's success."""
    return has_error_kind(error_or_text, ChiaErrorKind.NO_CHANGE)


def is_key_already_present_error(error_or_text: BaseException | str) -> bool:
    """An insert of a key that exists ('Key already present' or the opaque 'KeyId(n)')."""
    return has_error_kind(error_or_text, ChiaErrorKind.KEY_ALREADY_PRESENT)


def is_unable_to_diff_error(error_or_text: BaseException | str) -> bool:
    """get_kv_diff on a root that is not held locally."""
    return has_error_kind(error_or_text, ChiaErrorKind.UNABLE_TO_DIFF)


def is_root_not_downloaded_error(error_or_text: BaseException | str) -> bool:
    """get_keys_values/get_keys at a root hash that is not held locally."""
    return has_error_kind(error_or_text, ChiaErrorKind.ROOT_NOT_DOWNLOADED)


def is_key_not_found_error(error_or_text: BaseException | str) -> bool:
    """get_value: the key is not in the local root (misleading while the node is behind)."""
    return has_error_kind(error_or_text, ChiaErrorKind.KEY_NOT_FOUND)


def is_invalid_launcher_error(error_or_text: BaseException | str) -> bool:
    """subscribe: 'Launcher ID <id> is not a valid coin' (no such store on chain)."""
    return has_error_kind(error_or_text, ChiaErrorKind.INVALID_LAUNCHER)


def is_no_subscription_error(error_or_text: BaseException | str) -> bool:
    """unsubscribe of a store that is not subscribed."""
    return has_error_kind(error_or_text, ChiaErrorKind.NO_SUBSCRIPTION)


def is_wallet_unreachable_error(error_or_text: BaseException | str) -> bool:
    """DataLayer is up but cannot reach its wallet (its error is a ConnectionKey repr)."""
    return has_error_kind(error_or_text, ChiaErrorKind.WALLET_UNREACHABLE)
