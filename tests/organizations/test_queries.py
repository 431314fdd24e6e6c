"""organizations / organization / homeOrganization queries: pages, filters, validation, cost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from services.db.models import Audit, Mirror, Organization, SyncState
from services.organizations import MAX_PAGE_SIZE, encode_cursor

PAGE = """
query Page($filter: OrganizationFilter, $first: Int, $after: String) {
  organizations(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { orgUid name isHome subscribed metadata } }
  }
}
"""

PAGE_WITH_RELATIONS = """
query Page($first: Int) {
  organizations(first: $first) {
    totalCount
    edges { node {
      orgUid name metadata
      sync { synced syncRemaining lastProcessedGeneration datalayerGeneration backoff { reason } }
      mirrors { coinId storeId urls amount ours }
    } }
  }
}
"""


#: Index of the home organization among the seeded ones (inside the smallest page measured).
HOME = 2


def uid(number: int) -> str:
    """A store id for test organization `number`."""
    return f"{number:064x}"


async def seed_organizations(node: Any, count: int, *, relations: bool = False) -> list[str]:
    """Rows for `count` organizations (every third unsubscribed, every other synced)."""
    uids = [uid(number + 1) for number in range(count)]
    async with node.services.db.transaction() as session:
        for number, org_uid in enumerate(uids):
            session.add(
                Organization(
                    org_uid=org_uid,
                    name=f"Registry {number:03d}" + (" Blue" if number % 5 == 0 else ""),
                    registry_id=uid(1000 + number),
                    data_model_version_store_id=uid(2000 + number),
                    file_store_id=uid(3000 + number),
                    subscribed=number % 3 != 0,
                    synced=number % 2 == 0,
                    is_home=number == HOME,
                    metadata_json=json.dumps({"meta_rank": str(number)}),
                )
            )
            if relations:
                session.add(SyncState(org_uid=org_uid, datalayer_generation=number))
                session.add(
                    Audit(
                        org_uid=org_uid,
                        registry_id=uid(1000 + number),
                        generation=number,
                        root_hash="00" * 32,
                        type="NO CHANGE",
                    )
                )
                session.add(
                    Mirror(
                        coin_id=uid(5000 + number),
                        store_id=org_uid,
                        urls_json=json.dumps(["http://mirror.test"]),
                        amount=300,
                    )
                )
        # A row of the other data model and the creation placeholder are never listed.
        session.add(Organization(org_uid=uid(1), data_model_version="v1", name="V1 row"))
        session.add(Organization(org_uid="PENDING", name="", data_model_version="v2"))
    return uids


@pytest.fixture
async def query_node(start_node: Any, node_settings: Any) -> Any:
    """A node without a worker: nothing but the queries under test touches the database.

    The response cache is off: these tests count and vary the database reads behind queries.
    """
    return await start_node(node_settings(response_cache=False), run_worker=False)


async def test_pages_follow_cursors_to_the_end(query_node: Any):
    uids = await seed_organizations(query_node, 23)

    seen: list[str] = []
    after = None
    pages = 0
    while True:
        data = (await query_node.execute(PAGE, {"first": 10, "after": after}))["organizations"]
        pages += 1
        assert data["totalCount"] == 23
        seen += [edge["node"]["orgUid"] for edge in data["edges"]]
        assert data["pageInfo"]["endCursor"] == data["edges"][-1]["cursor"]
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]

    assert pages == 3
    assert seen == uids


async def test_a_cursor_stays_valid_when_rows_before_it_are_deleted(query_node: Any):
    uids = await seed_organizations(query_node, 6)
    first = (await query_node.execute(PAGE, {"first": 3}))["organizations"]
    async with query_node.services.db.transaction() as session:
        row = await session.get(Organization, 2)
        await session.delete(row)

    rest = (await query_node.execute(PAGE, {"first": 3, "after": first["pageInfo"]["endCursor"]}))[
        "organizations"
    ]

    assert [edge["node"]["orgUid"] for edge in rest["edges"]] == uids[3:]
    assert rest["pageInfo"] == {"hasNextPage": False, "endCursor": rest["edges"][-1]["cursor"]}


async def test_default_page_is_fifty_and_first_is_clamped_to_the_maximum(query_node: Any):
    await seed_organizations(query_node, 120)

    default = (await query_node.execute(PAGE))["organizations"]
    clamped = (await query_node.execute(PAGE, {"first": 1000}))["organizations"]
    empty = (await query_node.execute(PAGE, {"first": 0}))["organizations"]

    assert len(default["edges"]) == 50
    assert len(clamped["edges"]) == MAX_PAGE_SIZE
    assert clamped["pageInfo"]["hasNextPage"] is True
    assert empty == {
        "totalCount": 120,
        "pageInfo": {"hasNextPage": True, "endCursor": None},
        "edges": [],
    }


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"subscribed": False}, lambda n: n % 3 == 0),
        ({"subscribed": True}, lambda n: n % 3 != 0),
        ({"synced": True}, lambda n: n % 2 == 0),
        ({"isHome": True}, lambda n: n == HOME),
        ({"isHome": False, "synced": False}, lambda n: n != HOME and n % 2 == 1),
        ({"search": "bLuE"}, lambda n: n % 5 == 0),
        ({"search": "registry 01"}, lambda n: 10 <= n <= 19),
    ],
)
async def test_filters(query_node: Any, condition: dict[str, Any], expected: Any):
    uids = await seed_organizations(query_node, 20)

    data = (await query_node.execute(PAGE, {"filter": condition}))["organizations"]

    wanted = [org_uid for number, org_uid in enumerate(uids) if expected(number)]
    assert [edge["node"]["orgUid"] for edge in data["edges"]] == wanted
    assert data["totalCount"] == len(wanted)


async def test_search_matches_the_org_uid_and_escapes_wildcards(query_node: Any):
    uids = await seed_organizations(query_node, 20)

    by_uid = await query_node.execute(PAGE, {"filter": {"search": uids[17][-6:].upper()}})
    wildcard = await query_node.execute(PAGE, {"filter": {"search": "%"}})

    assert [e["node"]["orgUid"] for e in by_uid["organizations"]["edges"]] == [uids[17]]
    assert wildcard["organizations"]["totalCount"] == 0


async def test_metadata_comes_without_the_meta_prefix(query_node: Any):
    await seed_organizations(query_node, 1)

    data = (await query_node.execute(PAGE))["organizations"]

    assert data["edges"][0]["node"]["metadata"] == {"rank": "0"}


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"first": -1}, "first"),
        ({"after": "bm90LWEtY3Vyc29y"}, "after"),
        ({"after": "!!"}, "after"),
        ({"after": encode_cursor(1)[:-2] + "x"}, "after"),
    ],
)
async def test_bad_page_arguments_are_validation_errors(
    query_node: Any, variables: dict[str, Any], field: str
):
    body = await query_node.execute(PAGE, variables, expect_errors=True)

    error = body["errors"][0]
    assert error["extensions"]["code"] == "VALIDATION"
    assert error["extensions"]["field"] == field


async def test_organization_by_uid(query_node: Any):
    uids = await seed_organizations(query_node, 3)
    query = "query($orgUid: ID!) { organization(orgUid: $orgUid) { orgUid name } }"

    found = await query_node.execute(query, {"orgUid": "0x" + uids[1].upper()})
    unknown = await query_node.execute(query, {"orgUid": "ab" * 32})
    malformed = await query_node.execute(query, {"orgUid": "nope"}, expect_errors=True)

    assert found == {"organization": {"orgUid": uids[1], "name": "Registry 001"}}
    assert unknown == {"organization": None}
    assert malformed["data"] == {"organization": None}
    assert malformed["errors"][0]["extensions"] == {"code": "VALIDATION", "field": "orgUid"}


async def test_home_organization(query_node: Any):
    assert (await query_node.execute("{ homeOrganization { orgUid } }")) == {
        "homeOrganization": None
    }
    uids = await seed_organizations(query_node, 10)

    data = await query_node.execute("{ homeOrganization { orgUid isHome } }")

    assert data == {"homeOrganization": {"orgUid": uids[HOME], "isHome": True}}


# ------------------------------------------------------------------------------ query cost


@contextmanager
def counting_queries(node: Any) -> Iterator[list[str]]:
    """Every SQL statement the node's engine runs inside the block."""
    statements: list[str] = []
    engine = node.services.db.engine.sync_engine

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_a_page_with_sync_and_mirrors_costs_a_constant_number_of_queries(query_node: Any):
    await seed_organizations(query_node, 60, relations=True)
    await query_node.execute(PAGE_WITH_RELATIONS, {"first": 5})  # warm connections and caches

    with counting_queries(query_node) as small:
        five = (await query_node.execute(PAGE_WITH_RELATIONS, {"first": 5}))["organizations"]
    with counting_queries(query_node) as large:
        fifty = (await query_node.execute(PAGE_WITH_RELATIONS, {"first": 50}))["organizations"]

    assert len(five["edges"]) == 5
    assert len(fifty["edges"]) == 50
    node = fifty["edges"][49]["node"]
    assert node["sync"]["lastProcessedGeneration"] == 49
    assert node["sync"]["datalayerGeneration"] == 49
    assert node["mirrors"] == [
        {
            "coinId": uid(5049),
            "storeId": node["orgUid"],
            "urls": ["http://mirror.test"],
            "amount": "300",
            "ours": False,
        }
    ]
    # Both pages hold the home organization, so both ask the same questions: count + page,
    # sync state + last audit generation (+ the home's write block), mirrors.
    assert len(small) == len(large), (small, large)
    assert len(large) <= 6, large
