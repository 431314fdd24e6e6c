"""Logging set-up: readable lines by default, one JSON object per line with CADT_LOG_JSON.

Every record logged while serving an HTTP request or WebSocket carries `request_id` (the
client's X-Request-ID or a generated one, request_id.RequestContextMiddleware), and every record
of a job carries `job_id` and `job_function`: context variables copied onto each record by
ContextFilter, so tasks started inside a request or job keep them.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

#: The request being served (HTTP or WebSocket), if any.
REQUEST_ID: ContextVar[str | None] = ContextVar("cadt_request_id", default=None)
#: The arq job being run, if any, and its function.
JOB_ID: ContextVar[str | None] = ContextVar("cadt_job_id", default=None)
JOB_FUNCTION: ContextVar[str | None] = ContextVar("cadt_job_function", default=None)


@contextmanager
def job_context(job_id: str, function: str) -> Iterator[None]:
    """Mark the records logged inside as belonging to one job run."""
    id_token = JOB_ID.set(job_id or None)
    function_token = JOB_FUNCTION.set(function)
    try:
        yield
    finally:
        JOB_FUNCTION.reset(function_token)
        JOB_ID.reset(id_token)


class ContextFilter(logging.Filter):
    """Copy the request and job ids of the current context onto each record (never drops)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add `request_id`, `job_id`, `job_function` when set."""
        request_id = REQUEST_ID.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        job_id = JOB_ID.get()
        if job_id is not None and not hasattr(record, "job_id"):
            record.job_id = job_id
            record.job_function = JOB_FUNCTION.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with any `extra=` fields kept."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(level: str, *, json_lines: bool = False) -> None:
    """Configure the root logger once for the process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries that are chatty at INFO.
    for name in ("httpx", "httpcore", "arq.worker", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
