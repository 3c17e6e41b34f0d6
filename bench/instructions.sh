#!/usr/bin/env bash
# bench/instructions.sh - user-space instructions per proxied request, counted
# by valgrind's callgrind: a figure that does not move with the machine's load,
# for comparing two builds of lab (wrk's req/s on a shared 2-core machine
# moves by 10-20 % between runs).
#
#   bench/instructions.sh                         # target/perf/lab, 2000 requests
#   bench/instructions.sh /tmp/lab-before 4000    # another build, more requests
#   bench/instructions.sh target/perf/examples/floor_proxy   # the floor reference
#   PROXY_FLAGS="--like-go" bench/instructions.sh  # lab proxy with more flags
#   LB=weighted bench/instructions.sh             # another balancer (default round-robin)
#   KEEP=1 bench/instructions.sh                  # keep the callgrind file for callgrind_annotate
#
# It starts `lab realserver` (the upstream) and `lab proxy --lb round-robin`
# under callgrind on free loopback ports, sends 400 warm-up requests, zeroes
# the counters, sends N keep-alive GETs over 4 connections, dumps the counters
# and divides. Kernel work (the system calls) is not counted: see RESULTS.md
# for the perf profile that shows it. Installs valgrind when it is missing.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=${1:-$BENCH/../target/perf/lab}
N=${2:-2000}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    [[ -n ${KEEP:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT

if ! command -v valgrind >/dev/null; then
    echo "installing valgrind" >&2
    sudo=""; [[ $(id -u) == 0 ]] || sudo=sudo
    $sudo apt-get update -qq && $sudo apt-get install -y -qq valgrind >/dev/null
fi
[[ -x $LAB ]] || { echo "error: no lab binary at $LAB (cargo build --profile perf)" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); PX=$(free_port)

# The floor reference (examples/floor_proxy.rs) takes the same flags without
# the subcommand; the upstream is lab realserver either way.
# PROXY_FLAGS: more flags for the subject, to see what a feature costs
# (e.g. PROXY_FLAGS="--response-timeout 1h"; for the floor, "--per-core").
read -r -a extra <<<"${PROXY_FLAGS:-}"
if [[ $(basename "$LAB") == floor_proxy ]]; then
    REALSERVER=$(dirname "$LAB")/../lab
    SUBJECT=("$LAB" "${extra[@]}")
else
    REALSERVER=$LAB
    SUBJECT=("$LAB" proxy --lb "${LB:-round-robin}" "${extra[@]}")
fi
[[ -x $REALSERVER ]] || { echo "error: no lab binary at $REALSERVER for the upstream" >&2; exit 1; }
"$REALSERVER" realserver --addr "127.0.0.1:$UP" >"$WORK/realserver.log" 2>&1 &
PIDS+=($!)
valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" \
    "${SUBJECT[@]}" --listen "127.0.0.1:$PX" --upstream "http://127.0.0.1:$UP" \
    >"$WORK/proxy.log" 2>&1 &
PROXY=$!
PIDS+=("$PROXY")

load() { # load COUNT: COUNT keep-alive GETs over 4 connections
    python3 - "$PX" "$1" <<'EOF'
import http.client, sys, threading
port, n = int(sys.argv[1]), int(sys.argv[2])
def worker(k):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(k):
        c.request("GET", "/bench", headers={"User-Agent": "instructions.sh"})
        r = c.getresponse(); r.read()
        assert r.status == 200, r.status
    c.close()
ts = [threading.Thread(target=worker, args=(n // 4,)) for _ in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
EOF
}

for _ in $(seq 150); do
    curl -s -o /dev/null "http://127.0.0.1:$PX/" && break
    sleep 0.2
done
load 400
callgrind_control -z "$PROXY" >/dev/null
load "$N"
callgrind_control -d "$PROXY" >/dev/null
DUMP=$(ls "$WORK"/callgrind.out.* | head -1)
IR=$(callgrind_annotate "$DUMP" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "$(basename "$LAB"): $((IR / N)) instructions per proxied request (user space, $N requests, callgrind)"
[[ -z ${KEEP:-} ]] || echo "callgrind file: $DUMP (callgrind_annotate --inclusive=yes $DUMP)"
