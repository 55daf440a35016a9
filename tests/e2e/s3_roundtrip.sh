#!/usr/bin/env bash
# S3 against a real radosgw: local -> S3 -> local keeps contents and mtimes;
# `aws s3 ls --recursive` shows exactly the source tree; objects written by
# the aws CLI sync down; --delete-dst works on S3; a '..' key is refused when
# DST is local; wrong secret, missing bucket and dead endpoint fail clearly.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init s3_roundtrip

rgw_start
aws s3api create-bucket --bucket e2e-bucket >/dev/null
U="s3://$CRED@$HP/e2e-bucket"

# A random tree (names with spaces, UTF-8, '+', '%'), plus a multipart-sized file.
gentree gen --seed 11 --out "$T/src" --files 120 >/dev/null
find "$T/src" -type l -delete # S3 has no symlinks: keep the comparison about files
printf 'plus' >"$T/src/a+b%c.txt"
touch -d '@800000000' "$T/src/a+b%c.txt"
head -c 40000000 /dev/urandom >"$T/src/big.bin"

sm --no-https "$T/src/" "$U/tree/"
expect_rc 0 "local -> S3"
sm --no-https "$T/src/" "$U/tree/"
expect_rc 0 "local -> S3 again"
summary >/dev/null # one summary line, or fail here (not inside a substitution)
expect_field copied 0 "local -> S3, second pass"
sm --no-https "$U/tree/" "$T/back/"
expect_rc 0 "S3 -> local"
expect_same_tree "$T/src" "$T/back" --no-dirs --mtime "local -> S3 -> local"

# --update compares the original mtimes (x-amz-meta-mtime), not the upload
# times that S3 listings carry: no-change passes copy nothing both ways...
sm --no-https --update "$T/src/" "$U/tree/"
expect_rc 0 "--update local -> S3, unchanged"
summary >/dev/null
expect_field copied 0 "--update local -> S3, unchanged"
sm --no-https --update "$U/tree/" "$T/back/"
expect_rc 0 "--update S3 -> local, unchanged"
summary >/dev/null
expect_field copied 0 "--update S3 -> local, unchanged"
# ...a same-size edit that is newer than the original but older than the
# upload goes up, and an older DST file is refreshed on the way down
printf 'PLUS' >"$T/src/a+b%c.txt"
touch -d '@1000000000' "$T/src/a+b%c.txt"
sm --no-https --update "$T/src/" "$U/tree/"
expect_rc 0 "--update local -> S3, one newer"
expect_field copied 1 "--update local -> S3, one newer"
touch -d '@900000000' "$T/back/a+b%c.txt"
sm --no-https --update "$U/tree/" "$T/back/"
expect_rc 0 "--update S3 -> local, one older on DST"
expect_field copied 1 "--update S3 -> local, one older on DST"
[ "$(cat "$T/back/a+b%c.txt")" = PLUS ] || fail "the newer contents did not arrive"
expect_same_tree "$T/src" "$T/back" --no-dirs --mtime "--update round trip"

# aws sees exactly the source files
(cd "$T/src" && find . -type f | sed 's|^\./||' | LC_ALL=C sort) >"$T/want"
aws s3 ls --recursive s3://e2e-bucket/tree/ | sed -E 's/^[0-9-]+ [0-9:]+ +[0-9]+ tree\///' |
	LC_ALL=C sort >"$T/got"
diff "$T/want" "$T/got" >"$T/diff" || fail "aws s3 ls differs from the source tree: $(head -5 "$T/diff")"

# objects written by aws sync down
mkdir -p "$T/up"
echo one >"$T/up/one.txt"
echo "two words" >"$T/up/two words.txt"
aws s3 cp --recursive --quiet "$T/up/" s3://e2e-bucket/fromaws/
sm --no-https "$U/fromaws/" "$T/down/"
expect_rc 0 "aws-written objects -> local"
expect_same_tree "$T/up" "$T/down" --no-dirs "aws-written objects -> local"

# --delete-dst on S3
rm "$T/up/one.txt"
sm --no-https --delete-dst "$T/up/" "$U/fromaws/"
expect_rc 0 "--delete-dst on S3"
expect_field deleted 1 "--delete-dst on S3"
# (listed into a variable: a failing aws or a grep -q closing the pipe early
# must not read as "absent")
# shellcheck disable=SC2016 # a JMESPath literal, not shell
left=$(aws s3api list-objects-v2 --bucket e2e-bucket --prefix fromaws/ --query 'Contents[].Key' --output text) ||
	fail "--delete-dst on S3: cannot list fromaws/"
[ "$left" = "fromaws/two words.txt" ] || fail "--delete-dst on S3: fromaws/ holds '$left', expected only 'two words.txt'"

# DeleteObjects with keys XML must escape, and ones it cannot carry
mkdir -p "$T/odd" "$T/none"
for n in "a&b" "lt<gt>" "q'uo\"te" "sp ace" "ütf-8 ✓" "cr$(printf '\r')x" "tab$(printf '\t')x" \
	"ctl$(printf '\001')x" "pct%41+plus"; do
	printf '%s' "$n" >"$T/odd/$n"
done
sm --no-https "$T/odd/" "$U/odd/"
expect_rc 0 "odd names up"
expect_field copied 9 "odd names up"
sm --no-https --delete-dst "$T/none/" "$U/odd/"
expect_rc 0 "--delete-dst of odd names"
expect_field deleted 9 "--delete-dst of odd names"
left=$(aws s3api list-objects-v2 --bucket e2e-bucket --prefix odd/ --query 'length(Contents || `[]`)')
[ "$left" = 0 ] || fail "$left odd-named objects left after --delete-dst"

# a key that would escape a local DST is refused; the rest arrives
aws s3api put-object --bucket e2e-bucket --key 'esc/../../escape' --body "$T/up/two words.txt" >/dev/null
aws s3api put-object --bucket e2e-bucket --key 'esc/fine' --body "$T/up/two words.txt" >/dev/null
sm --no-https "$U/esc/" "$T/esc/"
expect_rc 1 "a '..' key"
grep -q "escape" "$T/sm.err" || fail "no message about the escaping key: $(cat "$T/sm.err")"
[ -f "$T/esc/fine" ] || fail "esc/fine was not copied"
[ ! -e "$T/escape" ] && [ ! -e "$T/../escape" ] || fail "a file escaped DST"

# errors: one clear line each, exit 1
sm --no-https "$T/up/" "s3://$AWS_ACCESS_KEY_ID:WrongSecretQ7z@$HP/e2e-bucket/x/"
expect_rc 1 "wrong secret"
grep -q "SignatureDoesNotMatch: check the secret key for $AWS_ACCESS_KEY_ID" "$T/sm.err" ||
	fail "wrong secret: $(cat "$T/sm.err")"
for f in "$T/sm.err" "$T/sm.out"; do
	rc=0
	grep -qF WrongSecretQ7z "$f" || rc=$?
	[ "$rc" -eq 1 ] || fail "wrong secret: the secret was printed on ${f##*/sm.} (grep status $rc): $(cat "$f")"
done
sm --no-https "$T/up/" "$U-missing/x/"
expect_rc 1 "missing bucket"
grep -q "NoSuchBucket" "$T/sm.err" || fail "missing bucket: $(cat "$T/sm.err")"
sm --no-https "$T/up/" "s3://a:b@127.0.0.1:1/bucket/x/"
expect_rc 1 "dead endpoint"
grep -q "cannot reach 127.0.0.1:1" "$T/sm.err" || fail "dead endpoint: $(cat "$T/sm.err")"
