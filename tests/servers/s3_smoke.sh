#!/usr/bin/env bash
# Smoke test of tests/servers/radosgw.sh: start a radosgw in a temporary
# directory, drive it with awscli v2 (/usr/bin/aws) and curl --aws-sigv4, stop it.
#   s3_smoke.sh [ADDR:PORT...]    extra addresses are passed to `radosgw.sh start`
#                                 and checked to answer too
# Exit 0 when every check passed, 1 otherwise.
# shellcheck disable=SC2016 # bash -c scripts are single-quoted on purpose
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rgw=$here/radosgw.sh

srv=$(mktemp -d /tmp/s3smoke-srv.XXXXXX)
work=$(mktemp -d /tmp/s3smoke-work.XXXXXX)
cleanup() {
	"$rgw" stop "$srv" || echo "s3_smoke: stopping the server failed" >&2
	rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
ok() {
	echo "ok - $1"
	passed=$((passed + 1))
}
not_ok() {
	echo "not ok - $1"
	[ -z "${2:-}" ] || sed 's/^/    /' "$2" | tail -20
	failed=$((failed + 1))
}
check() { # description command... (output kept in $work/out)
	local what=$1
	shift
	if "$@" >"$work/out" 2>&1; then ok "$what"; else not_ok "$what" "$work/out"; fi
}

t0=$(date +%s.%N)
if ! "$rgw" start "$srv" "$@"; then
	echo "not ok - radosgw.sh start"
	echo "0 passed, 1 failed"
	exit 1
fi
ok "radosgw.sh start ($(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)") s)"
check "radosgw.sh status" "$rgw" status "$srv"

# shellcheck disable=SC1091
. "$srv/env"
export AWS_PAGER="" AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_CA_BUNDLE
export AWS_CONFIG_FILE=$work/aws-config AWS_SHARED_CREDENTIALS_FILE=$work/aws-credentials
aws=(/usr/bin/aws --endpoint-url "$S3_ENDPOINT")
bucket=smoke-bucket
key="dir/hello wörld+%.txt"
k=$key
export k
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
sigv4=(--aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY")

echo "hello from s3_smoke $$" >"$work/small"
head -c 20000000 /dev/urandom >"$work/big" # > 8 MiB: aws s3 cp uploads it in parts

check "aws: version is 2.x" bash -c '/usr/bin/aws --version | grep -q "^aws-cli/2\."'
check "aws: create-bucket" "${aws[@]}" s3api create-bucket --bucket "$bucket"
check "aws: put-object '$key'" "${aws[@]}" s3api put-object --bucket "$bucket" --key "$key" --body "$work/small"
check "aws: list-objects-v2 shows the key" \
	bash -c '"$@" | grep -qxF "$k"' _ "${aws[@]}" s3api list-objects-v2 --bucket "$bucket" \
	--query 'Contents[].Key' --output text
check "aws: get-object returns the same bytes" bash -c \
	'"$@" >/dev/null && cmp "$0" "$0.got"' "$work/small" "${aws[@]}" s3api get-object \
	--bucket "$bucket" --key "$key" "$work/small.got"
check "aws: multipart upload (s3 cp, 20 MB)" "${aws[@]}" s3 cp --quiet "$work/big" "s3://$bucket/big"
check "aws: multipart ETag has a part count" bash -c \
	'"$@" | grep -q -- "-[0-9]"' _ "${aws[@]}" s3api head-object --bucket "$bucket" --key big \
	--query ETag --output text
check "aws: multipart download matches" bash -c \
	'"$@" && cmp "$0" "$0.got"' "$work/big" "${aws[@]}" s3 cp --quiet "s3://$bucket/big" "$work/big.got"

# curl: 7.88 does not send x-amz-content-sha256 by itself; radosgw needs it.
curl_s3() { # method url [curl args...]
	curl -s --max-time 10 -X "$1" "${sigv4[@]}" "${@:3}" "$2"
}
code=$(curl_s3 PUT "$S3_ENDPOINT/$bucket/curl-object" -o "$work/out" -w '%{http_code}' \
	-H "x-amz-content-sha256: $(sha256sum <"$work/small" | cut -d' ' -f1)" --data-binary @"$work/small")
if [ "$code" = 200 ]; then ok "curl: signed PUT"; else not_ok "curl: signed PUT (HTTP $code)" "$work/out"; fi
code=$(curl_s3 GET "$S3_ENDPOINT/$bucket/curl-object" -o "$work/curl.got" -w '%{http_code}' \
	-H "x-amz-content-sha256: $EMPTY_SHA256")
if [ "$code" = 200 ] && cmp -s "$work/small" "$work/curl.got"; then ok "curl: signed GET"; else
	not_ok "curl: signed GET (HTTP $code)" "$work/curl.got"
fi
port=${S3_ENDPOINT##*:}
code=$(curl_s3 GET "http://$bucket.localhost:$port/curl-object" -o "$work/curl.got" -w '%{http_code}' \
	-H "x-amz-content-sha256: $EMPTY_SHA256")
if [ "$code" = 200 ] && cmp -s "$work/small" "$work/curl.got"; then
	ok "curl: virtual-host style GET (http://$bucket.localhost:$port)"
else
	not_ok "curl: virtual-host style GET (HTTP $code)" "$work/curl.got"
fi
for ep in ${S3_EXTRA_ENDPOINTS:-}; do
	code=$(curl_s3 GET "$ep/$bucket/curl-object" -o "$work/curl.got" -w '%{http_code}' \
		-H "x-amz-content-sha256: $EMPTY_SHA256")
	if [ "$code" = 200 ]; then ok "curl: GET on $ep"; else not_ok "curl: GET on $ep (HTTP $code)" "$work/curl.got"; fi
done

# A wrong secret must be refused with 403 SignatureDoesNotMatch.
code=$(curl -s --max-time 10 -o "$work/out" -w '%{http_code}' \
	--aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:wrong-secret" \
	-H "x-amz-content-sha256: $EMPTY_SHA256" "$S3_ENDPOINT/$bucket/curl-object")
if [ "$code" = 403 ] && grep -q '<Code>SignatureDoesNotMatch</Code>' "$work/out"; then
	ok "curl: wrong secret -> 403 SignatureDoesNotMatch"
else
	not_ok "curl: wrong secret -> 403 SignatureDoesNotMatch (got HTTP $code)" "$work/out"
fi
# awscli 2.9.19 (Debian 12) crashes on radosgw's error bodies, which have an
# empty <Message>: it prints "argument of type 'NoneType' is not iterable"
# instead of the error code. The code is in the response body that --debug logs.
aws_error() { # expected-code description aws-args...
	local want=$1 what=$2
	shift 2
	if "${aws[@]}" --debug "$@" >"$work/out" 2>&1; then
		not_ok "$what (it was accepted)" "$work/out"
	elif grep -q "<Code>$want</Code>" "$work/out"; then
		ok "$what"
	else
		grep -v ' - DEBUG - ' "$work/out" >"$work/out2" || true
		not_ok "$what" "$work/out2"
	fi
}
AWS_SECRET_ACCESS_KEY=wrong-secret aws_error SignatureDoesNotMatch \
	"aws: wrong secret -> SignatureDoesNotMatch" s3api list-objects-v2 --bucket "$bucket"
AWS_ACCESS_KEY_ID=NOSUCHKEY0000000000X aws_error InvalidAccessKeyId \
	"aws: unknown access key -> InvalidAccessKeyId" s3api list-buckets

check "aws: delete-object" "${aws[@]}" s3api delete-object --bucket "$bucket" --key "$key"
check "aws: delete the other objects" bash -c '"$@" s3api delete-object --bucket "$0" --key big &&
	"$@" s3api delete-object --bucket "$0" --key curl-object' "$bucket" "${aws[@]}"
check "aws: bucket is empty" bash -c \
	'[ "$("$@")" = 0 ]' _ "${aws[@]}" s3api list-objects-v2 --bucket "$bucket" --query 'length(Contents || `[]`)' --output text
check "aws: delete-bucket" "${aws[@]}" s3api delete-bucket --bucket "$bucket"

rss=0
for f in "$srv"/*.pid; do
	r=$(awk '/^VmRSS:/ {print $2}' "/proc/$(<"$f")/status" 2>/dev/null || echo 0)
	rss=$((rss + ${r:-0}))
done
echo "# server processes: $((rss / 1024)) MiB RSS in all"

echo "$passed passed, $failed failed"
((failed == 0))
