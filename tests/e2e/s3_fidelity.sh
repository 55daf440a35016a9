#!/usr/bin/env bash
# S3 fidelity (issue 21), against radosgw on loopback:
#  - --update compares like with like: a SRC file 90 s in the future (a client
#    clock ahead of the server) is uploaded once, and a second --update run
#    copies nothing (the object's x-amz-meta-mtime, not its upload time, is
#    its mtime); the same from S3 back to a local copy;
#  - an mtime of exactly 0 (the epoch) is a time: it survives local -> S3 ->
#    local and --update sees it as equal;
#  - keys are opaque between object stores: "/lead", "e//f", "c/./d",
#    "a/../b", "." and ".." and an "x/" holding bytes are copied, compared
#    and deleted verbatim S3 -> S3; to a file system each is a per-key error
#    naming its reason and nothing is written;
#  - errors name the object: a refused DeleteObjects names the bucket and
#    prefix (three times, then a count), a refused --storage-class the option;
#  - local -> S3 sets Content-Type from the name (/etc/mime.types), also for
#    a multipart upload; binary/octet-stream otherwise.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init s3_fidelity

RADOSGW_PORT=${RADOSGW_PORT:-7480} rgw_start
aws s3api create-bucket --bucket fid >/dev/null
U="s3://$CRED@$HP/fid"

mkdir -p "$T/src"
echo future >"$T/src/future"
touch -d "@$(($(date +%s) + 90))" "$T/src/future"
echo epoch >"$T/src/epoch"
touch -d @0 "$T/src/epoch"
echo now >"$T/src/now"

sm --no-https --update "$T/src/" "$U/u/"
expect_rc 0 "--update upload"
expect_field copied 3 "--update upload"
sm --no-https --update "$T/src/" "$U/u/"
expect_rc 0 "--update again"
expect_field copied 0 "--update again: a file in the future is not uploaded again"
expect_field skipped 3 "--update again"

sm --no-https "$U/u/" "$T/back/"
expect_rc 0 "S3 -> local"
for f in future epoch now; do
	[ "$(stat -c %Y "$T/src/$f")" = "$(stat -c %Y "$T/back/$f")" ] ||
		fail "'$f': mtime $(stat -c %Y "$T/back/$f") after the round trip, want $(stat -c %Y "$T/src/$f")"
done
sm --no-https --update "$U/u/" "$T/back/"
expect_rc 0 "--update S3 -> local again"
expect_field copied 0 "--update S3 -> local again"

# ---- keys are opaque between object stores (issue 21 items 1-2) ----
# "/lead", "e//f", "c/./d", "a/../b", "." and ".." are S3 keys like any
# other, and "x/" holding 10 bytes is an object, not a directory marker
ODD=("p//lead" "p/e//f" "p/c/./d" "p/a/../b" "p/." "p/.." "p/x/")
for k in "${ODD[@]}"; do
	printf 'data %s\n' "$k" >"$T/body"
	aws s3api put-object --bucket fid --key "odd/$k" --body "$T/body" >/dev/null
done
sm --no-https "$U/odd/p/" "$U/copy/q/"
expect_rc 0 "S3 -> S3 of odd keys"
expect_field copied 7 "S3 -> S3 of odd keys"
for k in "${ODD[@]}"; do
	q="copy/q/${k#p/}"
	aws s3api get-object --bucket fid --key "$q" "$T/got" >/dev/null ||
		fail "S3 -> S3: '$q' missing"
	[ "$(cat "$T/got")" = "data $k" ] || fail "S3 -> S3: '$q' holds '$(cat "$T/got")'"
done
sm --no-https "$U/odd/p/" "$U/copy/q/"
expect_rc 0 "S3 -> S3 of odd keys, again"
expect_field skipped 7 "S3 -> S3 of odd keys, again"

# to a file system: each is a per-key error naming its reason, nothing written
sm --no-https "$U/odd/p/" "$T/odd-local/"
expect_rc 1 "S3 -> local of odd keys"
expect_field failed 7 "S3 -> local of odd keys"
for m in "'.' component" "'..' component" "absolute key '/lead'" "empty component" \
	"'x/' holds 10 bytes; a directory cannot"; do
	grep -q "DST: .*$m" "$T/sm.err" || fail "S3 -> local: no per-key error with \"$m\""
done
[ -z "$(find "$T/odd-local" -mindepth 1 2>/dev/null)" ] || fail "S3 -> local of odd keys wrote: $(find "$T/odd-local")"

# --delete-dst removes them verbatim (DeleteObjects)
mkdir -p "$T/one"
echo one >"$T/one/keep"
sm --no-https --delete-dst "$T/one/" "$U/copy/q/"
expect_rc 0 "--delete-dst of odd keys"
expect_field deleted 7 "--delete-dst of odd keys"
left=$(aws s3api list-objects-v2 --bucket fid --prefix copy/q/ --query 'Contents[].Key' --output text)
[ "$left" = "copy/q/keep" ] || fail "--delete-dst left: $left"

# ---- errors that name the object (issue 21 item 8) ----
# a DeleteObjects refused as a whole names the bucket and prefix, is printed
# a few times and then counted, and the keys stay
for i in $(seq 1 8); do
	printf 'x' | aws s3 cp - "s3://fid/del/k$i" >/dev/null
done
start_proxy deny --p503 0 --preset 0 --status-of 'POST /fid\?delete=403'
sm --no-https --delete-dst "$T/one/" "s3://$CRED@$PROXY/fid/del/"
stop_proxy deny
expect_rc 1 "a refused DeleteObjects"
grep -q "DST: s3: delete in bucket 'fid' under 'del/': AccessDenied" "$T/sm.err" ||
	fail "a refused DeleteObjects does not name the bucket and prefix: $(head -3 "$T/sm.err")"
n=$(grep -c "AccessDenied" "$T/sm.err" || true)
[ "$n" -le 4 ] || fail "a refused DeleteObjects printed $n times (3, then a count)"
[ "$(aws s3api list-objects-v2 --bucket fid --prefix del/ --query 'length(Contents)')" = 9 ] ||
	fail "keys went despite the refused DeleteObjects"

# an unknown --storage-class names the option
sm --no-https --storage-class BOGUS "$T/one/" "$U/sc/"
expect_rc 1 "--storage-class BOGUS"
grep -q -- "--storage-class 'BOGUS' refused by" "$T/sm.err" || fail "--storage-class BOGUS: $(head -2 "$T/sm.err")"

# ---- Content-Type from the name (issue 21 item 5, local -> S3) ----
mkdir -p "$T/ct"
echo '<p>' >"$T/ct/a.html"
echo '{}' >"$T/ct/b.JSON"
echo x >"$T/ct/c.unknownext"
echo y >"$T/ct/noext"
head -c 9000000 /dev/urandom >"$T/ct/big.png" # multipart: set when the upload starts
sm --no-https "$T/ct/" "$U/ct/"
expect_rc 0 "local -> S3 with content types"
for kv in a.html=text/html b.JSON=application/json c.unknownext=binary/octet-stream \
	noext=binary/octet-stream big.png=image/png; do
	got=$(aws s3api head-object --bucket fid --key "ct/${kv%%=*}" --query ContentType --output text)
	[ "$got" = "${kv#*=}" ] || fail "'${kv%%=*}': Content-Type '$got', want '${kv#*=}'"
done
