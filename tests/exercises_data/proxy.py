"""A reverse proxy in Python, standard library only: the black-box contract
of `lab verify` kept by another language. It listens on $LISTEN, takes its
upstreams from $UPSTREAMS (space-separated URLs) in turn (round robin), and
does what exercise 3 asks: the upstream's status, X-Forwarded-For appended,
hop-by-hop headers dropped both ways."""

import http.client
import itertools
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP = {"connection", "proxy-connection", "keep-alive", "proxy-authenticate",
       "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"}

UPSTREAMS = [urlsplit(u) for u in os.environ["UPSTREAMS"].split()]
turn = itertools.cycle(range(len(UPSTREAMS)))
lock = threading.Lock()


def hop_by_hop(headers):
    """The names of headers that stay on their hop: the fixed ones and
    every name Connection lists."""
    names = set(HOP)
    for value in headers.get_all("Connection") or []:
        names.update(n.strip().lower() for n in value.split(",") if n.strip())
    return names


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        with lock:
            upstream = UPSTREAMS[next(turn)]
        drop = hop_by_hop(self.headers)
        headers = {}
        for name, value in self.headers.items():
            if name.lower() in drop or name.lower() == "host":
                continue
            headers[name] = value if name not in headers else headers[name] + ", " + value
        prior = self.headers.get_all("X-Forwarded-For")
        client = self.client_address[0]
        headers["X-Forwarded-For"] = ", ".join(prior + [client]) if prior else client
        headers.pop("x-forwarded-for", None)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        path = upstream.path.rstrip("/") + "/" + self.path.lstrip("/")
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=10)
        try:
            conn.request(self.command, path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
        except OSError as err:
            self.send_error(502, str(err))
            return
        finally:
            conn.close()
        self.send_response(answer.status)
        drop = hop_by_hop(answer.headers) | {"content-length", "date", "server"}
        for name, value in answer.headers.items():
            if name.lower() not in drop:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET

    def log_message(self, *args):
        pass


host, port = os.environ["LISTEN"].rsplit(":", 1)
ThreadingHTTPServer((host, int(port)), Proxy).serve_forever()
