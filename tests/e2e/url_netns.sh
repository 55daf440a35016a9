#!/usr/bin/env bash
# URL parsing never mistakes a path for credentials (issue 21 item 6): with
# the credentials in the environment, s3://127.0.0.1:PORT/bkt/user@example.com/
# names host 127.0.0.1:PORT, bucket 'bkt' and prefix 'user@example.com/';
# it never connects to example.com, nor signs with "127.0.0.1:PORT/bkt/user"
# as an access key.
#
# syncmgr runs in a network namespace of its own (unshare -n: a loopback and
# nothing else, so no real network and no DNS server is reachable), where a
# small HTTP listener on 127.0.0.1:PORT records every request (method, path,
# Host, the access key of its Authorization) and refuses it (403
# AccessDenied). The test passes when the listing request for that bucket
# and prefix reached the listener, signed with the environment's key.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init url_netns

[ "$(id -u)" -eq 0 ] || fail "this test must run as root (it uses unshare -n)"
command -v unshare >/dev/null || fail "unshare (util-linux) not found"
command -v ip >/dev/null || fail "ip (iproute2) not found"
PORT=${PROXY_PORT:-7600}

cat >"$T/listener.py" <<'EOF'
import http.server, socketserver, sys
log = open(sys.argv[2], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def _any(self):
        auth = self.headers.get("Authorization", "")
        cred = auth.split("Credential=", 1)[1].split("/", 1)[0] if "Credential=" in auth else "-"
        log.write("%s %s host=%s key=%s\n" % (self.command, self.path,
                                              self.headers.get("Host", "-"), cred))
        body = b"<Error><Code>AccessDenied</Code><Message>test listener</Message></Error>"
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _any
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", int(sys.argv[1])), H)
print("ready", flush=True)
s.serve_forever()
EOF

# inside the namespace: the loopback up, the listener, then syncmgr
cat >"$T/inner.sh" <<'EOF'
set -u
ip link set lo up || { echo "cannot bring up the loopback" >&2; exit 3; }
/usr/bin/python3 "$T/listener.py" "$PORT" "$T/requests" >"$T/listener.out" 2>"$T/listener.err" &
lpid=$!
for _ in $(seq 100); do
	grep -q ready "$T/listener.out" 2>/dev/null && break
	sleep 0.05
done
grep -q ready "$T/listener.out" || { echo "the listener did not start: $(cat "$T/listener.err")" >&2; kill "$lpid"; exit 3; }
AWS_ACCESS_KEY_ID=AKIDFROMENV AWS_SECRET_ACCESS_KEY=secretfromenv AWS_REGION=us-east-1 \
	timeout -k 5 60 "$SYNCMGR" --no-https "s3://127.0.0.1:$PORT/bkt/user@example.com/" "$T/dst/" \
	>"$T/sm.out" 2>"$T/sm.err" </dev/null
rc=$?
kill "$lpid"
wait "$lpid" 2>/dev/null
exit "$rc"
EOF
# shellcheck disable=SC2034 # shown by fail()
SM_CMD="unshare -n: syncmgr --no-https s3://127.0.0.1:$PORT/bkt/user@example.com/ DST/"
set +e
env T="$T" PORT="$PORT" SYNCMGR="$SYNCMGR" timeout -k 5 120 unshare -n bash "$T/inner.sh"
SM_RC=$?
set -e
[ "$SM_RC" -ne 3 ] || fail "the namespace could not be set up"
[ "$SM_RC" -lt 124 ] || fail "syncmgr crashed or timed out in the namespace"
[ "$SM_RC" -ne 0 ] || fail "syncmgr succeeded against a listener that refuses everything"
[ -s "$T/requests" ] || fail "no request reached 127.0.0.1:$PORT (syncmgr: $(head -n 3 "$T/sm.err"))"
"$PY" - "$T/requests" "$PORT" <<'EOF' || fail "the requests to 127.0.0.1:$PORT: $(cat "$T/requests")"
import sys, urllib.parse
port = sys.argv[2]
ok = False
for line in open(sys.argv[1]):
    method, target, host, key = line.split()
    path, _, query = target.partition("?")
    q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    if host != "host=127.0.0.1:" + port:
        sys.exit("a request for another host: " + line.strip())
    if key != "key=AKIDFROMENV":
        sys.exit("a request not signed with the environment's key: " + line.strip())
    if method == "GET" and path in ("/bkt", "/bkt/"):
        ok = ok or q.get("prefix", "").startswith("user@example.com/")
if not ok:
    sys.exit("no listing of bucket 'bkt' under 'user@example.com/'")
EOF
# the one failure is the listener's refusal, for that bucket; no host but 127.0.0.1
grep -q "AccessDenied" "$T/sm.err" || fail "syncmgr did not report the listener's AccessDenied: $(head -n 3 "$T/sm.err")"
if grep -q "example\.com'\?:\|reach example\.com\|resolve" "$T/sm.err"; then
	fail "syncmgr tried example.com: $(grep -m 2 "example\.com" "$T/sm.err")"
fi
