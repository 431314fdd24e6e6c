"""Query.wallet: read live from the wallet; an unreachable wallet is a typed top-level error."""

from __future__ import annotations

WALLET = "{ wallet { synced spendableBalance spendableCoins unconfirmedTransactions } }"


async def test_wallet_status_comes_from_the_wallet(node):
    wallet = (await node.execute(WALLET))["wallet"]
    balance = await node.services.wallet.get_wallet_balance(1)
    assert wallet["synced"] is True
    assert wallet["spendableBalance"] == str(balance.spendable_balance)  # Mojos is a string
    assert wallet["spendableCoins"] > 0
    assert wallet["unconfirmedTransactions"] == 0


async def test_an_unsynced_wallet_is_reported(node, simulator):
    simulator.state.faults.wallet_unsynced.append(0)
    assert (await node.execute(WALLET))["wallet"]["synced"] is False


async def test_an_unreachable_wallet_is_an_upstream_error_not_a_crash(start_node, node_settings):
    client = await start_node(
        node_settings(wallet_url="https://127.0.0.1:9", rpc_retry_attempts=1), run_worker=False
    )
    body = await client.execute(WALLET, expect_errors=True)
    error = body["errors"][0]
    assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert error["extensions"]["service"] == "WALLET"
    assert "Traceback" not in error["message"]
