# shellcheck shell=bash disable=SC2034  # settings are used by the scripts that source this file
# Shared settings and helpers for tools/chia-sim/* (sourced, not executed).
#
# Env (all optional):
#   CHIA_VENV         venv holding chia-blockchain   (default ~/.cache/cadt-gateway/chia-venv)
#   CHIA_SIMROOT      simulator state + plots         (default ~/.cache/cadt-gateway/chia-sim)
#   CHIA_PYTHON       interpreter for the venv        (default python3.11)
#   CHIA_SIM_TIMEOUT  readiness deadline per step, s  (default 180)

CHIA_VERSION_PIN="2.7.5"
CHIA_CACHE_BASE="${HOME}/.cache/cadt-gateway"
VENV="${CHIA_VENV:-$CHIA_CACHE_BASE/chia-venv}"
SIMROOT="${CHIA_SIMROOT:-$CHIA_CACHE_BASE/chia-sim}"
CHIA_SIM_TIMEOUT="${CHIA_SIM_TIMEOUT:-180}"
CHIA="$VENV/bin/chia"
PY="$VENV/bin/python"

OWNER_ROOT="$SIMROOT/main"
OWNER_KEYS="$SIMROOT/keys"
OWNER_TEMPLATE="$SIMROOT/main.template"   # pristine owner root (genesis farmed, config patched)
SUB_ROOT="$SIMROOT/sub"
SUB_KEYS="$SIMROOT/sub-keys"

OWNER_WALLET_PORT=9256
OWNER_DL_PORT=8562
OWNER_DL_HTTP_PORT=8575
SUB_WALLET_PORT=19256
SUB_DL_PORT=18562
SUB_DL_HTTP_PORT=18575
SUB_DAEMON_PORT=55401
SUB_FINGERPRINT=3483944781   # of SUB_MNEMONIC
SUB_FUND_MOJOS=1000000000000   # 1 TXCH sent once from the owner to the subscriber

# Public, worthless BIP39 test vectors.
OWNER_MNEMONIC="abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon art"
SUB_MNEMONIC="zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo vote"

log() { printf '[chia-sim %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[chia-sim] ERROR: %s\n' "$*" >&2; exit 1; }

now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'; }

# The chia daemon launches its services by bare name (chia_full_node_simulator, chia_wallet, ...),
# so the venv's bin must be on PATH, or `chia start` reports "failed to start" and
# `chia dev sim create` then waits forever for the node.
use_venv() {
  [ -x "$CHIA" ] || die "chia is not installed in $VENV; run tools/chia-sim/install first"
  export PATH="$VENV/bin:$PATH"
}

# One tools/chia-sim operation at a time per SIMROOT (other engineers share ~/.cache).
# Nested calls (run-tests -> up) inherit the lock through CHIA_SIM_LOCK_HELD.
sim_lock() {
  [ "${CHIA_SIM_LOCK_HELD:-}" = "$SIMROOT" ] && return 0
  mkdir -p "$SIMROOT"
  exec 9>"$SIMROOT/.lock"
  if ! flock -n 9; then
    log "another tools/chia-sim run holds $SIMROOT/.lock; waiting (up to 30 min)"
    flock -w 1800 9 || die "timed out waiting for $SIMROOT/.lock"
  fi
  export CHIA_SIM_LOCK_HELD="$SIMROOT"
}

# chia_at <root> <keys-root> <chia args...>: run the chia CLI against one root.
# fd 9 (the lock) is closed so that no daemon started here keeps the lock.
chia_at() {
  local root="$1" keys="$2"
  shift 2
  ( cd "$SIMROOT" && CHIA_ROOT="$root" CHIA_KEYS_ROOT="$keys" "$CHIA" "$@" 9>&- )
}

# rpc <root> <port> <method> [json-body] -> response body on stdout (empty if nothing answers).
# Any private_* cert pair of a root's CA is accepted by every service of that root.
rpc() {
  local root="$1" port="$2" method="$3" body="${4:-"{}"}"
  curl -s --insecure --max-time 30 \
    --cert "$root/config/ssl/wallet/private_wallet.crt" \
    --key "$root/config/ssl/wallet/private_wallet.key" \
    -H 'Content-Type: application/json' -d "$body" \
    "https://127.0.0.1:$port/$method" 2>/dev/null || true
}

# json_get <json> <python expression on d> -> value ('' when it cannot be evaluated)
json_get() {
  "$PY" -c 'import json, sys
try:
    v = eval(sys.argv[2], {"d": json.loads(sys.argv[1])})
except Exception:
    sys.exit(0)
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)' "$1" "$2"
}

# config_get <root> <dotted.key>
config_get() {
  "$PY" - "$1" "$2" <<'PY'
import sys
from pathlib import Path
import yaml
c = yaml.safe_load((Path(sys.argv[1]) / "config" / "config.yaml").read_text())
for part in sys.argv[2].split("."):
    c = c[part]
print(c)
PY
}

# Pids of live chia processes that belong to <root>: python processes with a file open under it
# (the daemon's setproctitle hides its command line and environment, open files don't lie).
root_pids() {
  local root="$1" p exe
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    case "$exe" in */python*) ;; *) continue ;; esac
    if [ -n "$(find "$p/fd" -maxdepth 1 -lname "$root/*" -print -quit 2>/dev/null)" ]; then
      echo "${p#/proc/}"
    fi
  done
}

# pid that listens on a TCP port (empty when free)
# (awk reads all its input: no SIGPIPE under pipefail, unlike `head -1` or `grep -q`)
port_pid() {
  ss -Htlnp "sport = :$1" 2>/dev/null | awk 'match($0, /pid=[0-9]+/) { print substr($0, RSTART + 4, RLENGTH - 4); exit }'
}

port_users() {
  ss -Htlnp "sport = :$1" 2>/dev/null | awk 'match($0, /users:\(\(.*\)\)/) { print substr($0, RSTART, RLENGTH); exit }'
}

port_in_use() {
  [ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]
}

# check_ports <root> <port>...: every port must be free or held by a process of <root>.
check_ports() {
  local root="$1" port pid mine
  shift
  mine=" $(root_pids "$root" | tr '\n' ' ') "
  for port in "$@"; do
    port_in_use "$port" || continue
    pid=$(port_pid "$port")
    case "$mine" in *" $pid "*) continue ;; esac
    die "port $port is already in use by another process: $(port_users "$port"); stop it first (tools/chia-sim needs 127.0.0.1:$port)"
  done
}

# is_ready <root> <wallet-port> <dl-port>: wallet synced AND DataLayer `subscriptions` succeeds.
is_ready() {
  local w d
  w=$(rpc "$1" "$2" get_sync_status)
  [ "$(json_get "$w" 'd["synced"]')" = "true" ] || return 1
  d=$(rpc "$1" "$3" subscriptions)
  [ "$(json_get "$d" 'd["success"]')" = "true" ]
}

# wait_ready <root> <wallet-port> <dl-port> <label> [fingerprint]
# With a fingerprint: a wallet that is up but not logged in after 5 s (it does not pick up a key
# added after it started) is told to log in.
wait_ready() {
  local root="$1" wport="$2" dport="$3" label="$4" fp="${5:-}" t0 deadline login_at
  t0=$(now_s)
  deadline=$(( $(date +%s) + CHIA_SIM_TIMEOUT ))
  login_at=$(( $(date +%s) + 5 ))
  until is_ready "$root" "$wport" "$dport"; do
    if [ -n "$fp" ] && [ "$(date +%s)" -ge "$login_at" ] &&
       [ "$(json_get "$(rpc "$root" "$wport" get_logged_in_fingerprint)" 'd["fingerprint"]')" = "null" ]; then
      log "$label wallet is not logged in; log_in $fp"
      rpc "$root" "$wport" log_in "{\"fingerprint\": $fp}" >/dev/null
      login_at=$(( $(date +%s) + 30 ))
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "$label not ready after ${CHIA_SIM_TIMEOUT} s"
      log "  wallet get_sync_status: $(rpc "$root" "$wport" get_sync_status)"
      log "  data_layer subscriptions: $(rpc "$root" "$dport" subscriptions)"
      log "  last log lines ($root/log/debug.log):"
      tail -n 20 "$root/log/debug.log" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.5
  done
  log "$label ready (waited $(elapsed "$t0") s)"
}

alive() { # pids that still run (zombies do not count)
  local p st
  for p in "$@"; do
    st=$(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null) || continue
    [ "$st" = "Z" ] || echo "$p"
  done
}

# stop_root <root> <keys-root> <label>: stop the daemon of <root> and all its services.
# Default: SIGTERM to all of them at once, by pid. That is what `chia stop -d all` makes the daemon
# do (process.terminate() per service), minus the CLI start-up and the one-service-at-a-time wait:
# ~8 s instead of ~13-17 s. It also works across network namespaces (CHIA_SIM_NETNS=1).
# CHIA_SIM_STOP=cli uses `chia stop -d all` (run with nsenter when the daemon is in another
# network namespace). Either way, whatever is left after 20 s is SIGKILLed.
stop_root() {
  local root="$1" keys="$2" label="$3" pids p deadline
  pids=$(root_pids "$root")
  [ -n "$pids" ] || return 0
  log "stopping $label (pids $(echo "$pids" | tr '\n' ' '))"
  if [ "${CHIA_SIM_STOP:-term}" = "cli" ]; then
    p=$(echo "$pids" | head -n 1)
    if [ "$(readlink "/proc/$p/ns/net")" = "$(readlink /proc/self/ns/net)" ]; then
      chia_at "$root" "$keys" stop -d all >/dev/null 2>&1 || true
    else
      ( cd "$SIMROOT" && CHIA_ROOT="$root" CHIA_KEYS_ROOT="$keys" \
          nsenter -t "$p" -n "$CHIA" stop -d all >/dev/null 2>&1 9>&- ) || true
    fi
  else
    # shellcheck disable=SC2086  # word splitting of the pid list is intended
    kill -TERM $pids 2>/dev/null || true
  fi
  deadline=$(( $(date +%s) + 20 ))
  # shellcheck disable=SC2086
  while [ -n "$(alive $pids)" ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      # shellcheck disable=SC2086
      log "$label: still running after 20 s, SIGKILL $(alive $pids | tr '\n' ' ')"
      # shellcheck disable=SC2086,SC2046
      kill -KILL $(alive $pids) 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  # services started by hand under this root (not children of the daemon) are in root_pids too
  pids=$(root_pids "$root")
  if [ -n "$pids" ]; then
    log "$label: leftover pids $(echo "$pids" | tr '\n' ' '), SIGKILL"
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
  fi
}
