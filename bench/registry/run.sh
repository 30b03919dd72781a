#!/usr/bin/env bash
# bench/registry/run.sh: the service registry of one `concord dev` node under load:
# registrations per second, the cost of sustained heartbeats, and watch fan-out latency.
#
#   bench/registry/run.sh                          all three scenarios (about 2 minutes)
#   SCENARIOS=heartbeats bench/registry/run.sh     one of them
#   DURATION=3 WARMUP=1 DURATION_HB=10 HB_INSTANCES=5000 WATCHERS=100 bench/registry/run.sh
#                                                  quick smoke run
#
# Every run gets a fresh `concord dev --addr 127.0.0.1:0 --peer-addr 127.0.0.1:0` on a fresh
# data dir (default durability: fsync on); the harness reads its port from the first line
# it prints (`concord listening: client=http://ADDR peer=…`). The load comes from
# `concord-bench` (crates/concord-bench) on the same machine, over loopback, HTTP/1.1:
#
#   register     PUT /v1/services/svc-<n mod 100>/instances/i-<n> with
#                {"address":"10.0.<x>.<y>","port":8080,"tags":["v1"],"meta":{"zone":"a"}},
#                a new persistent instance each time, closed loop on 32 and 128
#                connections (REG_CONNS): WARMUP s, then DURATION s measured. Only 200s
#                count. Per core = registrations/s ÷ the cores the server used (utime +
#                stime of /proc/PID/stat over the window ÷ the window), set against the
#                published Nacos 2.0 figure "~26,800 instances/s on three 8-core nodes"
#                (≈ 1,100/s per core; a stated figure, not measured here).
#   heartbeats   HB_INSTANCES ephemeral instances ("ttl_secs":15) over 100 services, each
#                registered in its own slot of a 5 s period and then heart-beaten once per
#                period (PUT …/heartbeat): open loop, HB_INSTANCES/5 per second spread
#                evenly, over 64 connections. Measured for DURATION_HB s from one period
#                after the last registration: heartbeats/s, errors (any non-200; a 404 is
#                an expired instance), the server's CPU over the window and its VmRSS at the
#                end, and the instances still registered (sum over GET /v1/services).
#   fanout       WATCHERS watchers of GET /v1/watch?service=fan, each on its own
#                connection; once every one has its 200, 20 registrations of fan/i-<r>, one
#                every 500 ms. Latency per (registration, watcher): from sending the PUT to
#                that watcher receiving the `register` event. The fd limit is raised first.
#
# Goals from the issue, shown in the report (a miss does not fail the run): heartbeats
# under half a core; fan-out p99 under 100 ms.
#
# Output: a markdown report on stdout and in bench/results/registry-<UTC timestamp>.md, with
# the generator's result lines in it.
#
# Environment:
#   SCENARIOS      which scenarios, in order (default "register heartbeats fanout")
#   DURATION       measured seconds per register run (default 10; "10s" works too)
#   WARMUP         warm-up seconds before each register run (default 2; 0 = none)
#   REG_CONNS      connection counts of the register runs (default "32 128")
#   DURATION_HB    measured seconds of heartbeats (default 30)
#   HB_INSTANCES   ephemeral instances heart-beaten (default 50000)
#   WATCHERS       watchers in fanout (default 1000)
#   READY_TIMEOUT  seconds to wait for a server to take writes (default 30)
#   SKIP_BUILD=1   do not run cargo build (use CONCORD_BIN and BENCH_BIN as they are)
#   CONCORD_BIN    concord binary (default <repo>/target/release/concord)
#   BENCH_BIN      load generator (default <repo>/target/release/concord-bench)
#   BENCH_TMPDIR   where the temp data dirs go (default $TMPDIR or /tmp); must be a real
#                  disk, not tmpfs, or fsync means nothing (ALLOW_TMPFS=1 overrides)
#   KEEP_WORK=1    keep the temp dir (data dirs and server logs) after the run
#
# Exit status: 0 when every scenario passed its checks; 3 when one did not (register
# errors; heartbeat errors, expired instances or fewer instances left than registered;
# watch events missing or duplicated), with the report still written; anything else when
# the run itself failed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BENCH_NAME=registry
# shellcheck source-path=SCRIPTDIR/.. source=lib.sh
source "$HERE/../lib.sh"

help_or_no_args "$@"

SCENARIOS=${SCENARIOS:-"register heartbeats fanout"}
DURATION=${DURATION:-10}
DURATION=${DURATION%s}
WARMUP=${WARMUP:-2}
WARMUP=${WARMUP%s}
REG_CONNS=${REG_CONNS:-"32 128"}
DURATION_HB=${DURATION_HB:-30}
DURATION_HB=${DURATION_HB%s}
HB_INSTANCES=${HB_INSTANCES:-50000}
HB_CONNS=64
HB_TTL=15
HB_INTERVAL=5
WATCHERS=${WATCHERS:-1000}
FAN_REGISTRATIONS=20
FAN_INTERVAL_MS=500
READY_TIMEOUT=${READY_TIMEOUT:-30}
CONCORD_BIN=${CONCORD_BIN:-$REPO/target/release/concord}
BENCH_BIN=${BENCH_BIN:-$REPO/target/release/concord-bench}
RESULTS_DIR=$REPO/bench/results
# Nacos 2.0's published registration throughput: ~26,800 instances/s on three 8-core
# nodes, i.e. about 1,100 per core. A stated figure, not measured here.
ANCHOR_PER_CORE=1100

for v in DURATION WARMUP DURATION_HB HB_INSTANCES WATCHERS READY_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
((DURATION > 0 && DURATION_HB > 0 && HB_INSTANCES > 0 && WATCHERS > 0)) ||
    die "DURATION, DURATION_HB, HB_INSTANCES and WATCHERS must be > 0"
for c in $REG_CONNS; do
    [[ $c =~ ^[1-9][0-9]*$ ]] || die "REG_CONNS must be positive integers, got '$c'"
done
for s in $SCENARIOS; do
    [[ " register heartbeats fanout " == *" $s "* ]] ||
        die "unknown scenario '$s' in SCENARIOS (valid: register heartbeats fanout)"
done
[[ -n ${SCENARIOS// /} ]] || die "SCENARIOS is empty"
wants() { [[ " $SCENARIOS " == *" $1 "* ]]; }

command -v curl >/dev/null || die "curl is needed (apt-get install curl)"

# fanout holds one socket per watcher on each side; the limit is inherited by both
# processes started below.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if wants fanout && (($(ulimit -n) < WATCHERS + 256)); then
    die "the open-file limit is $(ulimit -n), too low for $WATCHERS watchers (raise the hard limit)"
fi

# The tree's revision when the run starts (the report is written minutes later).
CONCORD_REV=$(git_rev)
build_bins

# ---------------------------------------------------------------------------------------
# Work dir, servers, cleanup

make_work registry # sets WORK and DATA_FS; cleanup (servers, WORK) runs on exit

# What one synchronous 4 KiB write costs on the data dir's disk: the floor under every
# registration, which is an fsync'd Raft write.
FSYNC_COST=$(fsync_probe)

# ---------------------------------------------------------------------------------------
# Load

declare -A RES # RES[run|field], from the generator's BENCH_RESULT line
RUNS=()
: >"$WORK/results.txt"

# bench RUN SUBCOMMAND ARGS...: runs concord-bench against the current server and keeps
# its result fields under RUN.
bench() {
    local run=$1 kv line k
    shift
    log "$run: concord-bench $*"
    if ! "$BENCH_BIN" "$@" --url "$SERVER_URL" --pid "$SERVER_PID" --clk-tck "$CLK_TCK" \
        >"$WORK/$run.out"; then
        kill -0 "$SERVER_PID" 2>/dev/null || log "the server (pid $SERVER_PID) is gone; its last output:"
        tail -n 20 "$SERVER_DIR/stderr" >&2 || true
        die "concord-bench failed ($run)"
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited during $run"
    line=$(grep -m1 '^BENCH_RESULT ' "$WORK/$run.out") || die "no BENCH_RESULT line from concord-bench ($run)"
    echo "$run $line" >>"$WORK/results.txt"
    for kv in ${line#BENCH_RESULT }; do
        k=${kv%%=*}
        RES["$run|$k"]=${kv#*=}
    done
    RUNS+=("$run")
}

LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)

for s in $SCENARIOS; do
    case $s in
        register)
            for c in $REG_CONNS; do
                start_server "register-c$c"
                bench "register-c$c" register --conns "$c" --duration "$DURATION" --warmup "$WARMUP"
                stop_server
                log "register-c$c: ${RES[register-c$c|rps]} registrations/s, p99 ${RES[register-c$c|p99_ms]} ms, errors ${RES[register-c$c|errors]}, server ${RES[register-c$c|server_cores]} cores"
            done
            ;;
        heartbeats)
            start_server heartbeats
            bench heartbeats heartbeats --instances "$HB_INSTANCES" --ttl "$HB_TTL" \
                --interval "$HB_INTERVAL" --duration "$DURATION_HB" --conns "$HB_CONNS"
            stop_server
            log "heartbeats: ${RES[heartbeats|rate]}/s, errors ${RES[heartbeats|errors]}, server ${RES[heartbeats|server_cores]} cores, ${RES[heartbeats|remaining]} instances left"
            ;;
        fanout)
            start_server fanout
            bench fanout fanout --watchers "$WATCHERS" --registrations "$FAN_REGISTRATIONS" \
                --interval-ms "$FAN_INTERVAL_MS" --service fan
            stop_server
            log "fanout: ${RES[fanout|received]}/${RES[fanout|expected]} events, p99 ${RES[fanout|p99_ms]} ms"
            ;;
    esac
done

# ---------------------------------------------------------------------------------------
# Checks and report

for run in "${RUNS[@]}"; do
    case $run in
        register-*) check "${RES[$run|errors]} == 0" "$run: ${RES[$run|errors]} registrations failed" ;;
        heartbeats)
            check "${RES[$run|reg_errors]} == 0" "heartbeats: ${RES[$run|reg_errors]} registrations failed"
            check "${RES[$run|not_found]} == 0" "heartbeats: ${RES[$run|not_found]} heartbeats answered 404: instances expired"
            check "${RES[$run|errors]} == 0" "heartbeats: ${RES[$run|errors]} heartbeats failed (any non-200)"
            check "${RES[$run|remaining]} == $HB_INSTANCES" "heartbeats: ${RES[$run|remaining]} instances registered at the end, expected $HB_INSTANCES"
            ;;
        fanout)
            check "${RES[$run|reg_errors]} == 0" "fanout: ${RES[$run|reg_errors]} registrations failed"
            check "${RES[$run|received]} == ${RES[$run|expected]}" "fanout: ${RES[$run|received]} of ${RES[$run|expected]} events received"
            check "${RES[$run|duplicates]} == 0" "fanout: ${RES[$run|duplicates]} events delivered twice"
            ;;
    esac
done

report_register() {
    local run rps cores
    echo "## Registrations per second (closed loop, new persistent instances)"
    echo
    echo "${WARMUP}s warm-up, then ${DURATION}s measured, per connection count, each on a fresh server. Per core = registrations/s ÷ server CPU (cores). The anchor is Nacos 2.0's *published* ~26,800 instances/s on three 8-core nodes ≈ 1,100/s per core; it was not measured here."
    echo
    echo "| connections | registrations/s | p50 ms | p99 ms | max ms | errors | server CPU (cores) | per core (/s) | per core ÷ Nacos anchor | generator CPU (cores) |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for run in "${RUNS[@]}"; do
        [[ $run == register-* ]] || continue
        rps=${RES[$run|rps]} cores=${RES[$run|server_cores]}
        echo "| ${RES[$run|conns]} | $(calc "$rps") | ${RES[$run|p50_ms]} | ${RES[$run|p99_ms]} | ${RES[$run|max_ms]} | ${RES[$run|errors]} | $(calc "$cores" %.2f) | $(calc "$rps / $cores") | $(calc "$rps / $cores / $ANCHOR_PER_CORE" %.2f) | $(calc "${RES[$run|client_cores]}" %.2f) |"
    done
    echo
}

report_heartbeats() {
    local r=heartbeats
    echo "## Sustained heartbeats"
    echo
    echo "| | |"
    echo "|---|---:|"
    echo "| ephemeral instances (ttl ${HB_TTL}s, 100 services) | ${RES[$r|instances]} |"
    echo "| registration (paced at ≤ $(calc "${RES[$r|instances]} / $HB_INTERVAL")/s) | $(calc "${RES[$r|reg_secs]}" %.1f) s, $(calc "${RES[$r|instances]} / ${RES[$r|reg_secs]}")/s, ${RES[$r|reg_errors]} errors |"
    echo "| heartbeats asked for (one per instance every ${HB_INTERVAL}s, open loop, ${RES[$r|conns]} connections) | ${RES[$r|target_rate]}/s |"
    echo "| **heartbeats sent/s achieved** (${RES[$r|secs]}s window) | **$(calc "${RES[$r|rate]}")** |"
    echo "| heartbeats answered 200 in the window | ${RES[$r|ok]} of ${RES[$r|sent]} |"
    echo "| errors over the whole run (any non-200) / of which 404 (expired) | ${RES[$r|errors]} / ${RES[$r|not_found]} |"
    echo "| heartbeat latency p50 / p99 | ${RES[$r|p50_ms]} / ${RES[$r|p99_ms]} ms |"
    echo "| lateness against the schedule p99 / max (the generator keeping the rate) | ${RES[$r|late_p99_ms]} / ${RES[$r|late_max_ms]} ms |"
    echo "| **server CPU** over the window (goal: < 0.5 core: $(goal "${RES[$r|server_cores]}" 0.5)) | **$(calc "${RES[$r|server_cores]}" %.3f) cores** |"
    echo "| server RSS (VmRSS) at the end | $(calc "${RES[$r|server_rss_kib]} / 1024" %.1f) MiB |"
    echo "| **instances still registered at the end** (GET /v1/services) | **${RES[$r|remaining]}** of ${RES[$r|instances]} |"
    echo "| generator CPU over the window | $(calc "${RES[$r|client_cores]}" %.2f) cores |"
    echo
}

report_fanout() {
    local r=fanout
    echo "## Watch fan-out"
    echo
    echo "| | |"
    echo "|---|---:|"
    echo "| watchers (\`GET /v1/watch?service=fan\`, one connection each) | ${RES[$r|watchers]} |"
    echo "| registrations (fan/i-<r>, one every ${FAN_INTERVAL_MS} ms) | ${RES[$r|registrations]} (${RES[$r|reg_errors]} errors) |"
    echo "| **events received** (must be watchers × registrations) | **${RES[$r|received]}** of ${RES[$r|expected]} (${RES[$r|duplicates]} duplicates) |"
    echo "| **delivery latency p50 / p99 / max** (PUT sent → event received; goal p99 < 100 ms: $(goal "${RES[$r|p99_ms]}" 100)) | **${RES[$r|p50_ms]} / ${RES[$r|p99_ms]} / ${RES[$r|max_ms]} ms** |"
    echo "| server CPU while registering and delivering | $(calc "${RES[$r|server_cores]}" %.2f) cores |"
    echo
}

report() {
    local f
    echo "# Registry benchmark: concord dev ($STAMP)"
    echo
    echo "- concord: $(concord_desc), single node \`concord dev\` with default settings (fsync on), a fresh server and data dir per run"
    echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, kernel $(uname -srm)"
    echo "- load average (1/5/15 min) at start: $LOAD_AT_START, at end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown) (anything else busy on the machine skews the figures)"
    echo "- data dirs: $WORK (filesystem $DATA_FS); one 4 KiB O_DSYNC write there took $FSYNC_COST (dd, mean of 200)"
    echo "- load: concord-bench (crates/concord-bench) on the same machine over loopback, HTTP/1.1, one request in flight per connection; server CPU is utime+stime of /proc/PID/stat over the measured window ÷ its wall time"
    echo
    if wants register; then report_register; fi
    if wants heartbeats; then report_heartbeats; fi
    if wants fanout; then report_fanout; fi
    report_checks "All checks passed (no registration errors; no heartbeat errors or expired instances; every watch event delivered once)."
    echo
    report_raw "$WORK/results.txt" "concord-bench result lines"
}

write_report # to stdout and bench/results/registry-$STAMP.md; exits 3 when a check failed
