#!/usr/bin/env bash
# bench/soak.sh - issue 10: a soak test of `lab proxy`. Not part of `cargo test`.
#
# Runs DURATION seconds (default 600) of mixed traffic through `lab proxy` in
# front of two `lab realserver` upstreams, samples the proxy's memory every
# 10 s, and fails when any answer was unexpected or memory trends upward.
#
#   cargo build --profile perf                # first: the script builds nothing
#   bench/soak.sh                         # 10 minutes
#   bench/soak.sh 60                      # a one-minute smoke run
#   LAB=/other/target/perf/lab WORKERS=4 bench/soak.sh 300
#
# Settings (environment variables):
#   LAB=target/perf/lab   the binary under test
#   WORKERS=8                concurrent client workers (bench/soak_client.py)
#   PAUSE_MS=5               each worker waits up to this long between operations
#   WORK=/tmp/lab-soak.XXXX  where the logs, samples.csv and summary.md go (kept)
#
# It starts, on free 127.0.0.1 ports (nothing listens beyond loopback):
#   lab realserver --addr 127.0.0.1:P1          (one process)
#   lab realserver --addr 127.0.0.1:P2          (another)
#   lab proxy --listen 127.0.0.1:P --upstream http://127.0.0.1:P1/base \
#       --upstream http://127.0.0.1:P2/base --lb round-robin --response-timeout 1s
# then runs bench/soak_client.py (Python 3 standard library only) against the
# proxy for DURATION seconds: what it sends, what it checks and the pass/fail
# thresholds are in that file's docstring and in bench/SOAK.md. Every process
# this script starts is recorded by PID and stopped (TERM, then KILL after
# 5 s) on exit, Ctrl-C or failure. Exit status: 0 passed, 1 failed, 2 could
# not run.
set -euo pipefail

DURATION=${1:-600}
WORKERS=${WORKERS:-8}
PAUSE_MS=${PAUSE_MS:-5}
RESPONSE_TIMEOUT_S=1

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
LAB=${LAB:-$ROOT/target/perf/lab}

log() { printf '[soak %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 2; }

[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 30 ]] || die "DURATION must be a whole number of seconds, at least 30 (got '$DURATION')"
[[ $WORKERS =~ ^[0-9]+$ && $WORKERS -ge 1 ]] || die "WORKERS must be a positive whole number (got '$WORKERS')"
[[ -x $LAB ]] || die "no lab binary at $LAB: run \`cargo build --release\` first, or set LAB=/path/to/lab"
command -v python3 >/dev/null || die "python3 is needed (standard library only)"

# ---------------------------------------------------------------- processes
PIDS=()   # every live process this script started
WORK=${WORK:-}

stop_pid() { # TERM, wait up to 5 s, then KILL
    local pid=$1 i
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            log "pid $pid still running 5 s after TERM: KILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    # Newest first: the client, then the proxy, then the upstreams.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
    [[ -n $WORK ]] && log "logs, samples.csv and summary.md are in $WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

start() { # start NAME LOGFILE CMD...: in the background, PID recorded
    local name=$1 logfile=$2
    shift 2
    "$@" >"$logfile" 2>&1 &
    PIDS+=("$!")
    log "started $name (pid $!): ${*#"$ROOT/"}"
}

wait_listening() { # wait_listening PORT PID NAME
    local port=$1 pid=$2 name=$3 i
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) exited before listening; its log: $WORK/$name.log
$(tail -n 20 "$WORK/$name.log")"
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "$name is not listening on 127.0.0.1:$port after 15 s; its log: $WORK/$name.log"
}

# ---------------------------------------------------------------- setup
if [[ -z $WORK ]]; then WORK=$(mktemp -d /tmp/lab-soak.XXXXXX); else mkdir -p "$WORK"; fi

# Three distinct free loopback ports (held together while chosen).
read -r P1 P2 PP < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')

log "lab: $LAB ($("$LAB" --version 2>/dev/null || echo 'version unknown'))"
log "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, $(uname -sr)"
log "duration ${DURATION} s, $WORKERS workers, pause up to $PAUSE_MS ms, work dir $WORK"

start realserver1 "$WORK/realserver1.log" "$LAB" realserver --addr "127.0.0.1:$P1"
RS1=$!
start realserver2 "$WORK/realserver2.log" "$LAB" realserver --addr "127.0.0.1:$P2"
RS2=$!
wait_listening "$P1" "$RS1" realserver1
wait_listening "$P2" "$RS2" realserver2

start proxy "$WORK/proxy.log" "$LAB" proxy --listen "127.0.0.1:$PP" \
    --upstream "http://127.0.0.1:$P1/base" --upstream "http://127.0.0.1:$P2/base" \
    --lb round-robin --response-timeout "${RESPONSE_TIMEOUT_S}s"
PROXY=$!
wait_listening "$PP" "$PROXY" proxy

# ---------------------------------------------------------------- load
: >"$WORK/client.log"
start client "$WORK/client.log" python3 -u "$BENCH/soak_client.py" \
    --proxy-port "$PP" --proxy-pid "$PROXY" \
    --upstream "127.0.0.1:$P1" --upstream "127.0.0.1:$P2" \
    --duration "$DURATION" --workers "$WORKERS" --pause-ms "$PAUSE_MS" \
    --response-timeout "$RESPONSE_TIMEOUT_S" --work "$WORK"
CLIENT=$!
tail -n +1 -f --pid="$CLIENT" "$WORK/client.log" &
TAIL=$!
PIDS+=("$TAIL")
rc=0
wait "$CLIENT" || rc=$?
wait "$TAIL" 2>/dev/null || true

# ---------------------------------------------------------------- after
for pair in "realserver1:$RS1" "realserver2:$RS2" "proxy:$PROXY"; do
    if ! kill -0 "${pair#*:}" 2>/dev/null; then
        log "FAIL: $pair exited during the run; its log: $WORK/${pair%%:*}.log"
        rc=1
    fi
done
# The only warning expected in the logs: the proxy's 504 for `delay?ms=...`
# beyond its --response-timeout (one per timeout_504 operation).
EXPECTED_WARN='WARN GET http://[^ ]+/delay\?ms=[0-9]+: the upstream [^ ]+ sent no response within [0-9]+s \(--response-timeout\)$'
for name in proxy realserver1 realserver2; do
    logfile="$WORK/$name.log"
    expected=$(grep -c -E "$EXPECTED_WARN" "$logfile" || true)
    others=$(grep -E '\b(WARN|ERROR)\b' "$logfile" | grep -v -E "$EXPECTED_WARN" || true)
    log "$name.log: $expected expected 504 warning(s), $(grep -c . <<<"$others" || true) other WARN/ERROR line(s)"
    if [[ -n $others ]]; then
        log "FAIL: unexpected WARN/ERROR lines in $logfile (first 5):"
        head -n 5 <<<"$others" >&2
        rc=1
    fi
done
case $rc in
    0) log "PASS" ;;
    1) log "FAIL (see above)" ;;
    *) log "the client could not run (exit $rc)"; exit 2 ;;
esac
exit "$rc"
