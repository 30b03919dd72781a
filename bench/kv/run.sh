#!/usr/bin/env bash
# bench/kv/run.sh: KV throughput and latency, concord against etcd 3.4, in one run.
#
#   bench/kv/run.sh                 single node: `concord dev` against one etcd
#   bench/kv/run.sh --cluster 3     3-node concord cluster against a 3-node etcd cluster
#                                   (CLUSTER=3 bench/kv/run.sh is the same)
#
# Everything runs on loopback with fsync on (etcd's default; concord's default), each
# node on a fresh data dir in a temp dir. The load is wrk with the Lua scripts beside
# this file:
#   put-c1, put-c32, put-c128   PUT of 256-byte values to key-<n mod 10000>
#   get-c32, get-c128           linearizable GETs of keys that exist (seeded first)
# For each scenario the targets run back to back (etcd, then concord), each with a
# short warm-up, so drift over the run hits both alike.
#
# Cluster mode (--cluster N, N = 3..7): N etcd members (--initial-cluster, each its own
# data dir) and N `concord server --node-id I --initial-cluster 1=…,2=…` nodes. The
# harness waits until every node of a cluster reports the same leader, then sends the
# load to a FOLLOWER's client URL (etcd: leader vs member_id from
# POST /v3/maintenance/status; concord: leader_id vs node_id from GET /v1/status). The
# follower is re-checked before every run, and a run during which the leader or the
# term changed is flagged. Target names in cluster mode:
#   etcd, concord                   load on a follower (the default)
#   etcd-leader, concord-leader     load on the leader
# If a concord follower refuses writes or reads (e.g. 503 no_leader from a build without
# follower forwarding), that is recorded in the report and those scenarios are run
# against the leaders of both clusters instead (the "(leader)" columns).
#
# Output: a markdown table on stdout and in bench/results/kv-<timestamp>.md (cluster
# mode: kv-cluster<N>-<timestamp>.md), plus the raw wrk output beside it in .raw.txt.
#
# Environment:
#   CLUSTER        nodes per system: 1 (default, single node) or 3..7 (same as --cluster)
#   DURATION       seconds per measured run (default 10; "10s" works too)
#   WARMUP         seconds of warm-up before each measured run (default 2; 0 = none)
#   TARGETS        which servers, in run order (default "etcd concord"; in cluster mode
#                  also etcd-leader, concord-leader)
#   LEADER_TOO=1   cluster mode: also run every scenario against both leaders
#   LEADER_FALLBACK=0  cluster mode: do not add the leader runs when a follower refuses
#   PUT_CONNS      connection counts for PUT (default "1 32 128")
#   GET_CONNS      connection counts for GET (default "32 128")
#   BENCH_KEYS     distinct keys (default 10000)
#   WRK_TIMEOUT    wrk per-request timeout; a timeout counts as an error (default 5s)
#   READY_TIMEOUT  seconds to wait for a server (or a cluster's leader) (default 60)
#   SKIP_INSTALL=1 do not apt-get install missing tools
#   SKIP_BUILD=1   do not run cargo build (use CONCORD_BIN as it is)
#   CONCORD_BIN    concord binary (default <repo>/target/release/concord)
#   BENCH_TMPDIR   where the temp data dirs go (default $TMPDIR or /tmp); must be a
#                  real disk, not tmpfs, or fsync means nothing (ALLOW_TMPFS=1 overrides)
#   KEEP_WORK=1    keep the temp dir (data dirs and server logs) after the run
#
# Exit status: 0 when every run was clean, 3 when some run had errors or a leader
# change, or a follower refused the load (the results are still written, with those
# runs flagged), anything else when the run itself failed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BENCH_NAME=kv
# shellcheck source-path=SCRIPTDIR/.. source=lib.sh
source "$HERE/../lib.sh"

CLUSTER=${CLUSTER:-1}
while (($#)); do
    case $1 in
        --cluster)
            (($# >= 2)) || die "--cluster needs a node count"
            CLUSTER=$2
            shift 2
            ;;
        --cluster=*) CLUSTER=${1#--cluster=}; shift ;;
        -h | --help)
            print_help
            exit 0
            ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

DURATION=${DURATION:-10}
DURATION=${DURATION%s}
WARMUP=${WARMUP:-2}
WARMUP=${WARMUP%s}
TARGETS=${TARGETS:-"etcd concord"}
PUT_CONNS=${PUT_CONNS-"1 32 128"}
GET_CONNS=${GET_CONNS-"32 128"}
export BENCH_KEYS=${BENCH_KEYS:-10000}
export BENCH_VALUE_SIZE=256
WRK_TIMEOUT=${WRK_TIMEOUT:-5s}
READY_TIMEOUT=${READY_TIMEOUT:-60}
CONCORD_BIN=${CONCORD_BIN:-$REPO/target/release/concord}
RESULTS_DIR=$REPO/bench/results
SEED_PARALLEL=16

for v in CLUSTER DURATION WARMUP BENCH_KEYS READY_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
((CLUSTER == 1 || (CLUSTER >= 3 && CLUSTER <= 7))) || die "CLUSTER/--cluster must be 1 or 3..7, got $CLUSTER"
((DURATION > 0)) || die "DURATION must be > 0"
for c in $PUT_CONNS $GET_CONNS; do
    [[ $c =~ ^[1-9][0-9]*$ ]] || die "connection counts must be positive integers, got '$c'"
done

if ((CLUSTER > 1)); then
    VALID_TARGETS="etcd concord etcd-leader concord-leader"
    if [[ ${LEADER_TOO:-0} == 1 ]]; then TARGETS+=" etcd-leader concord-leader"; fi
else
    VALID_TARGETS="etcd concord"
fi
# Validate, drop duplicates, keep the order.
_targets=""
for t in $TARGETS; do
    [[ " $VALID_TARGETS " == *" $t "* ]] || die "unknown target '$t' in TARGETS (valid here: $VALID_TARGETS)"
    [[ " $_targets " == *" $t "* ]] || _targets+="${_targets:+ }$t"
done
TARGETS=$_targets
[[ -n $TARGETS ]] || die "TARGETS is empty"
KINDS="" # the systems to start: etcd and/or concord
for t in $TARGETS; do [[ " $KINDS " == *" ${t%%-*} "* ]] || KINDS+="${KINDS:+ }${t%%-*}"; done
uses() { [[ " $KINDS " == *" $1 "* ]]; }

# ---------------------------------------------------------------------------------------
# Tools

install_missing() {
    local pkgs=()
    command -v wrk >/dev/null || pkgs+=(wrk)
    command -v curl >/dev/null || pkgs+=(curl)
    if uses etcd && ! command -v etcd >/dev/null && [[ ! -x /usr/bin/etcd ]]; then
        pkgs+=(etcd-server)
    fi
    ((${#pkgs[@]})) || return 0
    [[ ${SKIP_INSTALL:-0} == 1 ]] && die "missing: ${pkgs[*]} (and SKIP_INSTALL=1)"
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "missing ${pkgs[*]}; run as root or install them"
        sudo=(sudo)
    fi
    log "installing: ${pkgs[*]}"
    "${sudo[@]}" apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${pkgs[@]}" >&2
}
install_missing

ETCD_BIN=$(command -v etcd || echo /usr/bin/etcd)
case $(uname -m) in
    aarch64 | arm64) export ETCD_UNSUPPORTED_ARCH=arm64 ;; # etcd 3.4 refuses arm64 without it
esac

# The tree's revision when the run starts (the report is written minutes later).
CONCORD_REV=$(git_rev)

if uses concord; then
    if [[ ${SKIP_BUILD:-0} != 1 ]]; then
        log "building concord (cargo build --release -p concord)"
        (cd "$REPO" && cargo build --release -p concord >&2) ||
            die "cargo build failed; TARGETS=etcd runs etcd alone"
    fi
    [[ -x $CONCORD_BIN ]] || die "no concord binary at $CONCORD_BIN"
    if ((CLUSTER > 1)) && ! "$CONCORD_BIN" server --help 2>&1 | grep -q -- '--initial-cluster'; then
        die "$CONCORD_BIN has no 'server --initial-cluster' flag, so it cannot form a cluster yet; TARGETS=etcd runs the etcd cluster alone"
    fi
fi

# ---------------------------------------------------------------------------------------
# Work dir, processes, cleanup

make_work kv # sets WORK and DATA_FS; cleanup (every pid in PIDS, WORK) runs on exit

# What one synchronous 4 KiB write costs on the data dirs' disk: the floor under every
# fsync'd write of both servers, recorded with the results.
FSYNC_COST=$(fsync_probe)

# Per system (etcd, concord): client URLs and pids of its nodes, in node order (node i
# is element i-1), and, in cluster mode, the leader and the follower that gets the load.
declare -A NODE_URLS NODE_PIDS LEADER_IDX FOLLOWER_IDX TERM_OF

# url_of TARGET: the client URL the load for TARGET goes to.
url_of() {
    local t=$1 kind=${1%%-*} urls
    read -ra urls <<<"${NODE_URLS[$kind]}"
    if ((CLUSTER == 1)); then
        echo "${urls[0]}"
    elif [[ $t == *-leader ]]; then
        echo "${urls[${LEADER_IDX[$kind]}]}"
    else
        echo "${urls[${FOLLOWER_IDX[$kind]}]}"
    fi
}

# node_of TARGET: which node that is, for the logs and the report ("single" on one node).
node_of() {
    local t=$1 kind=${1%%-*}
    if ((CLUSTER == 1)); then echo single; return; fi
    if [[ $t == *-leader ]]; then echo "node$((${LEADER_IDX[$kind]} + 1))"; else echo "node$((${FOLLOWER_IDX[$kind]} + 1))"; fi
}

# wait_ready NAME PID LOG CHECK_FN: polls CHECK_FN until it succeeds, the process dies,
# or READY_TIMEOUT passes.
wait_ready() {
    local name=$1 pid=$2 logf=$3 check=$4 deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$logf" >&2 || true
            die "$name exited during start-up (log above)"
        fi
        if "$check"; then
            log "$name ready"
            return 0
        fi
        sleep 0.2
    done
    tail -n 30 "$logf" >&2 || true
    die "$name not ready after ${READY_TIMEOUT}s (log above)"
}

# A write of __bench_ready through URL (used as the readiness check).
etcd_put_ok() {
    curl -sf -m 2 -o /dev/null -X POST "$1/v3/kv/put" \
        -H 'Content-Type: application/json' -d '{"key":"X19iZW5jaF9yZWFkeQ==","value":"MQ=="}'
}
concord_put_ok() {
    curl -sf -m 2 -o /dev/null -X PUT --data-binary 1 "$1/v1/kv/__bench_ready"
}

# ---- single node

ETCD_URL=""
etcd_check() { etcd_put_ok "$ETCD_URL"; }
start_etcd() {
    local cport pport
    cport=$(free_port)
    pport=$(free_port)
    ETCD_URL=http://127.0.0.1:$cport
    NODE_URLS[etcd]=$ETCD_URL
    log "starting etcd ($("$ETCD_BIN" --version | head -n1)) client=$ETCD_URL peer port $pport"
    # fsync stays on: no --unsafe-no-fsync. Everything else is etcd's default.
    "$ETCD_BIN" --name kvbench --data-dir "$WORK/etcd-data" \
        --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
        --listen-peer-urls "http://127.0.0.1:$pport" \
        --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
        --initial-cluster "kvbench=http://127.0.0.1:$pport" --initial-cluster-state new \
        --logger zap --log-level warn >"$WORK/etcd.log" 2>&1 &
    PIDS+=($!)
    NODE_PIDS[etcd]=$!
    wait_ready etcd $! "$WORK/etcd.log" etcd_check
}

CONCORD_URL=""
concord_check() {
    local line
    line=$(grep -m1 'concord listening:' "$WORK/concord.log" 2>/dev/null) || return 1
    if [[ $line =~ client=(http://[^[:space:]]+) ]]; then CONCORD_URL=${BASH_REMATCH[1]%/}; fi
    NODE_URLS[concord]=$CONCORD_URL
    concord_put_ok "$CONCORD_URL"
}
start_concord() {
    local cport pport
    cport=$(free_port)
    pport=$(free_port)
    CONCORD_URL=http://127.0.0.1:$cport
    NODE_URLS[concord]=$CONCORD_URL
    log "starting concord dev client=$CONCORD_URL peer port $pport"
    "$CONCORD_BIN" dev --data-dir "$WORK/concord-data" \
        --addr "127.0.0.1:$cport" --peer-addr "127.0.0.1:$pport" >"$WORK/concord.log" 2>&1 &
    PIDS+=($!)
    NODE_PIDS[concord]=$!
    wait_ready concord $! "$WORK/concord.log" concord_check
}

# ---- clusters

# json_num KEY: the first "KEY": number (or "KEY": "number") in the JSON on stdin.
json_num() {
    grep -o "\"$1\"[[:space:]]*:[[:space:]]*\"\{0,1\}[0-9][0-9]*" | head -n1 | grep -o '[0-9][0-9]*$' || true
}

# node_status KIND URL: prints "<id> <leader id> <term>" as that node sees it (leader 0 =
# none known); fails when the node does not answer.
node_status() {
    local kind=$1 url=$2 body id leader term
    case $kind in
        etcd)
            body=$(curl -sf -m 2 -X POST "$url/v3/maintenance/status" \
                -H 'Content-Type: application/json' -d '{}') || return 1
            id=$(json_num member_id <<<"$body")
            leader=$(json_num leader <<<"$body")
            term=$(json_num raftTerm <<<"$body")
            ;;
        concord)
            body=$(curl -sf -m 2 "$url/v1/status") || return 1
            id=$(json_num node_id <<<"$body")
            leader=$(json_num leader_id <<<"$body") # absent when "leader_id":null
            term=$(json_num term <<<"$body")
            ;;
    esac
    [[ -n $id && -n $term ]] || return 1
    echo "$id ${leader:-0} $term"
}

# cluster_status KIND: succeeds when every node answers and all name the same leader,
# one of them. Sets LEADER_IDX, TERM_OF (highest term seen) and FOLLOWER_IDX (the
# previous follower if it still is one, else the first node that is not the leader).
cluster_status() {
    local kind=$1 urls ids=() i line id leader term agreed="" lidx=-1 maxterm=0 f
    read -ra urls <<<"${NODE_URLS[$kind]}"
    for i in "${!urls[@]}"; do
        line=$(node_status "$kind" "${urls[i]}") || return 1
        read -r id leader term <<<"$line"
        [[ $leader != 0 ]] || return 1
        if [[ -z $agreed ]]; then
            agreed=$leader
        elif [[ $leader != "$agreed" ]]; then
            return 1
        fi
        ids+=("$id")
        if ((term > maxterm)); then maxterm=$term; fi
    done
    for i in "${!ids[@]}"; do
        if [[ ${ids[i]} == "$agreed" ]]; then lidx=$i; fi
    done
    ((lidx >= 0)) || return 1
    LEADER_IDX[$kind]=$lidx
    TERM_OF[$kind]=$maxterm
    f=${FOLLOWER_IDX[$kind]:--1}
    if ((f < 0 || f == lidx)); then
        for i in "${!ids[@]}"; do
            if ((i != lidx)); then f=$i; break; fi
        done
    fi
    FOLLOWER_IDX[$kind]=$f
}

leader_url() {
    local urls
    read -ra urls <<<"${NODE_URLS[$1]}"
    echo "${urls[${LEADER_IDX[$1]}]}"
}

etcd_cluster_ready() { etcd_put_ok "$(leader_url etcd)"; }
concord_cluster_ready() {
    local u
    for u in ${NODE_URLS[concord]}; do
        curl -sf -m 2 -o /dev/null "$u/v1/ready" || return 1
    done
    concord_put_ok "$(leader_url concord)"
}

# wait_cluster KIND: until every node names the same leader and the leader takes a write.
wait_cluster() {
    local kind=$1 deadline=$((SECONDS + READY_TIMEOUT)) pids i
    read -ra pids <<<"${NODE_PIDS[$kind]}"
    while ((SECONDS < deadline)); do
        for i in "${!pids[@]}"; do
            if ! kill -0 "${pids[i]}" 2>/dev/null; then
                tail -n 30 "$WORK/$kind-$((i + 1)).log" >&2 || true
                die "$kind node$((i + 1)) exited (log above)"
            fi
        done
        if cluster_status "$kind" && "${kind}_cluster_ready"; then
            log "$kind cluster ready: leader node$((${LEADER_IDX[$kind]} + 1)), term ${TERM_OF[$kind]}, load node for followers: node$((${FOLLOWER_IDX[$kind]} + 1))"
            return 0
        fi
        sleep 0.2
    done
    for i in "${!pids[@]}"; do
        log "$kind node$((i + 1)) log tail:"
        tail -n 10 "$WORK/$kind-$((i + 1)).log" >&2 || true
    done
    die "$kind cluster has no agreed leader taking writes after ${READY_TIMEOUT}s"
}

start_etcd_cluster() {
    local i ic="" urls=() pports=() pids=() token="kvbench-$$-$RANDOM"
    for ((i = 1; i <= CLUSTER; i++)); do
        urls+=("http://127.0.0.1:$(free_port)")
        pports+=("$(free_port)")
        ic+="${ic:+,}node$i=http://127.0.0.1:${pports[i - 1]}"
    done
    NODE_URLS[etcd]="${urls[*]}"
    log "starting $CLUSTER etcd members ($("$ETCD_BIN" --version | head -n1)): clients ${urls[*]}, --initial-cluster $ic"
    for ((i = 1; i <= CLUSTER; i++)); do
        # fsync stays on: no --unsafe-no-fsync. Everything else is etcd's default
        # (heartbeat 100 ms, election timeout 1000 ms).
        "$ETCD_BIN" --name "node$i" --data-dir "$WORK/etcd-$i" \
            --listen-client-urls "${urls[i - 1]}" --advertise-client-urls "${urls[i - 1]}" \
            --listen-peer-urls "http://127.0.0.1:${pports[i - 1]}" \
            --initial-advertise-peer-urls "http://127.0.0.1:${pports[i - 1]}" \
            --initial-cluster "$ic" --initial-cluster-state new --initial-cluster-token "$token" \
            --logger zap --log-level warn >"$WORK/etcd-$i.log" 2>&1 &
        PIDS+=($!)
        pids+=($!)
    done
    NODE_PIDS[etcd]="${pids[*]}"
    wait_cluster etcd
}

start_concord_cluster() {
    local i ic="" urls=() cports=() pports=() pids=()
    for ((i = 1; i <= CLUSTER; i++)); do
        cports+=("$(free_port)")
        pports+=("$(free_port)")
        urls+=("http://127.0.0.1:${cports[i - 1]}")
        ic+="${ic:+,}$i=127.0.0.1:${pports[i - 1]}"
    done
    NODE_URLS[concord]="${urls[*]}"
    log "starting $CLUSTER concord servers: clients ${urls[*]}, --initial-cluster $ic"
    for ((i = 1; i <= CLUSTER; i++)); do
        # Default durability (fsync on) and default Raft timings.
        "$CONCORD_BIN" server --node-id "$i" --data-dir "$WORK/concord-$i" \
            --client-addr "127.0.0.1:${cports[i - 1]}" --peer-addr "127.0.0.1:${pports[i - 1]}" \
            --initial-cluster "$ic" >"$WORK/concord-$i.log" 2>&1 &
        PIDS+=($!)
        pids+=($!)
    done
    NODE_PIDS[concord]="${pids[*]}"
    wait_cluster concord
}

# ---------------------------------------------------------------------------------------
# Base64 and request bodies

B64_ALPHABET='ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
# b64 STRING: base64 of an ASCII string, into REPLY (no subshell: it runs 10000 times).
b64() {
    local s=$1 out='' i n c1 c2 c3 len=${#1}
    for ((i = 0; i < len; i += 3)); do
        printf -v c1 '%d' "'${s:i:1}"
        c2=0 c3=0
        if ((i + 1 < len)); then printf -v c2 '%d' "'${s:i+1:1}"; fi
        if ((i + 2 < len)); then printf -v c3 '%d' "'${s:i+2:1}"; fi
        n=$(((c1 << 16) | (c2 << 8) | c3))
        out+=${B64_ALPHABET:$(((n >> 18) & 63)):1}${B64_ALPHABET:$(((n >> 12) & 63)):1}
        if ((i + 1 < len)); then out+=${B64_ALPHABET:$(((n >> 6) & 63)):1}; else out+='='; fi
        if ((i + 2 < len)); then out+=${B64_ALPHABET:$((n & 63)):1}; else out+='='; fi
    done
    REPLY=$out
}

# The same 256-byte value as common.lua's M.value().
make_value() {
    local pattern='0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ' v=''
    while ((${#v} < BENCH_VALUE_SIZE)); do v+=$pattern; done
    printf '%s' "${v:0:BENCH_VALUE_SIZE}" >"$WORK/value.bin"
    VALUE_B64=$(base64 -w0 <"$WORK/value.bin")
}

# ---------------------------------------------------------------------------------------
# Cluster mode: can a follower serve the load?

declare -A REFUSED # REFUSED[kind|op] = what a follower answered when it refused op
N_REFUSED=0

# probe_follower KIND OP: one PUT or linearizable GET on the follower (up to 3 tries).
probe_follower() {
    local kind=$1 op=$2 url code="" ecode body="$WORK/probe.body"
    url=$(url_of "$kind")
    for _ in 1 2 3; do
        case $kind/$op in
            concord/put)
                code=$(curl -s -m 10 -o "$body" -w '%{http_code}' -X PUT --data-binary 1 \
                    "$url/v1/kv/__bench_probe") || true ;;
            concord/get)
                code=$(curl -s -m 10 -o "$body" -w '%{http_code}' "$url/v1/kv/__bench_ready") || true ;;
            etcd/put)
                code=$(curl -s -m 10 -o "$body" -w '%{http_code}' -X POST "$url/v3/kv/put" \
                    -H 'Content-Type: application/json' \
                    -d '{"key":"X19iZW5jaF9wcm9iZQ==","value":"MQ=="}') || true ;;
            etcd/get)
                code=$(curl -s -m 10 -o "$body" -w '%{http_code}' -X POST "$url/v3/kv/range" \
                    -H 'Content-Type: application/json' -d '{"key":"X19iZW5jaF9yZWFkeQ=="}') || true ;;
        esac
        if [[ $code == 2?? ]]; then
            log "$kind follower $(node_of "$kind") serves ${op}s (HTTP $code)"
            return 0
        fi
        sleep 0.5
    done
    ecode=$(grep -o '"code"[[:space:]]*:[[:space:]]*"[a-z_]*"' "$body" 2>/dev/null | head -n1 | sed 's/.*"\([a-z_]*\)"$/\1/' || true)
    REFUSED[$kind|$op]="HTTP ${code:-000}${ecode:+ $ecode}"
    N_REFUSED=$((N_REFUSED + 1))
    log "NOTE: $kind follower $(node_of "$kind") refused a $op: ${REFUSED[$kind|$op]} ($(head -c 300 "$body" 2>/dev/null || true))"
}

# OP_TARGETS[op]: the targets each scenario of op runs, in order. A follower target that
# refused op is left out; the leaders of every system are then run instead (unless
# LEADER_FALLBACK=0), so the two systems are still compared on the same footing.
declare -A OP_TARGETS
plan_targets() {
    local op t list fallback
    for op in put get; do
        list="" fallback=0
        for t in $TARGETS; do
            if ((CLUSTER > 1)) && [[ $t != *-leader && -n ${REFUSED[$t|$op]:-} ]]; then
                fallback=1
                continue
            fi
            list+="${list:+ }$t"
        done
        if ((fallback)) && [[ ${LEADER_FALLBACK:-1} != 0 ]]; then
            for t in $KINDS; do
                [[ " $list " == *" $t-leader "* ]] || list+="${list:+ }$t-leader"
            done
            log "NOTE: ${op}s: a follower refused them; running ${op} scenarios against: $list"
        fi
        OP_TARGETS[$op]=$list
    done
}

# ---------------------------------------------------------------------------------------
# Seeding: every key key-0 .. key-(BENCH_KEYS-1) written once, so GETs hit existing keys.

# curl_cfg_entry KIND OP URL INDEX: one curl config block (ends with "next").
curl_cfg_entry() {
    local kind=$1 op=$2 url=$3 i=$4
    case $kind/$op in
        concord/put)
            printf 'url = "%s/v1/kv/key-%d"\nrequest = "PUT"\ndata-binary = "@%s"\nheader = "Content-Type: application/octet-stream"\n' \
                "$url" "$i" "$WORK/value.bin" ;;
        concord/get)
            printf 'url = "%s/v1/kv/key-%d"\n' "$url" "$i" ;;
        etcd/put)
            b64 "key-$i"
            printf 'url = "%s/v3/kv/put"\nheader = "Content-Type: application/json"\ndata = "{\\"key\\":\\"%s\\",\\"value\\":\\"%s\\"}"\n' \
                "$url" "$REPLY" "$VALUE_B64" ;;
    esac
    printf 'output = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nsilent\nmax-time = 10\nnext\n'
}

# curl_keys KIND OP URL KEYFILE: runs OP against URL for every key index in KEYFILE with
# SEED_PARALLEL sequential (keep-alive) curl processes; writes the indexes whose
# answer was not 2xx to KEYFILE.failed.
curl_keys() {
    local kind=$1 op=$2 url=$3 keyfile=$4 dir n pids=()
    dir=$(mktemp -d "$WORK/curl.XXXXXX")
    split -n "l/$SEED_PARALLEL" -d "$keyfile" "$dir/chunk."
    for chunk in "$dir"/chunk.*; do
        [[ -s $chunk ]] || continue
        while read -r n; do curl_cfg_entry "$kind" "$op" "$url" "$n"; done <"$chunk" >"$chunk.cfg"
        curl -K "$chunk.cfg" >"$chunk.codes" 2>/dev/null &
        pids+=($!)
    done
    # Wait for these curls only (a bare `wait` would also wait for the servers).
    for n in "${pids[@]}"; do wait "$n" || true; done
    : >"$keyfile.failed"
    for chunk in "$dir"/chunk.??; do
        [[ -s $chunk ]] || continue
        # Line i of .codes is the answer to line i of the chunk (curl runs them in order);
        # a missing line (curl gave up) counts as a failure.
        paste -d' ' "$chunk" <(cat "$chunk.codes") | awk '$2 !~ /^2[0-9][0-9]$/ {print $1}' >>"$keyfile.failed"
    done
    rm -rf "$dir"
}

# seed_kind KIND: writes the keys (through the leader in cluster mode), then checks that
# they read back from every node a GET scenario of KIND will use.
seed_kind() {
    local kind=$1 keys="$WORK/seed-$1.keys" round failed url t
    if ((CLUSTER > 1)); then
        cluster_status "$kind" || wait_cluster "$kind"
        url=$(leader_url "$kind")
    else
        url=$(url_of "$kind")
    fi
    seq 0 $((BENCH_KEYS - 1)) >"$keys"
    for round in 1 2 3; do
        curl_keys "$kind" put "$url" "$keys"
        failed=$(wc -l <"$keys.failed")
        ((failed == 0)) && break
        log "$kind seed round $round: $failed writes failed, retrying them"
        mv "$keys.failed" "$keys"
    done
    ((failed == 0)) || die "$kind: $failed keys could not be written while seeding"

    # Check that every key reads back (GET errors in the benchmark are then real errors).
    for t in ${OP_TARGETS[get]}; do
        [[ ${t%%-*} == "$kind" ]] || continue
        url=$(url_of "$t")
        case $kind in
            etcd)
                local count from
                b64 "key-"
                from=$REPLY
                b64 "key."
                count=$(curl -sf -m 10 -X POST "$url/v3/kv/range" -H 'Content-Type: application/json' \
                    -d "{\"key\":\"$from\",\"range_end\":\"$REPLY\",\"count_only\":true}" |
                    sed -n 's/.*"count":"\{0,1\}\([0-9]*\).*/\1/p')
                [[ ${count:-0} -ge $BENCH_KEYS ]] ||
                    die "etcd: ${count:-no} keys under key- on $(node_of "$t") after seeding, expected $BENCH_KEYS"
                ;;
            concord)
                seq 0 $((BENCH_KEYS - 1)) >"$keys"
                curl_keys concord get "$url" "$keys"
                failed=$(wc -l <"$keys.failed")
                ((failed == 0)) ||
                    die "concord: $failed seeded keys do not read back from $(node_of "$t") (e.g. key-$(head -n1 "$keys.failed"))"
                ;;
        esac
    done
    log "$kind seeded: $BENCH_KEYS keys of $BENCH_VALUE_SIZE bytes"
}

# ---------------------------------------------------------------------------------------
# Load

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RESULTS_DIR"
if ((CLUSTER > 1)); then OUT_BASE="$RESULTS_DIR/kv-cluster$CLUSTER-$STAMP"; else OUT_BASE="$RESULTS_DIR/kv-$STAMP"; fi
OUT_MD="$OUT_BASE.md"
OUT_RAW="$OUT_BASE.raw.txt"
: >"$OUT_RAW"

declare -A RES        # RES[target|scenario|field]
declare -A SCEN_TARGETS # SCEN_TARGETS[scenario] = targets run, in order
declare -A SCEN_OP
SCENARIOS=()
ANY_ERRORS=0
ANY_LEADER_CHANGE=0

# run_wrk TARGET OP CONNS SECONDS LABEL: runs wrk; prints its BENCH_RESULT line.
run_wrk() {
    local target=$1 op=$2 conns=$3 secs=$4 label=$5 threads out url script
    threads=$((conns >= 2 && conns % 2 == 0 ? 2 : 1)) # min(2, conns); wrk needs conns % threads == 0
    out="$WORK/wrk.out"
    url=$(url_of "$target")
    script="${target%%-*}_${op}.lua"
    {
        echo "===== $label: $target ($(node_of "$target")) $op c=$conns t=$threads d=${secs}s"
        echo "\$ wrk -t$threads -c$conns -d${secs}s --timeout $WRK_TIMEOUT -s $script $url"
    } >>"$OUT_RAW"
    # wrk stops by itself after secs; the outer timeout is a backstop.
    if ! timeout $((secs + 60)) wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout "$WRK_TIMEOUT" \
        -s "$HERE/$script" "$url" >"$out" 2>&1; then
        cat "$out" >>"$OUT_RAW"
        cat "$out" >&2
        die "wrk failed ($label $target $op c=$conns)"
    fi
    cat "$out" >>"$OUT_RAW"
    grep -m1 '^BENCH_RESULT ' "$out" || die "no BENCH_RESULT line from wrk ($label $target $op c=$conns)"
}

# ensure_roles TARGET: in cluster mode, re-reads who leads (waiting for a leader if need
# be), so the run goes to a node that is a follower (or the leader) right now.
ensure_roles() {
    ((CLUSTER > 1)) || return 0
    cluster_status "${1%%-*}" || wait_cluster "${1%%-*}"
}

scenario() {
    local op=$1 conns=$2 name="$1-c$2" target line kv k v errs kind before after where n=2
    # A connection count given twice gets its own row: put-c32, put-c32#2, ...
    while [[ " ${SCENARIOS[*]} " == *" $name "* ]]; do name="$op-c$conns#$((n++))"; done
    SCENARIOS+=("$name")
    SCEN_OP[$name]=$op
    SCEN_TARGETS[$name]=${OP_TARGETS[$op]}
    for target in ${OP_TARGETS[$op]}; do
        kind=${target%%-*}
        if ((WARMUP > 0)); then
            ensure_roles "$target"
            log "$name $target: warm-up ${WARMUP}s on $(node_of "$target")"
            run_wrk "$target" "$op" "$conns" "$WARMUP" warmup >/dev/null
        fi
        ensure_roles "$target"
        where=$(node_of "$target")
        before="" after=""
        if ((CLUSTER > 1)); then before="leader=node$((${LEADER_IDX[$kind]} + 1)) term=${TERM_OF[$kind]}"; fi
        log "$name $target: ${DURATION}s on $where${before:+ ($before)}"
        line=$(run_wrk "$target" "$op" "$conns" "$DURATION" measured)
        RES[$target|$name|node]=$where
        if ((CLUSTER > 1)); then
            cluster_status "$kind" || wait_cluster "$kind"
            after="leader=node$((${LEADER_IDX[$kind]} + 1)) term=${TERM_OF[$kind]}"
            if [[ $after != "$before" ]]; then
                RES[$target|$name|leader_change]="$before -> $after"
                ANY_LEADER_CHANGE=1
                log "WARNING: $name $target: the $kind leader changed during the run ($before -> $after)"
            fi
        fi
        echo "$target $name node=$where${before:+ $before}${RES[$target|$name|leader_change]:+ CHANGED_TO $after} $line" >>"$WORK/results.txt"
        for kv in ${line#BENCH_RESULT }; do
            k=${kv%%=*} v=${kv#*=}
            RES[$target|$name|$k]=$v
        done
        # Errors: responses that failed the script's check (non-2xx, or a missing key for
        # etcd GETs), plus socket errors and timeouts.
        errs=0
        for k in bad err_connect err_read err_write err_timeout; do
            errs=$((errs + ${RES[$target|$name|$k]:-0}))
        done
        RES[$target|$name|errors]=$errs
        if ((errs > 0)); then
            ANY_ERRORS=1
            log "WARNING: $name $target had $errs errors: $line"
        fi
        log "$name $target: $(printf '%.0f' "${RES[$target|$name|rps]}") req/s p50 ${RES[$target|$name|p50_ms]} ms p99 ${RES[$target|$name|p99_ms]} ms errors $errs"
    done
}

# ---------------------------------------------------------------------------------------
# Run

make_value
: >"$WORK/results.txt"
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
for kind in $KINDS; do
    if ((CLUSTER > 1)); then "start_${kind}_cluster"; else "start_$kind"; fi
done
if ((CLUSTER > 1)); then
    for t in $TARGETS; do
        if [[ $t == *-leader ]]; then continue; fi
        if [[ -n ${PUT_CONNS// /} ]]; then probe_follower "$t" put; fi
        if [[ -n ${GET_CONNS// /} ]]; then probe_follower "$t" get; fi
    done
fi
plan_targets

for c in $PUT_CONNS; do scenario put "$c"; done
if [[ -n ${GET_CONNS// /} ]]; then
    for kind in $KINDS; do seed_kind "$kind"; done
    for c in $GET_CONNS; do scenario get "$c"; done
fi

# ---------------------------------------------------------------------------------------
# Report

fmt_rps() { printf '%.0f' "$1"; }
fmt_ms() { printf '%.2f' "$1"; }
ran() { [[ " ${SCEN_TARGETS[$2]} " == *" $1 "* ]]; } # ran TARGET SCENARIO

# label TARGET: the name of its columns.
label() {
    if ((CLUSTER == 1)); then echo "$1"; return; fi
    case $1 in *-leader) echo "${1%-leader} (leader)" ;; *) echo "$1 (follower)" ;; esac
}

# Columns: every target that ran in some scenario, or whose follower refused the load.
COLS=()
for t in $TARGETS etcd-leader concord-leader; do
    [[ " ${COLS[*]} " == *" $t "* ]] && continue
    for s in "${SCENARIOS[@]}"; do
        if ran "$t" "$s" || [[ -n ${REFUSED[$t|${SCEN_OP[$s]}]:-} ]]; then
            COLS+=("$t")
            break
        fi
    done
done
# Ratio columns: concord[-leader] against etcd[-leader] when both are columns.
RATIOS=()
for t in "${COLS[@]}"; do
    [[ ${t%%-*} == concord ]] || continue
    [[ " ${COLS[*]} " == *" etcd${t#concord} "* ]] && RATIOS+=("$t")
done

cell() { # cell TARGET SCENARIO -> "req/s | p50 | p99"
    local t=$1 s=$2 rps
    if ! ran "$t" "$s"; then
        if [[ -n ${REFUSED[$t|${SCEN_OP[$s]}]:-} ]]; then echo "refused | — | —"; else echo "— | — | —"; fi
        return
    fi
    rps=$(fmt_rps "${RES[$t|$s|rps]}")
    if [[ ${RES[$t|$s|errors]} != 0 ]]; then rps+=" ⚠"; fi
    if [[ -n ${RES[$t|$s|leader_change]:-} ]]; then rps+=" ↻"; fi
    echo "$rps | $(fmt_ms "${RES[$t|$s|p50_ms]}") | $(fmt_ms "${RES[$t|$s|p99_ms]}")"
}

ratio_label() {
    if ((CLUSTER == 1)); then echo "concord/etcd"; return; fi
    case $1 in *-leader) echo "concord/etcd (leader)" ;; *) echo "concord/etcd (follower)" ;; esac
}

report() {
    local s t e row header sep errs
    if ((CLUSTER > 1)); then
        echo "# KV benchmark: ${CLUSTER}-node concord cluster vs ${CLUSTER}-node etcd cluster ($STAMP)"
    else
        echo "# KV benchmark: concord dev vs etcd ($STAMP)"
    fi
    echo
    echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, kernel $(uname -srm)"
    echo "- load average (1/5/15 min) at start: $LOAD_AT_START, at end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown) (anything else busy on the machine skews the figures)"
    echo "- data dirs: $WORK (filesystem $DATA_FS), fresh for this run; one 4 KiB O_DSYNC write there took $FSYNC_COST (dd, mean of 200)"
    if ((CLUSTER > 1)); then
        if uses etcd; then echo "- etcd: $("$ETCD_BIN" --version | head -n1 | sed 's/^etcd Version: //'), $CLUSTER members on loopback (--initial-cluster, each its own data dir), fsync on (default flags, no --unsafe-no-fsync; heartbeat 100 ms, election timeout 1000 ms)"; fi
        if uses concord; then echo "- concord: $(concord_desc), $CLUSTER nodes of \`concord server --initial-cluster …\` on loopback, each its own data dir, default durability settings (fsync on) and default Raft timings"; fi
        echo "- all $((CLUSTER * $(wc -w <<<"$KINDS"))) data dirs share one disk, and every write is made durable on a quorum of its cluster's members there"
        echo "- target node: \"(follower)\" columns send the load to one follower's client URL, \"(leader)\" columns to the leader's. Roles are re-read before every run (etcd: \`leader\` vs \`header.member_id\` of \`POST /v3/maintenance/status\`; concord: \`leader_id\` vs \`node_id\` of \`GET /v1/status\`); the node each run used is in the wrk result lines below"
    else
        if uses etcd; then echo "- etcd: $("$ETCD_BIN" --version | head -n1 | sed 's/^etcd Version: //'), single node, fsync on (default flags, no --unsafe-no-fsync)"; fi
        if uses concord; then echo "- concord: $(concord_desc), single node \`concord dev\` with default durability settings (fsync on; no flag passed to change it)"; fi
    fi
    echo "- load: $(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}') on the same machine over loopback; threads = min(2, connections); timeout $WRK_TIMEOUT"
    echo "- each run: ${DURATION}s measured after ${WARMUP}s warm-up; targets alternate per scenario (order: ${OP_TARGETS[put]:-${OP_TARGETS[get]}})"
    echo "- PUT: ${BENCH_VALUE_SIZE}-byte values to key-<n mod $BENCH_KEYS>; GET: linearizable reads of the $BENCH_KEYS seeded keys"
    echo "- req/s is writes/s for put-* and reads/s for get-*; latency in ms; ratio = concord req/s ÷ etcd req/s; ⚠ = the run had errors (see the errors column)$( ((CLUSTER > 1)) && echo "; ↻ = the leader or the term changed during the run")"
    echo
    header="| scenario |"
    sep="|---|"
    for t in "${COLS[@]}"; do
        header+=" $(label "$t") req/s | $(label "$t") p50 | $(label "$t") p99 |"
        sep+="---:|---:|---:|"
    done
    for t in "${RATIOS[@]}"; do
        header+=" $(ratio_label "$t") |"
        sep+="---:|"
    done
    header+=" errors $(IFS=/; echo "${COLS[*]}") |"
    sep+="---|"
    echo "$header"
    echo "$sep"
    for s in "${SCENARIOS[@]}"; do
        row="| $s |"
        for t in "${COLS[@]}"; do row+=" $(cell "$t" "$s") |"; done
        for t in "${RATIOS[@]}"; do
            e="etcd${t#concord}"
            if ran "$t" "$s" && ran "$e" "$s"; then
                row+=" $(awk -v c="${RES[$t|$s|rps]}" -v e="${RES[$e|$s|rps]}" \
                    'BEGIN { if (e > 0) printf "%.2f", c / e; else print "n/a" }') |"
            else
                row+=" — |"
            fi
        done
        errs=""
        for t in "${COLS[@]}"; do
            if ran "$t" "$s"; then errs+="${errs:+/}${RES[$t|$s|errors]}"; else errs+="${errs:+/}—"; fi
        done
        row+=" $errs |"
        echo "$row"
    done
    echo
    if ((ANY_ERRORS)); then
        echo "**Some runs had errors (⚠): their figures are not comparable as they stand.**"
        echo
    fi
    if ((ANY_LEADER_CHANGE)); then
        echo "**In some runs (↻) the leader or the term changed: an election happened under load, and those figures include it.**"
        echo
    fi
    for k in $( ((N_REFUSED)) && printf '%s\n' "${!REFUSED[@]}" | sort); do
        t=${k%|*}
        echo "**$t follower refused ${k#*|}s: ${REFUSED[$k]} (probe before the load). Its \"(follower)\" cells read \"refused\"; the ${k#*|} scenarios ran against the leaders of both clusters instead, in the \"(leader)\" columns.**"
        echo
    done
    echo "<details><summary>wrk result lines</summary>"
    echo
    echo '```'
    cat "$WORK/results.txt"
    echo '```'
    echo
    echo "</details>"
}

report | tee "$OUT_MD"
log "results: $OUT_MD (raw wrk output: $OUT_RAW)"
if ((ANY_ERRORS || N_REFUSED || ANY_LEADER_CHANGE)); then
    log "some runs had errors, an election, or a follower refused the load; exiting 3"
    exit 3
fi
