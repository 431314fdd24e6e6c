"""The mirror-check job and add_mirror: scenarios 27-29 of cadt-domain.md, fees, the table."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

import pytest

from jobs.mirrors import mirror_check
from services import mirrors
from services.chia.models.wallet import WalletBalance
from services.container import Services
from services.db.engine import Database
from services.db.models import Meta
from services.errors import NotFound, PreconditionFailed
from services.mirrors import MirrorAddStatus, add_mirror, remove_mirror, run_mirror_check
from services.simulator import FailRule
from services.views import mirrors_by_store
from tests.mirrors.conftest import Spy
from tests.sync.harness import LOCAL, MIRROR_URL, Chain, add_organization, insert

URL = "https://files.example.org/dl"


def mirrored_urls(chain: Chain, store_id: str) -> list[list[str]]:
    return [m.urls for m in chain.state.mirrors.values() if m.launcher_id == store_id]


def our_mirror_count(chain: Chain, store_id: str, url: str = URL) -> int:
    return sum(
        1
        for m in chain.state.mirrors.values()
        if m.launcher_id == store_id and m.creator_key == LOCAL and url in m.urls
    )


def tracked_store(chain: Chain, mirror_urls: tuple[str, ...] = (MIRROR_URL,)) -> str:
    """A store of key 1 that this node subscribes to (Chia lists mirrors of tracked stores)."""
    store = chain.create_store([[insert("unit|a", {})]], mirror_urls=mirror_urls)
    chain.subscribe(store)
    return store


def governance_body(chain: Chain, version_key: str = "v2") -> tuple[str, str]:
    """A main governance store {version_key: <version store>} owned by key 1."""
    version_store = chain.create_store([[insert("orgList", [])]], mirror_urls=())
    main = chain.create_store([[insert(version_key, version_store)]], mirror_urls=())
    # a subscriber node subscribes the body it follows (the governance sync does)
    chain.subscribe(main)
    chain.cycle()
    return main, version_store


# ---------------------------------------------------------------------------- scenario 27


async def test_without_a_url_nothing_is_called_scenario_27(
    chain: Chain,
    make_services: Callable[..., Services],
    spy_on: Callable[[Services], Spy],
    caplog: pytest.LogCaptureFixture,
):
    services = make_services(datalayer_file_server_url=None)
    spy = spy_on(services)
    caplog.set_level(logging.INFO, logger="services.mirrors")
    report = await run_mirror_check(services)
    assert report.skipped == "DATALAYER_FILE_SERVER_URL not set"
    assert spy.count("get_mirrors") == 0 and spy.count("add_mirror") == 0
    assert "DATALAYER_FILE_SERVER_URL not set, skipping mirror announcements" in caplog.text


async def test_auto_mirror_off_means_the_job_body_does_not_run_scenario_27(
    chain: Chain, make_services: Callable[..., Services], spy_on: Callable[[Services], Spy]
):
    services = make_services(datalayer_file_server_url=URL, auto_mirror_external_stores=False)
    spy = spy_on(services)
    assert (await mirror_check({"services": services})).startswith("skipped")
    assert spy.calls == []


# ---------------------------------------------------------------------------- scenario 28


@pytest.mark.parametrize("version_key", ["v2", "v1"])
async def test_subscriber_mirrors_the_governance_body_and_its_version_store_scenario_28(
    chain: Chain, make_services: Callable[..., Services], version_key: str
):
    # given a URL, no governance Meta keys, and GOVERNANCE_BODY_ID = G whose key holds V
    main, version_store = governance_body(chain, version_key)
    services = make_services(datalayer_file_server_url=URL, governance_body_id=main)

    report = await run_mirror_check(services)

    # then both G and V are mirrored at the URL
    assert report.stores == [main, version_store]
    assert [r.status for r in report.results] == [MirrorAddStatus.ADDED] * 2
    assert our_mirror_count(chain, main) == 1
    assert our_mirror_count(chain, version_store) == 1


async def test_a_failure_on_the_main_store_still_mirrors_the_rest_scenario_28(
    chain: Chain, database: Database, make_services: Callable[..., Services]
):
    main, version_store = governance_body(chain)
    registry = chain.create_store([[insert("unit|a", {})]])
    org_uid = chain.create_store([[insert("name", "Org")]])
    await add_organization(database, org_uid=org_uid, registry_id=registry)
    services = make_services(datalayer_file_server_url=URL, governance_body_id=main)
    chain.state.faults.fail_next.append(
        FailRule(method="add_mirror", error="Wallet needs to be fully synced", key=LOCAL)
    )

    report = await run_mirror_check(services)

    statuses = {r.store_id: r.status for r in report.results}
    assert statuses[main] is MirrorAddStatus.FAILED
    assert statuses[version_store] is MirrorAddStatus.ADDED
    assert statuses[org_uid] is MirrorAddStatus.ADDED
    assert statuses[registry] is MirrorAddStatus.ADDED
    assert main in report.errors
    # the failed pair is not blocked: the next run adds it
    again = await run_mirror_check(services)
    assert {r.store_id: r.status for r in again.results}[main] is MirrorAddStatus.ADDED


async def test_an_unreadable_version_store_still_mirrors_the_main_store(
    chain: Chain, make_services: Callable[..., Services]
):
    main, _version_store = governance_body(chain)
    services = make_services(datalayer_file_server_url=URL, governance_body_id=main)
    chain.state.faults.fail_next.append(
        FailRule(method="get_value", error="DataLayerWallet not available", key=LOCAL)
    )
    report = await run_mirror_check(services)
    assert report.stores == [main]
    assert our_mirror_count(chain, main) == 1
    assert main in report.errors


async def test_a_governance_node_mirrors_its_two_meta_stores(
    chain: Chain, database: Database, make_services: Callable[..., Services]
):
    main = chain.create_store([[insert("v2", "x")]], owner=LOCAL, mirror_urls=())
    version_store = chain.create_store([[insert("orgList", [])]], owner=LOCAL, mirror_urls=())
    async with database.transaction() as session:
        session.add(Meta(key="mainGoveranceBodyId", value=main))
        session.add(Meta(key="governanceBodyId", value=version_store))
    # own stores are mirrored even with AUTO_MIRROR_EXTERNAL_STORES off (direct call)
    services = make_services(datalayer_file_server_url=URL, auto_mirror_external_stores=False)
    report = await run_mirror_check(services)
    assert report.stores == [main, version_store]
    assert our_mirror_count(chain, main) == our_mirror_count(chain, version_store) == 1


# ---------------------------------------------------------------------------- scenario 29


async def test_an_existing_mirror_is_not_added_again_scenario_29(
    chain: Chain, make_services: Callable[..., Services], spy_on: Callable[[Services], Spy]
):
    # given get_mirrors(S) already lists launcher S with url U (another wallet's mirror)
    store = tracked_store(chain, (URL,))
    services = make_services(datalayer_file_server_url=URL)
    spy = spy_on(services)

    result = await add_mirror(services, store, URL)

    assert result.status is MirrorAddStatus.EXISTS
    assert result.mirror is not None and result.mirror.urls == [URL]
    assert spy.count("add_mirror") == 0


async def test_concurrent_workers_add_one_mirror_scenario_29(
    chain: Chain, make_services: Callable[..., Services]
):
    # two workers (two Services on one Redis) race for the same (store, url)
    store = tracked_store(chain, ())
    workers = [make_services(datalayer_file_server_url=URL) for _ in range(4)]

    results = await asyncio.gather(*(add_mirror(w, store, URL) for w in workers))

    statuses = sorted(r.status.value for r in results)
    assert statuses.count(MirrorAddStatus.ADDED.value) == 1
    assert our_mirror_count(chain, store) == 1
    # while the new coin is pending (not listed yet) the claim keeps the others off
    assert (await add_mirror(workers[1], store, URL)).status is MirrorAddStatus.IN_FLIGHT
    # once confirmed, every run sees it and never adds a second one
    chain.state.farm_block()
    assert (await add_mirror(workers[0], store, URL)).status is MirrorAddStatus.EXISTS
    assert our_mirror_count(chain, store) == 1


# ---------------------------------------------------------------------------- fees, table


async def test_fee_fallback_and_insufficient_funds(
    chain: Chain,
    make_services: Callable[..., Services],
    spy_on: Callable[[Services], Spy],
    monkeypatch: pytest.MonkeyPatch,
):
    store = chain.create_store([[insert("unit|a", {})]], mirror_urls=())
    services = make_services(
        datalayer_file_server_url=URL, default_fee=3000, default_coin_amount=300
    )
    spy = spy_on(services)
    balance = {"spendable": 1000}
    real_balance = services.wallet.get_wallet_balance

    async def fake_balance(wallet_id: int = 1) -> WalletBalance:
        real = await real_balance(wallet_id)
        return real.model_copy(update={"spendable_balance": balance["spendable"]})

    monkeypatch.setattr(services.wallet, "get_wallet_balance", fake_balance)

    # below the amount: skipped (and not claimed, so a later run retries)
    balance["spendable"] = 299
    result = await add_mirror(services, store, URL)
    assert result.status is MirrorAddStatus.INSUFFICIENT_FUNDS
    assert spy.count("add_mirror") == 0

    # enough for the coin but not the fee: fee 0
    balance["spendable"] = 1000
    result = await add_mirror(services, store, URL)
    assert result.status is MirrorAddStatus.ADDED
    assert result.fee == 0
    assert spy.of("add_mirror")[0][1] == {"amount": 300, "fee": 0}

    # enough for both: the configured fee
    other = chain.create_store([[insert("unit|b", {})]], mirror_urls=())
    balance["spendable"] = 10**12
    assert (await add_mirror(services, other, URL)).fee == 3000


async def test_the_check_covers_home_and_subscribed_stores_and_fills_the_table(
    chain: Chain, database: Database, make_services: Callable[..., Services]
):
    home_registry = chain.create_store([], owner=LOCAL, mirror_urls=())
    home = chain.create_store([[insert("name", "Home")]], owner=LOCAL, mirror_urls=())
    await add_organization(database, org_uid=home, registry_id=home_registry, is_home=True)
    remote_registry = tracked_store(chain)
    remote = chain.create_store([[insert("name", "Remote")]])
    chain.subscribe(remote)
    await add_organization(database, org_uid=remote, registry_id=remote_registry)

    # external stores only with AUTO_MIRROR_EXTERNAL_STORES
    own_only = await run_mirror_check(
        make_services(datalayer_file_server_url=URL, auto_mirror_external_stores=False)
    )
    assert set(own_only.stores) == {home, home_registry}
    report = await run_mirror_check(make_services(datalayer_file_server_url=URL))
    assert set(report.stores) == {home, home_registry, remote, remote_registry}
    assert {r.store_id: r.status for r in report.results}[remote] is MirrorAddStatus.ADDED

    # the table holds what get_mirrors says (the remote store also has the owner's mirror)
    chain.state.farm_block()
    await run_mirror_check(make_services(datalayer_file_server_url=URL))
    table = await mirrors_by_store(database, [remote])
    assert sorted((m.urls[0], m.ours) for m in table[remote]) == [(MIRROR_URL, False), (URL, True)]


async def test_remove_only_our_mirror_of_that_store(
    chain: Chain, database: Database, make_services: Callable[..., Services]
):
    store = tracked_store(chain)  # has the owner's mirror
    services = make_services(datalayer_file_server_url=URL)
    await add_mirror(services, store, URL)
    chain.state.farm_block()
    listed = await mirrors.list_mirrors(services, store, refresh=True)
    ours = next(m for m in listed if m.ours)
    theirs = next(m for m in listed if not m.ours)

    with pytest.raises(NotFound):
        await remove_mirror(services, store, "ab" * 32)
    other = chain.create_store([[insert("unit|b", {})]], mirror_urls=())
    with pytest.raises(NotFound):
        await remove_mirror(services, other, ours.coin_id)  # right coin, wrong store
    with pytest.raises(PreconditionFailed):
        await remove_mirror(services, store, theirs.coin_id)

    removed = await remove_mirror(services, store, ours.coin_id)
    assert removed.coin_id == ours.coin_id
    assert [m.coin_id for m in (await mirrors_by_store(database, [store]))[store]] == [
        theirs.coin_id
    ]
    chain.state.farm_block()
    assert our_mirror_count(chain, store) == 0


async def test_list_mirrors_reads_datalayer_once_when_the_table_is_empty(
    chain: Chain, make_services: Callable[..., Services], spy_on: Callable[[Services], Spy]
):
    store = tracked_store(chain)
    services = make_services()
    spy = spy_on(services)
    first = await mirrors.list_mirrors(services, store)
    assert [m.urls for m in first] == [[MIRROR_URL]]
    assert spy.count("get_mirrors") == 1
    await mirrors.list_mirrors(services, store)
    assert spy.count("get_mirrors") == 1  # from the table now
    await mirrors.list_mirrors(services, store, refresh=True)
    assert spy.count("get_mirrors") == 2


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://127.0.0.1:8575", True),
        ("https://files.example.org/path/", True),
        ("ftp://files.example.org", False),
        ("https://user:secret@files.example.org", False),
        ("https://user@files.example.org", False),
        ("files.example.org", False),
        ("http://", False),
        ("http://host:99999", False),
        ("http://host/a b", False),
    ],
)
def test_mirror_url_validation(url: str, ok: bool):
    from services.errors import InvalidInput

    if ok:
        assert mirrors.validate_mirror_url(url) == url.rstrip("/")
    else:
        with pytest.raises(InvalidInput) as error:
            mirrors.validate_mirror_url(url)
        assert error.value.field == "url"


def test_report_summary():
    report = mirrors.MirrorCheckReport(stores=["a", "b"])
    report.results.append(mirrors.MirrorAddResult("a", URL, MirrorAddStatus.ADDED))
    assert report.summary() == "2 store(s), 1 added"
    assert json.dumps(report.summary())


async def test_a_body_followed_through_subscribe_governance_body_is_mirrored(
    chain: Chain, database: Database, make_services: Callable[..., Services]
):
    # CADT_GOVERNANCE_BODY_ID empty; subscribeGovernanceBody recorded the main store in Meta
    main, version_store = governance_body(chain)
    async with database.transaction() as session:
        session.add(Meta(key="governanceBodyId", value=main))
    services = make_services(datalayer_file_server_url=URL, governance_body_id="")
    report = await run_mirror_check(services)
    assert report.stores == [main, version_store]
