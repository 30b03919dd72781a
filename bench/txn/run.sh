#!/usr/bin/env bash
# bench/txn/run.sh: two-step sagas through concord's transaction coordinator: transactions
# per second, submit-to-final latency, and transactions per core-second of the concord
# processes, set against DTM's published figures.
#
#   bench/txn/run.sh                    single node, then a 3-node cluster (about 3 minutes)
#   bench/txn/run.sh --cluster 1        single node only (`concord dev`)
#   bench/txn/run.sh --cluster 3        3-node cluster only (CLUSTER=3 is the same)
#   DURATION=3 WARMUP=1 bench/txn/run.sh   quick smoke run
#
# Load: `concord-bench txn` (crates/concord-bench/src/txn.rs) on the same machine, over
# loopback, HTTP/1.1. It runs an in-process trivial participant (answers 200 {} to every
# call and counts them) and C closed-loop clients (C in CONCURRENCY), each with one
# connection, each submitting back to back
#   POST /v1/transactions {"mode":"saga","wait":true,"timeout_secs":30,"steps":[
#     {"name":"a","action":{…/a/action},"compensate":{…/a/compensate}},
#     {"name":"b","action":{…/b/action},"compensate":{…/b/compensate}}]}
# WARMUP s, then DURATION s measured, per C. A transaction counts when its answer, inside the
# window, is a 200 whose status is "succeeded"; anything else is an error.
#
# Servers: fresh ones, on fresh data dirs, for every target (default durability: fsync on):
#   single      `concord dev --addr 127.0.0.1:0 --peer-addr 127.0.0.1:0` (bench/lib.sh).
#   cluster N   N × `concord server --node-id I --initial-cluster 1=…,2=…,…` on loopback,
#               default Raft settings. The load goes to a follower (which relays the
#               proposals to the leader; the leader's driver makes the participant calls)
#               and, with LEADER_TOO=1 (default), on a fresh cluster, to the leader.
#
# Counted: concord CPU is utime+stime (/proc/PID/stat) of every concord process over the
# measured window ÷ the window, summed over the nodes; tx per core-second = tx/s ÷ that.
# The participant and the clients run in concord-bench and are NOT counted there (their
# CPU is shown apart). DTM's figures, which we compare with, were not measured here:
# ~935 two-branch sagas/s on 4 cores with MySQL (≈ 234 per core) and ~10,800/s over two
# 8-core app servers with Redis (≈ 675 per core).
#
# Output: a markdown report on stdout and in bench/results/txn-<UTC timestamp>.md, with the
# generator's result lines in it.
#
# Environment:
#   CLUSTER        1 (single node), 3..7 (cluster), or "1 3" (default: both, in that order)
#   CONCURRENCY    concurrent clients, one run each (default "1 16 64")
#   DURATION       measured seconds per run (default 10)
#   WARMUP         warm-up seconds before each run (default 2)
#   TXN_TIMEOUT    timeout_secs of every transaction (default 30)
#   LEADER_TOO     cluster mode: also load the leader, on a fresh cluster (default 1)
#   READY_TIMEOUT  seconds to wait for a server or a cluster's leader (default 60)
#   SKIP_BUILD=1   do not run cargo build (use CONCORD_BIN and BENCH_BIN as they are)
#   CONCORD_BIN    concord binary (default <repo>/target/release/concord)
#   BENCH_BIN      load generator (default <repo>/target/release/concord-bench)
#   BENCH_TMPDIR   where the temp data dirs go (default $TMPDIR or /tmp); must be a real
#                  disk, not tmpfs (ALLOW_TMPFS=1 overrides)
#   KEEP_WORK=1    keep the temp dir (data dirs and server logs) after the run
#
# Exit status: 0 when every run passed its checks; 3 when one did not (errors, a
# participant call count other than 2 per saga, compensations, transactions left
# unfinished or stuck, a leader change during a run), with the report still written;
# anything else when the run itself failed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BENCH_NAME=txn
# shellcheck source-path=SCRIPTDIR/.. source=lib.sh
source "$HERE/../lib.sh"

CLUSTER=${CLUSTER:-"1 3"}
while (($#)); do
    case $1 in
        -h | --help)
            print_help
            exit 0
            ;;
        --cluster)
            (($# >= 2)) || die "--cluster needs a node count"
            CLUSTER=$2
            shift 2
            ;;
        --cluster=*)
            CLUSTER=${1#--cluster=}
            shift
            ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

CONCURRENCY=${CONCURRENCY:-"1 16 64"}
DURATION=${DURATION:-10}
DURATION=${DURATION%s}
WARMUP=${WARMUP:-2}
WARMUP=${WARMUP%s}
TXN_TIMEOUT=${TXN_TIMEOUT:-30}
LEADER_TOO=${LEADER_TOO:-1}
READY_TIMEOUT=${READY_TIMEOUT:-60}
CONCORD_BIN=${CONCORD_BIN:-$REPO/target/release/concord}
BENCH_BIN=${BENCH_BIN:-$REPO/target/release/concord-bench}
RESULTS_DIR=$REPO/bench/results
# DTM's published saga throughput (stated figures, not measured here), per core.
DTM_MYSQL_PER_CORE=234 # ~935 two-branch sagas/s on 4 cores, MySQL store
DTM_REDIS_PER_CORE=675 # ~10,800/s summed over two 8-core app servers, Redis store

for v in DURATION WARMUP TXN_TIMEOUT READY_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
((DURATION > 0)) || die "DURATION must be > 0"
for n in $CLUSTER; do
    if ! [[ $n =~ ^[0-9]+$ ]] || ! ((n == 1 || (n >= 3 && n <= 7))); then
        die "CLUSTER/--cluster must be 1 or 3..7, got '$n'"
    fi
done
for c in $CONCURRENCY; do
    [[ $c =~ ^[1-9][0-9]*$ ]] || die "CONCURRENCY must be positive integers, got '$c'"
done
CONC_FLAG=$(tr -s ' ' ',' <<<"$CONCURRENCY" | sed 's/^,//; s/,$//')

command -v curl >/dev/null || die "curl is needed (apt-get install curl)"
command -v ss >/dev/null || die "ss is needed (apt-get install iproute2)"

CONCORD_REV=$(git_rev)
build_bins
if [[ " $CLUSTER " == *" "[3-7]" "* ]] && ! "$CONCORD_BIN" server --help 2>&1 | grep -q -- '--initial-cluster'; then
    die "$CONCORD_BIN has no 'server --initial-cluster' flag; run with --cluster 1"
fi

make_work txn # sets WORK and DATA_FS; cleanup (servers, WORK) runs on exit
FSYNC_COST=$(fsync_probe)

# ---------------------------------------------------------------------------------------
# Clusters (the single node comes from bench/lib.sh's start_server)

NODE_URLS=() # client URLs of the current cluster, node i at index i-1
NODE_PIDS=()
LEADER_IDX=-1
FOLLOWER_IDX=-1
TERM_NOW=0

# json_num KEY: the first "KEY": number in the JSON on stdin.
json_num() {
    grep -o "\"$1\"[[:space:]]*:[[:space:]]*[0-9][0-9]*" | head -n1 | grep -o '[0-9][0-9]*$' || true
}

# cluster_status: succeeds when every node answers GET /v1/status and all name the same
# leader; sets LEADER_IDX, FOLLOWER_IDX (the first other node) and TERM_NOW.
cluster_status() {
    local i body id leader term agreed="" lidx=-1 maxterm=0
    for i in "${!NODE_URLS[@]}"; do
        body=$(curl -sf -m 2 "${NODE_URLS[i]}/v1/status") || return 1
        id=$(json_num node_id <<<"$body")
        leader=$(json_num leader_id <<<"$body") # absent when "leader_id":null
        term=$(json_num term <<<"$body")
        [[ -n $id && -n $leader && -n $term ]] || return 1
        [[ -z $agreed || $leader == "$agreed" ]] || return 1
        agreed=$leader
        if [[ $id == "$leader" ]]; then lidx=$i; fi
        if ((term > maxterm)); then maxterm=$term; fi
    done
    ((lidx >= 0)) || return 1
    LEADER_IDX=$lidx
    FOLLOWER_IDX=$(((lidx + 1) % ${#NODE_URLS[@]}))
    TERM_NOW=$maxterm
}

cluster_ready() {
    local u
    cluster_status || return 1
    for u in "${NODE_URLS[@]}"; do curl -sf -m 2 -o /dev/null "$u/v1/ready" || return 1; done
    curl -sf -m 2 -o /dev/null -X PUT --data-binary 1 "${NODE_URLS[FOLLOWER_IDX]}/v1/kv/__bench_ready"
}

# start_cluster N NAME: N fresh `concord server` nodes; waits for an agreed leader that
# takes a write through a follower.
start_cluster() {
    local n=$1 name=$2 i ic="" cports=() pports=() deadline=$((SECONDS + READY_TIMEOUT))
    NODE_URLS=()
    NODE_PIDS=()
    for ((i = 1; i <= n; i++)); do
        cports+=("$(free_port)")
        pports+=("$(free_port)")
        NODE_URLS+=("http://127.0.0.1:${cports[i - 1]}")
        ic+="${ic:+,}$i=127.0.0.1:${pports[i - 1]}"
    done
    mkdir -p "$WORK/$name"
    log "starting $n concord servers ($name): clients ${NODE_URLS[*]}"
    for ((i = 1; i <= n; i++)); do
        # Default durability (fsync on) and default Raft timings.
        "$CONCORD_BIN" server --node-id "$i" --data-dir "$WORK/$name/data-$i" \
            --client-addr "127.0.0.1:${cports[i - 1]}" --peer-addr "127.0.0.1:${pports[i - 1]}" \
            --initial-cluster "$ic" >"$WORK/$name/node-$i.log" 2>&1 &
        PIDS+=($!)
        NODE_PIDS+=($!)
    done
    while ((SECONDS < deadline)); do
        for i in "${!NODE_PIDS[@]}"; do
            if ! kill -0 "${NODE_PIDS[i]}" 2>/dev/null; then
                tail -n 30 "$WORK/$name/node-$((i + 1)).log" >&2 || true
                die "concord node$((i + 1)) exited during start-up (log above)"
            fi
        done
        if cluster_ready; then
            log "cluster ready: leader node$((LEADER_IDX + 1)), term $TERM_NOW"
            return 0
        fi
        sleep 0.2
    done
    die "no agreed leader taking writes after ${READY_TIMEOUT}s"
}

stop_cluster() {
    stop_pids 100 "${NODE_PIDS[@]}"
}

# metric URL NAME: the value of an unlabelled Prometheus metric at URL/metrics, or "nan".
metric() {
    curl -sf -m 5 "$1/metrics" 2>/dev/null | awk -v n="$2" '$1 == n { v = $2 } END { print (v == "" ? "nan" : v) }' || echo nan
}

# ---------------------------------------------------------------------------------------
# Load

declare -A RES  # RES[run|concurrency|field], from the generator's BENCH_RESULT lines
declare -A META # META[run|key]: topology, load node, leader change, unfinished, stuck
RUNS=()
: >"$WORK/results.txt"

# bench RUN LEADER_URL URL PID...: concord-bench txn against URL with every PID counted;
# afterwards reads the unfinished and stuck transaction gauges on LEADER_URL.
bench() {
    local run=$1 leader_url=$2 url=$3 line kv c pid pid_flags=()
    shift 3
    for pid in "$@"; do pid_flags+=(--pid "$pid"); done
    log "$run: concord-bench txn --server $url ${pid_flags[*]} --concurrency $CONC_FLAG"
    if ! "$BENCH_BIN" txn --server "$url" "${pid_flags[@]}" --clk-tck "$CLK_TCK" \
        --concurrency "$CONC_FLAG" --duration "$DURATION" --warmup "$WARMUP" \
        --txn-timeout "$TXN_TIMEOUT" >"$WORK/$run.out" 2>"$WORK/$run.err"; then
        tail -n 20 "$WORK/$run.err" >&2 || true
        die "concord-bench failed ($run)"
    fi
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null || die "concord (pid $pid) exited during $run"; done
    grep -q '^BENCH_RESULT ' "$WORK/$run.out" || die "no BENCH_RESULT line from concord-bench ($run)"
    grep 'error on saga' "$WORK/$run.err" | head -n 5 >&2 || true
    while read -r line; do
        echo "$run $line" >>"$WORK/results.txt"
        c=""
        for kv in ${line#BENCH_RESULT }; do
            if [[ $kv == concurrency=* ]]; then c=${kv#*=}; fi
            RES["$run|$c|${kv%%=*}"]=${kv#*=}
        done
        log "$run c=$c: ${RES[$run|$c|tps]} tx/s, p99 ${RES[$run|$c|p99_ms]} ms, errors ${RES[$run|$c|errors]}, concord ${RES[$run|$c|server_cores]} cores, ${RES[$run|$c|tx_per_core_sec]} tx per core-second"
    done < <(grep '^BENCH_RESULT ' "$WORK/$run.out")
    META[$run|unfinished]=$(metric "$leader_url" concord_transactions_unfinished)
    META[$run|stuck]=$(metric "$leader_url" concord_transactions_stuck)
    RUNS+=("$run")
}

# run_cluster N TARGET: a fresh cluster of N, loaded through its follower or its leader.
run_cluster() {
    local n=$1 target=$2 run="cluster$1-$2" idx before
    start_cluster "$n" "$run"
    if [[ $target == leader ]]; then idx=$LEADER_IDX; else idx=$FOLLOWER_IDX; fi
    before="node$((LEADER_IDX + 1))/$TERM_NOW"
    META[$run|topology]="$n nodes"
    META[$run|load]="$target (node$((idx + 1)))"
    bench "$run" "${NODE_URLS[LEADER_IDX]}" "${NODE_URLS[idx]}" "${NODE_PIDS[@]}"
    if cluster_status && [[ "node$((LEADER_IDX + 1))/$TERM_NOW" == "$before" ]]; then
        META[$run|moved]=""
    else
        META[$run|moved]="leader/term $before → $(cluster_status && echo "node$((LEADER_IDX + 1))/$TERM_NOW" || echo "none agreed")"
    fi
    stop_cluster
}

LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)

for n in $CLUSTER; do
    if ((n == 1)); then
        start_server single
        META[single|topology]="1 node (dev)"
        META[single|load]="the node"
        META[single|moved]=""
        bench single "$SERVER_URL" "$SERVER_URL" "$SERVER_PID"
        stop_server
    else
        run_cluster "$n" follower
        if [[ $LEADER_TOO == 1 ]]; then run_cluster "$n" leader; fi
    fi
done

# ---------------------------------------------------------------------------------------
# Checks and report

for run in "${RUNS[@]}"; do
    for c in $CONCURRENCY; do
        k="$run|$c"
        check "${RES[$k|errors]} == 0" "$run c=$c: ${RES[$k|errors]} errors (transport ${RES[$k|transport_errors]}, HTTP ${RES[$k|http_errors]}, not succeeded ${RES[$k|not_succeeded]})"
        check "${RES[$k|actions]} == 2 * ${RES[$k|sagas_all]}" "$run c=$c: ${RES[$k|actions]} action calls for ${RES[$k|sagas_all]} succeeded sagas (expected 2 each)"
        check "${RES[$k|compensates]} + ${RES[$k|other_calls]} == 0" "$run c=$c: ${RES[$k|compensates]} compensations and ${RES[$k|other_calls]} other calls at the participant"
    done
    check "\"${META[$run|unfinished]}\" == \"0\"" "$run: ${META[$run|unfinished]} transactions unfinished after the run (concord_transactions_unfinished on the leader)"
    check "\"${META[$run|stuck]}\" == \"0\"" "$run: ${META[$run|stuck]} transactions stuck after the run"
    check "\"${META[$run|moved]}\" == \"\"" "$run: ${META[$run|moved]} during the run"
done

report_table() {
    local run c k tps cores moved
    echo "| topology | load to | clients | tx/s | p50 ms | p90 ms | p99 ms | max ms | errors | concord CPU (cores; per node) | **tx per core-second** | ÷ DTM MySQL ($DTM_MYSQL_PER_CORE) | ÷ DTM Redis ($DTM_REDIS_PER_CORE) | participant calls / saga | Raft entries / tx | bench process CPU (cores) |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for run in "${RUNS[@]}"; do
        moved=""
        if [[ -n ${META[$run|moved]} ]]; then moved=" ↻"; fi
        for c in $CONCURRENCY; do
            k="$run|$c"
            tps=${RES[$k|tps]} cores=${RES[$k|server_cores]}
            echo "| ${META[$run|topology]} | ${META[$run|load]}$moved | $c | $(calc "$tps") | ${RES[$k|p50_ms]} | ${RES[$k|p90_ms]} | ${RES[$k|p99_ms]} | ${RES[$k|max_ms]} | ${RES[$k|errors]} | $(calc "$cores" %.2f); ${RES[$k|node_cores]//\// · } | **$(calc "$tps / $cores")** | $(calc "$tps / $cores / $DTM_MYSQL_PER_CORE" %.2f) | $(calc "$tps / $cores / $DTM_REDIS_PER_CORE" %.2f) | ${RES[$k|calls_per_saga]} | ${RES[$k|entries_per_txn]} | $(calc "${RES[$k|client_cores]}" %.2f) |"
        done
    done
}

report() {
    local f
    echo "# Transaction benchmark: two-step sagas through concord ($STAMP)"
    echo
    echo "- concord: $(concord_desc); default durability (fsync on) and Raft settings; fresh servers and data dirs for every row group"
    echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, kernel $(uname -srm)"
    echo "- load average (1/5/15 min) at start: $LOAD_AT_START, at end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown) (anything else busy on the machine skews the figures)"
    echo "- data dirs: $WORK (filesystem $DATA_FS; every node of a cluster on the same disk); one 4 KiB O_DSYNC write there took $FSYNC_COST (dd, mean of 200)"
    echo "- load: concord-bench txn, closed loop, one connection per client, HTTP/1.1 over loopback; ${WARMUP}s warm-up then ${DURATION}s measured per client count; saga = 2 steps (action + compensate each) on an in-process trivial participant, \`\"wait\": true\`, \`timeout_secs\` $TXN_TIMEOUT; latency = submit → final answer"
    echo
    echo "**What is counted.** concord CPU = utime+stime of every concord server process over the measured window ÷ the window, summed over the nodes (per node after the ';'). tx per core-second = tx/s ÷ that sum. The participant and the clients run in the concord-bench process, whose CPU is the last column and is *not* in the per-core figure. DTM's figures are its *published* ones, not measured here: ~935 two-branch sagas/s on 4 cores with MySQL (≈ $DTM_MYSQL_PER_CORE per core) and ~10,800/s summed over two 8-core app servers with Redis (≈ $DTM_REDIS_PER_CORE per core); their setups count different things (their own store, their own participants), so the ratios are orders of magnitude, not a like-for-like race."
    echo
    echo "Participant calls / saga: calls received over the whole run of that client count ÷ sagas answered succeeded in it (2 = one action per step, no retries, no compensations). Raft entries / tx: the growth of the load node's \`applied_index\` over the window ÷ transactions; an entry is one proposal batch (several commands), so this falls below the 3 commands a saga proposes (create, advance after step a, advance after step b) once batches form."
    echo
    report_table
    echo
    report_checks "All checks passed: no errors, every saga succeeded with exactly 2 participant calls and no compensation, no transaction unfinished or stuck afterwards, no leader change during a run."
    echo
    report_raw "$WORK/results.txt" "concord-bench result lines"
}

write_report # to stdout and bench/results/txn-$STAMP.md; exits 3 when a check failed
