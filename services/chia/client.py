"""The shared machinery of the DataLayer and Wallet clients: one call = one JSON POST.

Every call POSTs JSON to `<url>/<method>` and turns each way it can fail into one typed error
(see services.chia.errors): no httpx exception and no `success: false` body escapes as anything
else. One `httpx.AsyncClient` per client, so a client is safe to share between tasks.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal, Self, TypeVar

import httpx
from pydantic import ValidationError

from services.chia.errors import (
    ChiaBadResponse,
    ChiaBusinessError,
    ChiaConnectionLost,
    ChiaHTTPError,
    ChiaRpcError,
    ChiaTimeout,
    ChiaTLSError,
    ChiaTransportError,
    ChiaUnavailable,
    Service,
)
from services.chia.models.base import ChiaModel, ChiaRequest
from services.chia.retry import transport_retrying
from services.chia.tls import build_client_ssl_context, client_cert_paths, insecure_client_context

logger = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=ChiaModel)
ErrorT = TypeVar("ErrorT", bound=BaseException)

#: Bodies kept on errors are cut: a Chia traceback or an HTML error page can be large.
MAX_ERROR_BODY_CHARS = 2000


class ChiaRpcClient:
    """Base class: POSTs JSON to `<url>/<method>` with mutual TLS, typed errors and retries."""

    service: ClassVar[Service]

    def __init__(
        self,
        url: str,
        *,
        ssl_folder: Path | str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float,
        retry_attempts: int = 3,
        retry_max_wait: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._retry_attempts = retry_attempts
        self._retry_max_wait = retry_max_wait
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._tls = self.url.lower().startswith("https://")
        self._client_cert = (
            client_cert_paths(ssl_folder, self.service)[0]
            if self._tls and ssl_folder is not None
            else None
        )
        self._http = httpx.AsyncClient(
            base_url=self.url,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            verify=self._tls_context(ssl_folder),
            transport=transport,
            # Chia is reached directly with mutual TLS: an HTTP(S)_PROXY picked up from the
            # environment would only break the handshake.
            trust_env=False,
            follow_redirects=False,
        )

    def _tls_context(self, ssl_folder: Path | str | None) -> ssl.SSLContext | bool:
        if not self._tls:
            return False  # plain http (tests, the in-process simulator): no TLS at all
        if ssl_folder is None:
            return insecure_client_context()
        return build_client_ssl_context(ssl_folder, self.service)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    async def call(
        self,
        method: str,
        request: ChiaRequest | None,
        response_model: type[ModelT],
        *,
        write: bool,
        unsuccessful_without_error_ok: bool = False,
    ) -> ModelT:
        """POST `request` to `method`, retrying per the read/write policy; parse the response."""
        payload = request.payload() if request is not None else {}
        retrying = transport_retrying(
            attempts=self._retry_attempts, max_wait=self._retry_max_wait, write=write
        )
        body: dict[str, Any] = {}
        async for attempt in retrying:
            with attempt:
                body = await self._post(
                    method, payload, unsuccessful_without_error_ok=unsuccessful_without_error_ok
                )
        # The envelope flag is checked already; it is not part of any model.
        fields = {key: value for key, value in body.items() if key != "success"}
        try:
            return response_model.model_validate(fields)
        except ValidationError as error:
            raise ChiaBadResponse(
                f"unexpected response shape: {error}",
                service=self.service,
                method=method,
                status=200,
                body=_cut(json.dumps(body, default=str)),
            ) from error

    async def _post(
        self, method: str, payload: Mapping[str, Any], *, unsuccessful_without_error_ok: bool
    ) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            body = await self._post_once(method, payload, unsuccessful_without_error_ok)
        except ChiaRpcError as error:
            logger.debug(
                "chia %s %s failed in %.1f ms: %s",
                self.service,
                method,
                _elapsed_ms(started),
                type(error).__name__,
            )
            raise
        logger.debug("chia %s %s ok in %.1f ms", self.service, method, _elapsed_ms(started))
        return body

    async def _post_once(
        self, method: str, payload: Mapping[str, Any], unsuccessful_without_error_ok: bool
    ) -> dict[str, Any]:
        try:
            response = await self._http.post(f"/{method}", json=payload)
        except httpx.TimeoutException as error:
            raise self._timeout_error(method, error) from error
        except httpx.TransportError as error:
            raise self._transport_error(method, error) from error

        if response.status_code != 200:
            raise ChiaHTTPError(
                service=self.service,
                method=method,
                status=response.status_code,
                body=_cut(response.text),
            )
        try:
            body = json.loads(response.content)
        except ValueError as error:
            raise self._bad_response(method, response, "response body is not JSON") from error
        if not isinstance(body, dict):
            raise self._bad_response(method, response, "response body is not a JSON object")
        success = body.get("success")
        if success is True:
            return body
        if success is False:
            if unsuccessful_without_error_ok and "error" not in body:
                return body
            raise ChiaBusinessError.from_body(body, service=self.service, method=method)
        raise self._bad_response(method, response, "response has no boolean 'success' field")

    def _bad_response(self, method: str, response: httpx.Response, reason: str) -> ChiaBadResponse:
        return ChiaBadResponse(
            reason,
            service=self.service,
            method=method,
            status=response.status_code,
            body=_cut(response.text),
        )

    def _timeout_error(self, method: str, error: httpx.TimeoutException) -> ChiaTimeout:
        phase: Literal["connect", "write", "read", "pool"]
        if isinstance(error, httpx.ConnectTimeout):
            phase, seconds = "connect", self.connect_timeout
        elif isinstance(error, httpx.PoolTimeout):
            phase, seconds = "pool", self.read_timeout
        elif isinstance(error, httpx.WriteTimeout):
            phase, seconds = "write", self.read_timeout
        else:
            phase, seconds = "read", self.read_timeout
        return ChiaTimeout(
            f"{phase} timeout after {seconds:g} s calling {self.url}/{method}",
            service=self.service,
            method=method,
            url=self.url,
            # Connect and pool timeouts happen before a single byte of the request is written.
            request_sent=phase not in ("connect", "pool"),
            phase=phase,
        )

    def _transport_error(self, method: str, error: httpx.TransportError) -> ChiaTransportError:
        tls_refusal = self._tls_refusal(error)
        if tls_refusal is not None:
            return ChiaTLSError(
                f"TLS handshake with {self.url} failed: {tls_refusal}",
                service=self.service,
                method=method,
                url=self.url,
                # The server refused the handshake, so it never processed the request, even
                # if (TLS 1.3) its bytes were already written.
                request_sent=False,
            )
        if isinstance(error, httpx.ConnectError | httpx.UnsupportedProtocol):
            return ChiaUnavailable(
                f"cannot connect to {self.url}: {_describe(error)}",
                service=self.service,
                method=method,
                url=self.url,
                request_sent=False,
            )
        hint = ""
        if self._tls and _in_chain(error, ConnectionResetError) is not None:
            hint = (
                f"; if every call fails this way, the server refuses the client certificate "
                f"{self._client_cert}"
            )
        return ChiaConnectionLost(
            f"connection to {self.url} lost: {_describe(error)}{hint}",
            service=self.service,
            method=method,
            url=self.url,
            request_sent=True,
        )

    def _tls_refusal(self, error: httpx.TransportError) -> str | None:
        ssl_error = _in_chain(error, ssl.SSLError)
        if ssl_error is not None:
            if self._client_cert is None:
                return f"{ssl_error}; no client certificate is configured"
            return f"{ssl_error}; check the client certificate {self._client_cert}"
        # With TLS 1.3 the server checks the client certificate only after the client has
        # finished its side of the handshake, and then aborts the connection: the client sees
        # a reset on its first read instead of an alert.
        if self._tls and self._client_cert is None and _in_chain(error, ConnectionResetError):
            return (
                "the server dropped the connection and no client certificate is configured; "
                "Chia requires mutual TLS (give the certificate folder)"
            )
        return None


def _in_chain(error: BaseException, kind: type[ErrorT]) -> ErrorT | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _describe(error: BaseException) -> str:
    # httpx often wraps the OS error with an empty message; the root cause says what happened.
    if str(error):
        return str(error)
    seen = {id(error)}
    current = error.__cause__ or error.__context__
    while current is not None and id(current) not in seen:
        if str(current):
            return f"{type(current).__name__}: {current}"
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return type(error).__name__


def _cut(text: str) -> str:
    return text if len(text) <= MAX_ERROR_BODY_CHARS else text[:MAX_ERROR_BODY_CHARS] + "…"


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
