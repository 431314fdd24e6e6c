"""How GraphQL errors are logged and what clients see of them.

- Expected errors (syntax, validation, limits, a resolver's deliberate GraphQLError such as a
  VALIDATION error) go to the client as they are and to the log at DEBUG, without a traceback.
  Result-union members (Conflict, ValidationError, ...) are data, not errors: never touched.
- A part of the node that cannot be reached (the database or Redis down or restarting) is an
  outage, not a bug: the client gets `{code: DATABASE_UNAVAILABLE | REDIS_UNAVAILABLE,
  errorId}` and a message saying so (no driver text), the log one WARNING without traceback.
- Unexpected errors (any other exception in a resolver or an extension) get an error id: the
  log has one ERROR record with the id, the operation, the path and the traceback; the client
  gets `extensions: {code: INTERNAL_SERVER_ERROR, errorId}`. With CADT_ENV=production the
  message is replaced by a generic one naming the id, so nothing internal leaks.

strawberry's own `process_errors` logs every error with a traceback; `GatewaySchema` replaces it.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import strawberry
from graphql import GraphQLError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from strawberry.types import ExecutionContext

from cadt_gateway import metrics
from services.db.engine import is_database_unavailable

logger = logging.getLogger("cadt_gateway.graphql")

INTERNAL_ERROR_CODE = "INTERNAL_SERVER_ERROR"
TOO_DEEP_MESSAGE = "The document is nested too deeply."


#: code -> what the client is told when that part of the node cannot be reached.
UNAVAILABLE_MESSAGES = {
    "REDIS_UNAVAILABLE": "Redis is unavailable; try again shortly.",
    "DATABASE_UNAVAILABLE": "The database is unavailable; try again shortly.",
}


def unavailable_code(error: BaseException) -> str | None:
    """DATABASE_UNAVAILABLE or REDIS_UNAVAILABLE when `error` is that part being down."""
    if isinstance(error, RedisConnectionError | RedisTimeoutError):
        return "REDIS_UNAVAILABLE"
    if is_database_unavailable(error):
        return "DATABASE_UNAVAILABLE"
    return None


def new_error_id() -> str:
    """A short random id that a client quotes and an operator greps for."""
    return secrets.token_hex(8)


def masked_message(error_id: str) -> str:
    """What a client sees of an unexpected error in production."""
    return f"Internal server error (error id {error_id})."


def report_errors(
    errors: list[GraphQLError], execution_context: ExecutionContext | None, *, mask: bool
) -> None:
    """Log each error once, give unexpected ones an error id, and mask them when asked."""
    operation_type, operation_name = metrics.operation_labels(execution_context)
    for error in errors:
        extensions: dict[str, Any] = dict(error.extensions or {})
        if "errorId" in extensions:
            continue  # already reported: one result shared by many subscribers
        original = error.original_error
        if isinstance(original, RecursionError):  # the parser met hundreds of nested brackets
            error.message = TOO_DEEP_MESSAGE
            error.original_error = None
            original = None
            extensions.setdefault("code", "MAX_DEPTH_EXCEEDED")
            error.extensions = extensions
        if original is None or isinstance(original, GraphQLError):
            code = str(extensions.get("code") or "GRAPHQL_ERROR")
            metrics.graphql_error(operation_type, operation_name, code)
            logger.debug("GraphQL error (%s): %s", code, error.message)
            continue
        error_id = new_error_id()
        path = ".".join(str(part) for part in error.path or ()) or None
        outage = unavailable_code(original)
        if outage is not None:
            logger.warning(
                "%s (error %s) in %s %s at %s: %s: %s",
                outage,
                error_id,
                operation_type,
                operation_name,
                path,
                type(original).__name__,
                original,
                extra={"error_id": error_id, "graphql_path": path},
            )
            metrics.graphql_error(operation_type, operation_name, outage)
            error.extensions = {**extensions, "code": outage, "errorId": error_id}
            error.message = f"{UNAVAILABLE_MESSAGES[outage]} (error id {error_id})"
            error.original_error = None
            continue
        logger.error(
            "Unexpected error %s in %s %s at %s: %s: %s",
            error_id,
            operation_type,
            operation_name,
            path,
            type(original).__name__,
            original,
            exc_info=(type(original), original, original.__traceback__),
            extra={"error_id": error_id, "graphql_path": path},
        )
        metrics.graphql_error(operation_type, operation_name, INTERNAL_ERROR_CODE)
        error.extensions = {**extensions, "code": INTERNAL_ERROR_CODE, "errorId": error_id}
        if mask:
            error.message = masked_message(error_id)
            error.original_error = None


class GatewaySchema(strawberry.Schema):
    """strawberry.Schema whose errors are reported by `report_errors`."""

    #: Set by the app from CADT_ENV (Settings.masks_errors).
    mask_unexpected_errors: bool = False

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log and (in production) mask; see the module docstring."""
        report_errors(errors, execution_context, mask=self.mask_unexpected_errors)
