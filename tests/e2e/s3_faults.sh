#!/usr/bin/env bash
# S3 under faults, against a real radosgw behind tests/servers/fault_proxy.py:
#  0. the proxy really resets (a client sees "Connection reset by peer");
#  1. local -> S3 and S3 -> local through 5 % of requests answered 503
#     SlowDown and TCP resets (RST) of every kind: mid-request (an 8 MiB
#     multipart part cut while it is sent), before the reply (the PUT took
#     effect, its answer is lost), mid-reply (a ranged GET cut mid-body, a
#     CompleteMultipartUpload whose reply is cut): syncmgr retries (its log
#     says so) and both trees come out complete and identical to SRC (S3 is
#     also read back without the proxy). The proxy's own counters must show
#     each kind of reset, so the test cannot pass if it injected nothing;
#  2. a multipart upload whose parts are refused fails the key and leaves no
#     upload open;
#  3. bucket to bucket on one endpoint is a server-side copy;
#  4. a 200 MiB object written by syncmgr reads back identical with the aws
#     CLI;
#  5. --delete-dst deletes in batches, through a reset of each batch.
# Ports: radosgw on RADOSGW_PORT (default 7492), the proxies on
# S3_FAULTS_PROXY_PORT (default 7600) and the ports after it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init s3_faults

export RADOSGW_PORT=${RADOSGW_PORT:-7492}
PROXY_PORT=${S3_FAULTS_PROXY_PORT:-7600}
rgw_start
aws s3api create-bucket --bucket faults >/dev/null

# expect_resets NAME WHAT: the proxy answered 503s and reset connections at
# each of the three points; show what it did
expect_resets() {
	local p
	[ "$(pstat "$1" 503)" -ge 1 ] || fail "$2: the proxy answered no 503: $(tail -1 "$T/proxy.log.$1")"
	for p in mid-request before-reply mid-reply; do
		[ "$(pstat "$1" "$p")" -ge 1 ] ||
			fail "$2: the proxy reset no connection $p: $(tail -1 "$T/proxy.log.$1")"
	done
	note "$2: $(tail -1 "$T/proxy.log.$1")"
}

# expect_reset NAME PATTERN WHAT: the proxy logged a reset matching PATTERN
# (an extended regular expression on its "reset POINT: METHOD PATH" lines)
expect_reset() {
	grep -qE "^fault_proxy: reset $2" "$T/proxy.log.$1" ||
		fail "$3: the proxy logged no reset matching '$2':
$(grep '^fault_proxy: reset' "$T/proxy.log.$1" | head -20)"
}

# expect_transport_retries WHAT: syncmgr (run with -v) logged retries of
# requests that failed on the reset connection itself, not on a 503; curl
# resends some requests on a fresh connection by itself, so not every reset
# shows here, but the ones cut after reply bytes arrived must
expect_transport_retries() {
	local n
	n=$(grep 'retrying ' "$T/sm.err" | grep -cF "): $PROXY: " || true)
	[ "$n" -ge 1 ] || fail "$1: syncmgr logged no retry after a reset connection:
$(grep retrying "$T/sm.err" | head -10)"
	note "$1: syncmgr retried $n requests after a reset, $(grep -c 'retrying .*HTTP 503' "$T/sm.err" || true) after a 503"
}

# 0. the proxy's resets are RSTs, at each point, as a client sees them
start_proxy rst --p503 0 --preset 0 --reset-every 1
for point in mid-request before-reply mid-reply; do
	if curl -sS -o /dev/null "http://$PROXY/" 2>"$T/curl.err"; then
		fail "proxy self-check: a GET through a proxy that resets every request succeeded"
	fi
	grep -q 'Connection reset by peer' "$T/curl.err" ||
		fail "proxy self-check: $point: curl saw no reset: $(cat "$T/curl.err")"
done
stop_proxy rst
[ "$(pstat rst mid-request)" = 1 ] && [ "$(pstat rst before-reply)" = 1 ] && [ "$(pstat rst mid-reply)" = 1 ] ||
	fail "proxy self-check: expected one reset at each point: $(cat "$T/proxy.log.rst")"

mkdir -p "$T/src/d"
for i in $(seq 1 300); do head -c $((RANDOM % 3000 + 1)) /dev/urandom >"$T/src/d/f$i"; done
head -c 40000000 /dev/urandom >"$T/src/big.bin"

# 1a. local -> S3: 5 % 503s, every 23rd request reset, and the first attempt
# of each request of big.bin's multipart upload (5 parts, then the
# completion) reset in turn mid-request, before the reply, mid-reply
start_proxy up --seed 7 --p503 0.05 --preset 0 --reset-every 23 \
	--reset-first-of '^(PUT|POST) /faults/data/big\.bin\?(partNumber|uploadId)='
sm --no-https -v -p 8 "$T/src/" "s3://$CRED@$PROXY/faults/data/"
expect_rc 0 "local -> S3 through 503s and resets"
[ "$(field copied)" = 301 ] || fail "expected 301 copied through the proxy, got $(field copied)"
[ "$(field failed)" = 0 ] || fail "local -> S3 through faults: $(field failed) failed"
expect_transport_retries "local -> S3"
stop_proxy up
expect_resets up "local -> S3"
expect_reset up 'mid-request: PUT /faults/data/big\.bin\?partNumber=[0-9]+&uploadId=.* \(after [0-9]{6,} of [0-9]{7,} request body bytes' \
	"a multipart part (MiBs) cut while it was sent"
expect_reset up 'mid-reply: POST /faults/data/big\.bin\?uploadId=' "a completion whose reply was cut"
sm --no-https "s3://$CRED@$HP/faults/data/" "$T/back/"
expect_rc 0 "read back without the proxy"
expect_same_tree "$T/src" "$T/back" --no-dirs --mtime "local -> S3 through faults, read back without them"
etag=$(aws s3api head-object --bucket faults --key data/big.bin --query ETag --output text)
case $etag in *-5\"*) ;; *) fail "big.bin is not the 5-part upload it should be (ETag $etag)" ;; esac

# 1b. S3 -> local: the same faults, and the first attempt of each of
# big.bin's five 8 MiB ranged GETs reset in turn
start_proxy down --seed 8 --p503 0.05 --preset 0 --reset-every 23 \
	--reset-first-of '^GET /faults/data/big\.bin$'
sm --no-https -v -p 8 "s3://$CRED@$PROXY/faults/data/" "$T/down/"
expect_rc 0 "S3 -> local through 503s and resets"
[ "$(field copied)" = 301 ] || fail "expected 301 copied from S3 through the proxy, got $(field copied)"
[ "$(field failed)" = 0 ] || fail "S3 -> local through faults: $(field failed) failed"
expect_transport_retries "S3 -> local"
stop_proxy down
expect_resets down "S3 -> local"
expect_reset down 'mid-reply: GET /faults/data/big\.bin \[bytes=[0-9]+-[0-9]+\] \(status 206, after the headers and [0-9]{6,} of [0-9]{7,} body bytes' \
	"a ranged GET cut mid-body"
expect_same_tree "$T/src" "$T/down" --no-dirs --mtime "S3 -> local through faults"
expect_no_temp_files "$T/down" "S3 -> local through faults"

# 2. a multipart upload whose parts are refused: the key fails, no upload stays open
head -c 40000000 /dev/urandom >"$T/src2.bin"
mkdir -p "$T/src2" && mv "$T/src2.bin" "$T/src2/refused.bin"
start_proxy refuse --p503 0 --preset 0 --fail-part-of refused.bin
sm --no-https "$T/src2/" "s3://$CRED@$PROXY/faults/mp/"
expect_rc 1 "refused multipart parts"
stop_proxy refuse
[ "$(pstat refuse part400)" -ge 1 ] || fail "the proxy refused no part: $(tail -1 "$T/proxy.log.refuse")"
# (only below mp/: an upload whose CreateMultipartUpload reply a reset took
# in 1a is left open, unknown to syncmgr)
uploads=$(aws s3api list-multipart-uploads --bucket faults --prefix mp/ --query 'length(Uploads || `[]`)')
[ "$uploads" = 0 ] || fail "$uploads multipart upload(s) left open after the failed run"
if aws s3 ls s3://faults/mp/ | grep -q refused.bin; then fail "a failed multipart object exists"; fi

# 3. bucket to bucket on the same endpoint: the server copies (CopyObject);
# only requests and small replies cross the proxy, not the 40 MB of data
aws s3api create-bucket --bucket faults-copy >/dev/null
start_proxy copy --p503 0 --preset 0
sm --no-https "s3://$CRED@$PROXY/faults/data/" "s3://$CRED@$PROXY/faults-copy/data/"
expect_rc 0 "bucket to bucket"
[ "$(field copied)" = 301 ] || fail "expected 301 copied bucket to bucket, got $(field copied)"
stop_proxy copy
crossed=$(pstat copy body-bytes)
[ "$crossed" -gt 0 ] && [ "$crossed" -lt 5000000 ] ||
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
# through 503s and a reset of each batch's first attempt (one mid-request,
# one before the reply, when the keys are gone already): 1301 keys go in a
# handful of requests
mkdir -p "$T/more"
for i in $(seq 1 1000); do printf '%s' "$i" >"$T/more/m$i"; done
sm --no-https -p 16 "$T/more/" "s3://$CRED@$HP/faults-copy/data/more/"
expect_rc 0 "1000 more objects"
mkdir -p "$T/empty"
start_proxy del --seed 11 --p503 0.05 --preset 0 --reset-first-of '^POST /faults-copy\?delete='
sm --no-https --delete-dst "$T/empty/" "s3://$CRED@$PROXY/faults-copy/data/"
expect_rc 0 "--delete-dst of 1301 keys"
[ "$(field deleted)" = 1301 ] || fail "expected 1301 deleted, got $(field deleted)"
stop_proxy del
requests=$(pstat del requests)
[ "$requests" -gt 0 ] && [ "$requests" -lt 40 ] ||
	fail "deletes not batched: $requests requests for 1301 keys ($(tail -1 "$T/proxy.log.del"))"
[ "$(pstat del mid-request)" = 1 ] && [ "$(pstat del before-reply)" = 1 ] ||
	fail "the proxy did not reset both delete batches: $(cat "$T/proxy.log.del")"
note "--delete-dst of 1301 keys: $(tail -1 "$T/proxy.log.del")"
left=$(aws s3api list-objects-v2 --bucket faults-copy --prefix data/ --query 'length(Contents || `[]`)')
[ "$left" = 0 ] || fail "$left objects left after --delete-dst"
