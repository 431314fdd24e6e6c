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


START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def render_readme(text: str) -> str:
    """The README text with its configuration table replaced by the current one."""
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{settings_markdown()}{END}{tail}"


def main() -> None:
    """Rewrite the configuration table of README.md in place."""
    path = Path("README.md")
    path.write_text(render_readme(path.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":
    main()
