#!/bin/bash
# --metrics ADDR: Prometheus text at http://ADDR/metrics for the whole run,
# scraped with curl and parsed with prometheus_client's parser (Debian's
# python3-prometheus-client): metric names, types, the `worker` label,
# counters that never go down from one scrape to the next, and final values
# equal to the summary line and to the --json report. No timing: the run is
# held where the test wants it by its own stdout, a pipe of 4 KiB the test
# filled before the run began. A --dry run blocks on its plan lines in the
# middle of the run (scraped, then let go 4 KiB at a time); a --json run
# blocks on its report, which is written after the summary line and before
# the metrics server stops (the final scrape). A --dry --json run, whose
# plan goes to stderr, held there and interrupted: its report says
# "interrupted". Then: ADDR errors (exit 2), a port in use (exit 1, nothing
# copied).
#
# Ports: 127.0.0.1:$METRICS_PORT (default 9470) and the one after it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init metrics

PORT=${METRICS_PORT:-9470}
BUSY_PORT=$((PORT + 1))
command -v curl >/dev/null || fail "curl is missing (apt-get install curl)"
"$PY" -c 'import prometheus_client.parser' 2>/dev/null ||
	fail "python3-prometheus-client is missing (apt-get install python3-prometheus-client)"
for p in "$PORT" "$BUSY_PORT"; do
	"$PY" -c 'import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$p" 2>/dev/null ||
		fail "127.0.0.1:$p is in use already (set METRICS_PORT to a free pair of ports)"
done

# held.py MODE PORT OUT ERR SYNCMGR ARGS...: run syncmgr with its stdout on a
# full 4 KiB pipe; scrape as MODE says; write the scrapes (JSON) to OUT.
cat >"$T/held.py" <<'EOF'
import fcntl, json, os, signal, subprocess, sys, time
from prometheus_client.parser import text_string_to_metric_families

mode, port, out_path, err_path, exe = sys.argv[1:6]
args = sys.argv[6:]
url = "http://127.0.0.1:%s/metrics" % port
COUNTERS = ["scanned", "excluded", "skipped", "copied", "failed", "deleted", "extra",
            "checked", "lost"]
GAUGES = {"syncmgr_pending_objects": False, "syncmgr_transfers_in_flight": True,
          "syncmgr_tasks_in_flight": True}  # name: has the worker label

def die(msg):
    print(msg)
    sys.exit(1)

def scrape():
    """One scrape with curl, parsed; None while the server does not answer."""
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "-D", "-", url],
                       capture_output=True)
    if r.returncode != 0:
        return None
    head, _, body = r.stdout.decode("utf-8").partition("\r\n\r\n")
    status = head.split("\r\n")[0]
    if " 200 " not in status:
        die("GET /metrics: %s" % status)
    ctype = [l for l in head.split("\r\n") if l.lower().startswith("content-type:")]
    if not ctype or "text/plain" not in ctype[0] or "version=0.0.4" not in ctype[0]:
        die("GET /metrics: content type %r" % ctype)
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    s = {}
    for c in COUNTERS + ["copied_bytes"]:
        base = "syncmgr_copied_bytes" if c == "copied_bytes" else "syncmgr_%s_objects" % c
        f = fams.get(base)  # the parser names a counter's family without _total
        if f is None or f.type != "counter":
            die("%s: missing or not a counter (%s)" % (base, f and f.type))
        for smp in f.samples:
            if smp.name == base + "_created":
                continue
            if smp.name != base + "_total" or set(smp.labels) != {"worker"}:
                die("%s: unexpected sample %r" % (base, smp))
            s.setdefault(smp.labels["worker"], {})[c] = smp.value
    for g, labelled in GAUGES.items():
        f = fams.get(g)
        if f is None or f.type != "gauge":
            die("%s: missing or not a gauge" % g)
        for smp in f.samples:
            if labelled != ("worker" in smp.labels) or len(smp.labels) != int(labelled):
                die("%s: labels %r" % (g, smp.labels))
            if labelled:
                s.setdefault(smp.labels["worker"], {})[g] = smp.value
            else:
                s[g] = smp.value
    if "local" not in s:
        die("no worker=\"local\" series: %r" % s)
    return s

def start(hold_stderr=False):
    """Start syncmgr with its stdout (or stderr) on a full pipe."""
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)
    fl = fcntl.fcntl(w, fcntl.F_GETFL)
    fcntl.fcntl(w, fcntl.F_SETFL, fl | os.O_NONBLOCK)
    filled = 0
    try:
        while True:
            filled += os.write(w, b"#" * 4096)
    except BlockingIOError:
        pass
    fcntl.fcntl(w, fcntl.F_SETFL, fl)
    other = open(err_path, "wb")
    p = subprocess.Popen([exe] + args, stdout=other if hold_stderr else w,
                         stderr=w if hold_stderr else other, stdin=subprocess.DEVNULL)
    os.close(w)
    return p, r, filled

def summary_line():
    for l in open(err_path, "rb").read().decode("utf-8", "replace").splitlines():
        if l.startswith("Found: "):
            return l
    return None

def wait_for(cond, what, p):
    """Poll (a safety deadline only, no timing claim) until cond() is true."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        if p.poll() is not None:
            die("syncmgr exited (%d) while waiting for %s" % (p.returncode, what))
        time.sleep(0.02)
    die("gave up waiting for %s" % what)

p, r, filled = start(hold_stderr=(mode == "interrupt"))
scrapes = []
out = b""
try:
    if mode == "interrupt":
        # --dry --json: the plan lines go to stderr, which is full: SIGINT
        # in the middle of the run, then let stderr flow
        def held():
            s = scrape()
            ok = s and s["syncmgr_pending_objects"] > 0 and s["local"]["syncmgr_tasks_in_flight"] == 1
            return s if ok else None
        scrapes.append(wait_for(held, "a scrape in the middle of the run", p))
        p.send_signal(signal.SIGINT)
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
        # stdout went to err_path: the report, after the bytes held.py
        # expects in front of it
        out = b"#" * filled + open(err_path, "rb").read()
    elif mode == "mid":
        # the plan lines fill stdout: the run stops in the middle, a key
        # found and not yet counted, its task in flight
        def held():
            s = scrape()
            ok = s and s["syncmgr_pending_objects"] > 0 and s["local"]["syncmgr_tasks_in_flight"] == 1
            return s if ok else None
        s0 = wait_for(held, "a scrape in the middle of the run", p)
        scrapes.append(s0)
        for _ in range(3):
            scrapes.append(scrape())
            if p.poll() is not None:
                die("syncmgr exited while its stdout was full")
        # 4 KiB more room: the run goes on and stops again, further on
        out += os.read(r, 4096)
        def moved():
            s = scrape()
            ok = s and s["local"]["copied"] > s0["local"]["copied"] and s["syncmgr_pending_objects"] > 0
            return s if ok else None
        scrapes.append(wait_for(moved, "the run to move on", p))
        # let it go 4 KiB at a time, scraping in between
        while True:
            chunk = os.read(r, 4096)
            if not chunk:
                break
            out += chunk
            s = scrape()
            if s:
                scrapes.append(s)
    else:
        # the summary line is out: the report waits for room on stdout,
        # and the metrics are served until it is written
        wait_for(summary_line, "the summary line", p)
        scrapes.append(scrape())
        scrapes.append(scrape())
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            out += chunk
    rc = p.wait(timeout=60)
finally:
    if p.poll() is None:
        p.kill()
        p.wait()
if any(s is None for s in scrapes[:2]):
    die("the metrics server did not answer while the run was held")
if out[:filled] != b"#" * filled:
    die("stdout lost the bytes the test put there first")
json.dump({"rc": rc, "scrapes": [s for s in scrapes if s],
           "stdout": out[filled:].decode("utf-8", "replace"), "summary": summary_line()},
          open(out_path, "w"))
EOF

# check RESULT PYTHON-CHECKS...: with `res` (the held.py result), `sc`
# (its scrapes), `last` (the last scrape), `summary` (counts by name)
check() {
	local what=$1 res=$2 out
	shift 2
	out=$("$PY" - "$res" "$@" <<'EOF'
import json, re, sys
res = json.load(open(sys.argv[1]))
sc = res["scrapes"]
last = sc[-1]
summary = {m.group(1).lower(): int(m.group(2))
           for m in re.finditer(r"(?:^|, )(\w+): (\d+)", res["summary"] or "")}
COUNTERS = ["scanned", "excluded", "skipped", "copied", "copied_bytes", "failed", "deleted",
            "extra", "checked", "lost"]
# counters never go down from one scrape to the next
for a, b in zip(sc, sc[1:]):
    for w in a:
        if not isinstance(a[w], dict):
            continue
        for c in COUNTERS:
            if b.get(w, {}).get(c, -1) < a[w][c]:
                print("counter %s{worker=%s} went down: %s then %s" % (c, w, a[w][c], b.get(w, {}).get(c)))
                sys.exit(1)
for chk in sys.argv[2:]:
    if not eval(chk):
        print("check failed: %s\n    scrapes: %s\n    summary: %s" % (chk, json.dumps(sc)[-1500:], res["summary"]))
        sys.exit(1)
EOF
) || fail "$what: $out"
}

# 1. the middle of a --dry run (one thread): 3000 keys of 12-byte plan lines
S=$T/src
mkdir -p "$S"
"$PY" -c 'import sys
for i in range(3000): open("%s/k%05d" % (sys.argv[1], i), "w").write("x" * (i % 7))' "$S"
"$PY" "$T/held.py" mid "$PORT" "$T/mid.json" "$T/mid.err" "$SYNCMGR" \
	-p1 --dry --metrics ":$PORT" "$S/" "$T/dst/" >"$T/held.log" 2>&1 ||
	fail "mid-run scrapes: $(cat "$T/held.log"; tail -5 "$T/mid.err")"
check "mid-run scrapes" "$T/mid.json" \
	'res["rc"] == 0 and len(sc) >= 4' \
	'sc[0]["local"]["copied"] < sc[0]["local"]["scanned"] and sc[0]["syncmgr_pending_objects"] > 0' \
	'sc[0]["local"]["syncmgr_transfers_in_flight"] == 0 and sc[0]["local"]["syncmgr_tasks_in_flight"] == 1' \
	'len(set(s["local"]["copied"] for s in sc)) >= 2' \
	'set(last) == {"local", "syncmgr_pending_objects"}' \
	'summary["found"] == 3000 and summary["copied"] == 3000'
[ -e "$T/dst" ] && fail "--dry wrote DST"
"$PY" - "$T/mid.json" <<'EOF' || fail "mid-run: stdout did not hold the plan"
import json, sys
lines = json.load(open(sys.argv[1]))["stdout"].splitlines()
sys.exit(0 if lines == ["copy k%05d" % i for i in range(3000)] else 1)
EOF

# 2. the end of a real run: skipped, excluded, copied, one failed put,
# deletes done at the end (--delete-dst); the scrape after the summary line
# equals the summary and the --json report
D=$T/dst2
mkdir -p "$D"
for i in 00001 00002 00003; do cp "$S/k$i" "$D/k$i"; done
for i in 1 2 3 4; do echo old >"$D/stale$i"; done
"$PY" "$T/held.py" final "$PORT" "$T/final.json" "$T/final.err" "$SYNCMGR" \
	-p1 --json --delete-dst --exclude 'k02*' --test-fault dst=put:2 \
	--metrics "127.0.0.1:$PORT" "$S/" "$D/" >"$T/held.log" 2>&1 ||
	fail "final scrape: $(cat "$T/held.log"; tail -5 "$T/final.err")"
check "final scrape" "$T/final.json" \
	'res["rc"] == 1' \
	'last == sc[-2]' \
	'summary["found"] == 3000 and summary["excluded"] == 1000 and summary["skipped"] == 3' \
	'summary["failed"] == 1 and summary["copied"] == 1996 and summary.get("deleted") == 4' \
	'all(last["local"][c] == summary.get("found" if c == "scanned" else c, 0) for c in ["scanned", "excluded", "skipped", "copied", "failed", "deleted", "extra", "checked", "lost"])' \
	'last["syncmgr_pending_objects"] == 0 and last["local"]["syncmgr_transfers_in_flight"] == 0 and last["local"]["syncmgr_tasks_in_flight"] == 0' \
	'(lambda j: all(last["local"][c] == j["found" if c == "scanned" else c] for c in ["scanned", "excluded", "skipped", "copied", "copied_bytes", "failed", "deleted", "extra", "checked", "lost"]) and j["workers"][0]["copied_bytes"] == last["local"]["copied_bytes"])(json.loads(res["stdout"]))'
for i in 1 2 3 4; do [ ! -e "$D/stale$i" ] || fail "final scrape: --delete-dst left 'stale$i'"; done

# 3. interrupted (SIGINT while the run is held on its --dry plan lines,
# which --json sends to stderr): the report says so, exit 1, and counts at
# least what the metrics showed before (the run may still finish its keys:
# the signal waits for the log lock like any line; how many were counted
# when the signal came depends on the workers' 100 ms reports, slower under
# ThreadSanitizer)
"$PY" "$T/held.py" interrupt "$PORT" "$T/int.json" "$T/int.out" "$SYNCMGR" \
	-p1 --dry --json --metrics ":$PORT" "$S/" "$T/dst3/" >"$T/held.log" 2>&1 ||
	fail "interrupted run: $(cat "$T/held.log")"
check "interrupted run" "$T/int.json" \
	'res["rc"] == 1' \
	'(lambda j: j["status"] == "interrupted" and j["exit_code"] == 1 and j["dry_run"] and j["copied"] >= last["local"]["copied"])(json.loads(res["stdout"]))'

# 4. ADDR errors: a one-line message naming ADDR, exit 2, nothing copied
for addr in "nope" ":0" ":65536" "::1:$PORT" "host:" "[::1]$PORT"; do
	sm --metrics "$addr" "$S/" "$T/d3/"
	expect_rc 2 "--metrics '$addr'"
	[ "$(wc -l <"$T/sm.err")" -eq 1 ] && grep -qF -- "--metrics '$addr':" "$T/sm.err" ||
		fail "--metrics '$addr': expected one line naming it, got: $(cat "$T/sm.err")"
	[ ! -e "$T/d3" ] || fail "--metrics '$addr': DST was written"
done

# 5. a port in use: exit 1 before anything is copied
mkfifo "$T/hold.in"
"$PY" -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
print("ready", flush=True); sys.stdin.read()' "$BUSY_PORT" <"$T/hold.in" >"$T/hold.out" 2>&1 &
HOLD_PID=$!
on_exit "kill $HOLD_PID 2>/dev/null; wait $HOLD_PID 2>/dev/null"
exec {HOLD_FD}>"$T/hold.in"
for _ in $(seq 200); do grep -q ready "$T/hold.out" 2>/dev/null && break; sleep 0.05; done
grep -q ready "$T/hold.out" || fail "could not hold 127.0.0.1:$BUSY_PORT: $(cat "$T/hold.out")"
sm --metrics "127.0.0.1:$BUSY_PORT" "$S/" "$T/d4/"
expect_rc 1 "--metrics on a port in use"
[ "$(wc -l <"$T/sm.err")" -eq 1 ] && grep -qF -- "--metrics '127.0.0.1:$BUSY_PORT': cannot listen" "$T/sm.err" ||
	fail "port in use: expected one line naming the address, got: $(cat "$T/sm.err")"
[ ! -e "$T/d4" ] || fail "port in use: DST was written"
exec {HOLD_FD}>&-
