"""Validation of published values (lenient on input, strict on types) and the read model."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.config import ServiceSettings
from services.errors import InvalidInput
from services.governance import (
    glossary_value,
    max_value_bytes,
    org_list_value,
    parse_org_list,
    pick_list_value,
)
from tests.governance.conftest import (
    FAST,
    PICK_LIST,
    SET_GLOSSARY,
    SET_ORG_LIST,
    SET_PICK_LIST,
    set_meta,
)

SETTINGS = ServiceSettings()


def test_org_list_is_cadts_json_of_normalised_ids():
    text = org_list_value(["0X" + "AB" * 32, "cd" * 32], SETTINGS)

    assert text == '[{"orgUid":"' + "ab" * 32 + '"},{"orgUid":"' + "cd" * 32 + '"}]'
    assert org_list_value([], SETTINGS) == "[]"


@pytest.mark.parametrize(
    "org_uids",
    [["not-a-store"], ["ab" * 32, "0x" + "AB" * 32], ["ab" * 31]],
    ids=["malformed", "duplicate", "short"],
)
def test_org_list_refuses(org_uids: list[str]):
    with pytest.raises(InvalidInput) as error:
        org_list_value(org_uids, SETTINGS)

    assert error.value.field == "orgUids"


def test_pick_list_accepts_an_object_or_a_string_holding_one():
    assert json.loads(pick_list_value(PICK_LIST, SETTINGS)) == PICK_LIST
    assert json.loads(pick_list_value(json.dumps(PICK_LIST), SETTINGS)) == PICK_LIST
    assert pick_list_value({"countries": ["Perú"]}, SETTINGS) == '{"countries":["Perú"]}'


@pytest.mark.parametrize(
    "value",
    [
        ["Verra"],
        "not json",
        '"a string"',
        {"registries": "Verra"},
        {"registries": ["Verra", 3]},
        {"": ["x"]},
        None,
    ],
)
def test_pick_list_refuses(value: Any):
    with pytest.raises(InvalidInput) as error:
        pick_list_value(value, SETTINGS)

    assert error.value.field == "pickList"


def test_glossary_accepts_an_object_or_cadts_array_form():
    assert json.loads(glossary_value({"Term": "Meaning"}, SETTINGS)) == {"Term": "Meaning"}
    array = [{"term": "Term", "definition": "Meaning"}]
    assert json.loads(glossary_value(array, SETTINGS)) == array
    assert json.loads(glossary_value(json.dumps(array), SETTINGS)) == array


@pytest.mark.parametrize(
    "value",
    [
        {"Term": 3},
        {" ": "blank term"},
        [{"term": "Term"}],
        [{"term": "", "definition": "x"}],
        ["Term"],
        42,
    ],
)
def test_glossary_refuses(value: Any):
    with pytest.raises(InvalidInput) as error:
        glossary_value(value, SETTINGS)

    assert error.value.field == "glossary"


def test_values_are_size_capped():
    settings = ServiceSettings(governance_max_value_bytes=1024)
    assert max_value_bytes(settings) == 1024
    assert max_value_bytes(SETTINGS) == 1 << 20  # 1 MiB by default

    with pytest.raises(InvalidInput) as error:
        glossary_value({"Term": "x" * 2000}, settings)

    assert error.value.field == "glossary"
    assert "limit is 1024 bytes" in error.value.message
    with pytest.raises(InvalidInput):
        org_list_value([f"{n:064x}" for n in range(20)], settings)


def test_org_list_parsing_is_lenient_about_extra_fields_and_bad_entries():
    text = json.dumps(
        [
            {"orgUid": "0x" + "AB" * 32, "name": "extra fields are allowed"},
            {"orgUid": "ab" * 32},
            {"noUid": True},
            "not an object",
            {"orgUid": "legacy-uid"},
        ]
    )

    assert [entry.org_uid for entry in parse_org_list(text)] == ["ab" * 32, "legacy-uid"]
    assert parse_org_list("{not json") == []
    assert parse_org_list(None) == []
    assert parse_org_list('{"orgUid": "x"}') == []


# ------------------------------------------------------------------------- over GraphQL


async def owned_body_node(start_node: Any, node_settings: Any, **overrides: Any) -> Any:
    """A governance node whose Meta records a body (validation runs before any upstream call)."""
    node = await start_node(node_settings(0, is_governance_body=True, **FAST, **overrides))
    await set_meta(node, "governanceBodyId", "ab" * 32)
    await set_meta(node, "mainGoveranceBodyId", "cd" * 32)
    return node


async def test_validation_errors_name_the_argument(start_node: Any, node_settings: Any):
    node = await owned_body_node(start_node, node_settings, governance_max_value_bytes=1024)

    duplicate = (await node.execute(SET_ORG_LIST, {"orgUids": ["ab" * 32, "0x" + "AB" * 32]}))[
        "setGovernanceOrgList"
    ]
    pick_list = (await node.execute(SET_PICK_LIST, {"pickList": {"registries": "Verra"}}))[
        "setGovernancePickList"
    ]
    too_big = (await node.execute(SET_GLOSSARY, {"glossary": {"Term": "x" * 2000}}))[
        "setGovernanceGlossary"
    ]

    assert duplicate["__typename"] == "ValidationError"
    assert duplicate["field"] == "orgUids"
    assert "more than once" in duplicate["message"]
    assert pick_list["__typename"] == "ValidationError"
    assert pick_list["field"] == "pickList"
    assert too_big["__typename"] == "ValidationError"
    assert too_big["field"] == "glossary"
    assert too_big["code"] == "VALIDATION"
