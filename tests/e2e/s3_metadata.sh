#!/usr/bin/env bash
# Metadata survives every copy path (issue 21 item 5), against radosgw:
#  - S3 -> S3 on one endpoint (CopyObject, and the multipart copy of
#    UploadPartCopy that objects above 5 GiB take: SYNCMGR_TEST_S3_COPY_MAX
#    sends small ones there): the copy keeps Content-Type, Cache-Control,
#    Content-Encoding, Content-Disposition and the user metadata, and its
#    x-amz-meta-mtime is the source's x-amz-meta-mtime, or the source's
#    LastModified when it has none (not the time of the copy);
#  - S3 -> S3 across endpoints (GET, then PUT or a multipart upload): the
#    same headers and user metadata, and the same mtimes;
#  - a second run of each with --update copies nothing.
# Both endpoints are the one radosgw: one of them is reached through a fault
# proxy without faults, which logs the write requests' headers, so the test
# sees which path ran (x-amz-copy-source or not).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init s3_metadata

RADOSGW_PORT=${RADOSGW_PORT:-7480} rgw_start
aws s3api create-bucket --bucket msrc >/dev/null
aws s3api create-bucket --bucket mdst >/dev/null

put() { # KEY FILE ARGS...
	aws s3api put-object --bucket msrc --key "$1" --body "$2" "${@:3}" >/dev/null ||
		fail "put-object '$1' failed"
}
echo plain >"$T/plain"
head -c 12000000 /dev/urandom >"$T/big" # above the 8 MiB of a single PUT: multipart
# no x-amz-meta-mtime: the copy's mtime is the source's LastModified
put nomt.txt "$T/plain" --content-type "text/x-syncmgr; charset=utf-8" \
	--cache-control "max-age=60, public" --content-encoding gzip \
	--content-disposition 'attachment; filename="a b.txt"' \
	--metadata '{"color":"blue","owner":"Team A","empty":""}'
# an mtime of its own (rclone's x-amz-meta-mtime), kept as it is
put withmt.bin "$T/plain" --content-type application/x-custom --cache-control no-cache \
	--content-encoding identity --content-disposition inline \
	--metadata '{"mtime":"1234567890.5","color":"red"}'
put big.dat "$T/big" --content-type video/x-custom --cache-control max-age=5 \
	--content-encoding br --content-disposition 'attachment; filename=big.dat' \
	--metadata '{"color":"green","size-class":"large"}'
KEYS=(nomt.txt withmt.bin big.dat)
# the server keeps what the test relies on (an empty value included)
got=$(aws s3api head-object --bucket msrc --key nomt.txt --query 'Metadata' --output json |
	"$PY" -c 'import json, sys; print(sorted(json.load(sys.stdin).items()))')
[ "$got" = "[('color', 'blue'), ('empty', ''), ('owner', 'Team A')]" ] ||
	fail "radosgw did not keep the user metadata of nomt.txt: $got"

# check_meta PREFIX WHAT: each of KEYS in mdst/PREFIX has the source's
# headers, user metadata and mtime (the source's x-amz-meta-mtime, else its
# LastModified to the second)
check_meta() {
	local k out
	for k in "${KEYS[@]}"; do
		aws s3api head-object --bucket msrc --key "$k" >"$T/h.src" || fail "head-object msrc/$k failed"
		aws s3api head-object --bucket mdst --key "$1$k" >"$T/h.dst" ||
			{ defer_fail "$2: mdst/$1$k missing"; continue; }
		out=$("$PY" - "$T/h.src" "$T/h.dst" <<'EOF'
import datetime, json, sys
s = json.load(open(sys.argv[1]))
d = json.load(open(sys.argv[2]))
bad = []
for f in ("ContentLength", "ContentType", "CacheControl", "ContentEncoding",
          "ContentDisposition"):
    if s.get(f) != d.get(f):
        bad.append("%s %r, want %r" % (f, d.get(f), s.get(f)))
sm, dm = dict(s.get("Metadata", {})), dict(d.get("Metadata", {}))
smt, dmt = sm.pop("mtime", None), dm.pop("mtime", None)
if sm != dm:
    bad.append("user metadata %r, want %r" % (dm, sm))
if smt is None:
    want = int(datetime.datetime.fromisoformat(s["LastModified"]).timestamp())
    if dmt is None or int(float(dmt)) != want:
        bad.append("mtime %r, want the source's LastModified %d (%s)"
                   % (dmt, want, s["LastModified"]))
elif dmt is None or float(dmt) != float(smt):
    bad.append("mtime %r, want the source's %r" % (dmt, smt))
print("; ".join(bad))
EOF
		) || fail "comparing the metadata of '$k' failed"
		[ -z "$out" ] || defer_fail "$2: '$k': $out"
	done
}

# paths PROXYLOG PREFIX COPY|STREAM WHAT: each key was written by the path
# named (the proxy logs "request: METHOD /path?query | name: value | ...")
paths() {
	local k line
	for k in "${KEYS[@]}"; do
		line=$(grep -E "^.*request: (PUT|POST) /mdst/$2$k( |\?uploads)" "$1" | head -n 1 || true)
		[ -n "$line" ] || { defer_fail "$4: no write of mdst/$2$k reached the proxy"; continue; }
		case $3 in
		COPY) [[ $line == *"x-amz-copy-source: /msrc/$k"* ]] ||
			defer_fail "$4: mdst/$2$k was not written by a server-side copy: $line" ;;
		STREAM) [[ $line != *x-amz-copy-source* ]] ||
			defer_fail "$4: mdst/$2$k was written by a server-side copy: $line" ;;
		esac
	done
}

# ---- (a) one endpoint: CopyObject ----
start_proxy same --p503 0 --preset 0 --log-headers '^(PUT|POST) /mdst/'
P="s3://$CRED@$PROXY"
sm --no-https "$P/msrc/" "$P/mdst/a/"
expect_rc 0 "S3 -> S3 on one endpoint"
expect_field copied 3 "S3 -> S3 on one endpoint"
check_meta a/ "CopyObject"
sm --no-https --update "$P/msrc/" "$P/mdst/a/"
expect_rc 0 "S3 -> S3 on one endpoint, --update again"
expect_field copied 0 "S3 -> S3 on one endpoint, --update again"

# ---- (a2) one endpoint, in parts: UploadPartCopy ----
SYNCMGR_TEST_S3_COPY_MAX=1 sm --no-https "$P/msrc/" "$P/mdst/a2/"
expect_rc 0 "S3 -> S3 on one endpoint, copied in parts"
expect_field copied 3 "S3 -> S3 on one endpoint, copied in parts"
check_meta a2/ "UploadPartCopy"
stop_proxy same
paths "$T/proxy.log.same" a/ COPY "CopyObject"
grep -q "request: PUT /mdst/a2/big.dat?partNumber=.*x-amz-copy-source-range" "$T/proxy.log.same" ||
	defer_fail "UploadPartCopy: no part of mdst/a2/big.dat was copied in a range"

# ---- (b) two endpoints: GET, then PUT / multipart upload ----
start_proxy other --p503 0 --preset 0 --log-headers '^(PUT|POST) /mdst/'
sm --no-https "s3://$CRED@$HP/msrc/" "s3://$CRED@$PROXY/mdst/b/"
expect_rc 0 "S3 -> S3 across endpoints"
expect_field copied 3 "S3 -> S3 across endpoints"
check_meta b/ "across endpoints"
sm --no-https --update "s3://$CRED@$HP/msrc/" "s3://$CRED@$PROXY/mdst/b/"
expect_rc 0 "S3 -> S3 across endpoints, --update again"
expect_field copied 0 "S3 -> S3 across endpoints, --update again"
stop_proxy other
paths "$T/proxy.log.other" b/ STREAM "across endpoints"
grep -q "request: POST /mdst/b/big.dat?uploads" "$T/proxy.log.other" ||
	defer_fail "across endpoints: mdst/b/big.dat was not a multipart upload"
