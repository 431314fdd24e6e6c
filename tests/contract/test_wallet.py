"""The Wallet RPC the gateway reads: sync, balance, coins, transactions, wallets."""

from __future__ import annotations

from services.chia import ZERO_HASH, Change, ChiaErrorKind
from services.chia.models import TransactionRecord, WalletType
from tests.contract.conftest import business_error
from tests.contract.targets import Target


async def test_sync_status_balance_and_coins(target: Target):
    wallet = target.owner.wallet
    status = await wallet.get_sync_status()
    assert status.synced is True
    assert status.genesis_initialized is True

    balance = await wallet.get_wallet_balance(1)
    assert balance.wallet_id == 1
    assert balance.wallet_type == WalletType.STANDARD_WALLET
    assert balance.fingerprint == await wallet.get_logged_in_fingerprint()
    assert 0 < balance.spendable_balance <= balance.confirmed_wallet_balance
    assert balance.unspent_coin_count > 0

    records = await wallet.get_coin_records(limit=10, include_total_count=True)
    assert 0 < len(records.coin_records) <= 10
    assert records.total_count is not None and records.total_count >= len(records.coin_records)
    for record in records.coin_records:
        assert len(record.id) == 64
        assert record.confirmed_height > 0
        assert record.amount > 0

    network = await wallet.get_network_info()
    assert (network.network_name, network.network_prefix) == ("simulator0", "txch")
    height = await wallet.get_height_info()
    assert height.height > 0

    spendable = await wallet.get_spendable_coins(1)
    amounts = [record.coin.amount for record in spendable.confirmed_records]
    assert amounts and sum(amounts) <= balance.confirmed_wallet_balance
    assert all(record.confirmed_block_index > 0 for record in spendable.confirmed_records)


async def unconfirmed(target: Target, wallet_id: int) -> list[TransactionRecord]:
    """What the gateway asks for pending work: unconfirmed transactions, most relevant first."""
    return await target.owner.wallet.get_transactions(
        wallet_id, sort_key="RELEVANCE", confirmed=False
    )


async def datalayer_wallet_id(target: Target) -> int:
    """The owner's DataLayer wallet id (it exists once the owner has a store)."""
    wallets = (await target.owner.wallet.get_wallets(wallet_type=WalletType.DATA_LAYER)).wallets
    assert len(wallets) == 1
    return wallets[0].id


async def test_a_store_creation_is_one_standard_wallet_transaction(target: Target, store: str):
    wallet = target.owner.wallet
    dl_wallet = await datalayer_wallet_id(target)
    created = await target.owner.dl.create_data_store(fee=0)
    # The launcher spend, from the standard wallet, answered before it was sent anywhere.
    [tx] = created.txs
    assert (tx.wallet_id, tx.amount, tx.confirmed, tx.sent_to) == (1, 1, False, [])

    async def in_mempool() -> TransactionRecord | None:
        listed = {record.name: record for record in await unconfirmed(target, 1)}
        record = listed.get(tx.name)
        return record if record is not None and record.in_mempool else None

    pending = await target.eventually(in_mempool, what="the creation reaches the mempool")
    assert not pending.rejected and pending.confirmed_at_height == 0
    assert await unconfirmed(target, dl_wallet) == []

    await target.wait_confirmed(created.id, 0)
    assert tx.name not in {record.name for record in await unconfirmed(target, 1)}
    confirmed = {record.name: record for record in await wallet.get_transactions(1, end=10_000)}
    assert confirmed[tx.name].confirmed is True
    assert confirmed[tx.name].confirmed_at_height > 0


async def test_a_root_update_is_one_datalayer_wallet_transaction(target: Target, store: str):
    dl_wallet = await datalayer_wallet_id(target)
    update = await target.owner.dl.batch_update(store, [Change.insert("01", "01")], fee=0)
    assert update.tx_id is not None
    listed = {record.name: record for record in await unconfirmed(target, dl_wallet)}
    assert set(listed) == {update.tx_id}
    assert (listed[update.tx_id].amount, listed[update.tx_id].wallet_id) == (1, dl_wallet)
    assert await unconfirmed(target, 1) == []  # no fee: no standard coin is spent

    await target.wait_confirmed(store, 1)
    assert await unconfirmed(target, dl_wallet) == []


async def test_deleting_unconfirmed_transactions_only_makes_the_wallet_forget(
    target: Target, store: str
):
    created = await target.owner.dl.create_data_store(fee=0)
    [tx] = created.txs

    async def in_mempool() -> bool:
        return any(r.name == tx.name and r.in_mempool for r in await unconfirmed(target, 1))

    await target.eventually(in_mempool, what="the creation reaches the mempool")
    await target.owner.wallet.delete_unconfirmed_transactions(1)
    assert await unconfirmed(target, 1) == []
    # The spend is still in the mempool: the next block confirms it anyway.
    root = await target.wait_confirmed(created.id, 0)
    assert root.hash == ZERO_HASH
    assert created.id in await target.owner.dl.get_owned_stores()


async def test_the_datalayer_wallet_appears_with_the_first_store(target: Target):
    wallet = target.owner.wallet
    before = (await wallet.get_wallets()).wallets
    assert (before[0].id, before[0].type, before[0].name) == (1, 0, "Chia Wallet")
    if not any(info.type == WalletType.DATA_LAYER for info in before):
        error = await business_error(target.owner.dl.get_owned_stores())
        assert error.kind == ChiaErrorKind.DL_WALLET_NOT_AVAILABLE
        assert error.nested

    await target.create_store()
    wallets = await wallet.get_wallets()
    datalayer = [info for info in wallets.wallets if info.type == WalletType.DATA_LAYER]
    assert [(info.type, info.name) for info in datalayer] == [(11, "DataLayer Wallet")]
    assert wallets.fingerprint == await wallet.get_logged_in_fingerprint()
    only = (await wallet.get_wallets(wallet_type=11)).wallets
    assert [info.id for info in only] == [datalayer[0].id]
    assert (await wallet.get_wallet_balance(datalayer[0].id)).wallet_type == 11
