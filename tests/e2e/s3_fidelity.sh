#!/usr/bin/env bash
# S3 fidelity (issue 21), against radosgw on loopback:
#  - --update compares like with like: a SRC file 90 s in the future (a client
#    clock ahead of the server) is uploaded once, and a second --update run
#    copies nothing (the object's x-amz-meta-mtime, not its upload time, is
#    its mtime); the same from S3 back to a local copy;
#  - an mtime of exactly 0 (the epoch) is a time: it survives local -> S3 ->
#    local and --update sees it as equal.
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
