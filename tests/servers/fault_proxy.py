#!/usr/bin/python3
"""A fault-injecting, byte-counting HTTP proxy for the S3 tests.

    fault_proxy.py UPSTREAM_HOST:PORT [--p503 0.05] [--preset 0.01] [--seed N]
                   [--fail-part-of KEY]

Listens on 127.0.0.1 (a free port, printed on stdout), forwards each request
to UPSTREAM, and answers 503 SlowDown to a fraction p503 of requests and
closes the connection without a reply on a fraction preset. With
--fail-part-of KEY every multipart part upload of KEY gets a 400 (a
permanent failure), to check that failed uploads are aborted. Serves until
stdin closes; prints the counts of injected faults on stderr at exit.
"""
import argparse
import http.client
import http.server
import random
import socketserver
import sys
import threading

ap = argparse.ArgumentParser()
ap.add_argument("upstream")
ap.add_argument("--p503", type=float, default=0.05)
ap.add_argument("--preset", type=float, default=0.01)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--fail-part-of", default=None)
args = ap.parse_args()
rng = random.Random(args.seed)
lock = threading.Lock()
counts = {"requests": 0, "503": 0, "reset": 0, "part400": 0, "bytes": 0}
up_host, up_port = args.upstream.rsplit(":", 1)

SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message></Error>")


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _reply(self, code, body, extra=()):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/xml")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward(self):
        n = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(n) if n else None
        with lock:
            counts["requests"] += 1
            counts["bytes"] += n
            roll = rng.random()
        if roll < args.preset:
            with lock:
                counts["reset"] += 1
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if roll < args.preset + args.p503:
            with lock:
                counts["503"] += 1
            return self._reply(503, SLOWDOWN)
        if (args.fail_part_of and "partNumber=" in self.path
                and args.fail_part_of in self.path.split("?")[0]):
            with lock:
                counts["part400"] += 1
            return self._reply(400, b"<Error><Code>InvalidPart</Code><Message>injected"
                                    b"</Message></Error>")
        conn = http.client.HTTPConnection(up_host, int(up_port), timeout=60)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("connection", "proxy-connection")}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        with lock:
            counts["bytes"] += len(data)
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

    def handle(self):
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


srv = Server(("127.0.0.1", 0), Proxy)
print(srv.server_address[1], flush=True)
threading.Thread(target=srv.serve_forever, daemon=True).start()
sys.stdin.read()
srv.shutdown()
print("fault_proxy: %(requests)d requests, %(503)d answered 503, %(reset)d reset, "
      "%(part400)d parts refused, %(bytes)d body bytes" % counts, file=sys.stderr)
