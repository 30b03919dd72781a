# shellcheck shell=bash
# bench/lib.sh: the pieces the benchmark harnesses share. Sourced, never run:
#
#   HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
#   REPO=$(cd "$HERE/../.." && pwd)
#   BENCH_NAME=registry
#   # shellcheck source-path=SCRIPTDIR/.. source=lib.sh
#   source "$HERE/../lib.sh"
#
# Sourcing it only defines functions and sets PIDS=(), FAILED=(), SERVER_PID="",
# SERVER_URL="", SERVER_DIR="" and CLEANUP_GRACE=50; nothing runs. The script must have set
# BENCH_NAME first (log and die need it from the start); the other globals a function reads
# must be set by the time it is called. The script keeps its own `set -euo pipefail`.
#
# Logging and arguments
#   log MSG...        prints "[<BENCH_NAME>-bench HH:MM:SS] MSG" to stderr.
#                     Reads BENCH_NAME.
#   die MSG...        logs "error: MSG" and exits 1 (the EXIT trap, if set, still runs).
#   print_help        prints the running script's header comment (from line 2 up to its
#                     `set -euo pipefail` line) without the leading "# ". Reads $0.
#   help_or_no_args "$@"
#                     for a script that takes no arguments; looks at the first one: -h or
#                     --help prints the help and exits 0; none returns; anything else dies.
#
# Build and revision
#   git_rev           prints the short HEAD of the tree at REPO, with "-dirty" when tracked
#                     files have changes, or "unknown" outside git. Reads REPO.
#   build_bins        unless SKIP_BUILD=1, runs `cargo build --release -p concord -p
#                     concord-bench` in REPO; then dies unless CONCORD_BIN and BENCH_BIN are
#                     executable. Reads REPO, SKIP_BUILD, CONCORD_BIN, BENCH_BIN; sets CLK_TCK
#                     (clock ticks per second, for concord-bench --clk-tck).
#   concord_desc      "git <CONCORD_REV>", plus the binary's path and sha256 when this run did
#                     not build it (SKIP_BUILD=1 or a CONCORD_BIN other than the tree's own).
#                     Reads CONCORD_REV (the script sets it from git_rev at start-up), REPO,
#                     CONCORD_BIN, SKIP_BUILD.
#
# Work dir and processes
#   make_work NAME    creates WORK=<BENCH_TMPDIR or TMPDIR or /tmp>/concord-NAME-bench.XXXXXX
#                     and sets DATA_FS to its filesystem type; on tmpfs or ramfs (where fsync
#                     costs nothing) removes it and dies, unless ALLOW_TMPFS=1. Then installs
#                     the traps: cleanup on EXIT, exit 130 on INT, exit 143 on TERM.
#   fsync_probe       prints what one synchronous 4 KiB write costs in WORK ("123 µs": dd
#                     with oflag=dsync, mean of 200 writes), or "unknown". Reads WORK.
#   cleanup           the EXIT trap: sends TERM to every pid in PIDS, then waits up to
#                     CLEANUP_GRACE tenths of a second for each (default 50: 5 s) before KILL,
#                     and reaps it; then removes WORK, or keeps it (and says so) when
#                     KEEP_WORK=1. Reads PIDS, CLEANUP_GRACE, WORK, KEEP_WORK.
#   start_server NAME starts a fresh `concord dev --addr 127.0.0.1:0 --peer-addr
#                     127.0.0.1:0` with data in SERVER_DIR/data, stdout and stderr in
#                     SERVER_DIR/{stdout,stderr}; reads the client URL from its first line
#                     (`concord listening: client=http://ADDR peer=…`) and returns once the
#                     server answers GET /v1/ready and takes a PUT /v1/kv/__bench_ready.
#                     Dies, with the output's tail, when it exits or READY_TIMEOUT seconds
#                     pass. Reads WORK, CONCORD_BIN, READY_TIMEOUT; sets SERVER_DIR=WORK/NAME,
#                     SERVER_PID and SERVER_URL (no trailing slash); appends the pid to PIDS.
#   stop_server       sends TERM to SERVER_PID, waits up to 10 s, then KILL, and reaps it;
#                     removes SERVER_DIR/data unless KEEP_WORK=1. Reads SERVER_PID,
#                     SERVER_DIR, KEEP_WORK.
#
# Checks and report
#   check COND MSG    appends MSG to FAILED when COND, an awk expression, is false.
#   calc EXPR [FMT]   prints the value of the awk expression EXPR with printf format FMT
#                     (default %.0f), or "n/a" when awk fails on it (a division by zero) or
#                     it is a nan.
#   goal VALUE LIMIT  prints "met" when VALUE is a number below LIMIT, else "**missed**".
#   write_report      runs the script's `report` function, writing its output to stdout and
#                     to OUT_MD=RESULTS_DIR/BENCH_NAME-STAMP.md (creating RESULTS_DIR), logs
#                     the file's name, and exits 3 when FAILED is not empty (else returns).
#                     Reads RESULTS_DIR, BENCH_NAME, STAMP, FAILED; sets OUT_MD.

PIDS=()          # every server pid started, for cleanup
FAILED=()        # messages of the checks that failed
SERVER_PID=""    # the server start_server started last
SERVER_URL=""
SERVER_DIR=""
CLEANUP_GRACE=50 # tenths of a second cleanup waits after TERM, per process

# ---------------------------------------------------------------------------------------
# Logging and arguments

log() { printf '[%s-bench %s] %s\n' "$BENCH_NAME" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

print_help() {
    sed -n '2,/^set -euo pipefail$/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

help_or_no_args() {
    case ${1:-} in
        -h | --help)
            print_help
            exit 0
            ;;
        "") ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
}

# ---------------------------------------------------------------------------------------
# Build and revision

git_rev() {
    local rev
    rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null) || { echo unknown; return; }
    if [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]]; then rev+="-dirty"; fi
    echo "$rev"
}

build_bins() {
    if [[ ${SKIP_BUILD:-0} != 1 ]]; then
        log "building (cargo build --release -p concord -p concord-bench)"
        (cd "$REPO" && cargo build --release -p concord -p concord-bench >&2) || die "cargo build failed"
    fi
    [[ -x $CONCORD_BIN ]] || die "no concord binary at $CONCORD_BIN"
    [[ -x $BENCH_BIN ]] || die "no concord-bench binary at $BENCH_BIN"
    # shellcheck disable=SC2034 # CLK_TCK is for the caller
    CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
}

concord_desc() {
    local d="git $CONCORD_REV"
    if [[ $CONCORD_BIN != "$REPO/target/release/concord" || ${SKIP_BUILD:-0} == 1 ]]; then
        d+=" at the start of the run (binary $CONCORD_BIN, sha256 $(sha256sum "$CONCORD_BIN" 2>/dev/null | cut -c1-12), not built by this run)"
    fi
    echo "$d"
}

# ---------------------------------------------------------------------------------------
# Work dir and processes

make_work() {
    WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/concord-$1-bench.XXXXXX")
    DATA_FS=$(findmnt -no FSTYPE -T "$WORK" 2>/dev/null | head -n1 || stat -f -c %T "$WORK" 2>/dev/null || echo unknown)
    if [[ $DATA_FS == tmpfs || $DATA_FS == ramfs ]] && [[ ${ALLOW_TMPFS:-0} != 1 ]]; then
        rm -rf "$WORK"
        die "$WORK is on $DATA_FS, where fsync costs nothing; set BENCH_TMPDIR to a real disk (or ALLOW_TMPFS=1)"
    fi
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

fsync_probe() {
    local secs
    secs=$(dd if=/dev/zero of="$WORK/fsync-probe" bs=4k count=200 oflag=dsync 2>&1 |
        sed -n 's/.* copied, \([0-9.]*\) s.*/\1/p')
    rm -f "$WORK/fsync-probe"
    if [[ -n $secs ]]; then
        awk -v s="$secs" 'BEGIN { printf "%.0f µs", s / 200 * 1e6 }'
    else
        echo "unknown"
    fi
}

# Ports for the servers come from below the kernel's ephemeral range, so the client side
# of some connection (wrk's, a proxy's to the origin) cannot hold one when a server binds
# it; a port any socket holds now is skipped too.
read -r EPHEMERAL_LOW _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || EPHEMERAL_LOW=32768
if ((EPHEMERAL_LOW > 12000)); then PORT_BASE=10000 PORT_SPAN=$((EPHEMERAL_LOW - 10000)); else PORT_BASE=20000 PORT_SPAN=20000; fi
USED_PORTS=" "
free_port() {
    local p taken
    taken=$(ss -Htan 2>/dev/null | awk '{print $4}' | sed 's/.*://' | tr '\n' ' ' || true)
    for _ in $(seq 200); do
        p=$((PORT_BASE + RANDOM % PORT_SPAN))
        [[ $USED_PORTS == *" $p "* || " $taken " == *" $p "* ]] && continue
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then continue; fi
        USED_PORTS+="$p "
        echo "$p"
        return 0
    done
    die "no free loopback port found"
}

# stop_pids GRACE PID...: SIGTERM every PID, give each GRACE tenths of a second to
# exit, then SIGKILL what is left and reap it.
stop_pids() {
    local grace=$1 pid
    shift
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        for _ in $(seq "$grace"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

# report_checks MESSAGE: the checks that failed (the caller's FAILED array), or
# MESSAGE when every check passed.
report_checks() {
    local f
    if ((${#FAILED[@]})); then
        echo "**Checks failed:**"
        echo
        for f in "${FAILED[@]}"; do echo "- $f"; done
    else
        echo "$1"
    fi
}

# report_raw FILE TITLE: FILE's lines in a collapsed block of the report.
report_raw() {
    echo "<details><summary>$2</summary>"
    echo
    echo '```'
    cat "$1"
    echo '```'
    echo
    echo "</details>"
}

cleanup() {
    stop_pids "$CLEANUP_GRACE" "${PIDS[@]}"
    if [[ ${KEEP_WORK:-0} == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}

start_server() {
    local line deadline=$((SECONDS + READY_TIMEOUT))
    SERVER_DIR=$WORK/$1
    mkdir -p "$SERVER_DIR"
    "$CONCORD_BIN" dev --addr 127.0.0.1:0 --peer-addr 127.0.0.1:0 --data-dir "$SERVER_DIR/data" \
        >"$SERVER_DIR/stdout" 2>"$SERVER_DIR/stderr" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    SERVER_URL=""
    while ((SECONDS < deadline)); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            tail -n 30 "$SERVER_DIR/stdout" "$SERVER_DIR/stderr" >&2 || true
            die "concord exited during start-up (output above)"
        fi
        if [[ -z $SERVER_URL ]]; then
            line=$(head -n1 "$SERVER_DIR/stdout" 2>/dev/null || true)
            if [[ $line =~ ^concord\ listening:\ client=(http://[^[:space:]]+) ]]; then
                SERVER_URL=${BASH_REMATCH[1]%/}
            fi
        fi
        if [[ -n $SERVER_URL ]] && curl -sf -m 2 -o /dev/null "$SERVER_URL/v1/ready" &&
            curl -sf -m 2 -o /dev/null -X PUT --data-binary 1 "$SERVER_URL/v1/kv/__bench_ready"; then
            log "concord ready: $SERVER_URL (pid $SERVER_PID, data in $SERVER_DIR/data)"
            return 0
        fi
        sleep 0.1
    done
    tail -n 30 "$SERVER_DIR/stdout" "$SERVER_DIR/stderr" >&2 || true
    die "concord not ready after ${READY_TIMEOUT}s (output above)"
}

stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    if [[ ${KEEP_WORK:-0} != 1 ]]; then rm -rf "$SERVER_DIR/data"; fi
}

# ---------------------------------------------------------------------------------------
# Checks and report

check() {
    if ! awk "BEGIN { exit !($1) }"; then FAILED+=("$2"); fi
}

calc() {
    awk "BEGIN { v = $1; if (v != v || v == \"inf\") print \"n/a\"; else printf \"${2:-%.0f}\", v }" 2>/dev/null || echo n/a
}

goal() {
    if [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]] && awk -v v="$1" -v l="$2" 'BEGIN { exit !(v < l) }'; then
        echo "met"
    else
        echo "**missed**"
    fi
}

write_report() {
    mkdir -p "$RESULTS_DIR"
    OUT_MD=$RESULTS_DIR/$BENCH_NAME-$STAMP.md
    report | tee "$OUT_MD"
    log "results: $OUT_MD"
    if ((${#FAILED[@]})); then
        log "some checks failed; exiting 3"
        exit 3
    fi
}
