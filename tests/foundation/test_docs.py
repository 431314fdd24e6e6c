"""The README documents every setting, and the contract is a subset of our schema."""

from __future__ import annotations

from pathlib import Path

from cadt_gateway.settings_doc import render_readme

ROOT = Path(__file__).resolve().parents[2]


def test_readme_configuration_table_is_current():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text == render_readme(text), "run `python -m cadt_gateway.settings_doc`"


def test_readme_opens_with_the_two_commands():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    head = "\n".join(lines[:6])
    assert "make run" in head
    assert "make test" in head
