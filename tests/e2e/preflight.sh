#!/usr/bin/env bash
# The checks a run makes before any transfer, the same on every backend
# (issue 12), against a real radosgw and a real OpenSSH server on loopback:
#  - DST inside SRC or SRC inside DST on one S3 bucket (overlapping
#    prefixes) or one SSH account (an alias and the host:port form, a path
#    with '..'): one line, exit 2, nothing written; sibling prefixes are fine;
#  - an SFTP DST root that cannot be written: one line, not one per key;
#  - a missing bucket is named; HTTPS to a plain-HTTP endpoint hints
#    --no-https; an endpoint answering 404 without an S3 error is "not an S3
#    endpoint"; an endpoint that accepts and never answers fails within its
#    answer timeout, with the retry shown at -v;
#  - a SRC without a trailing '/' that names one object syncs that object on
#    every backend, to a file name or into a DST directory; one naming nothing
#    is an error; SRC and DST the same object is refused;
#  - per-key errors say which side failed ("DST: "), and the same error for
#    many keys is printed a few times and then counted (all of them at -v).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init preflight

RADOSGW_PORT=${RADOSGW_PORT:-7480} rgw_start
SSHD_PORT=${SSHD_PORT:-2244} sshd_start
export HOME=$SSH_TEST_HOME SSH_AUTH_SOCK=
aws s3api create-bucket --bucket pre >/dev/null
S3="s3://$CRED@$HP/pre"

mkdir -p "$T/src/movies" "$T/src/sub"
head -c 3000 /dev/urandom >"$T/src/movies/m1.mp4"
echo one >"$T/src/one"
echo two >"$T/src/sub/two"
sm --no-https "$T/src/" "$S3/data/"
expect_rc 0 "seeding the bucket"

# one_line WHAT PATTERN: stderr is exactly one line, matching PATTERN
one_line() {
	local n
	n=$(grep -vc '^Found: ' "$T/sm.err" || true)
	[ "$n" -eq 1 ] || fail "$1: expected one line on stderr, got $n"
	grep -q -- "$2" "$T/sm.err" || fail "$1: stderr lacks '$2'"
}

# ---- 1. overlapping SRC and DST ----
count_keys() { aws s3api list-objects-v2 --bucket pre --query 'length(Contents)' --output text; }
before=$(count_keys)
sm --no-https "$S3/data/" "$S3/data/nested/"
expect_rc 2 "S3: DST inside SRC"
one_line "S3: DST inside SRC" "DST '.*/pre/data/nested/' is inside SRC"
sm --no-https "$S3/data/sub/" "$S3/data/"
expect_rc 2 "S3: SRC inside DST"
one_line "S3: SRC inside DST" "SRC '.*/pre/data/sub/' is inside DST"
[ "$(count_keys)" = "$before" ] || fail "a refused S3 run wrote keys"
sm --no-https "$S3/data/" "$S3/data-copy/"
expect_rc 0 "S3: a sibling prefix is not inside"

mkdir -p "$T/r"
cp -a "$T/src/." "$T/r/"
sm "sm-test:$T/r/" "sm-test:$T/r/nested/"
expect_rc 2 "SFTP: DST inside SRC"
one_line "SFTP: DST inside SRC" "is inside SRC"
sm "sm-test:$T/r/sub/" "root@127.0.0.1:$SSHD_PORT:$T/r/../r/"
expect_rc 2 "SFTP: SRC inside DST, another spelling of the same account and path"
one_line "SFTP: SRC inside DST" "SRC 'sm-test:$T/r/sub/' is inside DST"
[ ! -e "$T/r/nested" ] || fail "a refused SFTP run wrote into its SRC"
sm "sm-test:$T/r/sub/" "sm-test:$T/r-sub/"
expect_rc 0 "SFTP: a sibling directory is not inside"

# ---- DST not writable (SFTP): one line ----
mkdir -p "$T/ro/exists" "$T/many"
for i in $(seq 1 300); do echo "$i" >"$T/many/f$i"; done
mount --bind -o ro "$T/ro" "$T/ro"
on_exit "umount '$T/ro' 2>/dev/null"
for d in "$T/ro/exists/" "$T/ro/new/deeper/"; do
	sm "$T/many/" "sm-test:$d"
	expect_rc 1 "SFTP: a read-only DST $d"
	one_line "SFTP: read-only DST $d" "DST: 'sm-test:$d' is not writable"
done
umount "$T/ro"

# ---- S3 endpoint mistakes ----
sm --no-https "$T/src/" "s3://$CRED@$HP/no-such-bucket/x/"
expect_rc 1 "missing bucket"
one_line "missing bucket" "bucket 'no-such-bucket' does not exist"
sm "$T/src/" "$S3/x/"
expect_rc 1 "HTTPS to a plain-HTTP endpoint"
one_line "HTTPS to a plain-HTTP endpoint" "use --no-https"
WEB_PORT=$((${PROXY_PORT:-7600} + 50))
mkdir -p "$T/web"
"$PY" -m http.server "$WEB_PORT" --bind 127.0.0.1 --directory "$T/web" >/dev/null 2>&1 &
web=$!
on_exit "kill $web 2>/dev/null"
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$WEB_PORT/" && break; sleep 0.1; done
sm --no-https "$T/src/" "s3://$CRED@127.0.0.1:$WEB_PORT/pre/x/"
expect_rc 1 "a web server that is no S3 endpoint"
one_line "a web server that is no S3 endpoint" "not an S3 endpoint"
kill "$web"

# A listener that accepts and never answers: the run fails within its 10 s
# answer timeout per attempt (2 attempts when the store is opened).
SILENT_PORT=$((WEB_PORT + 1))
"$PY" -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
print("ready", flush=True)
held = []
while True:
    c, _ = s.accept(); held.append(c)
' "$SILENT_PORT" >"$T/silent.out" 2>&1 &
silent=$!
on_exit "kill $silent 2>/dev/null"
for _ in $(seq 50); do grep -q ready "$T/silent.out" && break; sleep 0.1; done
t0=$SECONDS
smt 120 -v --no-https "$T/src/" "s3://$CRED@127.0.0.1:$SILENT_PORT/pre/x/"
took=$((SECONDS - t0))
expect_rc 1 "a silent endpoint"
grep -q "no answer within 10 s" "$T/sm.err" || fail "a silent endpoint: no timeout message"
grep -q "retrying list (attempt 2)" "$T/sm.err" || fail "a silent endpoint: no retry line at -v"
[ "$took" -lt 60 ] || fail "a silent endpoint took $took s (2 attempts of 10 s)"
kill "$silent"

# ---- 2. one object ----
sm --no-https "$S3/data/movies/m1.mp4" "$T/x.mp4"
expect_rc 0 "S3 object to a local file name"
cmp "$T/src/movies/m1.mp4" "$T/x.mp4" || fail "S3 object to a file name: wrong bytes"
mkdir -p "$T/into"
sm --no-https "$S3/data/movies/m1.mp4" "$T/into"
expect_rc 0 "S3 object into a local directory"
cmp "$T/src/movies/m1.mp4" "$T/into/m1.mp4" || fail "S3 object into a directory: wrong bytes"
sm --no-https "$S3/data/movies/m1" "$T/single2"
expect_rc 1 "S3: a name that is neither object nor prefix"
one_line "S3: a missing name" "no such object or prefix"
[ ! -e "$T/single2" ] || fail "a missing S3 name created '$T/single2'"
sm --no-https "$S3/data/movies" "$T/movies-copy"
expect_rc 0 "S3: a prefix without '/' is a directory"
cmp "$T/src/movies/m1.mp4" "$T/movies-copy/m1.mp4" || fail "S3 prefix without '/': wrong bytes"
sm --no-https "$T/src/one" "$S3/single/one-copy"
expect_rc 0 "a local file to an S3 object name"
aws s3 cp "s3://pre/single/one-copy" "$T/one-back" >/dev/null
cmp "$T/src/one" "$T/one-back" || fail "local file to S3: wrong bytes"
sm --no-https "$S3/data/one" "$S3/single/"
expect_rc 2 "one object and a DST with '/' (both or neither)"
sm --no-https "$S3/data/one" "$S3/single"
expect_rc 0 "S3 object into an S3 'directory'"
aws s3api head-object --bucket pre --key single/one >/dev/null || fail "S3 object into S3 prefix: no single/one"
sm --no-https "$S3/single/one-copy" "$S3/single/one-copy"
expect_rc 2 "the same S3 object as SRC and DST"
one_line "the same object" "are the same object"

sm "sm-test:$T/src/one" "$T/sftp-one"
expect_rc 0 "an SFTP file to a local file name"
cmp "$T/src/one" "$T/sftp-one" || fail "SFTP file: wrong bytes"
sm "$T/src/sub/two" "sm-test:$T/into"
expect_rc 0 "a local file into an SFTP directory"
cmp "$T/src/sub/two" "$T/into/two" || fail "local file into SFTP dir: wrong bytes"
sm "sm-test:$T/src/nothing" "$T/nothing"
expect_rc 1 "SFTP: a missing name"
one_line "SFTP: a missing name" "no such file or directory"
sm "sm-test:$T/src/one/" "$T/x/"
expect_rc 1 "SFTP: a file given as a directory"

# ---- 3. per-key errors: labelled, a few shown, the rest counted ----
sm --test-fault dst=put:1:sticky "$T/many/" "$T/out1/"
expect_rc 1 "every put fails"
n=$(grep -c "error: DST: injected permanent fault on put" "$T/sm.err" || true)
[ "$n" -eq 3 ] || fail "300 identical DST errors: $n printed, want 3 and a count"
grep -q "\.\.\. and 297 more like: DST: injected permanent fault on put '<key>'" "$T/sm.err" ||
	fail "300 identical DST errors: no '... and 297 more' line"
expect_field failed 300 "every put fails"
sm -v --test-fault src=read:1:sticky "$T/many/" "$T/out2/"
expect_rc 1 "every read fails, -v"
n=$(grep -c "error: SRC: injected permanent fault on read" "$T/sm.err" || true)
[ "$n" -eq 300 ] || fail "-v: $n of 300 SRC errors printed"
