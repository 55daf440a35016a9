#!/bin/bash
# --json: one JSON object on stdout (parsed with python3's json), every
# documented field with its type, counters equal to the summary line's, the
# per-worker breakdown adding up to the totals; failed keys with their errors
# (fault injection), a key with a newline and one that is not UTF-8, the cap
# of 100 listed failed keys; --dry --json (the plan on stderr); a run that
# fails after the options were read still prints its report; usage errors
# print nothing on stdout; secrets stay masked.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init json_report

S=$T/src
mkdir -p "$S/d"
head -c 100 /dev/urandom >"$S/a"
head -c 2000 /dev/urandom >"$S/b c"
: >"$S/d/e"
head -c 5000 /dev/urandom >"$S/d/f"
printf 'x' >"$S/caf$(printf '\303\251')"
"$PY" -c 'import sys; open(sys.argv[1].encode() + b"/inv\xff\xfe", "wb").write(b"1234")' "$S"
"$PY" -c 'import sys; open(sys.argv[1].encode() + b"/n\nl", "wb").write(b"abc")' "$S"
# 7 files, 7108 bytes

# check_report WHAT PYTHON-CHECKS...: stdout must be exactly one line holding
# one JSON object with every documented field, its counters equal to the
# summary line's and to the sum of its workers'; then the extra checks run
# with `j` (the object), `summary` (the summary's counts by name) and `rc`.
check_report() {
	local what=$1 out
	shift
	out=$("$PY" - "$T/sm.out" "$T/sm.err" "$SM_RC" "$what" "$@" <<'EOF'
import json, re, sys
out_path, err_path, rc, what = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
checks = sys.argv[5:]
raw = open(out_path, "rb").read()
def bad(msg):
    print("%s: %s" % (what, msg))
    sys.exit(1)
if not raw.endswith(b"\n") or raw.count(b"\n") != 1:
    bad("stdout is not exactly one line: %r" % raw[:300])
try:
    j = json.loads(raw.decode("utf-8"))  # strict: the report must be UTF-8
except ValueError as e:
    bad("stdout is not JSON (%s): %r" % (e, raw[:300]))
if not isinstance(j, dict):
    bad("not an object: %r" % j)
COUNTERS = ["found", "found_bytes", "excluded", "excluded_bytes", "skipped", "skipped_bytes",
            "copied", "copied_bytes", "extra", "extra_bytes", "checked", "checked_bytes",
            "deleted", "failed", "lost"]
TYPES = dict(version=int, status=str, exit_code=int, dry_run=bool, elapsed_seconds=float,
             bytes_per_second=float, objects_per_second=float, failed_keys=list,
             failed_keys_truncated=int, workers=list, **{c: int for c in COUNTERS})
for k, t in TYPES.items():
    if k not in j:
        bad("field %r missing" % k)
    v = j[k]
    if t is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if not isinstance(v, t) or (t is int and isinstance(v, bool)):
        bad("field %r is %r, not %s" % (k, j[k], t.__name__))
for k in ("src", "dst"):
    if k not in j or not (j[k] is None or isinstance(j[k], str)):
        bad("field %r missing or not a string/null: %r" % (k, j.get(k)))
if j["version"] != 1:
    bad("version %r" % j["version"])
if j["exit_code"] != rc:
    bad("exit_code %r but the exit status was %d" % (j["exit_code"], rc))
want_status = "ok" if rc == 0 else "failed"
if j["status"] != want_status:
    bad("status %r with exit %d" % (j["status"], rc))
for k in ("elapsed_seconds", "bytes_per_second", "objects_per_second", "failed_keys_truncated"):
    if j[k] < 0:
        bad("%s is negative" % k)
for c in COUNTERS:
    if j[c] < 0:
        bad("%s is negative" % c)
# the summary line's counts (fields it leaves out are 0)
lines = [l for l in open(err_path, "rb").read().decode("utf-8", "replace").splitlines()
         if l.startswith("Found: ")]
if len(lines) > 1:
    bad("%d summary lines on stderr" % len(lines))
# a run that stopped before it began prints no summary: its counts are all 0
summary = {m.group(1).lower(): int(m.group(2))
           for m in re.finditer(r"(?:^|, )(\w+): (\d+)", lines[0])} if lines else {}
for c in ("found", "excluded", "skipped", "copied", "extra", "checked", "deleted", "failed", "lost"):
    if j[c] != summary.get(c, 0):
        bad("%s is %d, the summary says %d (%s)" % (c, j[c], summary.get(c, 0), lines))
# failed keys: each an object with key, error, worker (key_hex when not UTF-8)
for f in j["failed_keys"]:
    if not isinstance(f, dict) or not isinstance(f.get("key"), str) or \
            not isinstance(f.get("error"), str) or not isinstance(f.get("worker"), str):
        bad("malformed failed key %r" % f)
    if "key_hex" in f:
        if bytes.fromhex(f["key_hex"]).decode("utf-8", "replace") != f["key"]:
            bad("key_hex %r does not match key %r" % (f["key_hex"], f["key"]))
if j["failed_keys_truncated"] != max(0, j["failed"] - len(j["failed_keys"])):
    bad("failed_keys_truncated %d with %d failed and %d listed" %
        (j["failed_keys_truncated"], j["failed"], len(j["failed_keys"])))
if len(j["failed_keys"]) > 100:
    bad("%d failed keys listed, more than 100" % len(j["failed_keys"]))
# workers: "local" first; together they add up to the totals
ws = j["workers"]
if not ws or ws[0].get("name") != "local":
    bad("workers does not start with local: %r" % ws)
for w in ws:
    for c in COUNTERS + ["tasks"]:
        if not isinstance(w.get(c), int):
            bad("worker %r: %s missing or not a number" % (w.get("name"), c))
for c in COUNTERS:
    if sum(w[c] for w in ws) != j[c]:
        bad("the workers' %s add up to %d, the total is %d" % (c, sum(w[c] for w in ws), j[c]))
for chk in checks:
    if not eval(chk):
        bad("check failed: %s\n    report: %s" % (chk, json.dumps(j)[:1500]))
EOF
) || fail "$out"
}

# 1. a first copy: everything copied, exit 0
sm --json "$S/" "$T/d1/"
expect_rc 0 "first copy"
summary >/dev/null # exactly one summary line, on stderr
check_report "first copy" \
	'j["status"] == "ok" and j["copied"] == 7 and j["copied_bytes"] == 7108' \
	'j["found"] == 7 and j["found_bytes"] == 7108 and j["failed"] == 0' \
	'j["failed_keys"] == [] and j["failed_keys_truncated"] == 0' \
	'j["dry_run"] is False' \
	'j["src"].endswith("/src/") and j["dst"].endswith("/d1/")' \
	'len(j["workers"]) == 1 and j["workers"][0]["tasks"] >= 1' \
	'j["elapsed_seconds"] > 0 and j["bytes_per_second"] > 0'
expect_same_tree "$S" "$T/d1" "first copy"

# 2. nothing to do: all skipped
sm --json "$S/" "$T/d1/"
expect_rc 0 "second pass"
check_report "second pass" 'j["skipped"] == 7 and j["skipped_bytes"] == 7108 and j["copied"] == 0'

# 3. failures: the third put and every later one fail (one thread: in key
# order a, "b c", café, d/e, d/f, inv<ff fe>, n<newline>l)
sm --json -p1 --test-fault dst=put:3:sticky "$S/" "$T/d3/"
expect_rc 1 "failing puts"
check_report "failing puts" \
	'j["status"] == "failed" and j["exit_code"] == 1' \
	'j["copied"] == 2 and j["failed"] == 5 and len(j["failed_keys"]) == 5' \
	'[f["key"] for f in j["failed_keys"]] == ["caf\u00e9", "d/e", "d/f", "inv\ufffd\ufffd", "n\nl"]' \
	'all("injected permanent fault on put" in f["error"] for f in j["failed_keys"])' \
	'all(f["worker"] == "local" for f in j["failed_keys"])' \
	'[f.get("key_hex") for f in j["failed_keys"]] == [None, None, None, "696e76fffe", None]' \
	'"n\nl" in j["failed_keys"][4]["error"]'

# 4. more failures than the report lists: the first 100, the rest counted
S4=$T/many
mkdir -p "$S4"
for i in $(seq -w 1 150); do printf '%s' "$i" >"$S4/k$i"; done
sm --json --test-fault dst=put:1:sticky "$S4/" "$T/d4/"
expect_rc 1 "150 failing puts"
check_report "150 failing puts" \
	'j["failed"] == 150 and len(j["failed_keys"]) == 100 and j["failed_keys_truncated"] == 50' \
	'len(set(f["key"] for f in j["failed_keys"])) == 100' \
	'all(re.fullmatch(r"k[0-9]{3}", f["key"]) for f in j["failed_keys"])'

# 5. --dry --json: the plan goes to stderr, stdout holds the report only
sm --dry --json --delete-dst "$S/" "$T/d3/"
expect_rc 0 "--dry --json"
check_report "--dry --json" \
	'j["dry_run"] is True and j["status"] == "ok" and j["copied"] == 5 and j["skipped"] == 2'
grep -q '^copy d/f$' "$T/sm.err" || fail "--dry --json: the plan line 'copy d/f' is not on stderr"
grep -q '^copy n\\nl$' "$T/sm.err" || fail "--dry --json: the plan line for 'n<newline>l' is not on stderr (escaped)"
[ ! -e "$T/d3/d/f" ] || fail "--dry --json copied 'd/f'"

# 6. a run that cannot complete (SRC missing): still a report, exit 1
sm --json "$T/nothing/" "$T/d6/"
expect_rc 1 "missing SRC"
check_report "missing SRC" 'j["status"] == "failed" and j["found"] == 0'

# 7. a store that does not answer: the report, with the secret masked
sm --json --no-https "s3://AKID:SECRETJSON7@127.0.0.1:1/bkt/" "$T/d7/"
expect_rc 1 "unreachable S3"
check_report "unreachable S3" 'j["src"] == "s3://AKID:****@127.0.0.1:1/bkt"'
if grep -q SECRETJSON7 "$T/sm.out" "$T/sm.err"; then
	fail "unreachable S3: the secret was printed"
fi

# 8. usage errors: exit 2, nothing on stdout
for args in "--json --threads 0" "--json --metrics nope"; do
	# shellcheck disable=SC2086
	sm $args "$S/" "$T/d8/"
	expect_rc 2 "usage error '$args'"
	[ ! -s "$T/sm.out" ] || fail "usage error '$args': stdout is not empty: $(head -c 200 "$T/sm.out")"
done
