#!/usr/bin/env bash
# bench/gateway/run.sh: the Concord gateway against nginx and haproxy as reverse proxies,
# side by side in one run, on loopback.
#
#   bench/gateway/run.sh                          the full run (about 4 minutes after the build)
#   DURATION=3 WARMUP=1 bench/gateway/run.sh      quick smoke run
#
# One origin and three proxies (and the hyper floor) in front of it, all started here
# from config files in the work dir, as the current user, on free 127.0.0.1 ports (the
# system services, if any, are not used):
#
#   origin    nginx, 1 worker, `return 200 "ok";`
#   nginx     nginx as a proxy, 1 worker: `upstream` with `keepalive 64`,
#             `proxy_http_version 1.1`, `proxy_set_header Connection ""`; a second port
#             speaks h2c (`listen PORT http2;`, or `http2 on;` from nginx 1.25.1)
#   haproxy   `nbthread 1`, `mode http`, `http-reuse always`; a second port with `proto h2`
#   concord   `concord gateway --threads 1`, following a `concord dev` node that holds one
#             route ({"match":{"path_prefix":"/"},"service":"origin","lb":"round_robin"})
#             and one instance of `origin` (the origin's port); it speaks HTTP/1.1 and
#             h2c on one port. The harness polls it until a request through it is a 200.
#   floor     `concord-bench hyper-floor` (HTTP/1.1 only, unless FLOOR=0): the least a
#             proxy built on hyper can do (hyper server, one upstream hyper connection per
#             client connection, nothing else; same runtime and allocator as the
#             gateway). A yardstick, not a contender: it is left out of the goal's verdict,
#             and the report shows what the gateway costs above it.
# Both nginx servers and the origin side of every proxy keep connections open for up to
# 1,000,000 requests (`keepalive_requests`), so no proxy pays for nginx's default
# reconnect every 1,000 requests; access logs are off everywhere.
#
# HTTP/1.1: `wrk -t1 -cCONNS -dDURATION --latency` against the origin directly (`direct`),
# then nginx, haproxy, the hyper floor and concord; ROUNDS rounds of that order, each run after its own
# WARMUP-second warm-up. HTTP/2 (unless H2=0): `h2load -t1 -cCONNS -mH2_STREAMS
# -DDURATION` (h2c prior knowledge) against nginx, haproxy and concord, the same way; a
# proxy whose h2c port does not answer a probe is left out and named in the report.
# h2load's percentiles come from its --log-file (one line per request).
#
# CPU per request: utime+stime from /proc/PID/stat of every process of the target (nginx:
# master and worker; haproxy and the gateway: one process, all threads) over the measured
# run ÷ the requests it served. The origin's and the load generator's CPU are recorded
# too: on a 2-core machine load generator, proxy and origin share two cores, and the
# report shows who had them. The `concord dev` node the gateway follows sits idle during
# the load and is not counted.
#
# The report sets the figures against the issue's (on this machine class: direct about
# 70k req/s, nginx proxy about 32k, haproxy about 31-33k) and its goal (Concord at or above
# both proxies in requests/s, with p99 no worse), with a verdict. A missed goal does not
# fail the run.
#
# Output: a markdown report on stdout and in bench/results/gateway-<UTC timestamp>.md, the
# raw wrk/h2load output and the server configs beside it in .raw.txt.
#
# Environment:
#   DURATION       seconds per measured run (default 10; "10s" works too)
#   WARMUP         seconds of warm-up before each measured run (default 2; 0 = none)
#   ROUNDS         rounds over the targets, per protocol (default 2)
#   CONNS          connections of wrk and h2load (default 50)
#   H2             1 runs the HTTP/2 part (default), 0 skips it
#   INSTRUCTIONS=1 instead of timing, count each proxy's user-space instructions per
#                  request under valgrind's callgrind (HTTP/1.1; nginx, haproxy, the floor
#                  and concord; valgrind is installed when missing): counts do not move
#                  with the machine's load, so they compare builds where timings are too
#                  noisy to. Report: bench/results/gateway-instructions-<UTC timestamp>.md
#   IR_SECONDS     seconds of load per proxy in that mode (default 5)
#   IR_CONNS       wrk connections in that mode (default 20)
#   FLOOR          1 runs the hyper floor (default), 0 skips it
#   SAME_HEADERS=1 nginx and haproxy also do the header work the gateway does (the issue
#                  asks it of the gateway): X-Forwarded-For appended, X-Forwarded-Proto
#                  set, X-Request-Id passed on or generated (32 hex digits for nginx's
#                  $request_id, a UUID for haproxy's uuid()) and echoed to the client.
#                  Off by default: the issue's anchors are the bare configurations above.
#                  The report says which comparison it is.
#   H2_STREAMS     h2load's concurrent streams per connection (-m, default 10)
#   WRK_TIMEOUT    wrk's per-request timeout; a timeout counts as an error (default 5s)
#   READY_TIMEOUT  seconds to wait for each server, and for the gateway's first 200 (default 30)
#   SKIP_INSTALL=1 do not apt-get install missing tools (nginx, haproxy, wrk, h2load, curl)
#   SKIP_BUILD=1   do not run cargo build (use CONCORD_BIN and BENCH_BIN as they are)
#   CONCORD_BIN    concord binary (default <repo>/target/release/concord)
#   BENCH_BIN      concord-bench binary, for the floor (default <repo>/target/release/concord-bench)
#   BENCH_TMPDIR   where the temp work dir goes (default $TMPDIR or /tmp); tmpfs is fine
#                  here (nothing is written to disk during the load)
#   KEEP_WORK=1    keep the temp dir (configs, server logs) after the run
#
# Exit status: 0 when every measured run was clean; 3 when some run had errors (a status
# >= 400 or a socket error in wrk; a failed, errored or non-2xx request in h2load), with
# the report still written; anything else when the run itself failed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BENCH_NAME=gateway
# shellcheck source-path=SCRIPTDIR/.. source=lib.sh
source "$HERE/../lib.sh"

help_or_no_args "$@"

DURATION=${DURATION:-10}
DURATION=${DURATION%s}
WARMUP=${WARMUP:-2}
WARMUP=${WARMUP%s}
ROUNDS=${ROUNDS:-2}
CONNS=${CONNS:-50}
H2=${H2:-1}
H2_STREAMS=${H2_STREAMS:-10}
WRK_TIMEOUT=${WRK_TIMEOUT:-5s}
READY_TIMEOUT=${READY_TIMEOUT:-}
CONCORD_BIN=${CONCORD_BIN:-$REPO/target/release/concord}
BENCH_BIN=${BENCH_BIN:-$REPO/target/release/concord-bench}
FLOOR=${FLOOR:-1}
SAME_HEADERS=${SAME_HEADERS:-0}
INSTRUCTIONS=${INSTRUCTIONS:-0}
IR_SECONDS=${IR_SECONDS:-5}
IR_CONNS=${IR_CONNS:-20}
IR_TARGETS="nginx haproxy concord"
if [[ $FLOOR == 1 ]]; then IR_TARGETS="nginx haproxy floor concord"; fi
if [[ $INSTRUCTIONS == 1 ]]; then
    # Start-up under valgrind is slow; h2load is not used.
    READY_TIMEOUT=${READY_TIMEOUT:-120}
    H2=0
fi
READY_TIMEOUT=${READY_TIMEOUT:-30}
RESULTS_DIR=$REPO/bench/results
# No write reaches the disk during the load (the concord node only serves a watch), so
# the work dir may be on tmpfs.
export ALLOW_TMPFS=${ALLOW_TMPFS:-1}
H1_TARGETS="direct nginx haproxy concord"
if [[ $FLOOR == 1 ]]; then H1_TARGETS="direct nginx haproxy floor concord"; fi
H2_CANDIDATES="nginx haproxy concord"

for v in DURATION WARMUP ROUNDS CONNS H2_STREAMS READY_TIMEOUT IR_SECONDS IR_CONNS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
((DURATION > 0 && ROUNDS > 0 && CONNS > 0 && H2_STREAMS > 0)) ||
    die "DURATION, ROUNDS, CONNS and H2_STREAMS must be > 0"
[[ $H2 == 0 || $H2 == 1 ]] || die "H2 must be 0 or 1, got '$H2'"
[[ $FLOOR == 0 || $FLOOR == 1 ]] || die "FLOOR must be 0 or 1, got '$FLOOR'"
[[ $SAME_HEADERS == 0 || $SAME_HEADERS == 1 ]] || die "SAME_HEADERS must be 0 or 1, got '$SAME_HEADERS'"
# Its reports go apart from the bare comparison's.
if [[ $SAME_HEADERS == 1 ]]; then BENCH_NAME=gateway-same-headers; fi
[[ $INSTRUCTIONS == 0 || $INSTRUCTIONS == 1 ]] || die "INSTRUCTIONS must be 0 or 1, got '$INSTRUCTIONS'"
((IR_SECONDS > 0 && IR_CONNS > 0)) || die "IR_SECONDS and IR_CONNS must be > 0"

# ---------------------------------------------------------------------------------------
# Tools

install_missing() {
    local pkgs=()
    command -v wrk >/dev/null || pkgs+=(wrk)
    command -v curl >/dev/null || pkgs+=(curl)
    command -v nginx >/dev/null || pkgs+=(nginx-light)
    command -v haproxy >/dev/null || pkgs+=(haproxy)
    command -v ps >/dev/null || pkgs+=(procps)
    if [[ $H2 == 1 ]] && ! command -v h2load >/dev/null; then pkgs+=(nghttp2-client); fi
    if [[ $INSTRUCTIONS == 1 ]] && ! command -v callgrind_control >/dev/null; then pkgs+=(valgrind); fi
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

# The tree's revision when the run starts (the report is written minutes later).
CONCORD_REV=$(git_rev)
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building concord (cargo build --release -p concord -p concord-bench)"
    (cd "$REPO" && cargo build --release -p concord -p concord-bench >&2) || die "cargo build failed"
fi
[[ -x $CONCORD_BIN ]] || die "no concord binary at $CONCORD_BIN"
[[ $FLOOR == 0 || -x $BENCH_BIN ]] || die "no concord-bench binary at $BENCH_BIN (or set FLOOR=0)"
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

NGINX_VERSION=$(nginx -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
[[ -n $NGINX_VERSION ]] || die "cannot read nginx's version from 'nginx -v'"
# `wrk -v` exits 1 after printing its version.
HAPROXY_VERSION=$( (haproxy -v 2>/dev/null || true) | head -n1 | awk '{print $3}')
WRK_VERSION=$( (wrk -v 2>&1 || true) | head -n1 | awk '{print $2}')
H2LOAD_VERSION=$( (h2load --version 2>/dev/null || true) | head -n1 | awk '{print $2}')

# version_ge A B: A >= B as dotted versions.
version_ge() { [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1) == "$2" ]]; }

# Many sockets on each side; the limit is inherited by every server started below.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---------------------------------------------------------------------------------------
# Work dir, ports, processes

make_work gateway # sets WORK; cleanup (every pid in PIDS, WORK) runs on exit
CLEANUP_GRACE=30

# proc_ticks PID: utime+stime, in clock ticks, of PID and its children (nginx's master and
# worker). A process's own line in /proc/PID/stat sums all of its threads.
proc_ticks() {
    local pids p f total=0
    read -ra pids <<<"$1 $(ps -o pid= --ppid "$1" 2>/dev/null | tr '\n' ' ')"
    for p in "${pids[@]}"; do
        # Fields after the ")" that closes the command name: utime and stime are the 12th
        # and 13th (fields 14 and 15 of the whole line).
        f=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
        total=$((total + $(awk '{print $12 + $13}' <<<"$f")))
    done
    echo "$total"
}

# wait_ok NAME PID URL LOG: polls URL until it answers 200 "ok", the process exits
# (dies with the log's tail) or READY_TIMEOUT passes.
wait_ok() {
    local name=$1 pid=$2 url=$3 logf=$4 deadline=$((SECONDS + READY_TIMEOUT)) code=""
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$logf" >&2 || true
            die "$name exited during start-up (log above)"
        fi
        code=$(curl -s -m 2 -o "$WORK/probe.body" -w '%{http_code}' "$url" 2>/dev/null) || true
        if [[ $code == 200 && $(cat "$WORK/probe.body" 2>/dev/null) == ok ]]; then
            log "$name ready: $url (pid $pid)"
            return 0
        fi
        sleep 0.1
    done
    tail -n 30 "$logf" >&2 || true
    die "$name did not answer 200 \"ok\" at $url within ${READY_TIMEOUT}s (last status ${code:-none}; log above)"
}

declare -A URL_H1 URL_H2 ROOT_PID # per target: load URLs, the process CPU is read from

# ---- nginx (origin and proxy)

# nginx_conf DIR HTTP_BODY: a whole nginx.conf for one worker with everything in DIR.
nginx_conf() {
    local dir=$1 body=$2 user_line=""
    # As root, nginx would hand its worker to "nobody"; keep the current user instead.
    if ((EUID == 0)); then user_line="user $(id -un) $(id -gn);"; fi
    cat <<EOF
worker_processes 1;
$user_line
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
$body
}
EOF
}

# start_nginx NAME HTTP_BODY [TRACED]: writes WORK/NAME/nginx.conf, checks it, runs nginx
# in the foreground (daemon off) with its prefix in WORK/NAME; sets NGINX_PID. TRACED=1
# in instruction mode runs it under callgrind, master and worker in one process.
NGINX_PID=""
start_nginx() {
    local name=$1 dir=$WORK/$1 globals='daemon off;' wrap=()
    if [[ ${3:-0} == 1 && $INSTRUCTIONS == 1 ]]; then
        globals='daemon off; master_process off;'
        read -ra wrap <<<"$(under "$name")"
    fi
    mkdir -p "$dir/tmp"
    nginx_conf "$dir" "$2" >"$dir/nginx.conf"
    nginx -t -q -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" -g "$globals" >"$dir/check.log" 2>&1 ||
        { cat "$dir/check.log" "$dir/error.log" >&2 2>/dev/null; die "nginx rejects $dir/nginx.conf (above)"; }
    "${wrap[@]}" nginx -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" -g "$globals" >"$dir/stdout" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
}

start_origin() {
    local port
    port=$(free_port)
    ORIGIN_PORT=$port
    start_nginx origin "    server {
        listen 127.0.0.1:$port;
        location / {
            return 200 \"ok\";
        }
    }"
    ROOT_PID[direct]=$NGINX_PID
    ORIGIN_PID=$NGINX_PID
    URL_H1[direct]=http://127.0.0.1:$port/
    wait_ok "origin (nginx $NGINX_VERSION)" "$NGINX_PID" "${URL_H1[direct]}" "$WORK/origin/error.log"
}

start_nginx_proxy() {
    local p1 p2 h2_server location id_map="" same=""
    p1=$(free_port)
    p2=$(free_port)
    if [[ $SAME_HEADERS == 1 ]]; then
        # The client's X-Request-Id when it sent one, else nginx's random one.
        id_map="    map \$http_x_request_id \$req_id {
        default \$http_x_request_id;
        \"\" \$request_id;
    }"
        same="
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Request-Id \$req_id;
            add_header X-Request-Id \$req_id always;"
    fi
    location="        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";$same
        }"
    # h2c with prior knowledge on a plain port: `listen … http2` before 1.25.1, `http2 on`
    # from then on (the listen parameter is deprecated there).
    if version_ge "$NGINX_VERSION" 1.25.1; then
        h2_server="        listen 127.0.0.1:$p2;
        http2 on;"
    else
        h2_server="        listen 127.0.0.1:$p2 http2;"
    fi
    start_nginx nginx "$id_map
    upstream origin {
        server 127.0.0.1:$ORIGIN_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$p1;
$location
    }
    server {
$h2_server
$location
    }" 1
    ROOT_PID[nginx]=$NGINX_PID
    URL_H1[nginx]=http://127.0.0.1:$p1/
    URL_H2[nginx]=http://127.0.0.1:$p2/
    wait_ok "nginx proxy" "$NGINX_PID" "${URL_H1[nginx]}" "$WORK/nginx/error.log"
}

# ---- haproxy

start_haproxy() {
    local p1 p2 dir=$WORK/haproxy pid maxconn same=""
    if [[ $SAME_HEADERS == 1 ]]; then
        same="    option forwardfor
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Request-Id %[uuid] unless { req.hdr(x-request-id) -m found }
    http-request set-var(txn.rid) req.hdr(x-request-id)
    http-response set-header X-Request-Id %[var(txn.rid)]
"
    fi
    # haproxy refuses to start when maxconn needs more descriptors than the limit allows
    # (two per proxied connection, plus some).
    maxconn=$((($(ulimit -n) - 100) / 2))
    if ((maxconn > 20000)); then maxconn=20000; fi
    p1=$(free_port)
    p2=$(free_port)
    mkdir -p "$dir"
    cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $maxconn

defaults
    mode http
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend bench
    bind 127.0.0.1:$p1
    bind 127.0.0.1:$p2 proto h2
${same}    default_backend origin

backend origin
    server o1 127.0.0.1:$ORIGIN_PORT
EOF
    haproxy -c -q -f "$dir/haproxy.cfg" >"$dir/check.log" 2>&1 ||
        { cat "$dir/check.log" >&2; die "haproxy rejects $dir/haproxy.cfg (above)"; }
    local wrap=()
    read -ra wrap <<<"$(under haproxy)"
    "${wrap[@]}" haproxy -f "$dir/haproxy.cfg" -db >"$dir/haproxy.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    ROOT_PID[haproxy]=$pid
    URL_H1[haproxy]=http://127.0.0.1:$p1/
    URL_H2[haproxy]=http://127.0.0.1:$p2/
    wait_ok "haproxy $HAPROXY_VERSION" "$pid" "${URL_H1[haproxy]}" "$dir/haproxy.log"
}

# listening_url NAME PID DIR PREFIX: waits (up to READY_TIMEOUT) for the process's first
# stdout line, "PREFIX listening: http://…", and sets LISTEN_URL (with a trailing slash)
# and LISTEN_LINE; dies with its stderr when it exits first or never says so.
listening_url() {
    local name=$1 pid=$2 dir=$3 prefix=$4 line="" deadline
    LISTEN_URL=""
    deadline=$((SECONDS + READY_TIMEOUT))
    while [[ -z $LISTEN_URL ]] && ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$dir/stderr" >&2; die "$name exited during start-up (log above)"; }
        line=$(head -n1 "$dir/stdout" 2>/dev/null || true)
        if [[ $line == "$prefix listening: http://"* ]]; then
            LISTEN_URL=${line#"$prefix listening: "}
            LISTEN_URL=${LISTEN_URL%%[[:space:]]*}
            LISTEN_URL=${LISTEN_URL%/}/
        fi
        sleep 0.1
    done
    [[ -n $LISTEN_URL ]] || { tail -n 30 "$dir/stderr" >&2; die "no '$prefix listening:' line within ${READY_TIMEOUT}s"; }
    LISTEN_LINE=$line
}

# ---- concord: a dev node with the route and the origin's instance, then the gateway

ROUTE_JSON='{"match":{"path_prefix":"/"},"service":"origin","lb":"round_robin"}'
start_concord() {
    local dir=$WORK/gateway pid
    start_server node # `concord dev` on fresh ports; sets SERVER_URL and SERVER_PID
    curl -sf -m 5 -o /dev/null -X PUT -H 'Content-Type: application/json' \
        -d "$ROUTE_JSON" "$SERVER_URL/v1/gateway/routes/bench" || die "PUT of the gateway route failed"
    curl -sf -m 5 -o /dev/null -X PUT -H 'Content-Type: application/json' \
        -d "{\"address\":\"127.0.0.1\",\"port\":$ORIGIN_PORT}" \
        "$SERVER_URL/v1/services/origin/instances/o1" || die "PUT of the origin instance failed"
    mkdir -p "$dir"
    local wrap=()
    read -ra wrap <<<"$(under concord)"
    "${wrap[@]}" "$CONCORD_BIN" gateway --server "$SERVER_URL" --listen 127.0.0.1:0 --admin 127.0.0.1:0 \
        --threads 1 --drain-timeout-secs 1 >"$dir/stdout" 2>"$dir/stderr" &
    pid=$!
    PIDS+=("$pid")
    ROOT_PID[concord]=$pid
    listening_url "the gateway" "$pid" "$dir" "concord gateway"
    GATEWAY_LINE=$LISTEN_LINE
    URL_H1[concord]=$LISTEN_URL
    URL_H2[concord]=$LISTEN_URL
    # It answers 503 until it has the route and the endpoint.
    wait_ok "concord gateway" "$pid" "$LISTEN_URL" "$dir/stderr"
}

# ---- the hyper floor: a minimal hyper proxy in front of the origin

start_floor() {
    local dir=$WORK/floor pid
    mkdir -p "$dir"
    local wrap=()
    read -ra wrap <<<"$(under floor)"
    "${wrap[@]}" "$BENCH_BIN" hyper-floor --listen 127.0.0.1:0 --upstream "127.0.0.1:$ORIGIN_PORT" \
        >"$dir/stdout" 2>"$dir/stderr" &
    pid=$!
    PIDS+=("$pid")
    ROOT_PID[floor]=$pid
    listening_url "hyper-floor" "$pid" "$dir" "hyper-floor"
    URL_H1[floor]=$LISTEN_URL
    wait_ok "hyper floor" "$pid" "$LISTEN_URL" "$dir/stderr"
}

# ---- instruction counts (INSTRUCTIONS=1)

# under TARGET: the command prefix that runs TARGET under callgrind in instruction mode
# (nothing otherwise); its profile dumps go to WORK/TARGET.callgrind.PID.N.
under() {
    if [[ $INSTRUCTIONS == 1 ]]; then
        echo valgrind --tool=callgrind --callgrind-out-file="$WORK/$1.callgrind.%p"
    fi
}

# count_instructions: for each proxy, a warm-up, then callgrind's counters zeroed, a
# fixed wrk load, and a dump; instructions (user space) ÷ requests served.
declare -A IR_REQS IR_TOTAL
count_instructions() {
    local t pid url out reqs dump total deadline
    for t in $IR_TARGETS; do
        pid=${ROOT_PID[$t]}
        url=${URL_H1[$t]}
        log "instructions $t: warm-up 2s, then ${IR_SECONDS}s of wrk -t1 -c$IR_CONNS under callgrind"
        timeout 120 wrk -t1 -c"$IR_CONNS" -d2s "$url" >/dev/null 2>&1 || die "wrk warm-up failed against $t ($url)"
        callgrind_control -z "$pid" >/dev/null || die "callgrind_control -z failed for $t (pid $pid)"
        out=$(timeout $((IR_SECONDS + 120)) wrk -t1 -c"$IR_CONNS" -d"${IR_SECONDS}s" "$url" 2>&1) ||
            die "wrk failed against $t: $out"
        callgrind_control -d "$pid" >/dev/null || die "callgrind_control -d failed for $t (pid $pid)"
        echo "===== instructions: $t" >>"$OUT_RAW"
        echo "$out" >>"$OUT_RAW"
        reqs=$(awk '/requests in/ {print $1}' <<<"$out")
        dump=$WORK/$t.callgrind.$pid.1
        deadline=$((SECONDS + 30))
        until [[ -s $dump ]] && grep -q '^totals:' "$dump"; do
            ((SECONDS < deadline)) || die "no callgrind dump for $t at $dump"
            sleep 0.2
        done
        total=$(awk '/^totals:/ {print $2; exit}' "$dump")
        [[ $reqs =~ ^[0-9]+$ && $reqs -gt 0 && $total =~ ^[0-9]+$ ]] ||
            die "cannot read the count for $t (requests '$reqs', instructions '$total')"
        IR_REQS[$t]=$reqs
        IR_TOTAL[$t]=$total
        log "instructions $t: $((total / reqs)) per request over $reqs requests"
    done
}

report_instructions() {
    local t per base_nginx base_floor
    echo "# Gateway benchmark: instructions per request ($STAMP)"
    echo
    echo "- concord: $(concord_desc); \`concord gateway --threads 1\` following a \`concord dev\` node"
    echo "- nginx $NGINX_VERSION (1 worker, \`master_process off\`), haproxy $HAPROXY_VERSION (nbthread 1), wrk $WRK_VERSION, $(valgrind --version)"
    echo "- method: each proxy runs under valgrind's callgrind in front of the same nginx origin (\`return 200 \"ok\";\`, not under valgrind), HTTP/1.1 kept alive on both sides; after a 2 s warm-up the counters are zeroed, \`wrk -t1 -c$IR_CONNS -d${IR_SECONDS}s\` runs, and the counters are dumped. Figures are user-space instructions executed by the proxy process ÷ requests it served: the kernel's share (about 60% of the time on loopback, the same system calls per request for every proxy here) is not in them, nor are cache misses. They do not vary with the machine's load, so they compare builds where timings are too noisy to."
    echo
    echo "| target | requests | instructions per request | ÷ nginx | ÷ floor |"
    echo "|---|---:|---:|---:|---:|"
    base_nginx=$((IR_TOTAL[nginx] / IR_REQS[nginx]))
    base_floor=""
    if [[ -n ${IR_TOTAL[floor]:-} ]]; then base_floor=$((IR_TOTAL[floor] / IR_REQS[floor])); fi
    for t in $IR_TARGETS; do
        per=$((IR_TOTAL[$t] / IR_REQS[$t]))
        echo "| $t | ${IR_REQS[$t]} | $per | $(calc "$per / $base_nginx" %.2f) | ${base_floor:+$(calc "$per / $base_floor" %.2f)} |"
    done
    echo
    echo "Raw wrk output: \`$(basename "$OUT_RAW")\`."
}

log "work dir: $WORK"
start_origin
start_nginx_proxy
start_haproxy
start_concord
if [[ $FLOOR == 1 ]]; then start_floor; fi

# ---------------------------------------------------------------------------------------
# HTTP/2: which proxies answer h2c with prior knowledge

H2_TARGETS=""
H2_SKIPPED=""
if [[ $H2 == 1 ]]; then
    if ! command -v h2load >/dev/null; then
        H2_SKIPPED="all (no h2load)"
    else
        for t in $H2_CANDIDATES; do
            out=$(timeout 15 h2load -n 20 -c 1 "${URL_H2[$t]}" 2>&1 || true)
            if grep -q ' 20 succeeded' <<<"$out" && grep -q 'status codes: 20 2xx' <<<"$out"; then
                H2_TARGETS+="${H2_TARGETS:+ }$t"
            else
                H2_SKIPPED+="${H2_SKIPPED:+, }$t ($(grep -m1 -E 'requests:|error|refused' <<<"$out" || echo 'no answer'))"
                log "NOTE: $t does not answer h2c at ${URL_H2[$t]}; left out of the HTTP/2 runs"
            fi
        done
    fi
fi

# ---------------------------------------------------------------------------------------
# Load

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RESULTS_DIR"
OUT_RAW=$RESULTS_DIR/$BENCH_NAME-$STAMP.raw.txt
: >"$OUT_RAW"
: >"$WORK/results.txt"
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)

declare -A RES # RES[proto|target|round|field]

# thread_ticks PID: one "TID NAME TICKS" line per thread of PID (utime+stime).
thread_ticks() {
    local f line name
    for f in /proc/"$1"/task/*/stat; do
        line=$(cat "$f" 2>/dev/null) || continue
        name=${line#*(}
        name=${name%)*}
        awk -v tid="${line%% *}" -v name="${name// /_}" '{ print tid, name, $12 + $13 }' <<<"${line##*) }"
    done
}

# thread_split BEFORE AFTER: the CPU seconds each thread name used between two
# thread_ticks snapshots, busiest first ("tokio-runtime-w:9.41s(1) …"; (n) = threads).
thread_split() {
    awk -v hz="$CLK_TCK" '
        NR == FNR { before[$1] = $3; next }
        { d = $3 - before[$1]; used[$2] += d; n[$2]++ }
        END { for (k in used) if (used[k] > 0) printf "%d %s:%.2fs(%d)\n", used[k], k, used[k] / hz, n[k] }
    ' "$1" "$2" | sort -rn | cut -d' ' -f2 | tr '\n' ' ' | sed 's/ $//'
}

# sample_start TARGET / sample_end PROTO TARGET ROUND: CPU of the target, of the origin and
# the wall time around one measured run, into RES; for the gateway also per thread.
sample_start() {
    if [[ $1 == concord ]]; then thread_ticks "${ROOT_PID[$1]}" >"$WORK/threads.0"; fi
    S_T0=$(date +%s.%N)
    S_P0=$(proc_ticks "${ROOT_PID[$1]}")
    S_O0=$(proc_ticks "$ORIGIN_PID")
}
sample_end() {
    local key="$1|$2|$3" t1 p1 o1
    t1=$(date +%s.%N)
    p1=$(proc_ticks "${ROOT_PID[$2]}")
    o1=$(proc_ticks "$ORIGIN_PID")
    RES[$key|window_s]=$(calc "$t1 - $S_T0" %.3f)
    RES[$key|proxy_cpu_s]=$(calc "($p1 - $S_P0) / $CLK_TCK" %.2f)
    RES[$key|origin_cpu_s]=$(calc "($o1 - $S_O0) / $CLK_TCK" %.2f)
    if [[ $2 == concord ]]; then
        thread_ticks "${ROOT_PID[$2]}" >"$WORK/threads.1"
        RES[$key|threads]=$(thread_split "$WORK/threads.0" "$WORK/threads.1")
    fi
}

# keep PROTO TARGET ROUND LINE: stores the key=value fields of a BENCH_RESULT line.
keep() {
    local key="$1|$2|$3" kv k
    for kv in ${4#BENCH_RESULT }; do
        k=${kv%%=*}
        RES["$key|$k"]=${kv#*=}
    done
    echo "$1 round=$3 target=$2 $4 window_s=${RES[$key|window_s]} proxy_cpu_s=${RES[$key|proxy_cpu_s]} origin_cpu_s=${RES[$key|origin_cpu_s]} client_cpu_s=${RES[$key|client_cpu_s]}${RES[$key|threads]:+ threads=${RES[$key|threads]// /,}}" >>"$WORK/results.txt"
}

alive() {
    local t
    for t in $H1_TARGETS; do
        kill -0 "${ROOT_PID[$t]}" 2>/dev/null || die "$t (pid ${ROOT_PID[$t]}) exited during the load"
    done
}

# run_wrk TARGET ROUND: warm-up, then the measured wrk run with CPU sampled around it.
run_wrk() {
    local t=$1 r=$2 key="h1|$1|$2" out=$WORK/wrk.out line cpu TIMEFORMAT='%3U %3S'
    local cmd=(wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout "$WRK_TIMEOUT" --latency -s "$HERE/result.lua" "${URL_H1[$t]}")
    if ((WARMUP > 0)); then
        log "h1 round $r $t: warm-up ${WARMUP}s"
        timeout $((WARMUP + 60)) wrk -t1 -c"$CONNS" -d"${WARMUP}s" "${URL_H1[$t]}" >/dev/null 2>&1 ||
            die "wrk warm-up failed against $t (${URL_H1[$t]})"
    fi
    log "h1 round $r $t: ${DURATION}s, ${URL_H1[$t]}"
    echo "===== h1 round $r: $t" >>"$OUT_RAW"
    echo "\$ ${cmd[*]}" >>"$OUT_RAW"
    sample_start "$t"
    if ! { time timeout $((DURATION + 60)) "${cmd[@]}" >"$out" 2>&1; } 2>"$WORK/time.out"; then
        cat "$out" >>"$OUT_RAW"
        cat "$out" >&2
        die "wrk failed (h1 round $r $t)"
    fi
    sample_end h1 "$t" "$r"
    cat "$out" >>"$OUT_RAW"
    read -ra cpu <"$WORK/time.out"
    RES[$key|client_cpu_s]=$(calc "${cpu[0]} + ${cpu[1]}" %.2f)
    line=$(grep -m1 '^BENCH_RESULT ' "$out") || die "no BENCH_RESULT line from wrk (h1 round $r $t)"
    keep h1 "$t" "$r" "$line"
    alive
    log "h1 round $r $t: $(calc "${RES[$key|rps]}") req/s, p50 ${RES[$key|p50_ms]} ms, p99 ${RES[$key|p99_ms]} ms, target CPU ${RES[$key|proxy_cpu_s]} s"
}

# percentiles FILE: "p50_ms=… p99_ms=… max_ms=…" from h2load's log (3rd column: µs).
percentiles() {
    cut -f3 "$1" | sort -n | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "p50_ms=nan p99_ms=nan max_ms=nan"; exit }
            i50 = int(NR * 0.50); if (i50 < NR * 0.50) i50++
            i99 = int(NR * 0.99); if (i99 < NR * 0.99) i99++
            printf "p50_ms=%.3f p99_ms=%.3f max_ms=%.3f", v[i50] / 1000, v[i99] / 1000, v[NR] / 1000
        }'
}

# run_h2load TARGET ROUND: warm-up, then the measured h2load run with CPU sampled around it.
run_h2load() {
    local t=$1 r=$2 key="h2|$1|$2" out=$WORK/h2load.out hlog=$WORK/h2load.log cpu TIMEFORMAT='%3U %3S'
    local rps counts codes line
    local cmd=(h2load -t1 -c"$CONNS" -m"$H2_STREAMS" -D"$DURATION" --log-file="$hlog" "${URL_H2[$t]}")
    if ((WARMUP > 0)); then
        log "h2 round $r $t: warm-up ${WARMUP}s"
        timeout $((WARMUP + 60)) h2load -t1 -c"$CONNS" -m"$H2_STREAMS" -D"$WARMUP" "${URL_H2[$t]}" >/dev/null 2>&1 ||
            die "h2load warm-up failed against $t (${URL_H2[$t]})"
    fi
    log "h2 round $r $t: ${DURATION}s, ${URL_H2[$t]}"
    echo "===== h2 round $r: $t" >>"$OUT_RAW"
    echo "\$ ${cmd[*]}" >>"$OUT_RAW"
    rm -f "$hlog"
    sample_start "$t"
    if ! { time timeout $((DURATION + 60)) "${cmd[@]}" >"$out" 2>&1; } 2>"$WORK/time.out"; then
        cat "$out" >>"$OUT_RAW"
        cat "$out" >&2
        die "h2load failed (h2 round $r $t)"
    fi
    sample_end h2 "$t" "$r"
    cat "$out" >>"$OUT_RAW"
    read -ra cpu <"$WORK/time.out"
    RES[$key|client_cpu_s]=$(calc "${cpu[0]} + ${cpu[1]}" %.2f)
    # finished in 10.00s, 53106.10 req/s, 2.60MB/s
    rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$out")
    # requests: T total, S started, D done, OK succeeded, F failed, E errored, TO timeout
    counts=$(sed -n 's/^requests: \([0-9]*\) total, \([0-9]*\) started, \([0-9]*\) done, \([0-9]*\) succeeded, \([0-9]*\) failed, \([0-9]*\) errored, \([0-9]*\) timeout.*/requests=\3 succeeded=\4 failed=\5 errored=\6 timeout=\7/p' "$out")
    # status codes: a 2xx, b 3xx, c 4xx, d 5xx
    codes=$(sed -n 's/^status codes: \([0-9]*\) 2xx, \([0-9]*\) 3xx, \([0-9]*\) 4xx, \([0-9]*\) 5xx.*/s2xx=\1 s3xx=\2 s4xx=\3 s5xx=\4/p' "$out")
    [[ -n $rps && -n $counts && -n $codes ]] || die "cannot read h2load's summary (h2 round $r $t; raw output in $OUT_RAW)"
    line="BENCH_RESULT rps=$rps $counts $codes $(percentiles "$hlog")"
    keep h2 "$t" "$r" "$line"
    rm -f "$hlog"
    alive
    log "h2 round $r $t: $(calc "${RES[$key|rps]}") req/s, p50 ${RES[$key|p50_ms]} ms, p99 ${RES[$key|p99_ms]} ms, target CPU ${RES[$key|proxy_cpu_s]} s"
}

if [[ $INSTRUCTIONS == 1 ]]; then
    count_instructions
    OUT_MD=$RESULTS_DIR/$BENCH_NAME-instructions-$STAMP.md
    report_instructions | tee "$OUT_MD"
    log "results: $OUT_MD"
    exit 0
fi

for ((r = 1; r <= ROUNDS; r++)); do
    for t in $H1_TARGETS; do run_wrk "$t" "$r"; done
done
if [[ -n $H2_TARGETS ]]; then
    for ((r = 1; r <= ROUNDS; r++)); do
        for t in $H2_TARGETS; do run_h2load "$t" "$r"; done
    done
fi

# ---------------------------------------------------------------------------------------
# Checks

for t in $H1_TARGETS; do
    for ((r = 1; r <= ROUNDS; r++)); do
        k="h1|$t|$r"
        errs=$((${RES[$k|status_ge400]} + ${RES[$k|err_connect]} + ${RES[$k|err_read]} + ${RES[$k|err_write]} + ${RES[$k|err_timeout]}))
        RES[$k|errors]=$errs
        check "$errs == 0" "h1 round $r $t: $errs errors (status >= 400: ${RES[$k|status_ge400]}, connect ${RES[$k|err_connect]}, read ${RES[$k|err_read]}, write ${RES[$k|err_write]}, timeout ${RES[$k|err_timeout]})"
    done
done
for t in $H2_TARGETS; do
    for ((r = 1; r <= ROUNDS; r++)); do
        k="h2|$t|$r"
        errs=$((${RES[$k|failed]} + ${RES[$k|errored]} + ${RES[$k|timeout]} + ${RES[$k|s3xx]} + ${RES[$k|s4xx]} + ${RES[$k|s5xx]}))
        RES[$k|errors]=$errs
        check "$errs == 0" "h2 round $r $t: $errs errors (failed ${RES[$k|failed]}, errored ${RES[$k|errored]}, timeout ${RES[$k|timeout]}, non-2xx $((${RES[$k|s3xx]} + ${RES[$k|s4xx]} + ${RES[$k|s5xx]})))"
    done
done

# ---------------------------------------------------------------------------------------
# Report

# mean PROTO TARGET FIELD: the field's mean over the rounds.
mean() {
    local r sum=0
    for ((r = 1; r <= ROUNDS; r++)); do sum=$(calc "$sum + ${RES[$1|$2|$r|$3]}" %.6f); done
    calc "$sum / $ROUNDS" %.6f
}

# total PROTO TARGET FIELD: the field's sum over the rounds.
total() {
    local r sum=0
    for ((r = 1; r <= ROUNDS; r++)); do sum=$(calc "$sum + ${RES[$1|$2|$r|$3]}" %.6f); done
    echo "$sum"
}

# us_per_req PROTO TARGET [ROUND]: the target's CPU µs per request (all rounds without ROUND).
us_per_req() {
    if [[ -n ${3:-} ]]; then
        calc "${RES[$1|$2|$3|proxy_cpu_s]} * 1e6 / ${RES[$1|$2|$3|requests]}" %.1f
    else
        calc "$(total "$1" "$2" proxy_cpu_s) * 1e6 / $(total "$1" "$2" requests)" %.1f
    fi
}

label() {
    case $1 in
        direct) echo "direct (origin alone)" ;;
        nginx) echo "nginx proxy" ;;
        haproxy) echo "haproxy" ;;
        floor) echo "hyper floor (yardstick)" ;;
        concord) echo "**concord gateway**" ;;
    esac
}

# join SEP ITEM...: the items with SEP between them.
join() {
    local sep=$1 out="" x
    shift
    for x in "$@"; do out+="${out:+$sep}$x"; done
    echo "$out"
}

# pct A B: how far A is above (+) or below (-) B, in percent.
pct() { calc "($1 / $2 - 1) * 100" %+.1f; }

report_runs() {
    local proto=$1 targets=$2 r t k cpu_head
    if [[ $proto == h1 ]]; then cpu_head="wrk CPU (cores)"; else cpu_head="h2load CPU (cores)"; fi
    if [[ $proto == h1 ]]; then echo "For \`direct\` the target is the origin itself."; echo; fi
    echo "| round | target | req/s | p50 ms | p99 ms | max ms | errors | target CPU (cores) | target CPU µs/req | origin CPU (cores) | $cpu_head |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for ((r = 1; r <= ROUNDS; r++)); do
        for t in $targets; do
            k="$proto|$t|$r"
            echo "| $r | $(label "$t") | $(calc "${RES[$k|rps]}") | ${RES[$k|p50_ms]} | ${RES[$k|p99_ms]} | ${RES[$k|max_ms]} | ${RES[$k|errors]} | $(calc "${RES[$k|proxy_cpu_s]} / ${RES[$k|window_s]}" %.2f) | $(us_per_req "$proto" "$t" "$r") | $(calc "${RES[$k|origin_cpu_s]} / ${RES[$k|window_s]}" %.2f) | $(calc "${RES[$k|client_cpu_s]} / ${RES[$k|window_s]}" %.2f) |"
        done
    done
    echo
}

report_means() {
    local proto=$1 targets=$2 t
    echo "| target | req/s (mean) | p50 ms (mean) | p99 ms (mean) | target CPU µs/req (all rounds) |"
    echo "|---|---:|---:|---:|---:|"
    for t in $targets; do
        echo "| $(label "$t") | $(calc "$(mean "$proto" "$t" rps)") | $(calc "$(mean "$proto" "$t" p50_ms)" %.3f) | $(calc "$(mean "$proto" "$t" p99_ms)" %.3f) | $(us_per_req "$proto" "$t") |"
    done
    echo
}

# report_ratios PROTO TARGETS: concord against each other proxy run in PROTO.
report_ratios() {
    local proto=$1 targets=$2 t c_rps c_p99 c_us
    c_rps=$(mean "$proto" concord rps)
    c_p99=$(mean "$proto" concord p99_ms)
    c_us=$(us_per_req "$proto" concord)
    echo "| ratio | req/s | p50 | p99 | CPU per request |"
    echo "|---|---:|---:|---:|---:|"
    for t in $targets; do
        [[ $t == concord || $t == direct ]] && continue
        echo "| concord / $t | $(calc "$c_rps / $(mean "$proto" "$t" rps)" %.2f) | $(calc "$(mean "$proto" concord p50_ms) / $(mean "$proto" "$t" p50_ms)" %.2f) | $(calc "$c_p99 / $(mean "$proto" "$t" p99_ms)" %.2f) | $(calc "$c_us / $(us_per_req "$proto" "$t")" %.2f) |"
    done
    echo
}

# verdict PROTO TARGETS: the goal (concord's req/s >= each proxy's, its p99 <= each
# proxy's, on the means), met or missed and by how much.
verdict() {
    local proto=$1 targets=$2 t c_rps c_p99 rps p99 misses=() notes=()
    c_rps=$(mean "$proto" concord rps)
    c_p99=$(mean "$proto" concord p99_ms)
    for t in $targets; do
        [[ $t == concord || $t == direct || $t == floor ]] && continue
        rps=$(mean "$proto" "$t" rps)
        p99=$(mean "$proto" "$t" p99_ms)
        if awk -v a="$c_rps" -v b="$rps" 'BEGIN { exit !(a >= b) }'; then
            notes+=("req/s $(pct "$c_rps" "$rps")% against $t")
        else
            misses+=("req/s $(pct "$c_rps" "$rps")% against $t ($(calc "$c_rps") vs $(calc "$rps"))")
        fi
        if awk -v a="$c_p99" -v b="$p99" 'BEGIN { exit !(a <= b) }'; then
            notes+=("p99 $(calc "$c_p99" %.3f) ms vs $t's $(calc "$p99" %.3f) ms")
        else
            misses+=("p99 $(calc "$c_p99" %.3f) ms vs $t's $(calc "$p99" %.3f) ms ($(pct "$c_p99" "$p99")%)")
        fi
    done
    if ((${#misses[@]} == 0)); then
        echo "**Goal met**: $(join '; ' "${notes[@]}")."
    else
        echo "**Goal missed**: $(join '; ' "${misses[@]}")${notes[*]:+ (met: $(join '; ' "${notes[@]}"))}."
    fi
}

# why PROTO TARGETS: what the CPU figures say about concord against the other proxies.
why() {
    local proto=$1 targets=$2 t r cores=() c_us parts=()
    for ((r = 1; r <= ROUNDS; r++)); do
        cores+=("$(calc "${RES[$proto|concord|$r|proxy_cpu_s]} / ${RES[$proto|concord|$r|window_s]}" %.2f)")
    done
    c_us=$(us_per_req "$proto" concord)
    for t in $targets; do
        [[ $t == concord || $t == direct ]] && continue
        parts+=("$(calc "$c_us / $(us_per_req "$proto" "$t")" %.2f)× $t's ($(us_per_req "$proto" "$t") µs)")
    done
    echo "Where the CPU went: the gateway (\`--threads 1\`) used ${cores[*]} cores in the measured runs and spent $c_us µs of CPU per request, $(join ', ' "${parts[@]}"). Its threads in round $ROUNDS (CPU s, thread count): ${RES[$proto|concord|$ROUNDS|threads]:-n/a}. Each proxy here is held to about one core, so its requests/s is capped near 1e6 ÷ its CPU µs per request: the proxy that costs less CPU per request goes faster, while the origin and the load generator share the other core."
}

report_configs() {
    echo "<details><summary>server configs</summary>"
    echo
    echo "origin \`nginx.conf\`:"
    echo
    echo '```nginx'
    cat "$WORK/origin/nginx.conf"
    echo '```'
    echo
    echo "nginx proxy \`nginx.conf\`:"
    echo
    echo '```nginx'
    cat "$WORK/nginx/nginx.conf"
    echo '```'
    echo
    echo "\`haproxy.cfg\`:"
    echo
    echo '```'
    cat "$WORK/haproxy/haproxy.cfg"
    echo '```'
    echo
    echo "concord: route \`bench\` = \`$ROUTE_JSON\`, instance \`origin/o1\` = 127.0.0.1:$ORIGIN_PORT; \`concord gateway --server $SERVER_URL --listen 127.0.0.1:0 --admin 127.0.0.1:0 --threads 1 --drain-timeout-secs 1\` printed \`$GATEWAY_LINE\`."
    echo
    echo "</details>"
}

report() {
    local f
    echo "# Gateway benchmark: concord gateway vs nginx vs haproxy ($STAMP)"
    echo
    echo "- concord: $(concord_desc); \`concord gateway --threads 1\` following a \`concord dev\` node"
    echo "- nginx $NGINX_VERSION (origin and proxy, 1 worker each), haproxy $HAPROXY_VERSION (nbthread 1), wrk $WRK_VERSION, h2load ${H2LOAD_VERSION:-n/a}"
    echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, kernel $(uname -srm)"
    echo "- load average (1/5/15 min) at start: $LOAD_AT_START, at end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown) (anything else busy on the machine skews the figures)"
    echo "- method: everything on 127.0.0.1; the origin is nginx answering \`return 200 \"ok\";\`; each proxy forwards to it over kept-alive HTTP/1.1. $ROUNDS rounds, each running the targets in the order shown, every measured run (${DURATION}s) after its own ${WARMUP}s warm-up. HTTP/1.1 load: \`wrk -t1 -c$CONNS -d${DURATION}s --latency\` (closed loop). HTTP/2 load: \`h2load -t1 -c$CONNS -m$H2_STREAMS -D$DURATION\`, h2c with prior knowledge, percentiles from its per-request log. CPU is utime+stime from /proc/PID/stat (nginx: master and worker) over the measured run; cores = CPU s ÷ wall s"
    echo
    echo "Reference figures from the issue, on this machine class: direct about 70k req/s, nginx proxy about 32k, haproxy about 31-33k. **Goal: Concord at or above both proxies in requests/s with p99 no worse.**"
    echo
    if [[ $SAME_HEADERS == 1 ]]; then
        echo "**Same header work (SAME_HEADERS=1):** nginx and haproxy here also append \`X-Forwarded-For\`, set \`X-Forwarded-Proto\`, pass on or generate \`X-Request-Id\` and echo it to the client, as the gateway does. This is not the issue's bare configuration; the verdicts below compare the three doing the same work."
        echo
    fi
    if [[ $FLOOR == 1 ]]; then
        echo "The hyper floor (\`concord-bench hyper-floor\`) is a yardstick, not a contender: a minimal proxy on hyper (server, one upstream hyper connection per client connection, same runtime and allocator as the gateway, nothing else). Its CPU per request is what hyper and tokio cost here; the gateway's excess over it is the gateway's own work. It is left out of the verdict."
        echo
    fi
    echo "## HTTP/1.1 (wrk, $CONNS connections)"
    echo
    report_runs h1 "$H1_TARGETS"
    echo "Means over the rounds ($ROUNDS):"
    echo
    report_means h1 "$H1_TARGETS"
    report_ratios h1 "$H1_TARGETS"
    echo "Against the issue's figures: direct $(calc "$(mean h1 direct rps)") (ref. ~70k), nginx $(calc "$(mean h1 nginx rps)") (ref. ~32k), haproxy $(calc "$(mean h1 haproxy rps)") (ref. ~31-33k), concord $(calc "$(mean h1 concord rps)"). Measured ÷ reference: direct $(calc "$(mean h1 direct rps) / 70000" %.2f)×, nginx $(calc "$(mean h1 nginx rps) / 32000" %.2f)×, haproxy $(calc "$(mean h1 haproxy rps) / 32000" %.2f)× (against 32k, the middle of 31-33k): the ratios between targets carry over to another machine better than the absolute figures."
    echo
    verdict h1 "$H1_TARGETS"
    echo
    why h1 "$H1_TARGETS"
    echo
    echo "## HTTP/2, h2c (h2load, $CONNS connections × $H2_STREAMS streams)"
    echo
    if [[ $H2 != 1 ]]; then
        echo "Not run (H2=0)."
    elif [[ -z $H2_TARGETS ]]; then
        echo "Not run: no proxy answered h2c ($H2_SKIPPED)."
    else
        if [[ -n $H2_SKIPPED ]]; then echo "Left out (no h2c answer to the probe): $H2_SKIPPED."; echo; fi
        report_runs h2 "$H2_TARGETS"
        echo "Means over the rounds ($ROUNDS):"
        echo
        report_means h2 "$H2_TARGETS"
        if [[ " $H2_TARGETS " == *" concord "* && $H2_TARGETS != concord ]]; then
            report_ratios h2 "$H2_TARGETS"
            verdict h2 "$H2_TARGETS"
            echo
            why h2 "$H2_TARGETS"
            echo
        fi
    fi
    echo
    report_checks "All checks passed (no errors, no non-2xx answers in any measured run)."
    echo
    echo "Raw wrk and h2load output: \`$(basename "$OUT_RAW")\`."
    echo
    echo "<details><summary>result lines</summary>"
    echo
    echo '```'
    cat "$WORK/results.txt"
    echo '```'
    echo
    echo "</details>"
    echo
    report_configs
}

{
    echo "===== result lines"
    cat "$WORK/results.txt"
} >>"$OUT_RAW"
write_report # to stdout and bench/results/gateway-$STAMP.md; exits 3 when a check failed
