#!/usr/bin/env bash
# S3 over HTTPS against a real radosgw with a self-signed certificate (its own
# CA file): with AWS_CA_BUNDLE naming that file, local -> S3 -> local keeps
# contents and mtimes (a multipart-sized file included), a second pass copies
# nothing, `aws s3 ls --recursive` shows exactly the source tree, and
# --check-change still syncs; without AWS_CA_BUNDLE the certificate cannot be
# verified, and an unreadable AWS_CA_BUNDLE is refused, each with one clear
# line and exit 1.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init s3_https

unset AWS_CA_BUNDLE # only where a case sets it
# shellcheck disable=SC2034 # read by rgw_start: HTTPS there, besides HTTP on 7480
RGW_SSL_PORT=${RGW_SSL_PORT:-7443}
rgw_start
# the aws CLI over HTTPS, trusting the server's certificate
awss() { /usr/bin/aws --ca-bundle "$S3_CA_BUNDLE" --endpoint-url "$S3_HTTPS_ENDPOINT" "$@"; }
awss s3api create-bucket --bucket e2e-tls >/dev/null
# (radosgw omits KeyCount when there are none: count Contents)
# shellcheck disable=SC2016 # a JMESPath literal, not shell
keys_under() { awss s3api list-objects-v2 --bucket e2e-tls --prefix "$1" --query 'length(Contents || `[]`)' --output text; }
U="s3://$CRED@$HPS/e2e-tls" # path style: the host is an IP; https: no --no-https

# A random tree, a few small files (an empty one, odd names) and a
# multipart-sized file.
gentree gen --seed 23 --out "$T/src" --files 80 >/dev/null
find "$T/src" -type l -delete # S3 has no symlinks: keep the comparison about files
: >"$T/src/x-empty"
printf x >"$T/src/x one byte"
printf 'plus' >"$T/src/a+b%c.txt"
head -c 3000000 /dev/urandom >"$T/src/x-3mb.bin"
head -c 40000000 /dev/urandom >"$T/src/big.bin"

# 1. with the CA file: a round trip keeps contents and mtimes
AWS_CA_BUNDLE=$S3_CA_BUNDLE sm "$T/src/" "$U/tree/"
expect_rc 0 "local -> S3 over HTTPS"
AWS_CA_BUNDLE=$S3_CA_BUNDLE sm "$T/src/" "$U/tree/"
expect_rc 0 "local -> S3 over HTTPS again"
summary >/dev/null # one summary line, or fail here (not inside a substitution)
expect_field copied 0 "local -> S3 over HTTPS, second pass"
AWS_CA_BUNDLE=$S3_CA_BUNDLE sm "$U/tree/" "$T/back/"
expect_rc 0 "S3 -> local over HTTPS"
expect_same_tree "$T/src" "$T/back" --no-dirs --mtime "round trip over HTTPS"

# aws (over HTTPS too) sees exactly the source files
(cd "$T/src" && find . -type f | sed 's|^\./||' | LC_ALL=C sort) >"$T/want"
awss s3 ls --recursive s3://e2e-tls/tree/ | sed -E 's/^[0-9-]+ [0-9:]+ +[0-9]+ tree\///' |
	LC_ALL=C sort >"$T/got"
diff "$T/want" "$T/got" >"$T/diff" || fail "aws s3 ls differs from the source tree: $(head -5 "$T/diff")"

# 2. --check-change over HTTPS: a normal sync still succeeds
AWS_CA_BUNDLE=$S3_CA_BUNDLE sm --check-change "$T/src/" "$U/checked/"
expect_rc 0 "--check-change over HTTPS"
n=$(find "$T/src" -type f -printf . | wc -c) # a name may hold a newline
[ "$n" -gt 80 ] || fail "the source tree holds only $n files"
expect_field copied "$n" "--check-change over HTTPS"
expect_field failed 0 "--check-change over HTTPS"
AWS_CA_BUNDLE=$S3_CA_BUNDLE sm "$U/checked/" "$T/checked/"
expect_rc 0 "S3 -> local of the --check-change copy"
expect_same_tree "$T/src" "$T/checked" --no-dirs --mtime "--check-change copy over HTTPS"

# 3. without AWS_CA_BUNDLE the self-signed certificate cannot be verified:
# nothing is written, either way
mkdir -p "$T/small"
echo small >"$T/small/f"
sm "$T/small/" "$U/noca/"
expect_rc 1 "local -> S3 without AWS_CA_BUNDLE"
grep -qF "cannot verify the TLS certificate of $HPS" "$T/sm.err" ||
	fail "without AWS_CA_BUNDLE (local -> S3): $(cat "$T/sm.err")"
n=$(keys_under noca/)
[ "$n" = 0 ] || fail "$n keys were written without AWS_CA_BUNDLE"
sm "$U/tree/" "$T/noca/"
expect_rc 1 "S3 -> local without AWS_CA_BUNDLE"
grep -qF "cannot verify the TLS certificate of $HPS" "$T/sm.err" ||
	fail "without AWS_CA_BUNDLE (S3 -> local): $(cat "$T/sm.err")"
[ -z "$(find "$T/noca" -type f 2>/dev/null)" ] || fail "files were written without AWS_CA_BUNDLE"

# 4. an AWS_CA_BUNDLE that cannot be read is refused
AWS_CA_BUNDLE=/nonexistent sm "$T/small/" "$U/badca/"
expect_rc 1 "AWS_CA_BUNDLE=/nonexistent"
grep -qF "AWS_CA_BUNDLE: cannot read '/nonexistent'" "$T/sm.err" ||
	fail "AWS_CA_BUNDLE=/nonexistent: $(cat "$T/sm.err")"
n=$(keys_under badca/)
[ "$n" = 0 ] || fail "$n keys were written with AWS_CA_BUNDLE=/nonexistent"
