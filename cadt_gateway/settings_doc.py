"""Render the configuration table of the README from the Settings class itself."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from pydantic.fields import FieldInfo

from cadt_gateway.settings import ENV_PREFIX, Settings


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "(computed)"
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, Enum):
        return f"`{value.value}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        return f"`{value}`"
    return f"`{value}`"


def settings_rows() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting."""
    rows = []
    for name, field in Settings.model_fields.items():
        rows.append((ENV_PREFIX + name.upper(), _default(field), field.description or ""))
    return rows


def settings_markdown() -> str:
    """The configuration table in Markdown."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for variable, default, meaning in settings_rows():
        lines.append(f"| `{variable}` | {default} | {meaning.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
