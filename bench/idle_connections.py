#!/usr/bin/env python3
"""bench/idle_connections.py - how much memory `lab proxy` needs to hold many
idle keep-alive client connections (issue 9's target: 10 000 with < 100 MB).

It starts `lab realserver` and `lab proxy` on free loopback ports, opens N
client connections to the proxy (in batches), sends one GET on each and reads
the whole response, then leaves every connection open and idle. It reports
the proxy's resident memory (VmRSS) before and after, its peak (VmHWM), its
open file descriptors, and checks that a sample of the idle connections still
answers a second request. Every process it starts is stopped at the end.

    bench/idle_connections.py                          # 10 000 connections
    bench/idle_connections.py --connections 2000 --lab target/debug/lab
    bench/idle_connections.py --connections 2000 --rounds 8   # memory given back?

With --rounds R it opens and uses N connections, closes them all, waits
--after seconds and measures, R times: the proxy's memory should come back
near its level before the load (within 20 %), round after round.

Needs a file-descriptor limit above N (it raises its own soft limit to the
hard limit; the proxy inherits it) and nothing but Python 3's standard library.
"""

import argparse
import asyncio
import os
import resource
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(pid, field):
    """A field of /proc/PID/status in MB (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_listening(port, proc, what):
    deadline = time.time() + 15
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"error: {what} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"error: {what} is not listening on 127.0.0.1:{port} after 15 s")


async def exchange(reader, writer):
    """Sends one keep-alive GET and reads the whole response (Content-Length)."""
    writer.write(b"GET /idle HTTP/1.1\r\nHost: lab\r\nConnection: keep-alive\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status_line + b" ":
        raise RuntimeError(f"unexpected answer: {status_line!r}")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)


async def open_one(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await exchange(reader, writer)
    return reader, writer


async def run(port, n, batch, sample):
    conns = []
    for start in range(0, n, batch):
        conns += await asyncio.gather(
            *(open_one(port) for _ in range(min(batch, n - start)))
        )
    return conns


async def recheck(conns):
    await asyncio.gather(*(exchange(r, w) for r, w in conns))


def open_use_close(port, n, batch, pid):
    """Opens n connections, uses each once, closes them all; returns the
    proxy's VmRSS while they were open."""
    loop = asyncio.new_event_loop()
    conns = loop.run_until_complete(run(port, n, batch, 0))
    loaded = status(pid, "VmRSS")
    for _, writer in conns:
        writer.close()
    loop.run_until_complete(asyncio.sleep(0.1))
    loop.close()
    return loaded


def rounds(args, proxy, port, before):
    """--rounds: open, use and close N connections R times; after each round
    and --after seconds idle, the proxy's VmRSS and open descriptors."""
    print(f"lab proxy, {args.rounds} rounds of {args.connections} keep-alive connections "
          f"opened, used once and closed; measured {args.after:.0f} s after each round:")
    print(f"  at start: VmRSS {before:.1f} MB, {open_fds(proxy.pid)} open fds")
    if args.warmup:
        open_use_close(port, args.warmup, args.batch, proxy.pid)
        time.sleep(args.after)
        before = status(proxy.pid, "VmRSS")
        print(f"  after ordinary traffic ({args.warmup} connections at once, then closed): "
              f"VmRSS {before:.1f} MB (heap and stacks {status(proxy.pid, 'RssAnon'):.1f} MB), "
              f"{open_fds(proxy.pid)} open fds: the level before the load")
    after = []
    for i in range(1, args.rounds + 1):
        loaded = open_use_close(port, args.connections, args.batch, proxy.pid)
        time.sleep(args.after)
        rss = status(proxy.pid, "VmRSS")
        after.append(rss)
        print(f"  round {i}: VmRSS {loaded:.1f} MB with them open, {rss:.1f} MB after "
              f"(heap and stacks {status(proxy.pid, 'RssAnon'):.1f} MB, "
              f"{open_fds(proxy.pid)} open fds)")
    worst = max(after)
    within = (worst - before) / before * 100
    verdict = "within" if worst <= before * 1.2 else "NOT within"
    print(f"  worst after a round: {worst:.1f} MB, {within:+.0f} % of the level before the load "
          f"({verdict} 20 %); peak VmHWM {status(proxy.pid, 'VmHWM'):.1f} MB")
    return 0 if worst <= before * 1.2 else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab", default=os.path.join(ROOT, "target/release/lab"))
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--settle", type=float, default=2.0, help="seconds idle before measuring")
    parser.add_argument("--rounds", type=int, default=0,
                        help="open, use and close N connections this many times")
    parser.add_argument("--after", type=float, default=4.0,
                        help="seconds after closing a round before measuring")
    parser.add_argument("--warmup", type=int, default=200,
                        help="with --rounds: connections of ordinary traffic (used once, closed) "
                             "before the level the rounds are held to")
    parser.add_argument("--proxy-flag", action="append", default=[], metavar="FLAG",
                        help="one more argument for lab proxy (repeat: --proxy-flag=--max-idle-per-host --proxy-flag=0)")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections + 1024
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            sys.exit(f"error: the file-descriptor limit is {hard}; {need} are needed (ulimit -n)")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))

    upstream_port, proxy_port = free_port(), free_port()
    procs = []
    try:
        upstream = subprocess.Popen(
            [args.lab, "realserver", "--addr", f"127.0.0.1:{upstream_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(upstream)
        wait_listening(upstream_port, upstream, "lab realserver")
        proxy = subprocess.Popen(
            [args.lab, "proxy", "--listen", f"127.0.0.1:{proxy_port}",
             "--upstream", f"http://127.0.0.1:{upstream_port}", "--lb", "round-robin",
             *args.proxy_flag],
            stdout=subprocess.DEVNULL,
            stderr=open(os.environ["LAB_BENCH_PROXY_LOG"], "w") if "LAB_BENCH_PROXY_LOG" in os.environ
            else subprocess.DEVNULL)
        procs.append(proxy)
        wait_listening(proxy_port, proxy, "lab proxy")

        before = status(proxy.pid, "VmRSS")
        if args.rounds:
            return rounds(args, proxy, proxy_port, before)
        started = time.time()
        loop = asyncio.new_event_loop()
        conns = loop.run_until_complete(run(proxy_port, args.connections, args.batch, 100))
        opened_in = time.time() - started
        time.sleep(args.settle)
        rss = status(proxy.pid, "VmRSS")
        hwm = status(proxy.pid, "VmHWM")
        fds = open_fds(proxy.pid)
        loop.run_until_complete(recheck(conns[:: max(1, len(conns) // 100)]))
        per_conn_kb = (rss - before) * 1024 / len(conns)
        print(f"lab proxy holding {len(conns)} idle keep-alive client connections "
              f"(opened and used once in {opened_in:.1f} s):")
        print(f"  VmRSS {before:.1f} MB before, {rss:.1f} MB with them open "
              f"({per_conn_kb:.1f} KB per connection); peak VmHWM {hwm:.1f} MB; "
              f"{fds} open fds; a sample of 100 answered a second request")
        for _, writer in conns:
            writer.close()
        loop.close()
        return 0
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


if __name__ == "__main__":
    sys.exit(main())
