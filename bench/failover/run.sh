#!/usr/bin/env bash
# Failover time of a 3-node Concord cluster on loopback: kill -9 the leader, then time
# until the next write succeeds through a surviving node. Repeats TRIALS times (the
# killed node is restarted and caught up between trials) and prints each time, the
# median and the max.
#
#   bench/failover/run.sh                 # 10 trials, the server's default timings
#   TRIALS=20 ELECTION=300-600 HEARTBEAT=60 bench/failover/run.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
TRIALS=${TRIALS:-10}
ELECTION=${ELECTION:-200-400}
HEARTBEAT=${HEARTBEAT:-100}
BIN=${CONCORD_BIN:-$root/target/release/concord}

if [[ -z "${SKIP_BUILD:-}" ]]; then
  (cd "$root" && cargo build --release -p concord >&2)
fi
command -v curl >/dev/null || { apt-get update >&2 && apt-get install -y curl >&2; }

work=$(mktemp -d -t concord-failover.XXXXXX)
declare -A pid client peer
cleanup() {
  for n in 1 2 3; do [[ -n "${pid[$n]:-}" ]] && kill -9 "${pid[$n]}" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
for n in 1 2 3; do client[$n]=$(free_port); peer[$n]=$(free_port); done
cluster="1=127.0.0.1:${peer[1]},2=127.0.0.1:${peer[2]},3=127.0.0.1:${peer[3]}"

start() {
  local n=$1
  "$BIN" server --node-id "$n" --data-dir "$work/n$n" \
    --client-addr "127.0.0.1:${client[$n]}" --peer-addr "127.0.0.1:${peer[$n]}" \
    --initial-cluster "$cluster" --election-timeout-ms "$ELECTION" --heartbeat-ms "$HEARTBEAT" \
    >"$work/n$n.log" 2>&1 &
  pid[$n]=$!
}

now_ms() { date +%s%3N; }

# Waits (up to 60 s) until node $1 answers /v1/ready.
wait_ready() {
  local deadline=$(( $(now_ms) + 60000 ))
  until curl -sf "http://127.0.0.1:${client[$1]}/v1/ready" >/dev/null; do
    (( $(now_ms) < deadline )) || { echo "node $1 not ready; log:" >&2; tail -20 "$work/n$1.log" >&2; exit 1; }
    sleep 0.05
  done
}

leader() {
  for n in 1 2 3; do
    [[ -n "${pid[$n]:-}" ]] || continue
    curl -sf -m 1 "http://127.0.0.1:${client[$n]}/v1/status" | python3 -c 'import json,sys; l=json.load(sys.stdin).get("leader_id"); print(l if l else "")' && return
  done
}

for n in 1 2 3; do start "$n"; done
for n in 1 2 3; do wait_ready "$n"; done

times=()
for trial in $(seq 1 "$TRIALS"); do
  l=$(leader)
  [[ -n "$l" ]] || { echo "no leader" >&2; exit 1; }
  curl -sf -X PUT "http://127.0.0.1:${client[$l]}/v1/kv/failover/warm" -d "$trial" >/dev/null
  survivor=$(( l % 3 + 1 ))
  kill -9 "${pid[$l]}"; wait "${pid[$l]}" 2>/dev/null || true; pid[$l]=""
  t0=$(now_ms)
  deadline=$(( t0 + 60000 ))
  until curl -sf -m 2 -X PUT "http://127.0.0.1:${client[$survivor]}/v1/kv/failover/t$trial" -d x >/dev/null; do
    (( $(now_ms) < deadline )) || { echo "no write succeeded within 60 s" >&2; exit 1; }
    sleep 0.02
  done
  t=$(( $(now_ms) - t0 ))
  times+=("$t")
  echo "trial $trial: killed leader $l, write through node $survivor succeeded after ${t} ms"
  start "$l"; wait_ready "$l"
done

printf '%s\n' "${times[@]}" | sort -n | python3 -c '
import sys, statistics
t = [int(x) for x in sys.stdin]
print(f"failover over {len(t)} trials: median {statistics.median(t):.0f} ms, min {min(t)} ms, max {max(t)} ms")
'
