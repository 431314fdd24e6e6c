"""Transport-level retry policy of the Chia clients (style-and-reliability 3.3).

Retries here are short and only for failures of the transport: a read is retried when the
connection failed, timed out, broke, or a proxy answered 502/503/504; a write only when the
request provably never left (connect error, connect or pool timeout), because a write that may
have reached Chia must be re-checked against upstream state by the job, not blindly repeated.
A `success: false` body is a business error and never retried here: transient wallet errors are
retried at the job level (cadt-domain 6.2), so no error is retried by two layers.
"""

from __future__ import annotations

import logging

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from services.chia.errors import ChiaHTTPError, ChiaTLSError, ChiaTransportError

logger = logging.getLogger(__name__)

#: Statuses a reverse proxy in front of Chia uses for "try again"; Chia itself never sends them.
RETRYABLE_HTTP_STATUSES = frozenset({502, 503, 504})

# Small on purpose: the first retry comes after ~0.25-0.5 s; the cap is the caller's setting.
_WAIT_MULTIPLIER = 0.25
_WAIT_JITTER = 0.25


def is_retryable_read(error: BaseException) -> bool:
    """A read (idempotent) call may be repeated after this error."""
    if isinstance(error, ChiaTLSError):
        return False  # a refused certificate stays refused
    if isinstance(error, ChiaTransportError):
        return True
    return isinstance(error, ChiaHTTPError) and error.status in RETRYABLE_HTTP_STATUSES


def is_retryable_write(error: BaseException) -> bool:
    """A write may be repeated after this error: only when the request never reached Chia."""
    if isinstance(error, ChiaTLSError):
        return False
    return isinstance(error, ChiaTransportError) and not error.request_sent


def _log_retry(retry_state: RetryCallState) -> None:
    error = retry_state.outcome.exception() if retry_state.outcome else None
    wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
    logger.warning(
        "%s; retrying in %.2f s (attempt %d failed)", error, wait, retry_state.attempt_number
    )


def transport_retrying(*, attempts: int, max_wait: float, write: bool) -> AsyncRetrying:
    """The tenacity loop for one call; `max_wait=0` makes retries immediate (tests)."""
    return AsyncRetrying(
        stop=stop_after_attempt(max(1, attempts)),
        wait=wait_exponential_jitter(
            multiplier=_WAIT_MULTIPLIER, jitter=min(_WAIT_JITTER, max_wait), max=max_wait
        ),
        retry=retry_if_exception(is_retryable_write if write else is_retryable_read),
        reraise=True,
        before_sleep=_log_retry,
    )
