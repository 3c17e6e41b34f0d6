#!/usr/bin/env python3
"""bench/idle_memory.py - memory per idle keep-alive client connection of a
running server (any of compare.sh's subjects: lab proxy, the floor reference,
nginx, the Go proxy), measured from outside.

Given the server's PID(s) and its loopback address, it

  1. reads the server's resident memory: VmRSS from /proc/PID/status, summed
     over every given PID and all its descendants (nginx: master + workers);
  2. opens N client TCP connections to it, in batches, sends one complete
     keep-alive `GET` on each and reads the complete response, so that every
     connection is a real idle keep-alive HTTP connection on which the server
     has parsed and answered a request;
  3. waits --settle seconds (2), checks how many are still open (a server
     may close idle connections), reads the resident memory again;
  4. prints `bytes per idle connection = (after - before) / N` and closes them.

    bench/idle_memory.py --pid 1234 --addr 127.0.0.1:18092
    bench/idle_memory.py --pid 1234 --addr 127.0.0.1:18094 --connections 2000

It raises its own file-descriptor limit (RLIMIT_NOFILE) to N + 256 and stops
with a clear message when the hard limit does not allow that. The server needs
a limit above N too (`ulimit -n` before starting it; nginx: worker_connections
and worker_rlimit_nofile). Loopback addresses only; the whole measurement is
bounded by --timeout (60 s). Exit status: 0 when measured, 1 when the
file-descriptor limit cannot be raised, 2 on bad arguments, 3 when the server
failed to hold the connections (refused, reset, closed, not answered in time). Python 3 standard library only; it
starts no process.
"""

import argparse
import asyncio
import ipaddress
import os
import resource
import sys
import time


class Failed(Exception):
    """The server did not hold the connections: exit status 3."""


def descendants(pid):
    """pid and every process below it (children via /proc/PID/task/*/children)."""
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                pass
    return seen


def vm_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0  # a zombie or kernel thread has no VmRSS


def rss_kb(pids):
    """VmRSS summed over the given PIDs and their descendants, in kB."""
    total, procs = 0, []
    for pid in pids:
        if not os.path.exists(f"/proc/{pid}/status"):
            raise Failed(f"process {pid} is gone")
        for p in descendants(pid):
            if p in procs:
                continue
            try:
                total += vm_rss_kb(p)
                procs.append(p)
            except OSError:
                pass  # exited between listing and reading
    return total, procs


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            sys.exit(f"idle_memory.py: error: {need} file descriptors are needed for "
                     f"the connections, but the hard limit (ulimit -Hn) is {hard}: "
                     f"raise it (e.g. in /etc/security/limits.conf, or run as root) "
                     f"or ask for fewer --connections")
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        except (ValueError, OSError) as e:
            sys.exit(f"idle_memory.py: error: cannot raise RLIMIT_NOFILE to {need}: {e}")


def check_ports(n):
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = map(int, f.read().split())
    except (OSError, ValueError):
        return
    if hi - lo + 1 < n + 1000:
        print(f"idle_memory.py: warning: the ephemeral port range {lo}-{hi} has "
              f"{hi - lo + 1} ports for {n} connections", file=sys.stderr)


async def read_response(reader):
    """Reads one whole response (Content-Length or chunked); returns its status
    code and whether the server said it will close the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise Failed(f"not an HTTP/1.x response: {lines[0]!r}")
    code, version = int(parts[1]), parts[0]
    length, chunked, close = None, False, version == "HTTP/1.0"
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding":
            chunked = "chunked" in value
        elif name == "connection":
            close = "close" in value or (version == "HTTP/1.0" and "keep-alive" not in value)
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                break  # (no trailers expected: a last chunk then CRLF)
    elif length is not None:
        await reader.readexactly(length)
    elif code not in (204, 304) and not 100 <= code < 200:
        raise Failed(f"a {code} response without Content-Length or chunked framing: "
                     "the connection cannot stay open")
    return code, close


async def open_one(host, port, request, conns):
    """Opens a connection, has one request answered on it, adds it to conns."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        code, close = await read_response(reader)
    except BaseException:
        writer.close()
        raise
    if code != 200:
        writer.close()
        raise Failed(f"the server answered {code} (200 expected)")
    if close:
        writer.close()
        raise Failed("the server answered `Connection: close`: not a keep-alive connection")
    conns.append((reader, writer))


async def open_all(host, port, n, batch, request, conns, progress):
    started = time.monotonic()
    for start in range(0, n, batch):
        count = min(batch, n - start)
        results = await asyncio.gather(
            *(open_one(host, port, request, conns) for _ in range(count)),
            return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            e = errors[0]
            what = str(e) if isinstance(e, Failed) else f"{type(e).__name__}: {e}"
            hint = ""
            if isinstance(e, (OSError, asyncio.IncompleteReadError)) and conns:
                hint = (" (is the server's file-descriptor limit, `ulimit -n` / nginx "
                        "worker_connections, high enough?)")
            raise Failed(f"{len(errors)} of a batch of {count} connections failed after "
                         f"{len(conns)} were open; the first: {what}{hint}")
        if progress and (len(conns) % (batch * 8) == 0 or len(conns) == n):
            print(f"  {len(conns)} open ({time.monotonic() - started:.1f} s)", file=sys.stderr)


def still_open(conns):
    """How many connections the server has not closed (no EOF, no error seen)."""
    return sum(1 for r, w in conns if not r.at_eof() and r.exception() is None
               and not w.is_closing())


async def close_all(conns):
    for _, w in conns:
        w.close()
    await asyncio.gather(*(w.wait_closed() for _, w in conns), return_exceptions=True)


async def measure(args, host, port):
    request = (f"GET {args.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
               "User-Agent: idle_memory.py\r\nConnection: keep-alive\r\n\r\n").encode()
    deadline = time.monotonic() + args.timeout
    before, procs = rss_kb(args.pid)
    conns = []
    started = time.monotonic()
    try:
        try:
            await asyncio.wait_for(
                open_all(host, port, args.connections, args.batch, request, conns,
                         not args.quiet),
                timeout=max(0.1, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise Failed(f"gave up after {args.timeout:.0f} s with {len(conns)} of "
                         f"{args.connections} connections open and answered: the server "
                         "stopped accepting or answering (its file-descriptor limit, "
                         "`ulimit -n` / nginx worker_connections?), or --timeout is too "
                         "short for this many") from None
        opened_in = time.monotonic() - started
        if time.monotonic() + args.settle > deadline:
            raise Failed(f"no time left to settle within --timeout {args.timeout:.0f} s")
        await asyncio.sleep(args.settle)
        after, procs = rss_kb(args.pid)
        held = still_open(conns)
        if held == 0:
            raise Failed("the server closed every connection before the measurement")
        per_conn = (after - before) * 1024 / held
        print(f"{args.label}: {held} idle keep-alive connections held "
              f"(of {args.connections} opened and answered in {opened_in:.1f} s, "
              f"measured {args.settle:g} s later); VmRSS of PID(s) "
              f"{' '.join(map(str, procs))}: {before / 1024:.1f} MB before, "
              f"{after / 1024:.1f} MB after")
        if held < args.connections:
            print(f"idle_memory.py: warning: the server closed {args.connections - held} "
                  "idle connections before the measurement; dividing by the ones it held",
                  file=sys.stderr)
        print(f"bytes per idle connection = ({after} kB - {before} kB) / {held} = "
              f"{per_conn:.0f}")
        if args.tsv:
            with open(args.tsv, "w") as f:
                f.write(f"{args.connections}\t{held}\t{before}\t{after}\t{per_conn:.0f}\n")
    finally:
        await close_all(conns)


def main():
    parser = argparse.ArgumentParser(
        description="Memory per idle keep-alive client connection of a running server "
                    "(VmRSS of its process and children, before and after N connections).")
    parser.add_argument("--pid", type=int, action="append", required=True,
                        help="the server's PID (repeatable; its children are included)")
    parser.add_argument("--addr", required=True, help="the server's address, 127.0.0.1:PORT")
    parser.add_argument("--connections", "-n", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=250,
                        help="connections opened at once (250)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds idle before the second reading (2)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="give up after this many seconds (60)")
    parser.add_argument("--path", default="/", help="the path to GET (/)")
    parser.add_argument("--label", default="server", help="the name printed with the result")
    parser.add_argument("--tsv", metavar="FILE",
                        help="also write: connections, held, RSS before kB, RSS after kB, "
                             "bytes per connection (tab-separated)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args()

    host, sep, port = args.addr.rpartition(":")
    host = host.strip("[]")
    try:
        if not sep or not ipaddress.ip_address(host).is_loopback:
            raise ValueError
        port = int(port)
    except ValueError:
        parser.error(f"--addr {args.addr!r}: a loopback address and port, e.g. 127.0.0.1:8080")
    if args.connections < 1 or args.batch < 1:
        parser.error("--connections and --batch must be at least 1")
    for pid in args.pid:
        if not os.path.exists(f"/proc/{pid}/status"):
            parser.error(f"--pid {pid}: no such process")

    raise_nofile(args.connections + 256)
    check_ports(args.connections)
    try:
        asyncio.run(measure(args, host, port))
    except Failed as e:
        print(f"idle_memory.py: {args.label}: error: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("idle_memory.py: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
