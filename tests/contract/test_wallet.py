"""The Wallet RPC the gateway reads: sync, balance, coins, transactions, wallets."""

from __future__ import annotations

from services.chia import ChiaErrorKind
from services.chia.models import WalletType
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

    spendable = await wallet.get_spendable_coins(1)
    amounts = [record.coin.amount for record in spendable.confirmed_records]
    assert amounts and sum(amounts) <= balance.confirmed_wallet_balance
    assert all(record.confirmed_block_index > 0 for record in spendable.confirmed_records)


async def test_a_store_creation_is_a_wallet_transaction_that_confirms(target: Target):
    wallet = target.owner.wallet
    created = await target.owner.dl.create_data_store(fee=0)
    assert created.txs
    pending = {tx.name for tx in created.txs}
    assert not any(tx.confirmed for tx in created.txs)

    await target.wait_confirmed(created.id, 0)
    listed = {}
    for wallet_id in {tx.wallet_id for tx in created.txs}:
        for tx in await wallet.get_transactions(wallet_id, end=10_000):
            listed[tx.name] = tx
    assert pending <= set(listed)
    for name in pending:
        assert listed[name].confirmed is True
        assert listed[name].confirmed_at_height > 0


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
