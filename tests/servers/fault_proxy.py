#!/usr/bin/python3
"""A fault-injecting, byte-counting HTTP proxy for the S3 tests.

    fault_proxy.py UPSTREAM_HOST:PORT [--port N] [--p503 0.05] [--preset 0.01]
                   [--seed N] [--reset-every N] [--reset-first-of REGEX]
                   [--reset-max N] [--fail-part-of KEY]
                   [--hold-reply-of REGEX --hold-until FILE [--hold-signal FILE]
                    [--hold-timeout S]] [--shuffle-list | --swap-list-page K | --late-list-key]

Listens on 127.0.0.1:PORT (--port, default 0: a free port; the port is
printed on stdout once it listens) and forwards each request to UPSTREAM,
one upstream connection a request.

Faults:
  --p503 P          answer 503 SlowDown to a fraction P of the requests.
  --preset P        reset a fraction P of the requests (random, --seed).
  --reset-every N   reset every Nth request (the Nth, 2Nth, ...).
  --reset-first-of REGEX
                    reset the first attempt of every distinct request whose
                    "METHOD /path?query" matches REGEX (re.search); a request
                    is the same when its method, path, query, Range and
                    Content-MD5 headers are: retries of it pass (unless
                    another rule hits them).
  --reset-max N     at most N resets in all (default: no limit).
  --fail-part-of KEY
                    every multipart part upload of KEY gets a 400 (a
                    permanent failure), to check that failed uploads are
                    aborted.
  --status-of REGEX=CODE
                    every request whose "METHOD /path?query" matches REGEX
                    gets an S3 error with that status (403: AccessDenied),
                    without reaching the upstream (e.g. the second page of a
                    listing: "continuation-token=").
  --outage-file FILE
                    while FILE exists the proxy is down: its open
                    connections are reset and new ones refused (its
                    listening socket closed); it listens again on the same
                    port once FILE is gone (a load balancer restarting).
  --log-headers REGEX
                    log the headers of every request matching REGEX
                    ("request: METHOD /path | name: value | ...").

Listing order (flat ListObjectsV2 replies only: list-type=2 without a
delimiter; the XML stays valid, only the order of the <Contents> changes):
  --shuffle-list    shuffle the <Contents> of every page, seeded by --seed and
                    the request (the same request is shuffled the same way);
                    a page of two or more keys always changes.
  --swap-list-page K
                    swap two neighbouring <Contents> in the middle of page K
                    (1 = the first page) of each listing, and leave every
                    other page alone: disorder that shows only after K-1
                    pages. Pages are counted along the continuation tokens.
  --late-list-key   hold back the middle <Contents> of the first page of each
                    listing and put it first on the second page: a key that
                    comes after keys sorting after it, once earlier pages
                    were given out (a listing that cannot be repaired in
                    order). Listings of one page stay as they are.

A reset is a real TCP RST (SO_LINGER 0, then close), at one of three points,
taken in turn (each rule keeps its own turn, so that N resets of one rule
cover all three points once N >= 3):
  mid-request   after the request's headers and half of its body, before
                anything reaches the upstream;
  before-reply  after the upstream answered (a PUT or DELETE took effect),
                before any byte of the reply;
  mid-reply     after the reply's headers and half of its body (of a reply
                with fewer than 2 body bytes: half of its header block).

  --hold-reply-of REGEX --hold-until FILE
                    the reply to the first request matching REGEX is held
                    after the upstream answered it, before any byte of it is
                    relayed, until FILE exists (at most --hold-timeout s,
                    default 30). With --hold-signal FILE2, FILE2 is created
                    once the reply is held (so a test can change the object
                    while a reader waits for its first bytes).

Serves until stdin closes. Logs one line per injected reset or hold on
stderr as it happens, and at exit a line of counters:
  fault_proxy: totals requests=N 503=N reset=N mid-request=N before-reply=N
  mid-reply=N part400=N held=N hold-timeout=N body-bytes=N status-of=N
  reordered=N status-CODE=N...
(body-bytes: request and reply bodies that crossed the proxy; status-CODE:
replies relayed from the upstream, by status).
"""
import argparse
import html
import http.client
import http.server
import os
import random
import re
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse

ap = argparse.ArgumentParser()
ap.add_argument("upstream")
ap.add_argument("--port", type=int, default=0)
ap.add_argument("--p503", type=float, default=0.05)
ap.add_argument("--preset", type=float, default=0.01)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--reset-every", type=int, default=0)
ap.add_argument("--reset-first-of", default=None)
ap.add_argument("--reset-max", type=int, default=-1)
ap.add_argument("--fail-part-of", default=None)
ap.add_argument("--hold-reply-of", default=None)
ap.add_argument("--hold-until", default=None)
ap.add_argument("--hold-signal", default=None)
ap.add_argument("--hold-timeout", type=float, default=30.0)
ap.add_argument("--status-of", default=None)
ap.add_argument("--log-headers", default=None)
ap.add_argument("--outage-file", default=None)
ap.add_argument("--shuffle-list", action="store_true")
ap.add_argument("--swap-list-page", type=int, default=0)
ap.add_argument("--late-list-key", action="store_true")
args = ap.parse_args()
if sum(map(bool, (args.shuffle_list, args.swap_list_page, args.late_list_key))) > 1:
    ap.error("--shuffle-list, --swap-list-page and --late-list-key exclude each other")
if args.swap_list_page < 0:
    ap.error("--swap-list-page wants a page number (1 = the first)")
if args.hold_reply_of and not args.hold_until:
    ap.error("--hold-reply-of needs --hold-until")
first_of = re.compile(args.reset_first_of) if args.reset_first_of else None
hold_re = re.compile(args.hold_reply_of) if args.hold_reply_of else None
status_re = status_code = None
if args.status_of:
    _pat, _, _code = args.status_of.rpartition("=")
    if not _pat or not _code.isdigit():
        ap.error("--status-of wants REGEX=CODE")
    status_re, status_code = re.compile(_pat), int(_code)
headers_re = re.compile(args.log_headers) if args.log_headers else None

rng = random.Random(args.seed)
lock = threading.Lock()
POINTS = ("mid-request", "before-reply", "mid-reply")
counts = {"requests": 0, "503": 0, "reset": 0, "part400": 0, "held": 0,
          "hold-timeout": 0, "body-bytes": 0, "status-of": 0, "outages": 0, "reordered": 0}
for _p in POINTS:
    counts[_p] = 0
statuses = {}
turn = {"first-of": 0, "every": 0, "random": 0}  # each rule's next point
seen = set()  # identities already reset by --reset-first-of
hold_done = [False]
pages = {}  # continuation token -> the page number it asks for
late = {}  # continuation token -> the <Contents> held back for that page
up_host, up_port = args.upstream.rsplit(":", 1)

SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message></Error>")


def log(msg):
    print("fault_proxy: " + msg, file=sys.stderr, flush=True)


CONTENTS = re.compile(rb"<Contents>.*?</Contents>", re.S)
NEXT_TOKEN = re.compile(rb"<NextContinuationToken>(.*?)</NextContinuationToken>", re.S)


def reorder_listing(method, path, status, data):
    """The reply to a flat ListObjectsV2 request, its <Contents> reordered as
    --shuffle-list / --swap-list-page say; other replies as they are."""
    if not (args.shuffle_list or args.swap_list_page or args.late_list_key) or \
            method != "GET" or status != 200:
        return data
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query, keep_blank_values=True)
    if q.get("list-type") != ["2"] or q.get("delimiter", [""]) != [""]:
        return data
    token = q.get("continuation-token", [None])[0]
    m = NEXT_TOKEN.search(data)
    next_token = html.unescape(m.group(1).decode()) if m else None
    with lock:
        page = pages.get(token, 1) if token else 1
        if next_token:
            pages[next_token] = page + 1
        held = late.pop(token, None) if token else None
    spans = [m.span() for m in CONTENTS.finditer(data)]
    blocks = [data[a:b] for a, b in spans]
    if args.late_list_key:
        if held is not None and spans:
            data = data[:spans[0][0]] + held + data[spans[0][0]:]
        elif page == 1 and next_token and len(blocks) >= 2:
            a, b = spans[len(spans) // 2]
            with lock:
                late[next_token] = data[a:b]
            data = data[:a] + data[b:]
        else:
            return data
        with lock:
            counts["reordered"] += 1
        return data
    if len(blocks) < 2:
        return data
    if args.shuffle_list:
        order = blocks[:]
        random.Random("%d %s" % (args.seed, path)).shuffle(order)
        if order == blocks:
            order[0], order[1] = order[1], order[0]
    elif page == args.swap_list_page:
        order = blocks[:]
        i = len(order) // 2 - 1
        order[i], order[i + 1] = order[i + 1], order[i]
    else:
        return data
    out, pos = [], 0
    for (a, b), blk in zip(spans, order):
        out += [data[pos:a], blk]
        pos = b
    out.append(data[pos:])
    with lock:
        counts["reordered"] += 1
    return b"".join(out)


class Reset(Exception):
    """Raised after the client connection was reset: the handler ends."""


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _what(self):
        rng_hdr = self.headers.get("Range")
        return "%s %s%s" % (self.command, self.path, " [%s]" % rng_hdr if rng_hdr else "")

    def _rst(self, point, detail):
        """Reset the client connection: RST, not FIN (SO_LINGER 0, close)."""
        sock = self.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # rfile holds a reference to the socket: the descriptor closes (and
        # the RST goes out) only when every reference is gone
        self.rfile.close()
        self.wfile.close()
        sock.close()
        self.close_connection = True
        with lock:
            counts[point] += 1
        log("reset %s: %s (%s)" % (point, self._what(), detail))
        raise Reset()

    def _reply(self, code, body, extra=()):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/xml")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _decide(self):
        """The reset point for this request, or "503", or None."""
        ident = "%s %s %s %s" % (self.command, self.path, self.headers.get("Range", ""),
                                 self.headers.get("Content-MD5", ""))
        with lock:
            counts["requests"] += 1
            n = counts["requests"]
            roll = rng.random()
            cap_ok = args.reset_max < 0 or counts["reset"] < args.reset_max
            rule = None
            if cap_ok and first_of and ident not in seen and first_of.search(
                    "%s %s" % (self.command, self.path)):
                seen.add(ident)
                rule = "first-of"
            elif cap_ok and args.reset_every and n % args.reset_every == 0:
                rule = "every"
            elif cap_ok and roll < args.preset:
                rule = "random"
            if rule:
                counts["reset"] += 1
                point = POINTS[turn[rule] % len(POINTS)]
                turn[rule] += 1
                return point
            if roll < args.preset + args.p503:
                counts["503"] += 1
                return "503"
        return None

    def _hold(self):
        with lock:
            if hold_done[0] or not hold_re.search("%s %s" % (self.command, self.path)):
                return
            hold_done[0] = True
            counts["held"] += 1
        log("holding the reply to %s until %s exists" % (self._what(), args.hold_until))
        if args.hold_signal:
            with open(args.hold_signal, "w") as f:
                f.write("%s\n" % self._what())
        t0 = time.monotonic()
        while not os.path.exists(args.hold_until):
            if time.monotonic() - t0 > args.hold_timeout:
                with lock:
                    counts["hold-timeout"] += 1
                log("hold timed out after %.0f s: %s" % (args.hold_timeout, self._what()))
                return
            time.sleep(0.01)
        log("released the reply to %s after %.2f s" % (self._what(), time.monotonic() - t0))

    def _forward(self):
        fault = self._decide()
        n = int(self.headers.get("Content-Length", "0") or 0)
        if fault == "mid-request":
            got = len(self.rfile.read(n // 2)) if n else 0
            with lock:
                counts["body-bytes"] += got
            self._rst(fault, "after %d of %d request body bytes" % (got, n))
        body = self.rfile.read(n) if n else None
        with lock:
            counts["body-bytes"] += n
        if fault == "503":
            return self._reply(503, SLOWDOWN)
        line = "%s %s" % (self.command, self.path)
        if headers_re and headers_re.search(line):
            log("request: %s | %s" % (line, " | ".join(
                "%s: %s" % (k.lower(), v) for k, v in self.headers.items())))
        if status_re and status_re.search(line):
            with lock:
                counts["status-of"] += 1
            code = {403: b"AccessDenied", 404: b"NoSuchKey"}.get(status_code, b"InternalError")
            return self._reply(status_code, b"<Error><Code>" + code +
                               b"</Code><Message>injected</Message></Error>")
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
        data = reorder_listing(self.command, self.path, resp.status, resp.read())
        conn.close()
        with lock:
            counts["body-bytes"] += len(data)
            key = "status-%d" % resp.status
            statuses[key] = statuses.get(key, 0) + 1
        if fault == "before-reply":
            self._rst(fault, "the upstream answered %d" % resp.status)
        if hold_re:
            self._hold()
        head = ["%s %d %s\r\n" % (self.protocol_version, resp.status, resp.reason)]
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                head.append("%s: %s\r\n" % (k, v))
        # a HEAD reply's Content-Length is the object's size, not its (empty) body's
        length = resp.getheader("Content-Length") if self.command == "HEAD" else None
        head.append("Content-Length: %s\r\n\r\n" % (length or len(data)))
        head = "".join(head).encode("latin-1")
        if self.command == "HEAD":
            data = b""
        if fault == "mid-reply":
            if len(data) >= 2:
                self.wfile.write(head + data[:len(data) // 2])
                detail = "after the headers and %d of %d body bytes" % (len(data) // 2, len(data))
            else:
                self.wfile.write(head[:len(head) // 2])
                detail = "after %d of %d header bytes" % (len(head) // 2, len(head))
            self._rst(fault, "status %d, %s" % (resp.status, detail))
        self.wfile.write(head + data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

    def handle(self):
        with lock:
            live.add(self.connection)
        try:
            self._handle()
        finally:
            with lock:
                live.discard(self.connection)

    def _handle(self):
        try:
            super().handle()
        except (Reset, BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


live = set()  # client connections being served
srv = Server(("127.0.0.1", args.port), Proxy)
port = srv.server_address[1]
print(port, flush=True)
threading.Thread(target=srv.serve_forever, daemon=True).start()


def outages():
    """--outage-file: down while the file exists, up again after."""
    global srv
    while True:
        while not os.path.exists(args.outage_file):
            time.sleep(0.02)
        srv.shutdown()
        srv.server_close()
        with lock:
            conns = list(live)
            counts["outages"] += 1
        for c in conns:
            try:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        log("outage: down, %d connections reset" % len(conns))
        while os.path.exists(args.outage_file):
            time.sleep(0.02)
        srv = Server(("127.0.0.1", port), Proxy)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        log("outage: up again")


if args.outage_file:
    threading.Thread(target=outages, daemon=True).start()
sys.stdin.read()
srv.shutdown()
with lock:
    fields = ["requests", "503", "reset"] + list(POINTS) + [
        "part400", "held", "hold-timeout", "body-bytes", "status-of", "outages", "reordered"]
    line = " ".join("%s=%d" % (k, counts[k]) for k in fields)
    line += "".join(" %s=%d" % (k, v) for k, v in sorted(statuses.items()))
log("totals " + line)
