#!/usr/bin/env bash
# Data safety on S3 (issue "No key lost, nothing written outside DST"),
# against a real radosgw, some of it behind tests/servers/fault_proxy.py:
#  1. a location without a trailing '/' names a directory: 'bucket/data'
#     holds data/x, and 'data-old/...' or 'datafile' beside it are never
#     listed, written or deleted (--delete-dst);
#  5. a listing page answered 403 after a full first page ends that listing
#     with the error, once: the run stops with exit 1 (SRC and DST side);
# 11. and deletes nothing at all (--delete-dst), saying why;
# 12. a multipart server-side copy (UploadPartCopy) pins every part to the
#     source's ETag and keeps its x-amz-meta-mtime (small objects: the
#     test-only SYNCMGR_TEST_S3_COPY_MAX).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init safety_s3

PROXY_PORT=${SAFETY_S3_PROXY_PORT:-7620}
rgw_start
aws s3api create-bucket --bucket safety >/dev/null
U="s3://$CRED@$HP/safety"

# keys BUCKET PREFIX: every key under PREFIX, straight from radosgw
keys() {
	aws s3api list-objects-v2 --bucket "$1" --prefix "$2" --query 'Contents[].Key' \
		--output text | tr '\t' '\n' | grep -v '^None$' | sort || true
}

# 1. A DST location without '/' is the directory 'data/'.
mkdir -p "$T/src/sub"
echo x >"$T/src/x"
echo y >"$T/src/sub/y"
echo keep | aws s3 cp - s3://safety/data-old/important.txt >/dev/null
echo keep | aws s3 cp - s3://safety/datafile >/dev/null
echo gone | aws s3 cp - s3://safety/data/stale >/dev/null
sm --no-https --delete-dst "$T/src" "$U/data"
expect_rc 0 "local dir -> 'bucket/data' (no trailing '/')"
got=$(keys safety "")
want=$(printf '%s\n' data-old/important.txt data/sub/y data/x datafile | sort)
[ "$got" = "$want" ] || fail "'bucket/data' is not the directory data/:
  want: $(echo $want)
  got:  $(echo $got)"
# and as SRC: only data/ comes down, under the same names
sm --no-https "$U/data" "$T/down1"
expect_rc 0 "'bucket/data' -> local"
expect_same_tree --no-dirs "$T/src" "$T/down1" "'bucket/data' as SRC"

# Over 1000 keys, so that a listing has a second page.
mkdir -p "$T/many"
for i in $(seq -w 1 1005); do echo "$i" >"$T/many/f$i"; done
sm --no-https "$T/many/" "$U/many/"
expect_rc 0 "upload of 1005 keys"
# DST-only keys before them: a task's DST range then spans three pages
mkdir -p "$T/extras"
for i in $(seq -w 1 1100); do echo "$i" >"$T/extras/a-extra$i"; done
sm --no-https "$T/extras/" "$U/many/"
expect_rc 0 "upload of 1100 more keys"
before=$(keys safety many/)

# 5. The second page of every listing answers 403, after a full first page.
start_proxy p403 --p503 0 --preset 0 --status-of 'GET /safety\?.*continuation-token=.*=403'
P="s3://$CRED@$PROXY/safety"
sm --no-https "$P/many/" "$T/down2/"
[ "$SM_RC" -eq 1 ] || fail "SRC listing refused on page 2: expected exit 1, got $SM_RC"
grep -q 'AccessDenied\|403' "$T/sm.err" || fail "SRC listing refused on page 2: the 403 is not reported"
# 6. No worker may wait forever either: the run ended (sm fails on a time-out).

# 11. DST listing refused on page 2, with --delete-dst: nothing is deleted.
rm -f "$T/many/f0003"                           # so a delete is due on page 1
sm --no-https --delete-dst "$T/many/" "$P/many/"
[ "$SM_RC" -eq 1 ] || fail "DST listing refused on page 2: expected exit 1, got $SM_RC"
grep -q 'deletes skipped: a listing failed' "$T/sm.err" ||
	fail "DST listing refused on page 2: no line saying that deletes were skipped"
[ "$(field failed)" -ge 1 ] || fail "DST listing refused on page 2: no key counted failed"
sm --no-https --delete-dst --dry "$T/many/" "$P/many/"
grep -q '^delete ' "$T/sm.out" &&
	fail "--dry claims deletes that the real run skips: $(grep '^delete ' "$T/sm.out" | head -3)"
stop_proxy p403
[ "$(pstat p403 status-of)" -ge 3 ] || fail "the proxy refused $(pstat p403 status-of) pages, expected 3 runs' worth"
[ "$(pstat p403 status-of)" -le 12 ] ||
	fail "page 2 was asked for $(pstat p403 status-of) times in 3 runs: a listing retried a refused page"
after=$(keys safety many/)
[ "$before" = "$after" ] || fail "keys changed under many/ although a listing failed:
$(diff <(echo "$before") <(echo "$after") | head)"

# 12. A multipart server-side copy is pinned to the source's ETag.
mkdir -p "$T/big"
head -c $((12 * 1024 * 1024)) /dev/urandom >"$T/big/big.bin"
touch -d '@1000000000' "$T/big/big.bin"
sm --no-https "$T/big/" "$U/big/"
expect_rc 0 "upload of big.bin"
etag=$(aws s3api head-object --bucket safety --key big/big.bin --query ETag --output text)
start_proxy copy --p503 0 --preset 0 --log-headers 'PUT .*partNumber='
P="s3://$CRED@$PROXY/safety"
SYNCMGR_TEST_S3_COPY_MAX=1048576 sm --no-https "$P/big/" "$P/bigcopy/"
expect_rc 0 "multipart server-side copy"
stop_proxy copy
parts=$(grep -c '^fault_proxy: request: PUT /safety/bigcopy/big.bin?.*partNumber=' "$T/proxy.log.copy" || true)
[ "$parts" -ge 3 ] || fail "expected at least 3 UploadPartCopy requests, saw $parts:
$(grep request: "$T/proxy.log.copy" | head -5)"
pinned=$(grep '^fault_proxy: request: PUT /safety/bigcopy/big.bin?.*partNumber=' "$T/proxy.log.copy" |
	grep -cF "x-amz-copy-source-if-match: $etag" || true)
[ "$pinned" = "$parts" ] || fail "$pinned of $parts UploadPartCopy requests are pinned to ETag $etag:
$(grep request: "$T/proxy.log.copy" | head -3)"
src_mt=$(aws s3api head-object --bucket safety --key big/big.bin --query Metadata.mtime --output text)
dst_mt=$(aws s3api head-object --bucket safety --key bigcopy/big.bin --query Metadata.mtime --output text)
[ "$src_mt" != None ] && [ "$src_mt" = "$dst_mt" ] ||
	fail "the multipart copy lost x-amz-meta-mtime: source '$src_mt', copy '$dst_mt'"
sm --no-https "$U/bigcopy/" "$T/bigback/"
expect_rc 0 "bigcopy -> local"
expect_same_tree --mtime --no-dirs "$T/big" "$T/bigback" "the multipart copy"
