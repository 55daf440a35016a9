#!/usr/bin/env bash
# Run the store conformance suite against an S3 server that lists in
# directory order, not byte order (s3rver, tests/servers/s3rver.sh, started
# here and stopped after): every listing, range listings included, must
# come out in byte order all the same. A server that cannot start fails the
# test. The suite also reads the bucket with the AWS CLI (objects only:
# s3rver cannot list multipart uploads). Signatures are not checked
# (S3RVER_LAX_SIGNATURES: s3rver canonicalizes '!' in a query unlike SigV4,
# and the suite lists from bounds like "f000041!"); radosgw checks them.
set -euo pipefail
exe=$1
here=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d /tmp/sm-s3rver-XXXXXX)
rmdir "$dir"
trap '"$here/servers/s3rver.sh" stop "$dir" >/dev/null 2>&1 || true' EXIT
S3RVER_LAX_SIGNATURES=1 "$here/servers/s3rver.sh" start "$dir" >/dev/null
# shellcheck disable=SC1091
. "$dir/env"
export AWS_PAGER=""
/usr/bin/aws --endpoint-url "$S3_ENDPOINT" s3api create-bucket --bucket conformance >/dev/null
hostport=${S3_ENDPOINT#http://}
SM_EXPECT_CAPS="" SM_STORE_RAW_S3_ENDPOINT="$S3_ENDPOINT" SM_STORE_RAW_S3_BUCKET=conformance \
	SM_STORE_RAW_S3_PREFIX=base/ SM_STORE_RAW_S3_NO_UPLOADS=1 SM_STORE_NO_HTTPS=1 \
	SM_STORE_URL="s3://$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY@$hostport/conformance/base/" \
	"$exe"
