#!/usr/bin/env bash
# S3 under faults, against a real radosgw behind tests/servers/fault_proxy.py:
# with 5 % of requests answered 503 SlowDown and 1 % of connections reset,
# every key still arrives; a multipart upload whose parts are refused fails
# the key and leaves no upload open; bucket to bucket on one endpoint is a
# server-side copy; a 200 MiB object written by syncmgr reads back identical
# with the aws CLI; --delete-dst deletes in batches, through faults too.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init s3_faults

rgw_start
aws s3api create-bucket --bucket faults >/dev/null

# start_proxy ARGS...: a proxy in front of radosgw; sets PROXY (host:port)
start_proxy() {
	mkfifo "$T/proxy.in.$1"
	"$PY" "$E2E_DIR/../servers/fault_proxy.py" "$HP" "${@:2}" <"$T/proxy.in.$1" \
		>"$T/proxy.port.$1" 2>"$T/proxy.log.$1" &
	local pid=$!
	PROXY_PID=$pid
	exec {PFD}>"$T/proxy.in.$1"
	on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
	for _ in $(seq 100); do
		[ -s "$T/proxy.port.$1" ] && break
		sleep 0.05
	done
	[ -s "$T/proxy.port.$1" ] || fail "fault proxy did not start: $(cat "$T/proxy.log.$1")"
	PROXY=127.0.0.1:$(cat "$T/proxy.port.$1")
}

mkdir -p "$T/src/d"
for i in $(seq 1 300); do head -c $((RANDOM % 3000 + 1)) /dev/urandom >"$T/src/d/f$i"; done
head -c 40000000 /dev/urandom >"$T/src/big.bin"

# 1. 5 % 503, 1 % resets: every key arrives
start_proxy flaky --p503 0.05 --preset 0.01 --seed 7
sm --no-https -p 8 "$T/src/" "s3://$CRED@$PROXY/faults/data/"
expect_rc 0 "sync through the fault proxy"
[ "$(field copied)" = 301 ] || fail "expected 301 copied through the proxy, got $(field copied)"
sm --no-https "s3://$CRED@$HP/faults/data/" "$T/back/"
expect_rc 0 "read back without the proxy"
expect_same_tree "$T/src" "$T/back" --no-dirs --mtime "local -> S3 -> local through faults"
exec {PFD}>&-
wait "$PROXY_PID" 2>/dev/null || true
grep -qE "[1-9][0-9]* answered 503" "$T/proxy.log.flaky" ||
	fail "the proxy injected no 503: $(cat "$T/proxy.log.flaky")"
note "$(cat "$T/proxy.log.flaky")"

# 2. a multipart upload whose parts are refused: the key fails, no upload stays open
head -c 40000000 /dev/urandom >"$T/src2.bin"
mkdir -p "$T/src2" && mv "$T/src2.bin" "$T/src2/refused.bin"
start_proxy refuse --p503 0 --preset 0 --fail-part-of refused.bin
sm --no-https "$T/src2/" "s3://$CRED@$PROXY/faults/mp/"
expect_rc 1 "refused multipart parts"
uploads=$(aws s3api list-multipart-uploads --bucket faults --query 'length(Uploads || `[]`)')
[ "$uploads" = 0 ] || fail "$uploads multipart upload(s) left open after the failed run"
aws s3 ls s3://faults/mp/ | grep -q refused.bin && fail "a failed multipart object exists"
exec {PFD}>&-

# 3. bucket to bucket on the same endpoint: the server copies (CopyObject);
# only requests and small replies cross the proxy, not the 40 MB of data
aws s3api create-bucket --bucket faults-copy >/dev/null
start_proxy copy --p503 0 --preset 0
sm --no-https "s3://$CRED@$PROXY/faults/data/" "s3://$CRED@$PROXY/faults-copy/data/"
expect_rc 0 "bucket to bucket"
[ "$(field copied)" = 301 ] || fail "expected 301 copied bucket to bucket, got $(field copied)"
exec {PFD}>&-
wait "$PROXY_PID" 2>/dev/null || true
crossed=$(sed -nE 's/.* ([0-9]+) body bytes.*/\1/p' "$T/proxy.log.copy")
[ -n "$crossed" ] && [ "$crossed" -lt 5000000 ] ||
	fail "server-side copy not used: $crossed bytes crossed the client for 40 MB of objects"
note "bucket to bucket: $crossed body bytes crossed the client for $(du -sb "$T/src" | cut -f1) bytes of objects"
sm --no-https "s3://$CRED@$HP/faults-copy/data/" "$T/copyback/"
expect_rc 0 "read the copies back"
expect_same_tree "$T/src" "$T/copyback" --no-dirs "bucket to bucket"

# 4. a 200 MiB object: multipart, read back by the aws CLI
mkdir -p "$T/src3"
head -c $((200 << 20)) /dev/urandom >"$T/src3/large.bin"
sm --no-https "$T/src3/" "s3://$CRED@$HP/faults/large/"
expect_rc 0 "200 MiB upload"
aws s3 cp --quiet s3://faults/large/large.bin "$T/large.back"
cmp -s "$T/src3/large.bin" "$T/large.back" || fail "the 200 MiB object read back by aws differs"
etag=$(aws s3api head-object --bucket faults --key large/large.bin --query ETag --output text)
case $etag in *-*) ;; *) fail "the 200 MiB object was not a multipart upload (ETag $etag)" ;; esac
ctype=$(aws s3api head-object --bucket faults --key large/large.bin --query ContentType --output text)
case $ctype in *form-urlencoded*) fail "the multipart object got Content-Type $ctype" ;; esac

# 5. --delete-dst deletes in batches (DeleteObjects, 1000 keys a request),
# through 503s and resets: 1301 keys go in a handful of requests
mkdir -p "$T/more"
for i in $(seq 1 1000); do printf '%s' "$i" >"$T/more/m$i"; done
sm --no-https -p 16 "$T/more/" "s3://$CRED@$HP/faults-copy/data/more/"
expect_rc 0 "1000 more objects"
mkdir -p "$T/empty"
start_proxy del --p503 0.05 --preset 0.01 --seed 11
sm --no-https --delete-dst "$T/empty/" "s3://$CRED@$PROXY/faults-copy/data/"
expect_rc 0 "--delete-dst of 1301 keys"
[ "$(field deleted)" = 1301 ] || fail "expected 1301 deleted, got $(field deleted)"
exec {PFD}>&-
wait "$PROXY_PID" 2>/dev/null || true
requests=$(sed -nE 's/.*: ([0-9]+) requests.*/\1/p' "$T/proxy.log.del")
[ -n "$requests" ] && [ "$requests" -lt 40 ] ||
	fail "deletes not batched: $requests requests for 1301 keys ($(cat "$T/proxy.log.del"))"
note "--delete-dst of 1301 keys: $(cat "$T/proxy.log.del")"
left=$(aws s3api list-objects-v2 --bucket faults-copy --prefix data/ --query 'length(Contents || `[]`)')
[ "$left" = 0 ] || fail "$left objects left after --delete-dst"
