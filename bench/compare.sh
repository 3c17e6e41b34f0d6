#!/usr/bin/env bash
# bench/compare.sh - issue 9: lab proxy side by side with nginx and the article's
# Go ReverseProxy, on this machine, in one run.
#
#   bench/compare.sh                                   # the full run (DURATION=10 ROUNDS=3)
#   DURATION=3 ROUNDS=1 WARMUP=1 bench/compare.sh      # a smoke run (~1.5 min)
#   IDLE=0 bench/compare.sh                            # without the idle-memory phase
#
# Settings (environment variables):
#   DURATION=10          seconds of measured load per cell
#   ROUNDS=3             rounds; each round runs every subject at every connection count
#   WARMUP=3             seconds of unmeasured load on a fresh proxy before each measurement
#   CONNECTIONS="50 500" wrk connection counts
#   THREADS=2            wrk threads
#   SUBJECTS="direct floor floor-core lab-rr lab-weighted lab-hash nginx-1w nginx-2w go-1 go-2"
#   UPSTREAM_WORKERS=1   worker processes of the upstream nginx (both upstream ports)
#   PORT_BASE=18080      upstreams on PORT_BASE+1, +2 (their status on +3); proxies on PORT_BASE+10...
#   IDLE=10000           idle keep-alive client connections of the idle-memory phase; 0: no phase
#   IDLE_TIMEOUT=60      seconds after which the idle-memory phase gives up on a subject
#   OUT=bench/results-latest.md
#   KEEP_WORK=1          keep the temp dir (configs, logs, raw wrk output)
#
# Every cell (round x connections x subject) starts the proxy fresh, warms it up,
# measures with `wrk --latency`, reads the CPU time the proxy (process + children)
# spent in user and kernel mode during the measured run (utime and stime of
# /proc/PID/stat, per request), its peak RSS (VmHWM, summed over the process and
# its children) and stops it. Then, once per subject, the idle-memory phase
# starts it fresh and runs bench/idle_memory.py: RSS before and after IDLE idle
# keep-alive client connections, each with one request answered. Every process
# this script starts is recorded by PID and stopped on exit, Ctrl-C or failure.
set -euo pipefail

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-3}
CONNECTIONS=${CONNECTIONS:-"50 500"}
THREADS=${THREADS:-2}
SUBJECTS=${SUBJECTS:-"direct floor floor-core lab-rr lab-weighted lab-hash nginx-1w nginx-2w go-1 go-2"}
UPSTREAM_WORKERS=${UPSTREAM_WORKERS:-1}
PORT_BASE=${PORT_BASE:-18080}
IDLE=${IDLE:-10000}
IDLE_TIMEOUT=${IDLE_TIMEOUT:-60}
[[ $IDLE =~ ^[0-9]+$ && $IDLE_TIMEOUT =~ ^[0-9]+$ ]] || { echo "IDLE and IDLE_TIMEOUT must be whole numbers" >&2; exit 1; }

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
OUT=${OUT:-$BENCH/results-latest.md}
P1=$((PORT_BASE + 1))
P2=$((PORT_BASE + 2))
P3=$((PORT_BASE + 3)) # the upstream nginx's stub_status

log() { printf '[compare %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- processes
PIDS=()   # every live process this script started
WORK=""

children_of() { # direct children of a PID (nginx workers)
    cat /proc/"$1"/task/*/children 2>/dev/null || pgrep -P "$1" 2>/dev/null || true
}

forget_pid() {
    local p keep=()
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

stop_pid() { # TERM, wait up to 5 s, then KILL the process and any children left
    local pid=$1 kids i
    kids=$(children_of "$pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    for k in $kids; do kill -0 "$k" 2>/dev/null && kill -KILL "$k" 2>/dev/null || true; done
    forget_pid "$pid"
}

cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do stop_pid "$p"; done
    if [[ -n $WORK && -d $WORK ]]; then
        if [[ ${KEEP_WORK:-0} == 1 || $rc != 0 ]]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT
trap 'log terminated; exit 143' TERM

START_PID=""
start_bg() { # start_bg LOGFILE CMD...: run in the background, record the PID
    local logf=$1; shift
    "$@" >"$logf" 2>&1 &
    START_PID=$!
    PIDS+=("$START_PID")
}

wait_http() { # wait_http PORT PID LOG: until GET / answers 200 with an upstream's body
    local port=$1 pid=$2 logf=$3 i body
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || { cat "$logf" >&2; die "process $pid exited before listening on $port"; }
        if body=$(curl -sf --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null) && [[ $body == *upstream* ]]; then
            return 0
        fi
        sleep 0.1
    done
    cat "$logf" >&2
    die "nothing answered 200 on 127.0.0.1:$port within 10 s"
}

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # "user sys": utime and stime (fields 14, 15 of /proc/PID/stat, clock ticks) of a PID plus its children's
    local pid=$1 u=0 s=0 p line f
    for p in "$pid" $(children_of "$pid"); do
        line=$(cat /proc/"$p"/stat 2>/dev/null) || continue
        read -r -a f <<<"${line##*) }" # from field 3 on: the command name may hold spaces and parentheses
        u=$((u + f[11])) s=$((s + f[12]))
    done
    echo "$u $s"
}

upstream_accepts() { # connections the upstream nginx has accepted so far (stub_status), this read's own included
    curl -sf --max-time 2 "http://127.0.0.1:$P3/status" 2>/dev/null | awk 'NR == 3 && $1 ~ /^[0-9]+$/ {print $1}' || true
}

peak_rss_kb() { # VmHWM of a PID plus its children's (nginx master + workers)
    local pid=$1 total=0 p v
    for p in "$pid" $(children_of "$pid"); do
        v=$(awk '/^VmHWM:/ {print $2}' /proc/"$p"/status 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# ---------------------------------------------------------------- tools
install_missing() {
    local pkgs=() sudo=""
    command -v wrk >/dev/null || pkgs+=(wrk)
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || pkgs+=(nginx-light)
    command -v go >/dev/null || pkgs+=(golang-go)
    command -v curl >/dev/null || pkgs+=(curl)
    ((${#pkgs[@]})) || return 0
    command -v apt-get >/dev/null || die "missing ${pkgs[*]}: install them (no apt-get here)"
    [[ $(id -u) == 0 ]] || sudo=sudo
    log "installing ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y --no-install-recommends "${pkgs[@]}" ||
        { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${pkgs[@]}"; } ||
        { [[ " ${pkgs[*]} " == *" nginx-light "* ]] &&
            $sudo apt-get install -y --no-install-recommends "${pkgs[@]/nginx-light/nginx}"; } ||
        die "could not install ${pkgs[*]}"
}

install_missing
export PATH=$PATH:/usr/sbin:/usr/local/go/bin
NGINX=$(command -v nginx)
command -v cargo >/dev/null || die "cargo not found (install Rust: https://rustup.rs)"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
(($(ulimit -n) >= 2 * 500 + 100)) || log "warning: ulimit -n is $(ulimit -n); 500 connections may fail"
if ((IDLE > 0)); then
    command -v python3 >/dev/null || die "IDLE=$IDLE needs python3 (bench/idle_memory.py); or set IDLE=0"
    (($(ulimit -n) >= IDLE + 2048)) ||
        die "IDLE=$IDLE needs ulimit -n >= $((IDLE + 2048)) for the subjects and the client; it is $(ulimit -n) (hard limit $(ulimit -Hn)): raise the hard limit, or set IDLE=0 or a smaller IDLE"
fi

WORK=$(mktemp -d /tmp/lab-bench.XXXXXX)
chmod 755 "$WORK"   # nginx workers run as nobody when started by root

log "building lab and the floor reference (cargo build --profile perf${CARGO_TARGET_DIR:+, CARGO_TARGET_DIR=$CARGO_TARGET_DIR})"
(cd "$ROOT" && cargo build --profile perf --bin lab --example floor_proxy) >&2
# cargo's own answer (honours CARGO_TARGET_DIR, relative or not, and a target-dir in .cargo/config.toml)
TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null) ||
    TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
LAB=$TARGET/perf/lab
FLOOR=$TARGET/perf/examples/floor_proxy
[[ -x $LAB ]] || die "no $LAB after the build"
[[ -x $FLOOR ]] || die "no $FLOOR after the build"

log "building the Go proxy ($(go version))"
(cd "$BENCH/go-proxy" && GOPROXY=off GOFLAGS=-mod=mod go build -o "$WORK/go-proxy" .) >&2

# ---------------------------------------------------------------- nginx configs
NGINX_USER=""
NGINX_WC=8192   # worker_connections of the nginx subjects (raised for the idle-memory phase)
[[ $(id -u) == 0 ]] && NGINX_USER="user nobody $(id -gn nobody 2>/dev/null || echo nogroup);"

render_nginx() { # render_nginx TEMPLATE PREFIX WORKERS LISTEN_PORT
    local tpl=$1 prefix=$2
    mkdir -p "$prefix"
    chmod 755 "$prefix"
    awk -v common="$(cat "$BENCH/nginx/common.conf.in")" '{ if ($0 == "@COMMON@") print common; else print }' "$tpl" |
        sed -e "s|@USER@|$NGINX_USER|" -e "s|@NOFILE@|$(ulimit -n)|g" -e "s|@PREFIX@|$prefix|g" -e "s|@WORKERS@|$3|g" \
            -e "s|@PORT1@|$P1|g" -e "s|@PORT2@|$P2|g" -e "s|@PORT3@|$P3|g" -e "s|@LISTEN_PORT@|$4|g" \
            -e "s|@WORKER_CONNECTIONS@|$NGINX_WC|g" >"$prefix/nginx.conf"
    "$NGINX" -t -q -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" ||
        die "nginx -t failed for $prefix/nginx.conf"
}

# ---------------------------------------------------------------- upstreams
UP=$WORK/upstreams
mkdir -p "$UP/html1" "$UP/html2"
for n in 1 2; do # a small static body (~100 bytes)
    printf 'hello from upstream %s - a small static body for bench/compare.sh, served by nginx\n' "$n" >"$UP/html$n/index.txt"
done
chmod -R a+rX "$UP"
render_nginx "$BENCH/nginx/upstreams.conf.in" "$UP" "$UPSTREAM_WORKERS" 0
start_bg "$UP/stdout.log" "$NGINX" -p "$UP" -c "$UP/nginx.conf" -e "$UP/error.log"
UP_PID=$START_PID
wait_http "$P1" "$UP_PID" "$UP/error.log"
wait_http "$P2" "$UP_PID" "$UP/error.log"
[[ -n $(upstream_accepts) ]] || log "warning: no stub_status on 127.0.0.1:$P3: the new upstream conns/s column stays empty"
log "upstreams: nginx ($UPSTREAM_WORKERS worker) on 127.0.0.1:$P1 and :$P2, PID $UP_PID"

# ---------------------------------------------------------------- subjects
port_of() { # a port per subject
    local i=0 s
    for s in direct floor lab-rr lab-weighted lab-hash nginx-1w nginx-2w go-1 go-2 floor-core; do
        [[ $s == "$1" ]] && { echo $((PORT_BASE + 10 + i)); return; }
        i=$((i + 1))
    done
    die "unknown subject $1"
}

describe() {
    case $1 in
    direct) echo "wrk straight at upstream 1 (nginx, static body): the limit" ;;
    floor) echo "the floor reference: a minimal hyper proxy of lab proxy's earlier design (multi-thread runtime, hyper-util's pool), round robin (examples/floor_proxy.rs)" ;;
    floor-core) echo "the floor of lab proxy's present design: the same minimal proxy on a runtime per core and the lab's own pool (floor_proxy --per-core)" ;;
    lab-rr) echo "lab proxy --lb round-robin (perf profile)" ;;
    lab-weighted) echo "lab proxy --lb weighted, weights 10 and 20 (the article's main)" ;;
    lab-hash) echo "lab proxy --lb consistent-hash --hash-key remote-addr (client IP and port: spreads loopback clients)" ;;
    nginx-1w) echo "nginx reverse proxy, worker_processes 1" ;;
    nginx-2w) echo "nginx reverse proxy, worker_processes 2" ;;
    go-1) echo "the article's Go ReverseProxy + round robin, GOMAXPROCS=1" ;;
    go-2) echo "the article's Go ReverseProxy + round robin, GOMAXPROCS=2" ;;
    esac
}

SUBJ_PID=""
start_subject() { # start_subject NAME PORT LOGDIR: sets SUBJ_PID ("" for direct)
    local s=$1 port=$2 dir=$3 lb=()
    SUBJ_PID=""
    case $s in
    direct) return 0 ;;
    floor | floor-core)
        [[ $s == floor-core ]] && lb=(--per-core)
        start_bg "$dir/floor.log" "$FLOOR" --listen "127.0.0.1:$port" \
            --upstream "http://127.0.0.1:$P1" --upstream "http://127.0.0.1:$P2" "${lb[@]}"
        SUBJ_PID=$START_PID
        wait_http "$port" "$SUBJ_PID" "$dir/floor.log"
        ;;
    lab-*)
        case $s in lab-rr) lb=(round-robin) ;; lab-weighted) lb=(weighted) ;; lab-hash) lb=(consistent-hash --hash-key remote-addr) ;; esac
        # --max-idle-per-host 1024: the idle upstream connections nginx keeps (keepalive 1024), so
        # that neither churns upstream connections at 500 clients (the default, 100, would).
        start_bg "$dir/lab.log" "$LAB" proxy --listen "127.0.0.1:$port" --lb "${lb[@]}" \
            --max-idle-per-host 1024 \
            --upstream "http://127.0.0.1:$P1,10" --upstream "http://127.0.0.1:$P2,20"
        SUBJ_PID=$START_PID
        wait_http "$port" "$SUBJ_PID" "$dir/lab.log"
        ;;
    nginx-*)
        # nginx/proxy.conf.in keeps 1024 idle upstream connections per worker: with keepalive 256,
        # at 500 wrk connections, nginx opened 1 000-3 700 new upstream connections every second
        # (counted from the upstream's access log, $connection); with 1024, 60-230 in the first
        # second (replacing those cut at the end of the warm-up) and 0 after. The new upstream
        # conns/s column keeps counting them, for every subject.
        render_nginx "$BENCH/nginx/proxy.conf.in" "$dir" "${s//[!0-9]/}" "$port"
        start_bg "$dir/stdout.log" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
        SUBJ_PID=$START_PID
        wait_http "$port" "$SUBJ_PID" "$dir/error.log"
        ;;
    go-*)
        start_bg "$dir/go.log" env GOMAXPROCS="${s#go-}" "$WORK/go-proxy" -listen "127.0.0.1:$port" \
            -upstream "http://127.0.0.1:$P1" -upstream "http://127.0.0.1:$P2"
        SUBJ_PID=$START_PID
        wait_http "$port" "$SUBJ_PID" "$dir/go.log"
        ;;
    esac
}

run_wrk() { # run_wrk PORT CONNS SECONDS OUTFILE
    local threads=$THREADS
    ((threads > $2)) && threads=$2
    start_bg "$4" timeout -k 5 $(($3 + 30)) wrk -t"$threads" -c"$2" -d"$3"s --timeout 5s --latency "http://127.0.0.1:$1/"
    local pid=$START_PID rc=0
    wait "$pid" || rc=$?
    forget_pid "$pid"
    ((rc == 0)) || { cat "$4" >&2; die "wrk exited with $rc"; }
}

to_ms() { # 1.23ms / 456.00us / 1.20s -> milliseconds
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n }'
}

LOAD_BEFORE=$(cut -d" " -f1-3 /proc/loadavg)
RAW=$WORK/raw.tsv
: >"$RAW"
read -r -a SUBJ <<<"$SUBJECTS"
read -r -a CONNS <<<"$CONNECTIONS"
cells=$((ROUNDS * ${#SUBJ[@]} * ${#CONNS[@]}))
idle_s=0 idle_what=""
if ((IDLE > 0)); then
    for s in "${SUBJ[@]}"; do [[ $s == direct ]] || idle_s=$((idle_s + 5 + IDLE / 1000)); done
    idle_what=" + the idle-memory phase (~$idle_s s)"
fi
log "$cells cells of ~$((WARMUP + DURATION + 1)) s$idle_what: about $(((cells * (WARMUP + DURATION + 1) + idle_s + 59) / 60)) min"

for ((r = 1; r <= ROUNDS; r++)); do
    for c in "${CONNS[@]}"; do
        for s in "${SUBJ[@]}"; do
            dir=$WORK/r$r-c$c-$s
            mkdir -p "$dir"
            port=$(port_of "$s")
            [[ $s == direct ]] && port=$P1
            start_subject "$s" "$port" "$dir"
            ((WARMUP > 0)) && run_wrk "$port" "$c" "$WARMUP" "$dir/warmup.txt"
            cpu_pid=${SUBJ_PID:-$UP_PID} # direct: the upstream nginx's own CPU
            a0=$(upstream_accepts)
            read -r u0 s0 < <(cpu_ticks "$cpu_pid")
            run_wrk "$port" "$c" "$DURATION" "$dir/wrk.txt"
            read -r u1 s1 < <(cpu_ticks "$cpu_pid")
            a1=$(upstream_accepts)
            # upstream connections opened per second of the measured run (direct: wrk's own)
            upc=""
            [[ -n $a0 && -n $a1 ]] && upc=$(awk -v n=$((a1 - a0 - 1)) -v d="$DURATION" 'BEGIN { printf "%.1f", n / d }')
            rss=0
            [[ -n $SUBJ_PID ]] && rss=$(peak_rss_kb "$SUBJ_PID")
            [[ -n $SUBJ_PID ]] && stop_pid "$SUBJ_PID"
            rps=$(awk '/^Requests\/sec:/ {print $2}' "$dir/wrk.txt")
            p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$dir/wrk.txt")")
            p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$dir/wrk.txt")")
            errs=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$dir/wrk.txt")
            reqs=$(awk '/ requests in / {print $1; exit}' "$dir/wrk.txt")
            [[ -n $rps ]] || { cat "$dir/wrk.txt" >&2; die "no Requests/sec in wrk's output"; }
            [[ $reqs =~ ^[0-9]+$ && $reqs -gt 0 ]] || { cat "$dir/wrk.txt" >&2; die "no request count in wrk's output"; }
            # CPU microseconds per request: clock-tick deltas over the measured run / wrk's request count
            usr=$(awk -v t=$((u1 - u0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
            sys=$(awk -v t=$((s1 - s0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$s" "$c" "$rps" "$p50" "$p99" "$rss" "$errs" "$reqs" "$usr" "$sys" "$upc" >>"$RAW"
            log "round $r/$ROUNDS c=$c $s: $rps req/s, p50 ${p50} ms, p99 ${p99} ms, CPU ${usr} µs user + ${sys} µs sys per request, peak RSS $((rss / 1024)) MB, ${upc:-?} new upstream conns/s, errors $errs"
        done
    done
done

# ---------------------------------------------------------------- idle connections
# Once per subject (not per round): a fresh subject, one request through it (wait_http),
# then bench/idle_memory.py: RSS before and after IDLE idle keep-alive client connections.
IDLE_RAW=$WORK/idle.tsv
: >"$IDLE_RAW"
IDLE_FAILED=()
if ((IDLE > 0)); then
    NGINX_WC=$((IDLE + 2048)) # every client connection and its upstream one fit in one worker
    for s in "${SUBJ[@]}"; do
        [[ $s == direct ]] && continue
        dir=$WORK/idle-$s
        mkdir -p "$dir"
        port=$(port_of "$s")
        start_subject "$s" "$port" "$dir"
        log "idle memory: $s, $IDLE connections (PID $SUBJ_PID)"
        start_bg "$dir/idle.txt" timeout -k 5 $((IDLE_TIMEOUT + 30)) python3 "$BENCH/idle_memory.py" \
            --pid "$SUBJ_PID" --addr "127.0.0.1:$port" --connections "$IDLE" --timeout "$IDLE_TIMEOUT" \
            --label "$s" --tsv "$dir/idle.tsv"
        ipid=$START_PID rc=0
        wait "$ipid" || rc=$?
        forget_pid "$ipid"
        stop_pid "$SUBJ_PID"
        if ((rc == 0)) && [[ -s $dir/idle.tsv ]]; then
            printf '%s\t%s\n' "$s" "$(cat "$dir/idle.tsv")" >>"$IDLE_RAW"
            log "idle memory: $s: $(grep '^bytes per idle connection' "$dir/idle.txt")"
        else
            cat "$dir/idle.txt" >&2
            log "warning: the idle-memory phase failed for $s (exit $rc); its row says so"
            IDLE_FAILED+=("$s")
            printf '%s\tfailed\n' "$s" >>"$IDLE_RAW"
        fi
    done
    NGINX_WC=8192
fi

# ---------------------------------------------------------------- the table
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -F'\t' -v s="$1" -v c="$2" -v k="$3" '$2 == s && $3 == c { print $k }' "$RAW"; }

declare -A RPS P50 P99 RSS ERR USR SYS CPU UPC
for c in "${CONNS[@]}"; do
    for s in "${SUBJ[@]}"; do
        RPS[$s,$c]=$(col "$s" "$c" 4 | median)
        USR[$s,$c]=$(col "$s" "$c" 10 | median)
        SYS[$s,$c]=$(col "$s" "$c" 11 | median)
        UPC[$s,$c]=$(col "$s" "$c" 12 | grep . | median || true)
        CPU[$s,$c]=$(awk -v u="${USR[$s,$c]}" -v s="${SYS[$s,$c]}" 'BEGIN { if (u != "" && s != "") print u + s }')
        P50[$s,$c]=$(col "$s" "$c" 5 | median)
        P99[$s,$c]=$(col "$s" "$c" 6 | median)
        RSS[$s,$c]=$(col "$s" "$c" 7 | sort -g | tail -n1)
        ERR[$s,$c]=$(col "$s" "$c" 8 | awk '{ n += $1 } END { print n + 0 }')
    done
done

best_of() { # best_of CONNS SUBJECT... -> the subject with the highest median req/s
    local c=$1 best="" s; shift
    for s in "$@"; do
        [[ -n ${RPS[$s,$c]:-} ]] || continue
        if [[ -z $best ]] || awk -v a="${RPS[$s,$c]}" -v b="${RPS[$best,$c]}" 'BEGIN { exit !(a > b) }'; then best=$s; fi
    done
    echo "$best"
}
ratio() { [[ -n ${1:-} && -n ${2:-} ]] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "—" }' || echo "—"; }
fmt() { [[ -n ${1:-} ]] && awk -v v="$1" -v d="$2" 'BEGIN { printf "%.*f", d, v }' || echo "—"; }

{
    echo "# lab proxy vs nginx vs the article's Go ReverseProxy"
    echo
    echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), Linux $(uname -r)."
    echo "Load average (1/5/15 min) before the load: $LOAD_BEFORE; after: $(cut -d" " -f1-3 /proc/loadavg) (anything else running distorts the numbers)."
    echo "Tools: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), $(go version | awk '{print $3}'), $(wrk -v 2>&1 | awk 'NR == 1 {print $1, $2}'), $(rustc --version 2>/dev/null | awk '{print $1, $2}')."
    echo
    echo "Command: \`DURATION=$DURATION ROUNDS=$ROUNDS WARMUP=$WARMUP CONNECTIONS=\"$CONNECTIONS\" THREADS=$THREADS UPSTREAM_WORKERS=$UPSTREAM_WORKERS bench/compare.sh\`"
    echo
    echo "wrk -t$THREADS --latency, ${DURATION} s per cell after a ${WARMUP} s warm-up on a fresh proxy, $ROUNDS round(s) interleaved;"
    echo "req/s, p50 and p99 are medians over the rounds; peak RSS is the largest VmHWM (proxy process + its children) over the rounds;"
    echo "user and sys µs/req are the CPU time the subject (process + children) spent in user and kernel mode during the"
    echo "measured run (utime and stime of /proc/PID/stat, clock ticks of 1/$CLK_TCK s) over wrk's request count, medians over"
    echo "the rounds (direct: the upstream nginx's own; for the proxies the upstreams' and wrk's CPU is not counted);"
    echo "new upstream conns/s: connections the upstream nginx accepted during the measured run (its stub_status counter),"
    echo "per second, median over the rounds: ~0 for a proxy that keeps its upstream connections (direct: wrk's own);"
    echo "errors are wrk's non-2xx responses and socket errors, summed over the rounds."
    echo
    echo "| subject | conns | req/s | p50 ms | p99 ms | user µs/req | sys µs/req | peak RSS MB | new upstream conns/s | errors | what it is |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    for c in "${CONNS[@]}"; do
        for s in "${SUBJ[@]}"; do
            rssmb="—"
            [[ $s != direct && -n ${RSS[$s,$c]} ]] && rssmb=$(awk -v k="${RSS[$s,$c]}" 'BEGIN { printf "%.1f", k / 1024 }')
            echo "| $s | $c | $(fmt "${RPS[$s,$c]}" 0) | $(fmt "${P50[$s,$c]}" 2) | $(fmt "${P99[$s,$c]}" 2) | $(fmt "${USR[$s,$c]}" 1) | $(fmt "${SYS[$s,$c]}" 1) | $rssmb | $(fmt "${UPC[$s,$c]}" 0) | ${ERR[$s,$c]} | $(describe "$s") |"
        done
    done
    echo
    echo "## Ratios (median req/s; nginx and Go at their better setting in this run)"
    echo
    echo "CPU/req is user + sys µs per request (the two medians above); < 1 means less CPU per request than the other subject."
    echo
    echo "| subject | conns | ÷ nginx best | p99 / p99 nginx best | CPU/req ÷ nginx best | ÷ Go best | ÷ floor | CPU/req ÷ floor | ÷ floor-core | CPU/req ÷ floor-core | ÷ lab-rr | ÷ direct |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for c in "${CONNS[@]}"; do
        nb=$(best_of "$c" nginx-1w nginx-2w)
        gb=$(best_of "$c" go-1 go-2)
        for s in floor floor-core lab-rr lab-weighted lab-hash; do
            [[ " ${SUBJ[*]} " == *" $s "* ]] || continue
            echo "| $s | $c | $(ratio "${RPS[$s,$c]}" "${RPS[$nb,$c]:-}") (vs ${nb:-—}) | $(ratio "${P99[$s,$c]}" "${P99[$nb,$c]:-}") | $(ratio "${CPU[$s,$c]}" "${CPU[$nb,$c]:-}") | $(ratio "${RPS[$s,$c]}" "${RPS[$gb,$c]:-}") (vs ${gb:-—}) | $(ratio "${RPS[$s,$c]}" "${RPS[floor,$c]:-}") | $(ratio "${CPU[$s,$c]}" "${CPU[floor,$c]:-}") | $(ratio "${RPS[$s,$c]}" "${RPS[floor-core,$c]:-}") | $(ratio "${CPU[$s,$c]}" "${CPU[floor-core,$c]:-}") | $(ratio "${RPS[$s,$c]}" "${RPS[lab-rr,$c]:-}") | $(ratio "${RPS[$s,$c]}" "${RPS[direct,$c]:-}") |"
        done
    done
    echo
    if ((IDLE > 0)); then
        echo "## Memory per idle keep-alive client connection ($IDLE connections)"
        echo
        echo "Once per subject, started fresh (nginx with worker_connections $((IDLE + 2048))) and sent one request:"
        echo "\`bench/idle_memory.py\` reads its RSS (VmRSS, process + children), opens $IDLE client connections, sends one"
        echo "keep-alive GET on each and reads the whole response, waits 2 s, reads the RSS again: bytes/conn ="
        echo "(after − before) / the connections still open then (held). Gives up after $IDLE_TIMEOUT s."
        echo
        echo "| subject | idle conns held | RSS before MB | RSS after MB | bytes/conn |"
        echo "|---|---:|---:|---:|---:|"
        while IFS=$'\t' read -r s n held before after per; do
            if [[ $n == failed ]]; then
                echo "| $s | failed: see idle-$s/idle.txt in the kept temp dir | — | — | — |"
            else
                echo "| $s | $held of $n | $(fmt "$(awk -v k="$before" 'BEGIN { print k / 1024 }')" 1) | $(fmt "$(awk -v k="$after" 'BEGIN { print k / 1024 }')" 1) | $per |"
            fi
        done <"$IDLE_RAW"
        echo
    fi
    echo "<details><summary>Raw rows (round, subject, conns, req/s, p50 ms, p99 ms, peak RSS kB, errors, requests, user µs/req, sys µs/req, new upstream conns/s)</summary>"
    echo
    echo '```'
    cat "$RAW"
    echo '```'
    echo
    echo "</details>"
} >"$OUT"

cat "$OUT"
log "wrote $OUT"
((${#IDLE_FAILED[@]} == 0)) || die "the idle-memory phase failed for: ${IDLE_FAILED[*]} (see above; the table says so)"
