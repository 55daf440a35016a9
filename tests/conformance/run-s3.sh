#!/usr/bin/env bash
# Run the store conformance suite against a real S3 server: a one-machine
# Ceph radosgw started here (tests/servers/radosgw.sh) and stopped after.
# A server that cannot start fails the test. The suite also reads the
# bucket with the AWS CLI (objects and open multipart uploads: a failed
# put must leave neither).
set -euo pipefail
exe=$1
here=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d /tmp/sm-rgw-XXXXXX)
rmdir "$dir"
trap '"$here/servers/radosgw.sh" stop "$dir" >/dev/null 2>&1 || true' EXIT
"$here/servers/radosgw.sh" start "$dir" >/dev/null
# shellcheck disable=SC1091
. "$dir/env"
export AWS_PAGER=""
/usr/bin/aws --endpoint-url "$S3_ENDPOINT" s3api create-bucket --bucket conformance >/dev/null
hostport=${S3_ENDPOINT#http://}
SM_EXPECT_CAPS="" SM_STORE_RAW_S3_ENDPOINT="$S3_ENDPOINT" SM_STORE_RAW_S3_BUCKET=conformance \
	SM_STORE_RAW_S3_PREFIX=base/ SM_STORE_NO_HTTPS=1 \
	SM_STORE_URL="s3://$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY@$hostport/conformance/base/" \
	"$exe"
