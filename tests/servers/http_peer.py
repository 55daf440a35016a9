#!/usr/bin/python3
"""A small HTTP/1.1 peer on 127.0.0.1 for the transport tests (tests/unit/test_http.c).

Paths: /status/N -> reply N; /echo -> the request body back, with the
request's method in X-Method; /big/N -> N bytes; /reset -> close the
connection without a reply; /conn -> the number of requests served on this
connection (keep-alive check). Prints the port on stdout, then serves until
stdin closes.
"""
import http.server
import socketserver
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        n = int(self.headers.get("Content-Length", "0") or 0)
        return self.rfile.read(n) if n else b""

    def _reply(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        self.served = getattr(self, "served", 0) + 1
        body = self._body()
        path = self.path.split("?")[0]
        if path.startswith("/status/"):
            return self._reply(int(path[8:]), b"<Error><Code>Test</Code></Error>")
        if path == "/echo":
            return self._reply(200, body, [("X-Method", self.command), ("ETag", '"e1"'),
                                           ("x-amz-meta-mtime", "1234.5")])
        if path.startswith("/big/"):
            return self._reply(200, b"x" * int(path[5:]))
        if path == "/reset":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if path == "/conn":
            return self._reply(200, str(self.served).encode())
        return self._reply(404)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

    def handle(self):
        try:
            self._loop()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on purpose (aborted uploads)

    def _loop(self):
        self.served = 0
        while True:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                return
            if not self.parse_request():
                return
            getattr(self, "do_" + self.command)()
            self.wfile.flush()
            if self.close_connection:
                return


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


srv = Server(("127.0.0.1", 0), Handler)
print(srv.server_address[1], flush=True)
threading.Thread(target=srv.serve_forever, daemon=True).start()
sys.stdin.read()
srv.shutdown()
