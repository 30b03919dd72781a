#!/usr/bin/env bash
# bench/config/run.sh: configuration push of one `concord dev` node: how long a published
# version takes to reach 1,000 listeners of the item.
#
#   bench/config/run.sh                            the full run (about 30 s after the build)
#   WATCHERS=100 PUBLISHES=5 bench/config/run.sh   quick smoke run
#
# The run gets a fresh `concord dev --addr 127.0.0.1:0 --peer-addr 127.0.0.1:0` on a fresh
# data dir (default durability: fsync on); the harness reads its port from the first line
# it prints (`concord listening: client=http://ADDR peer=…`). The load comes from
# `concord-bench config-fanout` (crates/concord-bench) on the same machine, over
# loopback, HTTP/1.1:
#
#   1. PUT /v1/config/bench/app/config.yaml?format=yaml publishes version 1 (a few
#      hundred bytes of YAML);
#   2. WATCHERS listeners open GET /v1/watch?config=bench/app/config.yaml, each on its
#      own connection; the run goes on once every one has its 200;
#   3. PUBLISHES new versions are published, one every 500 ms, each with different
#      YAML content. Latency per (publish, listener): from sending the PUT to that
#      listener receiving the `publish` event carrying the version the PUT created.
#
# The goal, shown in the report as met or missed (a miss does not fail the run): p99
# from publish to 1,000 listeners under 1 s on one node. Nacos is not run here; the
# report only quotes, as an anchor, how its listeners are served (30 s long polling)
# and what its users report (pushes delayed by seconds to minutes).
#
# Output: a markdown report on stdout and in bench/results/config-<UTC timestamp>.md,
# with the generator's result line in it.
#
# Environment:
#   WATCHERS       listeners of the item (default 1000)
#   PUBLISHES      versions published after version 1 (default 20)
#   READY_TIMEOUT  seconds to wait for the server to take writes (default 30)
#   SKIP_BUILD=1   do not run cargo build (use CONCORD_BIN and BENCH_BIN as they are)
#   CONCORD_BIN    concord binary (default <repo>/target/release/concord)
#   BENCH_BIN      load generator (default <repo>/target/release/concord-bench)
#   BENCH_TMPDIR   where the temp data dir goes (default $TMPDIR or /tmp); must be a real
#                  disk, not tmpfs, or fsync means nothing (ALLOW_TMPFS=1 overrides)
#   KEEP_WORK=1    keep the temp dir (data dir and server logs) after the run
#
# Exit status: 0 when every check passed; 3 when one did not (a publish failed; publish
# events missing, duplicated or out of version order for some listener), with the
# report still written; anything else when the run itself failed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BENCH_NAME=config
# shellcheck source-path=SCRIPTDIR/.. source=lib.sh
source "$HERE/../lib.sh"

help_or_no_args "$@"

WATCHERS=${WATCHERS:-1000}
PUBLISHES=${PUBLISHES:-20}
INTERVAL_MS=500
CONFIG=bench/app/config.yaml
READY_TIMEOUT=${READY_TIMEOUT:-30}
CONCORD_BIN=${CONCORD_BIN:-$REPO/target/release/concord}
BENCH_BIN=${BENCH_BIN:-$REPO/target/release/concord-bench}
RESULTS_DIR=$REPO/bench/results
# The goal: p99 from publish to every listener under 1 s (1,000 listeners, one node).
GOAL_P99_MS=1000

for v in WATCHERS PUBLISHES READY_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
((WATCHERS > 0 && PUBLISHES > 0)) || die "WATCHERS and PUBLISHES must be > 0"

command -v curl >/dev/null || die "curl is needed (apt-get install curl)"

# One socket per listener on each side; the limit is inherited by both processes
# started below.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < WATCHERS + 256)); then
    die "the open-file limit is $(ulimit -n), too low for $WATCHERS listeners (raise the hard limit)"
fi

# The tree's revision when the run starts (the report is written later).
CONCORD_REV=$(git_rev)
build_bins

# ---------------------------------------------------------------------------------------
# Work dir, server, cleanup

make_work config # sets WORK and DATA_FS; cleanup (server, WORK) runs on exit
CLEANUP_GRACE=100 # on exit, the server gets up to 10 s to stop before KILL

# What one synchronous 4 KiB write costs on the data dir's disk: the floor under every
# publish, which is an fsync'd Raft write.
FSYNC_COST=$(fsync_probe)

# ---------------------------------------------------------------------------------------
# Load

LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)

start_server server # in $WORK/server
log "config-fanout: concord-bench config-fanout --watchers $WATCHERS --publishes $PUBLISHES"
if ! "$BENCH_BIN" config-fanout --watchers "$WATCHERS" --publishes "$PUBLISHES" \
    --interval-ms "$INTERVAL_MS" --config "$CONFIG" \
    --url "$SERVER_URL" --pid "$SERVER_PID" --clk-tck "$CLK_TCK" >"$WORK/bench.out"; then
    kill -0 "$SERVER_PID" 2>/dev/null || log "the server (pid $SERVER_PID) is gone; its last output:"
    tail -n 20 "$SERVER_DIR/stderr" >&2 || true
    die "concord-bench config-fanout failed"
fi
kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited during the run"
LINE=$(grep -m1 '^BENCH_RESULT ' "$WORK/bench.out") || die "no BENCH_RESULT line from concord-bench"

declare -A RES # RES[field], from the generator's BENCH_RESULT line
for kv in ${LINE#BENCH_RESULT }; do
    RES["${kv%%=*}"]=${kv#*=}
done
for k in publish_errors expected received duplicates out_of_order p99_ms; do
    [[ -n ${RES[$k]:-} ]] || die "no $k in the result line: $LINE"
done
log "config-fanout: ${RES[received]}/${RES[expected]} events, p50 ${RES[p50_ms]} ms, p99 ${RES[p99_ms]} ms, max ${RES[max_ms]} ms, server ${RES[server_cores]} cores"

# ---------------------------------------------------------------------------------------
# Checks and report

check "${RES[publish_errors]} == 0" "${RES[publish_errors]} of $PUBLISHES publishes failed"
check "${RES[received]} == ${RES[expected]}" "${RES[received]} of ${RES[expected]} publish events received"
check "${RES[duplicates]} == 0" "${RES[duplicates]} publish events delivered twice"
check "${RES[out_of_order]} == 0" "${RES[out_of_order]} publish events arrived after a later version"

verdict() {
    local v
    v=$(goal "${RES[p99_ms]}" "$GOAL_P99_MS")
    if ((${#FAILED[@]})); then
        echo "**Verdict: not established**: the checks below failed, so the latency figures leave out events that never arrived (p99 ${RES[p99_ms]} ms over the ones that did)."
    elif [[ $v == met ]]; then
        echo "**Verdict: goal met**: p99 from publish to all $WATCHERS listeners was ${RES[p99_ms]} ms, under 1 s, on one node."
    else
        echo "**Verdict: goal missed**: p99 from publish to all $WATCHERS listeners was ${RES[p99_ms]} ms, not under 1 s."
    fi
    if ((WATCHERS != 1000)); then
        echo
        echo "(This run had $WATCHERS listeners; the goal is stated for 1,000.)"
    fi
}

report() {
    local f
    echo "# Config push benchmark: concord dev ($STAMP)"
    echo
    echo "Goal: p99 from publish to 1,000 listeners under 1 s on one node."
    echo
    echo "- concord: $(concord_desc), single node \`concord dev\` with default settings (fsync on), a fresh server and data dir"
    echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, kernel $(uname -srm)"
    echo "- load average (1/5/15 min) at start: $LOAD_AT_START, at end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown) (anything else busy on the machine skews the figures)"
    echo "- data dir: $WORK (filesystem $DATA_FS); one 4 KiB O_DSYNC write there took $FSYNC_COST (dd, mean of 200)"
    echo "- load: concord-bench config-fanout (crates/concord-bench) on the same machine over loopback, HTTP/1.1; server CPU is utime+stime of /proc/PID/stat from the first publish until the last event arrived ÷ that wall time"
    echo
    echo "## Publish to listeners"
    echo
    echo "| | |"
    echo "|---|---:|"
    echo "| listeners (\`GET /v1/watch?config=$CONFIG\`, one connection each) | ${RES[watchers]} (all connected in $(calc "${RES[connect_secs]}" %.1f) s) |"
    echo "| publishes (\`PUT /v1/config/$CONFIG?format=yaml\`, ${RES[content_bytes]} bytes of YAML, one every ${INTERVAL_MS} ms, after version ${RES[first_version]}) | ${RES[publishes]} (${RES[publish_errors]} errors) |"
    echo "| **events received** (must be listeners × publishes) | **${RES[received]}** of ${RES[expected]} (${RES[duplicates]} duplicates, ${RES[out_of_order]} out of version order) |"
    echo "| **publish → listener p50 / p99 / max** (PUT sent → \`publish\` event of that version received; goal p99 < 1 s: $(goal "${RES[p99_ms]}" "$GOAL_P99_MS")) | **${RES[p50_ms]} / ${RES[p99_ms]} / ${RES[max_ms]} ms** |"
    echo "| PUT answered p50 / max (commit, fsync and apply) | ${RES[put_p50_ms]} / ${RES[put_max_ms]} ms |"
    echo "| server CPU while publishing and delivering | $(calc "${RES[server_cores]}" %.2f) cores |"
    echo "| server RSS (VmRSS) at the end, listeners still open | $(calc "${RES[server_rss_kib]} / 1024" %.1f) MiB |"
    echo "| generator CPU over the same window | $(calc "${RES[client_cores]}" %.2f) cores |"
    echo
    verdict
    echo
    echo "Anchor (not measured; Nacos is not run here): Nacos config listeners are served by"
    echo "30 s long polling, and users report pushes delayed by seconds to minutes. These are"
    echo "stated figures, quoted for scale only; they are not comparable measurements."
    echo
    report_checks "All checks passed (every publish accepted; every listener received every version once, in order)."
    echo
    echo "<details><summary>concord-bench result line</summary>"
    echo
    echo '```'
    echo "$LINE"
    echo '```'
    echo
    echo "</details>"
}

write_report # to stdout and bench/results/config-$STAMP.md; exits 3 when a check failed
