"""Custom scalars of the contract: DateTime (ISO-8601, UTC, milliseconds, Z), JSON and Mojos."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NewType

import strawberry
from strawberry.scalars import JSON
from strawberry.types.scalar import ScalarDefinition

__all__ = ["JSON", "SCALAR_MAP", "Mojos", "format_datetime"]

#: A non-negative amount of mojos; serialized as a decimal string because it exceeds 2^53.
Mojos = NewType("Mojos", int)


def format_datetime(value: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a Z, like JavaScript's toISOString()."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


def _parse_datetime(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("DateTime must be an ISO-8601 string")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("DateTime must carry a timezone")
    return parsed


def _serialize_mojos(value: int) -> str:
    return str(int(value))


def _parse_mojos(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("Mojos must be a decimal string")
    text = str(value).strip()
    if not text.isdigit():
        raise ValueError("Mojos must be a non-negative decimal integer")
    return int(text)


SCALAR_MAP: dict[object, ScalarDefinition] = {
    datetime: strawberry.scalar(
        name="DateTime",
        description="ISO-8601 in UTC with milliseconds, e.g. 2026-03-17T15:44:00.000Z",
        serialize=format_datetime,
        parse_value=_parse_datetime,
    ),
    Mojos: strawberry.scalar(
        name="Mojos",
        description="Non-negative integer amount of mojos, serialized as a decimal string.",
        serialize=_serialize_mojos,
        parse_value=_parse_mojos,
    ),
}
