"""The committed schema is a superset of the public contract: names are promised.

Every type, field, argument, enum value, union member and interface of contract/schema.graphql
(a copy of shared/contract/schema.graphql) must exist in our schema with the same type.
"""

from __future__ import annotations

from pathlib import Path

from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLUnionType,
    Undefined,
    build_schema,
    value_from_ast,
)

import schema

ROOT = Path(__file__).resolve().parents[2]


def _default(arg: GraphQLArgument) -> object:
    """The contract's default value of an argument (build_schema keeps it in the AST)."""
    node = arg.ast_node.default_value if arg.ast_node is not None else None
    return Undefined if node is None else value_from_ast(node, arg.type)


def test_every_contract_name_is_in_our_schema():
    contract = build_schema((ROOT / "contract" / "schema.graphql").read_text(encoding="utf-8"))
    ours = schema.build_schema()._schema
    missing: list[str] = []
    for name, expected in contract.type_map.items():
        if name.startswith("__"):
            continue
        actual = ours.type_map.get(name)
        if actual is None:
            missing.append(f"type {name}")
            continue
        if not isinstance(actual, type(expected)):
            missing.append(f"{name} is a {type(actual).__name__}, not {type(expected).__name__}")
            continue
        if isinstance(expected, (GraphQLObjectType, GraphQLInterfaceType)):
            assert isinstance(actual, (GraphQLObjectType, GraphQLInterfaceType))
            for field_name, field in expected.fields.items():
                mine = actual.fields.get(field_name)
                if mine is None:
                    missing.append(f"field {name}.{field_name}")
                    continue
                if str(mine.type) != str(field.type):
                    missing.append(f"{name}.{field_name}: {mine.type} != {field.type}")
                for arg_name, arg in field.args.items():
                    my_arg = mine.args.get(arg_name)
                    if my_arg is None:
                        missing.append(f"argument {name}.{field_name}({arg_name})")
                    elif str(my_arg.type) != str(arg.type):
                        missing.append(f"{name}.{field_name}({arg_name}): {my_arg.type}")
                    elif _default(arg) is not Undefined and my_arg.default_value != _default(arg):
                        missing.append(f"default of {name}.{field_name}({arg_name})")
            mine_interfaces = {i.name for i in actual.interfaces}
            for interface in expected.interfaces:
                if interface.name not in mine_interfaces:
                    missing.append(f"{name} implements {interface.name}")
        elif isinstance(expected, GraphQLInputObjectType):
            assert isinstance(actual, GraphQLInputObjectType)
            for field_name, field in expected.fields.items():
                mine_input = actual.fields.get(field_name)
                if mine_input is None or str(mine_input.type) != str(field.type):
                    missing.append(f"input field {name}.{field_name}")
        elif isinstance(expected, GraphQLEnumType):
            assert isinstance(actual, GraphQLEnumType)
            missing += [f"enum value {name}.{v}" for v in expected.values if v not in actual.values]
        elif isinstance(expected, GraphQLUnionType):
            assert isinstance(actual, GraphQLUnionType)
            members = {t.name for t in actual.types}
            missing += [
                f"union member {name}.{t.name}" for t in expected.types if t.name not in members
            ]
    assert missing == []
