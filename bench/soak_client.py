#!/usr/bin/env python3
"""bench/soak_client.py - the load and the judgement of bench/soak.sh (issue 10).

Drives mixed traffic through a running `lab proxy` for a fixed time with
several concurrent workers, samples the proxy's memory every 10 s, and
decides whether the run passed. bench/soak.sh starts the proxy and its two
`lab realserver` upstreams and then runs this; it can also be pointed by hand
at a proxy started with `--lb round-robin --response-timeout 1s` in front of
upstreams `http://127.0.0.1:P/base`:

    bench/soak_client.py --proxy-port 2002 --proxy-pid PID_OF_THE_PROXY \
        --upstream 127.0.0.1:2003 --upstream 127.0.0.1:2004 --duration 60 --work /tmp/soak

Each worker picks an operation at random (weights in OPERATIONS) until the
time is up, and checks every answer:

  get           GET (keep-alive) of an echo: 200, JSON echo of /base/PATH from an upstream
  get_close     the same on a fresh connection with `Connection: close`
  post          POST with a random body (0 to 64 KiB, Content-Length): echo counts every byte
  post_chunked  POST with a chunked body: the same check
  stream        GET stream?n=5&ms=20 with `TE: trailers` over a raw keep-alive socket:
                chunked, the five chunk lines in order, trailer X-Lab-Chunks: 5
  ws            a WebSocket session (RFC 6455 by hand): handshake and accept key, 2-5 masked
                text messages of 5 B to 70 KB each echoed back, close 1000 answered, TCP closed
  error_500     GET /error → /base/error at an upstream: 500 "error handler" (expected error)
  delay_ok      GET delay?ms=50: 200, under the proxy's response timeout
  timeout_504   GET delay?ms=TIMEOUT+500: the proxy answers 504 itself (expected error)
  stats         GET /_lab/stats: 200 and the documented JSON fields

Any other outcome (wrong status or body, an exception, a timeout of 10 s) is
an unexpected error; the first few are printed with details. A keep-alive
connection idle for 5 s is reopened before use (the servers may drop a
connection that has not sent a request head within their header timeout:
30 s at first, `--header-timeout` 10 s by default later), so no disconnect
is excused.

Every 10 s the proxy's VmRSS, VmHWM, open file descriptors (/proc/PID/fd)
and thread count go to WORK/samples.csv and to a printed line. At the end
the run passes when all of these hold:

  * zero unexpected errors, and the proxy still running;
  * RSS, no upward trend: the median RSS of the last third of the samples is
    less than 5 % above the median of the second third, and the least-squares
    slope of RSS over the samples after the warm-up (the first minute, or the
    first third of a shorter run) is below 0.5 MB/min;
  * open fds, no upward trend: the median of the last third is at most 8
    above the median of the second third;
  * after the load stops and every client connection is closed, the proxy's
    /_lab/stats shows no request in flight and no client connection open but
    the one asking;
  * the proxy's own count agrees: /_lab/stats overall.requests equals the
    operations sent through the proxy (all but `stats`), its 1xx the
    WebSocket sessions, its 5xx the expected 500s and 504s.

Exit status: 0 passed, 1 failed, 2 could not run. Standard library only.
"""

import argparse
import base64
import collections
import csv
import hashlib
import http.client
import json
import os
import random
import re
import socket
import statistics
import sys
import threading
import time

SAMPLE_EVERY_S = 10
IO_TIMEOUT_S = 10
IDLE_REOPEN_S = 5
SHOW_UNEXPECTED = 8

# The verdict's thresholds (see the module docstring).
MAX_RSS_GROWTH = 0.05
MAX_RSS_SLOPE_MB_PER_MIN = 0.5
MAX_FD_GROWTH = 8
WARMUP_S = 60

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# operation → (weight, what a correct answer is)
OPERATIONS = {
    "get": (30, "200 echo"),
    "get_close": (5, "200 echo"),
    "post": (14, "200 echo, body counted"),
    "post_chunked": (5, "200 echo, body counted"),
    "stream": (12, "5 chunks + trailer"),
    "ws": (8, "101, echoes, close 1000"),
    "error_500": (5, "500 from upstream"),
    "delay_ok": (4, "200 echo"),
    "timeout_504": (2, "504 from proxy"),
    "stats": (3, "200 stats JSON"),
}


class Unexpected(Exception):
    """An answer the soak did not expect."""


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ tallies


class Tally:
    """Outcomes and latencies by operation, shared by the workers."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ok = collections.Counter()
        self.bad = collections.Counter()
        self.latency_ms = collections.defaultdict(list)
        self.by_server = collections.Counter()
        self.ws_messages = 0
        self.details = []  # the first unexpected errors, with details

    def record_ok(self, op, started, server=None, ws_messages=0):
        elapsed = (time.monotonic() - started) * 1000
        with self.lock:
            self.ok[op] += 1
            self.latency_ms[op].append(elapsed)
            if server:
                self.by_server[server] += 1
            self.ws_messages += ws_messages

    def record_bad(self, op, worker, t, err):
        with self.lock:
            self.bad[op] += 1
            if len(self.details) < SHOW_UNEXPECTED:
                self.details.append((t, worker, op, f"{type(err).__name__}: {err}"))

    def totals(self):
        with self.lock:
            return sum(self.ok.values()) + sum(self.bad.values()), sum(self.bad.values())


# --------------------------------------------------------- HTTP by hand


def read_head(f):
    """Status code and headers (lower-case names, values joined by ', ')."""
    line = f.readline(65536)
    if not line:
        raise Unexpected("connection closed before a response")
    parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise Unexpected(f"bad status line {line[:80]!r}")
    return int(parts[1]), read_fields(f)


def read_fields(f):
    headers = {}
    while True:
        line = f.readline(65536)
        if not line:
            raise Unexpected("connection closed inside a header block")
        if line in (b"\r\n", b"\n"):
            return headers
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value


def read_exact(f, n):
    data = f.read(n)
    if len(data) != n:
        raise Unexpected(f"connection closed after {len(data)} of {n} bytes")
    return data


def read_chunked(f):
    """A chunked body: (data, number of chunks, trailer fields)."""
    body, chunks = [], 0
    while True:
        size_line = f.readline(1024)
        if not size_line:
            raise Unexpected("connection closed inside a chunked body")
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            return b"".join(body), chunks, read_fields(f)
        body.append(read_exact(f, size))
        chunks += 1
        if read_exact(f, 2) != b"\r\n":
            raise Unexpected("chunk not followed by CRLF")


def has_token(value, token):
    return token in (t.strip().lower() for t in (value or "").split(","))


class RawConn:
    """A keep-alive socket for requests http.client cannot check (trailers)."""

    def __init__(self, port):
        self.port = port
        self.sock = self.f = None
        self.last_used = 0.0

    def ensure(self):
        if self.sock and time.monotonic() - self.last_used > IDLE_REOPEN_S:
            self.close()
        if not self.sock:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=IO_TIMEOUT_S)
            self.f = self.sock.makefile("rb")

    def close(self):
        if self.sock:
            self.f.close()
            self.sock.close()
        self.sock = self.f = None


# -------------------------------------------------------------- WebSocket


def ws_mask(data, key):
    n = len(data)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def ws_frame(opcode, payload):
    """A final, masked client frame (RFC 6455 §5.2)."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    key = os.urandom(4)
    return head + key + ws_mask(payload, key)


def ws_read_frame(f):
    b0, b1 = read_exact(f, 2)
    if b1 & 0x80:
        raise Unexpected("the server masked a frame")
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(read_exact(f, 2), "big")
    elif n == 127:
        n = int.from_bytes(read_exact(f, 8), "big")
    return bool(b0 & 0x80), b0 & 0x0F, read_exact(f, n)


def ws_read_message(sock, f):
    """The next data or close message, answering pings; (opcode, payload)."""
    opcode, parts = None, []
    while True:
        fin, op, payload = ws_read_frame(f)
        if op == 0x9:  # ping
            sock.sendall(ws_frame(0xA, payload))
            continue
        if op == 0xA:  # pong
            continue
        if op == 0x8:
            return op, payload
        if op != 0:
            opcode = op
        parts.append(payload)
        if fin:
            return opcode, b"".join(parts)


# ------------------------------------------------------------------ workers


class Worker(threading.Thread):
    def __init__(self, index, args, tally, stop, t0):
        super().__init__(name=f"worker-{index}", daemon=True)
        self.index = index
        self.args = args
        self.tally = tally
        self.stop = stop
        self.t0 = t0
        self.rng = random.Random(args.seed * 1000 + index)
        self.port = args.proxy_port
        self.upstreams = set(args.upstream)
        self.http = None
        self.http_used = 0.0
        self.raw = RawConn(self.port)
        self.n = 0

    # --- connections

    def conn(self):
        if self.http and time.monotonic() - self.http_used > IDLE_REOPEN_S:
            self.http.close()
            self.http = None
        if not self.http:
            self.http = http.client.HTTPConnection("127.0.0.1", self.port, timeout=IO_TIMEOUT_S)
        return self.http

    def exchange(self, method, path, body=None, headers=None, fresh=False, chunked=False):
        """One request; (status, headers, body). Resets the connection on failure."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=IO_TIMEOUT_S) if fresh else self.conn()
        try:
            c.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        except BaseException:
            c.close()
            raise
        finally:
            if fresh:
                c.close()
            else:
                self.http_used = time.monotonic()

    def close(self):
        if self.http:
            self.http.close()
        self.raw.close()

    # --- checks

    def echo(self, status, headers, data, method, uri, body_bytes=0):
        if status != 200:
            raise Unexpected(f"{method} {uri}: status {status}, body {data[:200]!r}")
        try:
            report = json.loads(data)
        except ValueError:
            raise Unexpected(f"{method} {uri}: not a JSON echo: {data[:200]!r}") from None
        want = {"method": method, "uri": "/base" + uri, "body_bytes": body_bytes}
        got = {k: report.get(k) for k in want}
        if got != want:
            raise Unexpected(f"echo {got} instead of {want}")
        server = report.get("server")
        if server not in self.upstreams or headers.get("x-lab-server") != server:
            raise Unexpected(f"echo from {server!r} (x-lab-server {headers.get('x-lab-server')!r})")
        return server

    def path(self, what):
        self.n += 1
        return f"/soak/w{self.index}/{self.n}/{what}"

    # --- operations (each returns the upstream that answered, if any)

    def op_get(self, fresh=False):
        uri = self.path("get") + f"?q={self.rng.randrange(10**6)}"
        headers = {"Accept": "application/json"}
        if fresh:
            headers["Connection"] = "close"
        return self.echo(*self.exchange("GET", uri, headers=headers, fresh=fresh), "GET", uri)

    def op_get_close(self):
        return self.op_get(fresh=True)

    def body(self):
        size = self.rng.choice([0, 1, 100, 1000, 4096, 16384, 65536])
        return os.urandom(self.rng.randint(size // 2, size) if size > 1 else size)

    def op_post(self):
        uri, body = self.path("post"), self.body()
        headers = {"Accept": "application/json", "Content-Type": "application/octet-stream"}
        return self.echo(*self.exchange("POST", uri, body=body, headers=headers), "POST", uri, len(body))

    def op_post_chunked(self):
        uri, body = self.path("chunked"), self.body()
        pieces = [body[i : i + 3000] for i in range(0, len(body), 3000)]
        headers = {"Accept": "application/json", "Transfer-Encoding": "chunked"}
        got = self.exchange("POST", uri, body=iter(pieces), headers=headers, chunked=True)
        return self.echo(*got, "POST", uri, len(body))

    def op_stream(self):
        raw = self.raw
        raw.ensure()
        try:
            raw.sock.sendall(
                f"GET {self.path('stream')}?n=5&ms=20 HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                "TE: trailers\r\nConnection: TE\r\n\r\n".encode()
            )
            status, headers = read_head(raw.f)
            if status != 200 or not has_token(headers.get("transfer-encoding"), "chunked"):
                raise Unexpected(f"stream: status {status}, transfer-encoding {headers.get('transfer-encoding')!r}")
            data, chunks, trailers = read_chunked(raw.f)
            raw.last_used = time.monotonic()
            if has_token(headers.get("connection"), "close"):
                raw.close()
        except BaseException:
            raw.close()
            raise
        lines = re.findall(rb"^chunk (\d+)/5 at \d+ ms$", data, re.M)
        if lines != [b"1", b"2", b"3", b"4", b"5"]:
            raise Unexpected(f"stream: chunk lines {lines} in {chunks} chunk(s): {data[:300]!r}")
        if trailers.get("x-lab-chunks") != "5":
            raise Unexpected(f"stream: trailers {trailers} (want X-Lab-Chunks: 5)")
        server = headers.get("x-lab-server")
        if server not in self.upstreams:
            raise Unexpected(f"stream from {server!r}")
        return server

    def op_ws(self):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=IO_TIMEOUT_S)
        f = sock.makefile("rb")
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall(
                f"GET {self.path('ws')} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            status, headers = read_head(f)
            accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            if (
                status != 101
                or not has_token(headers.get("upgrade"), "websocket")
                or not has_token(headers.get("connection"), "upgrade")
                or headers.get("sec-websocket-accept") != accept
            ):
                raise Unexpected(f"ws handshake: status {status}, headers {headers}")
            count = self.rng.randint(2, 5)
            for i in range(count):
                size = self.rng.choice([5, 100, 300, 5000, 70000])
                text = f"soak w{self.index} #{i} ".encode() + base64.b64encode(os.urandom(size))[:size]
                sock.sendall(ws_frame(0x1, text))
                opcode, payload = ws_read_message(sock, f)
                if opcode != 0x1 or payload != text:
                    raise Unexpected(f"ws echo #{i}: opcode {opcode}, {len(payload)} bytes for {len(text)}")
            sock.sendall(ws_frame(0x8, (1000).to_bytes(2, "big") + b"soak done"))
            opcode, payload = ws_read_message(sock, f)
            if opcode != 0x8 or payload[:2] != (1000).to_bytes(2, "big"):
                raise Unexpected(f"ws close: opcode {opcode}, payload {payload[:40]!r} (want close 1000)")
            rest = f.read(1)  # the server closes the TCP connection after the close handshake
            if rest != b"":
                raise Unexpected(f"ws: data {rest!r} after the close handshake")
            return None, count
        finally:
            f.close()
            sock.close()

    def op_error_500(self):
        status, headers, data = self.exchange("GET", "/error")
        if status != 500 or data != b"error handler" or headers.get("x-lab-server") not in self.upstreams:
            raise Unexpected(f"/error: status {status}, x-lab-server {headers.get('x-lab-server')!r}, {data[:200]!r}")
        return headers["x-lab-server"]

    def op_delay_ok(self):
        uri = self.path("delay") + "?ms=50"
        return self.echo(*self.exchange("GET", uri, headers={"Accept": "application/json"}), "GET", uri)

    def op_timeout_504(self):
        ms = int(self.args.response_timeout * 1000) + 500
        status, headers, data = self.exchange("GET", self.path("delay") + f"?ms={ms}")
        if status != 504 or "x-lab-server" in headers:
            raise Unexpected(f"delay ms={ms}: status {status}, headers {headers}, {data[:200]!r} (want 504 from the proxy)")

    def op_stats(self):
        status, _, data = self.exchange("GET", "/_lab/stats")
        stats = json.loads(data) if status == 200 else {}
        missing = {"uptime_seconds", "connections", "overall", "upstreams"} - stats.keys()
        if status != 200 or missing:
            raise Unexpected(f"/_lab/stats: status {status}, missing {missing}")

    def run(self):
        ops = list(OPERATIONS)
        weights = [OPERATIONS[o][0] for o in ops]
        while not self.stop.is_set():
            op = self.rng.choices(ops, weights)[0]
            started = time.monotonic()
            try:
                result = getattr(self, "op_" + op)()
                server, messages = result if isinstance(result, tuple) else (result, 0)
                self.tally.record_ok(op, started, server, messages)
            except Exception as err:  # noqa: BLE001 - every failure is counted and shown
                self.tally.record_bad(op, self.name, time.monotonic() - self.t0, err)
            if self.args.pause_ms:
                time.sleep(self.rng.uniform(0, self.args.pause_ms) / 1000)
        self.close()


# ------------------------------------------------------------- sampling


def proc_sample(pid):
    """VmRSS and VmHWM in kB, open fds and threads of a process, or None when it is gone."""
    try:
        fields = {}
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM", "Threads"):
                    fields[name] = int(value.split()[0])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields["VmRSS"], fields["VmHWM"], fds, fields["Threads"]


def slope_per_min(points):
    """Least-squares slope of (seconds, value) points, per minute."""
    if len(points) < 2:
        return 0.0
    mx = statistics.fmean(t for t, _ in points)
    my = statistics.fmean(v for _, v in points)
    den = sum((t - mx) ** 2 for t, _ in points)
    return 60 * sum((t - mx) * (v - my) for t, v in points) / den if den else 0.0


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def get_stats(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=IO_TIMEOUT_S)
    try:
        c.request("GET", "/_lab/stats")
        return json.loads(c.getresponse().read())
    finally:
        c.close()


# ------------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxy-port", type=int, required=True)
    ap.add_argument("--proxy-pid", type=int, required=True, help="the process whose memory is sampled")
    ap.add_argument("--upstream", action="append", required=True, help="HOST:PORT of an upstream (repeat)")
    ap.add_argument("--duration", type=int, default=600, help="seconds of load (default 600)")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--pause-ms", type=float, default=5, help="each worker waits up to this long between operations")
    ap.add_argument("--response-timeout", type=float, default=1.0, help="the proxy's --response-timeout, seconds")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", required=True, help="directory for samples.csv and summary.md")
    args = ap.parse_args()

    os.makedirs(args.work, exist_ok=True)
    if proc_sample(args.proxy_pid) is None:
        log(f"error: no process {args.proxy_pid} to sample")
        return 2

    tally, stop = Tally(), threading.Event()
    t0 = time.monotonic()
    workers = [Worker(i, args, tally, stop, t0) for i in range(args.workers)]
    for w in workers:
        w.start()
    log(f"{args.workers} workers for {args.duration} s through 127.0.0.1:{args.proxy_port}; sampling pid {args.proxy_pid} every {SAMPLE_EVERY_S} s")

    samples = []  # (t, rss_kb, hwm_kb, fds, threads, requests, unexpected)
    csv_path = os.path.join(args.work, "samples.csv")
    proxy_died = False
    with open(csv_path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["t_s", "rss_kb", "hwm_kb", "fds", "threads", "requests", "unexpected"])
        k, prev = 0, 0
        while True:
            target = t0 + k * SAMPLE_EVERY_S
            time.sleep(max(0.0, target - time.monotonic()))
            t = round(time.monotonic() - t0, 1)
            proc = proc_sample(args.proxy_pid)
            if proc is None:
                log(f"error: the proxy (pid {args.proxy_pid}) is gone at {t} s")
                proxy_died = True
                break
            requests, bad = tally.totals()
            row = (t, *proc, requests, bad)
            samples.append(row)
            writer.writerow(row)
            out.flush()
            rate = (requests - prev) / SAMPLE_EVERY_S if k else 0
            log(
                f"t={t:5.0f}s  rss {proc[0] / 1024:6.1f} MB  hwm {proc[1] / 1024:6.1f} MB  fds {proc[2]:4}  "
                f"threads {proc[3]:2}  requests {requests:7} ({rate:5.0f}/s)  unexpected {bad}"
            )
            prev = requests
            if t >= args.duration:
                break
            k += 1
    stop.set()
    for w in workers:
        w.join(IO_TIMEOUT_S * 2)
    stuck = [w.name for w in workers if w.is_alive()]

    # The proxy at rest: every client connection of the workers is closed.
    idle = None
    if not proxy_died:
        for _ in range(50):
            time.sleep(0.1)
            try:
                idle = get_stats(args.proxy_port)
            except (OSError, ValueError, http.client.HTTPException) as err:
                log(f"error: /_lab/stats after the load: {err}")
                return 1
            if idle["connections"]["open"] <= 1 and idle["overall"]["in_flight"] == 0:
                break
        after = proc_sample(args.proxy_pid)
        proxy_died = after is None

    # ---- the verdict
    n = len(samples)
    second = samples[n // 3 : 2 * n // 3] or samples
    last = samples[2 * n // 3 :] or samples
    warmup = min(WARMUP_S, args.duration / 3)
    trend = [(s[0], s[1] / 1024) for s in samples if s[0] >= warmup]
    rss_second = statistics.median(s[1] for s in second) / 1024
    rss_last = statistics.median(s[1] for s in last) / 1024
    growth = rss_last / rss_second - 1
    slope = slope_per_min(trend)
    fd_second = statistics.median(s[3] for s in second)
    fd_last = statistics.median(s[3] for s in last)
    requests, unexpected = tally.totals()

    checks = [
        (f"unexpected errors: {unexpected}", unexpected == 0),
        ("proxy still running" if not proxy_died else "proxy DIED", not proxy_died),
        ("workers finished" if not stuck else f"workers stuck: {stuck}", not stuck),
        (
            f"RSS median last third {rss_last:.1f} MB vs second third {rss_second:.1f} MB: "
            f"{growth * 100:+.1f} % (limit +{MAX_RSS_GROWTH * 100:.0f} %)",
            growth < MAX_RSS_GROWTH,
        ),
        (
            f"RSS slope after {warmup:.0f} s: {slope:+.3f} MB/min over {len(trend)} samples "
            f"(limit {MAX_RSS_SLOPE_MB_PER_MIN} MB/min)",
            slope < MAX_RSS_SLOPE_MB_PER_MIN,
        ),
        (
            f"open fds median last third {fd_last:.0f} vs second third {fd_second:.0f} (limit +{MAX_FD_GROWTH})",
            fd_last - fd_second <= MAX_FD_GROWTH,
        ),
    ]
    if idle is not None:
        open_conns, in_flight = idle["connections"]["open"], idle["overall"]["in_flight"]
        checks.append(
            (
                f"proxy at rest after the load: {open_conns} client connection(s) open (the stats request), "
                f"{in_flight} request(s) in flight",
                open_conns <= 1 and in_flight == 0,
            )
        )
        # The proxy's own count of what it proxied must match the client's.
        o = idle["overall"]
        proxied = requests - tally.ok["stats"] - tally.bad["stats"]
        want = (proxied, tally.ok["ws"], tally.ok["error_500"] + tally.ok["timeout_504"])
        got = (o["requests"], o["status"]["1xx"], o["status"]["5xx"])
        checks.append(
            (
                f"the proxy's /_lab/stats agrees with the client: {got[0]} requests (client: {want[0]} "
                f"proxied), 1xx {got[1]} (WebSocket sessions {want[1]}), 5xx {got[2]} (500s + 504s {want[2]})",
                got == want,
            )
        )
    passed = all(ok for _, ok in checks)

    lines = ["| operation | expected answer | count | unexpected | p50 ms | p99 ms | max ms |", "|---|---|--:|--:|--:|--:|--:|"]
    for op, (_, expect) in OPERATIONS.items():
        lat = tally.latency_ms[op]
        lines.append(
            f"| {op} | {expect} | {tally.ok[op] + tally.bad[op]} | {tally.bad[op]} | "
            f"{percentile(lat, 50):.1f} | {percentile(lat, 99):.1f} | {max(lat, default=float('nan')):.1f} |"
        )
    lines.append(f"| **all** | | **{requests}** | **{unexpected}** | | | |")
    lines.append("")
    rss = [s[1] / 1024 for s in samples]
    fds = [s[3] for s in samples]
    lines += [
        "| proxy (pid %d) | first | last | min | max | after the load |" % args.proxy_pid,
        "|---|--:|--:|--:|--:|--:|",
        f"| VmRSS MB | {rss[0]:.1f} | {rss[-1]:.1f} | {min(rss):.1f} | {max(rss):.1f} | "
        + (f"{after[0] / 1024:.1f} |" if not proxy_died and after else "- |"),
        f"| VmHWM MB | {samples[0][2] / 1024:.1f} | {samples[-1][2] / 1024:.1f} | | | "
        + (f"{after[1] / 1024:.1f} |" if not proxy_died and after else "- |"),
        f"| open fds | {fds[0]} | {fds[-1]} | {min(fds)} | {max(fds)} | "
        + (f"{after[2]} |" if not proxy_died and after else "- |"),
        f"| threads | {samples[0][4]} | {samples[-1][4]} | {min(s[4] for s in samples)} | {max(s[4] for s in samples)} | "
        + (f"{after[3]} |" if not proxy_died and after else "- |"),
        "",
        f"- {requests} operations in {samples[-1][0]:.0f} s ({requests / max(samples[-1][0], 1):.0f}/s), "
        f"{tally.ws_messages} WebSocket messages echoed",
        "- answered by: " + ", ".join(f"{s} {c}" for s, c in sorted(tally.by_server.items())),
    ]
    if idle is not None:
        o = idle["overall"]
        lines.append(
            f"- the proxy's /_lab/stats at rest: {o['requests']} requests, status {o['status']}, "
            f"layers {o.get('layers')}, {idle['connections']['total']} client connections in all"
        )
    lines.append("")
    lines += [f"- [{'x' if ok else ' '}] {text}" for text, ok in checks]
    lines.append("")
    lines.append(f"**verdict: {'PASS' if passed else 'FAIL'}**")
    summary = "\n".join(lines)

    if tally.details:
        print(f"\nthe first {len(tally.details)} unexpected error(s):")
        for t, worker, op, msg in tally.details:
            print(f"  t={t:6.1f}s {worker} {op}: {msg}")
    print("\n" + summary + "\n", flush=True)
    with open(os.path.join(args.work, "summary.md"), "w") as f:
        f.write(summary + "\n")
    log(f"samples: {csv_path}; summary: {os.path.join(args.work, 'summary.md')}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
