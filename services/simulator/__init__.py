"""The built-in Chia RPC simulator: DataLayer and Wallet RPC of several keys on one simulated chain.

It speaks the same wire protocol as chia-blockchain 2.7.5 (shares no code with
`services.chia`): HTTPS with a required client certificate, Chia's success and error
envelopes, hex formats, pending-root rules, subscriptions that download over time with mirror
back-off, and the wallet's coins and transactions.

URL scheme (one port, one path prefix per key and service):

    https://127.0.0.1:<port>/key/<n>/datalayer/<method>   key n's DataLayer RPC (port 8562 on Chia)
    https://127.0.0.1:<port>/key/<n>/wallet/<method>      key n's Wallet RPC (port 9256 on Chia)
    http://127.0.0.1:<admin port>/_simulator/...          admin routes (loopback only; also on the
                                                          TLS port, with the client certificate)

Key 0 is the local gateway node's key; the demo seed's stores belong to key 1. Two gateway
nodes pointed at keys 0 and 1 see each other's stores the way two real nodes would.

Entry points: `create_simulator_app(state)` (ASGI), `EmbeddedSimulator` (uvicorn in-process,
used by `cadt-gateway serve`), `cadt-gateway simulator` (cadt_gateway/cli_simulator.py), and
`SimulatorState` + `call(...)` for in-process tests without HTTP.
"""

from services.simulator.app import create_simulator_app
from services.simulator.embedded import FAULTS_ENV, EmbeddedSimulator, faults_from_env
from services.simulator.errors import RpcError, WalletRpcError
from services.simulator.faults import FailRule, Faults, MissRule, StuckRule
from services.simulator.persistence import SqlitePersistence, open_state
from services.simulator.rpc import call
from services.simulator.seed import (
    DEMO_GOVERNANCE_BODY_ID,
    DEMO_GOVERNANCE_VERSION_STORE_ID,
    DEMO_MIRROR_URL,
    DEMO_ORG_UIDS,
    DEMO_ORGANIZATIONS,
    DEMO_OWNER_KEY,
    DemoOrganization,
    apply_demo_seed,
    build_store_history,
    create_owned_store,
    synthetic_changelists,
)
from services.simulator.state import SimulatorConfig, SimulatorState
from services.simulator.tls import SslLayout, ensure_certificates

__all__ = [
    "DEMO_GOVERNANCE_BODY_ID",
    "DEMO_GOVERNANCE_VERSION_STORE_ID",
    "DEMO_MIRROR_URL",
    "DEMO_ORGANIZATIONS",
    "DEMO_ORG_UIDS",
    "DEMO_OWNER_KEY",
    "FAULTS_ENV",
    "DemoOrganization",
    "EmbeddedSimulator",
    "FailRule",
    "Faults",
    "MissRule",
    "RpcError",
    "SimulatorConfig",
    "SimulatorState",
    "SqlitePersistence",
    "SslLayout",
    "StuckRule",
    "WalletRpcError",
    "apply_demo_seed",
    "build_store_history",
    "call",
    "create_owned_store",
    "create_simulator_app",
    "ensure_certificates",
    "faults_from_env",
    "open_state",
    "synthetic_changelists",
]
