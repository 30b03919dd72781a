#!/usr/bin/env bash
# bench/kv/run.sh: KV throughput and latency, `concord dev` against etcd 3.4, in one run.
#
# Both servers are single nodes on loopback with fsync on (etcd's default; concord's
# default), each on a fresh data dir in a temp dir. The load is wrk with the Lua scripts
# beside this file:
#   put-c1, put-c32, put-c128   PUT of 256-byte values to key-<n mod 10000>
#   get-c32, get-c128           linearizable GETs of keys that exist (seeded first)
# For each scenario the targets run back to back (etcd, then concord), each with a
# short warm-up, so drift over the run hits both alike.
#
# Output: a markdown table on stdout and in bench/results/kv-<timestamp>.md, plus the
# raw wrk output in bench/results/kv-<timestamp>.raw.txt.
#
# Environment:
#   DURATION       seconds per measured run (default 10; "10s" works too)
#   WARMUP         seconds of warm-up before each measured run (default 2; 0 = none)
#   TARGETS        which servers, in run order (default "etcd concord")
#   PUT_CONNS      connection counts for PUT (default "1 32 128")
#   GET_CONNS      connection counts for GET (default "32 128")
#   BENCH_KEYS     distinct keys (default 10000)
#   WRK_TIMEOUT    wrk per-request timeout; a timeout counts as an error (default 5s)
#   READY_TIMEOUT  seconds to wait for a server to serve writes (default 60)
#   SKIP_INSTALL=1 do not apt-get install missing tools
#   SKIP_BUILD=1   do not run cargo build (use CONCORD_BIN as it is)
#   CONCORD_BIN    concord binary (default <repo>/target/release/concord)
#   BENCH_TMPDIR   where the temp data dirs go (default $TMPDIR or /tmp); must be a
#                  real disk, not tmpfs, or fsync means nothing (ALLOW_TMPFS=1 overrides)
#   KEEP_WORK=1    keep the temp dir (data dirs and server logs) after the run
#
# Exit status: 0 when every run was clean, 3 when some run had errors (the results are
# still written, with those runs flagged), anything else when the run itself failed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

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

log() { printf '[kv-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for v in DURATION WARMUP BENCH_KEYS READY_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number of seconds/keys, got '${!v}'"
done
((DURATION > 0)) || die "DURATION must be > 0"
for c in $PUT_CONNS $GET_CONNS; do
    [[ $c =~ ^[1-9][0-9]*$ ]] || die "connection counts must be positive integers, got '$c'"
done
for t in $TARGETS; do
    case $t in etcd | concord) ;; *) die "unknown target '$t' in TARGETS (etcd, concord)" ;; esac
done

# ---------------------------------------------------------------------------------------
# Tools

install_missing() {
    local pkgs=()
    command -v wrk >/dev/null || pkgs+=(wrk)
    command -v curl >/dev/null || pkgs+=(curl)
    if [[ " $TARGETS " == *" etcd "* ]] && ! command -v etcd >/dev/null && [[ ! -x /usr/bin/etcd ]]; then
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

if [[ " $TARGETS " == *" concord "* ]]; then
    if [[ ${SKIP_BUILD:-0} != 1 ]]; then
        log "building concord (cargo build --release -p concord)"
        (cd "$REPO" && cargo build --release -p concord >&2) ||
            die "cargo build failed; TARGETS=etcd runs etcd alone"
    fi
    [[ -x $CONCORD_BIN ]] || die "no concord binary at $CONCORD_BIN"
fi

# ---------------------------------------------------------------------------------------
# Work dir, processes, cleanup

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/concord-kv-bench.XXXXXX")
DATA_FS=$(findmnt -no FSTYPE -T "$WORK" 2>/dev/null || stat -f -c %T "$WORK" 2>/dev/null || echo unknown)
if [[ $DATA_FS == tmpfs || $DATA_FS == ramfs ]] && [[ ${ALLOW_TMPFS:-0} != 1 ]]; then
    rm -rf "$WORK"
    die "$WORK is on $DATA_FS, where fsync costs nothing; set BENCH_TMPDIR to a real disk (or ALLOW_TMPFS=1)"
fi

# What one synchronous 4 KiB write costs on the data dirs' disk (dd with O_DSYNC, 200
# writes): the floor under every fsync'd write of both servers, recorded with the results.
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
FSYNC_COST=$(fsync_probe)

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ ${KEEP_WORK:-0} == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

USED_PORTS=" "
free_port() {
    local p listening
    listening=$(ss -Htln 2>/dev/null | awk '{print $4}' | sed 's/.*://' | tr '\n' ' ' || true)
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 30000))
        [[ $USED_PORTS == *" $p "* || " $listening " == *" $p "* ]] && continue
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then continue; fi
        USED_PORTS+="$p "
        echo "$p"
        return 0
    done
    die "no free loopback port found"
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

ETCD_URL=""
etcd_check() {
    curl -sf -m 2 -o /dev/null -X POST "$ETCD_URL/v3/kv/put" \
        -H 'Content-Type: application/json' -d '{"key":"X19iZW5jaF9yZWFkeQ==","value":"MQ=="}'
}
start_etcd() {
    local cport pport
    cport=$(free_port)
    pport=$(free_port)
    ETCD_URL=http://127.0.0.1:$cport
    log "starting etcd ($("$ETCD_BIN" --version | head -n1)) client=$ETCD_URL peer port $pport"
    # fsync stays on: no --unsafe-no-fsync. Everything else is etcd's default.
    "$ETCD_BIN" --name kvbench --data-dir "$WORK/etcd-data" \
        --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
        --listen-peer-urls "http://127.0.0.1:$pport" \
        --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
        --initial-cluster "kvbench=http://127.0.0.1:$pport" --initial-cluster-state new \
        --logger zap --log-level warn >"$WORK/etcd.log" 2>&1 &
    PIDS+=($!)
    wait_ready etcd $! "$WORK/etcd.log" etcd_check
}

CONCORD_URL=""
concord_check() {
    local line
    line=$(grep -m1 'concord listening:' "$WORK/concord.log" 2>/dev/null) || return 1
    if [[ $line =~ client=(http://[^[:space:]]+) ]]; then CONCORD_URL=${BASH_REMATCH[1]%/}; fi
    curl -sf -m 2 -o /dev/null -X PUT --data-binary 1 "$CONCORD_URL/v1/kv/__bench_ready"
}
start_concord() {
    local cport pport
    cport=$(free_port)
    pport=$(free_port)
    CONCORD_URL=http://127.0.0.1:$cport
    log "starting concord dev client=$CONCORD_URL peer port $pport"
    "$CONCORD_BIN" dev --data-dir "$WORK/concord-data" \
        --addr "127.0.0.1:$cport" --peer-addr "127.0.0.1:$pport" >"$WORK/concord.log" 2>&1 &
    PIDS+=($!)
    wait_ready concord $! "$WORK/concord.log" concord_check
}

url_of() {
    case $1 in etcd) echo "$ETCD_URL" ;; concord) echo "$CONCORD_URL" ;; esac
}

# ---------------------------------------------------------------------------------------
# Seeding: every key key-0 .. key-(BENCH_KEYS-1) written once, so GETs hit existing keys.

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

# curl_cfg_entry TARGET OP URL INDEX: one curl config block (ends with "next").
curl_cfg_entry() {
    local target=$1 op=$2 url=$3 i=$4
    case $target/$op in
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

# curl_keys TARGET OP KEYFILE: runs OP for every key index in KEYFILE with
# SEED_PARALLEL sequential (keep-alive) curl processes; writes the indexes whose
# answer was not 2xx to KEYFILE.failed.
curl_keys() {
    local target=$1 op=$2 keyfile=$3 dir n url pids=()
    url=$(url_of "$target")
    dir=$(mktemp -d "$WORK/curl.XXXXXX")
    split -n "l/$SEED_PARALLEL" -d "$keyfile" "$dir/chunk."
    for chunk in "$dir"/chunk.*; do
        [[ -s $chunk ]] || continue
        while read -r n; do curl_cfg_entry "$target" "$op" "$url" "$n"; done <"$chunk" >"$chunk.cfg"
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

seed_target() {
    local target=$1 keys="$WORK/seed-$1.keys" round failed
    seq 0 $((BENCH_KEYS - 1)) >"$keys"
    for round in 1 2 3; do
        curl_keys "$target" put "$keys"
        failed=$(wc -l <"$keys.failed")
        ((failed == 0)) && break
        log "$target seed round $round: $failed writes failed, retrying them"
        mv "$keys.failed" "$keys"
    done
    ((failed == 0)) || die "$target: $failed keys could not be written while seeding"

    # Check that every key reads back (GET errors in the benchmark are then real errors).
    case $target in
        etcd)
            local count
            b64 "key-"
            local from=$REPLY
            b64 "key."
            count=$(curl -sf -m 10 -X POST "$ETCD_URL/v3/kv/range" -H 'Content-Type: application/json' \
                -d "{\"key\":\"$from\",\"range_end\":\"$REPLY\",\"count_only\":true}" |
                sed -n 's/.*"count":"\{0,1\}\([0-9]*\).*/\1/p')
            [[ ${count:-0} -ge $BENCH_KEYS ]] || die "etcd: $count keys under key- after seeding, expected $BENCH_KEYS"
            ;;
        concord)
            seq 0 $((BENCH_KEYS - 1)) >"$keys"
            curl_keys concord get "$keys"
            failed=$(wc -l <"$keys.failed")
            ((failed == 0)) || die "concord: $failed seeded keys do not read back (e.g. key-$(head -n1 "$keys.failed"))"
            ;;
    esac
    log "$target seeded: $BENCH_KEYS keys of $BENCH_VALUE_SIZE bytes"
}

# ---------------------------------------------------------------------------------------
# Load

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RESULTS_DIR"
OUT_MD="$RESULTS_DIR/kv-$STAMP.md"
OUT_RAW="$RESULTS_DIR/kv-$STAMP.raw.txt"
: >"$OUT_RAW"

declare -A RES      # RES[target|scenario|field]
SCENARIOS=()
ANY_ERRORS=0

# run_wrk TARGET OP CONNS SECONDS LABEL: runs wrk; prints its BENCH_RESULT line.
run_wrk() {
    local target=$1 op=$2 conns=$3 secs=$4 label=$5 threads out
    threads=$((conns >= 2 && conns % 2 == 0 ? 2 : 1)) # min(2, conns); wrk needs conns % threads == 0
    out="$WORK/wrk.out"
    {
        echo "===== $label: $target $op c=$conns t=$threads d=${secs}s"
        echo "\$ wrk -t$threads -c$conns -d${secs}s --timeout $WRK_TIMEOUT -s ${target}_${op}.lua $(url_of "$target")"
    } >>"$OUT_RAW"
    # wrk stops by itself after secs; the outer timeout is a backstop.
    if ! timeout $((secs + 60)) wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout "$WRK_TIMEOUT" \
        -s "$HERE/${target}_${op}.lua" "$(url_of "$target")" >"$out" 2>&1; then
        cat "$out" >>"$OUT_RAW"
        cat "$out" >&2
        die "wrk failed ($label $target $op c=$conns)"
    fi
    cat "$out" >>"$OUT_RAW"
    grep -m1 '^BENCH_RESULT ' "$out" || die "no BENCH_RESULT line from wrk ($label $target $op c=$conns)"
}

scenario() {
    local op=$1 conns=$2 name="$1-c$2" target line kv k v errs
    SCENARIOS+=("$name")
    for target in $TARGETS; do
        if ((WARMUP > 0)); then
            log "$name $target: warm-up ${WARMUP}s"
            run_wrk "$target" "$op" "$conns" "$WARMUP" warmup >/dev/null
        fi
        log "$name $target: ${DURATION}s"
        line=$(run_wrk "$target" "$op" "$conns" "$DURATION" measured)
        echo "$target $name $line" >>"$WORK/results.txt"
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
for target in $TARGETS; do "start_$target"; done

for c in $PUT_CONNS; do scenario put "$c"; done
if [[ -n ${GET_CONNS// /} ]]; then
    for target in $TARGETS; do seed_target "$target"; done
    for c in $GET_CONNS; do scenario get "$c"; done
fi

# ---------------------------------------------------------------------------------------
# Report

git_rev() {
    local rev
    rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null) || { echo unknown; return; }
    if [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]]; then rev+="-dirty"; fi
    echo "$rev"
}

has() { [[ " $TARGETS " == *" $1 "* ]]; }
fmt_rps() { printf '%.0f' "$1"; }
fmt_ms() { printf '%.2f' "$1"; }

cell() { # cell TARGET SCENARIO -> "req/s | p50 | p99"
    local t=$1 s=$2
    if ! has "$t"; then echo "— | — | —"; return; fi
    local rps
    rps=$(fmt_rps "${RES[$t|$s|rps]}")
    if [[ ${RES[$t|$s|errors]} != 0 ]]; then rps+=" ⚠"; fi
    echo "$rps | $(fmt_ms "${RES[$t|$s|p50_ms]}") | $(fmt_ms "${RES[$t|$s|p99_ms]}")"
}

report() {
    local s ratio errs
    echo "# KV benchmark: concord dev vs etcd ($STAMP)"
    echo
    echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, kernel $(uname -srm)"
    echo "- load average (1/5/15 min) at start: $LOAD_AT_START, at end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown) (anything else busy on the machine skews the figures)"
    echo "- data dirs: $WORK (filesystem $DATA_FS), fresh for this run; one 4 KiB O_DSYNC write there took $FSYNC_COST (dd, mean of 200)"
    if has etcd; then echo "- etcd: $("$ETCD_BIN" --version | head -n1 | sed 's/^etcd Version: //'), single node, fsync on (default flags, no --unsafe-no-fsync)"; fi
    if has concord; then echo "- concord: git $(git_rev), single node \`concord dev\` with default durability settings (fsync on; no flag passed to change it)"; fi
    echo "- load: $(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}') on the same machine over loopback; threads = min(2, connections); timeout $WRK_TIMEOUT"
    echo "- each run: ${DURATION}s measured after ${WARMUP}s warm-up; targets alternate per scenario (order: $TARGETS)"
    echo "- PUT: ${BENCH_VALUE_SIZE}-byte values to key-<n mod $BENCH_KEYS>; GET: linearizable reads of the $BENCH_KEYS seeded keys"
    echo "- req/s is writes/s for put-* and reads/s for get-*; latency in ms; ratio = concord req/s ÷ etcd req/s; ⚠ = the run had errors (see the errors column)"
    echo
    echo "| scenario | etcd req/s | etcd p50 | etcd p99 | concord req/s | concord p50 | concord p99 | concord/etcd | errors etcd/concord |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
    for s in "${SCENARIOS[@]}"; do
        ratio="—"
        if has etcd && has concord; then
            ratio=$(awk -v c="${RES[concord|$s|rps]}" -v e="${RES[etcd|$s|rps]}" \
                'BEGIN { if (e > 0) printf "%.2f", c / e; else print "n/a" }')
        fi
        errs="$(has etcd && echo "${RES[etcd|$s|errors]}" || echo —)/$(has concord && echo "${RES[concord|$s|errors]}" || echo —)"
        echo "| $s | $(cell etcd "$s") | $(cell concord "$s") | $ratio | $errs |"
    done
    echo
    if ((ANY_ERRORS)); then
        echo "**Some runs had errors (⚠): their figures are not comparable as they stand.**"
        echo
    fi
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
if ((ANY_ERRORS)); then
    log "some runs had errors; exiting 3"
    exit 3
fi
