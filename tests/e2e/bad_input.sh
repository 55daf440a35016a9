#!/bin/bash
# Bad input: each case gives one "syncmgr: ..." line on stderr naming the path
# or option, the right exit status (1 for run errors, 2 for usage errors), and
# leaves nothing half-written at DST (no files, no .~sm<hex>.<name> temp files).
# A secret in a URL (S3 secret key or session token, SFTP or WebDAV password,
# plain or percent-encoded) is never printed, also not with -v or --debug;
# where a message names such a URL, it shows it masked (AKID:****@...).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init bad_input
need_root

S=$T/src
mkdir -p "$S/sub/deeper" "$S/empty"
for f in a "b c" sub/d sub/deeper/e; do head -c 3000 /dev/urandom >"$S/$f"; done
snap_src=$(tree_snapshot "$S")

# expect_error RC REGEX WHAT: exit status RC; stderr has exactly one line, which
# starts with "syncmgr: " and matches REGEX (extended, literal text quoted by
# the caller); for RC 1 a summary line may follow it.
expect_error() {
	local rc=$1 re=$2 what=$3 lines
	expect_rc "$rc" "$what"
	lines=$(err_lines)
	if [ "$rc" -eq 2 ] && grep -q '^Found: ' "$T/sm.err"; then
		fail "$what: a usage error printed a summary line"
	fi
	[ -n "$lines" ] || fail "$what: no error message on stderr"
	[ "$(printf '%s\n' "$lines" | wc -l)" -eq 1 ] ||
		fail "$what: expected one error line on stderr, got:
$(printf '%s\n' "$lines" | head -5 | sed 's/^/    /')"
	case $lines in "syncmgr: "*) ;; *) fail "$what: error line does not start with 'syncmgr: ': $lines" ;; esac
	printf '%s\n' "$lines" | grep -qE -- "$re" ||
		fail "$what: error line does not match /$re/: $lines"
	[ ! -s "$T/sm.out" ] || fail "$what: printed on stdout: $(head -c 200 "$T/sm.out")"
}

# ere STRING: STRING quoted for grep -E
ere() { printf '%s' "$1" | sed 's/[][\.*^$+?(){}|/]/\\&/g'; }

expect_absent() {
	if [ -e "$1" ] || [ -L "$1" ]; then fail "$2: '$1' was created"; fi
}

src_unchanged() {
	[ "$(tree_snapshot "$S")" = "$snap_src" ] || fail "$1: SRC was modified"
}

# expect_hidden WHAT MASKED SECRET...: no SECRET is on stdout or stderr of the
# last run; MASKED (the URL as syncmgr shows it, secrets as ****), unless
# empty, is on stderr.  Only grep's "not found" passes: an error of grep fails.
expect_hidden() {
	local what=$1 masked=$2 secret f rc
	shift 2
	for secret in "$@"; do
		for f in "$T/sm.out" "$T/sm.err"; do
			rc=0
			grep -qF -- "$secret" "$f" || rc=$?
			[ "$rc" -eq 1 ] || fail "$what: the secret '$secret' was printed on ${f##*/sm.} (grep status $rc):
$(grep -F -- "$secret" "$f" | head -3 | sed 's/^/    /')"
		done
	done
	if [ -n "$masked" ]; then
		grep -qF -- "$masked" "$T/sm.err" ||
			fail "$what: the URL is not shown masked as '$masked': $(head -3 "$T/sm.err")"
	fi
}

# --- missing SRC: exit 1, names the path, DST not created / left untouched
sm "$T/nope/" "$T/d1/"
expect_error 1 "$(ere "$T/nope")" "missing SRC dir"
expect_absent "$T/d1" "missing SRC dir"
mkdir "$T/d2"
sm "$T/nope/" "$T/d2/"
expect_error 1 "$(ere "$T/nope")" "missing SRC into an existing DST"
[ -z "$(ls -A "$T/d2")" ] || fail "missing SRC: DST got entries: $(ls -A "$T/d2")"
sm "$T/nope-file" "$T/d3"
expect_error 1 "$(ere "$T/nope-file")" "missing single-file SRC"
expect_absent "$T/d3" "missing single-file SRC"
sm "$S/a/" "$T/d4/"
expect_error 1 "$(ere "$S/a")" "SRC 'a/' is a file"
expect_absent "$T/d4" "SRC 'a/' is a file"

# --- mismatched trailing '/': exit 2, both ways
sm "$S/" "$T/d5"
expect_error 2 "$(ere "$S/")" "SRC with '/', DST without"
expect_absent "$T/d5" "mismatched '/'"
sm "$S" "$T/d5/"
expect_error 2 "$(ere "$S")" "SRC without '/', DST with"
expect_absent "$T/d5" "mismatched '/'"

# --- DST inside SRC: exit 2, "DST '...' is inside SRC '...'"
for dst in "$S/" "$S/sub/" "$S/new/" "$S/sub/../sub/deeper/"; do
	sm "$S/" "$dst"
	expect_error 2 "DST '$(ere "$dst")' is inside SRC '$(ere "$S/")'" "DST '$dst' inside SRC"
	src_unchanged "DST '$dst' inside SRC"
	expect_no_temp_files "$S" "DST '$dst' inside SRC"
done
ln -s "$S" "$T/srclink"
sm "$S/" "$T/srclink/new/"
expect_error 2 "is inside SRC" "DST inside SRC through a symlink"
expect_absent "$S/new" "DST inside SRC through a symlink"
src_unchanged "DST inside SRC through a symlink"

# --- read-only DST: exit 1, names the path, nothing written
mkdir "$T/ro"
mount -t tmpfs -o ro,size=1m tmpfs "$T/ro" || fail "cannot mount a read-only tmpfs (tests need root)"
on_exit "umount '$T/ro' || umount -l '$T/ro'"
sm "$S/" "$T/ro/"
expect_error 1 "$(ere "$T/ro/")" "read-only tmpfs DST"
sm --dirs "$S/" "$T/ro/sub/"
expect_error 1 "$(ere "$T/ro/sub/")" "missing dir under a read-only DST"
[ -z "$(ls -A "$T/ro")" ] || fail "read-only DST got entries"
# a read-only bind mount of a DST that already has some of the files
mkdir "$T/rodst" "$T/robind"
cp -p "$S/a" "$T/rodst/a"
mkdir "$T/rodst/sub"
mount --bind "$T/rodst" "$T/robind" || fail "cannot bind-mount"
on_exit "umount '$T/robind' || umount -l '$T/robind'"
mount -o remount,bind,ro "$T/robind" || fail "cannot remount the bind mount read-only"
snap_ro=$(tree_snapshot "$T/rodst")
sm --dirs --delete-dst "$S/" "$T/robind/"
expect_error 1 "$(ere "$T/robind/")" "read-only bind-mounted DST"
[ "$(tree_snapshot "$T/rodst")" = "$snap_ro" ] || fail "read-only bind-mounted DST changed"

# --- unknown options and bad values: exit 2, names the option
for opt in --frobnicate -Z --delete-everything; do
	sm "$opt" "$S/" "$T/d6/"
	expect_error 2 "$(ere "$opt")" "unknown option $opt"
	sm "$S/" "$T/d6/" "$opt"
	expect_error 2 "$(ere "$opt")" "unknown option $opt after SRC DST"
done
for args in "--threads abc" "--threads 0" "-p -1" "--limit x" "--max-failure -5" "--list-threads 0"; do
	re=$(ere "${args%% *}")
	[ "${args%% *}" != -p ] || re="(-p|--threads)"
	# shellcheck disable=SC2086
	sm $args "$S/" "$T/d6/"
	expect_error 2 "$re" "bad value '$args'"
done
sm "$S/" "$T/d6/" --threads
expect_error 2 -- "--threads" "--threads without a value"
sm "$S/" "$T/d6/" "$T/d7/"
expect_error 2 "$(ere "$T/d7/")" "a third path"
expect_absent "$T/d6" "usage errors"
expect_absent "$T/d7" "usage errors"

# --- options and URLs of later features: exit 2, "not supported yet"
for args in "--worker h1,h2" "--manager-addr 127.0.0.1:1" \
	"--watch" "--bwlimit 10"; do
	opt=${args%% *}
	# shellcheck disable=SC2086
	sm $args "$S/" "$T/d8/"
	expect_error 2 "$(ere "$opt"): not supported yet" "later-feature option '$args'"
done
for scheme in dav davs; do
	url="$scheme://davuser:DAVSECRET${scheme}7@host/path/"
	sm "$url" "$T/d8/"
	expect_error 2 "not supported yet" "URL '$url' as SRC"
	expect_hidden "URL '$url' as SRC" "" "DAVSECRET${scheme}7"
	sm "$S/" "$url"
	expect_error 2 "not supported yet" "URL '$url' as DST"
	expect_hidden "URL '$url' as DST" "" "DAVSECRET${scheme}7"
done
expect_absent "$T/d8" "later-feature options"

# --- secrets in URLs are never printed (SPEC.md: logs show s3://AKID:****@...)
# A usage error that names the URL: it shows the masked form.  (The S3
# secret '+' is percent-encoded: neither form may appear; nor a session token.)
for url in "s3://AKIDMASK:S3SLASHSECRET@127.0.0.1:1/bucket/p|s3://AKIDMASK:****@127.0.0.1:1/bucket/p|S3SLASHSECRET" \
	"s3://AKIDMASK:S3%2BPLUSSECRET@127.0.0.1:1/bucket/p|s3://AKIDMASK:****@127.0.0.1:1/bucket/p|S3%2BPLUSSECRET|S3+PLUSSECRET" \
	"s3://AKIDMASK:S3SK:S3TOKENSECRET@127.0.0.1:1/bucket/p|s3://AKIDMASK:****@127.0.0.1:1/bucket/p|S3TOKENSECRET" \
	"sftpuser:SFTPSLASHSECRET@sm-nowhere:/x|sftpuser:****@sm-nowhere:/x|SFTPSLASHSECRET" \
	"sftp://sftpuser:SFTP%40SLASH2@127.0.0.1:1/x|sftp://sftpuser:****@127.0.0.1:1/x|SFTP%40SLASH2|SFTP@SLASH2"; do
	IFS='|' read -r -a parts <<<"$url"
	sm "$S/" "${parts[0]}"
	expect_error 2 "must both end in '/'" "mismatched '/' with DST '${parts[0]}'"
	expect_hidden "mismatched '/' with DST '${parts[0]}'" "${parts[1]}" "${parts[@]:2}"
	sm "${parts[0]}/" "$T/d9"
	expect_error 2 "must both end in '/'" "mismatched '/' with SRC '${parts[0]}/'"
	expect_hidden "mismatched '/' with SRC '${parts[0]}/'" "${parts[1]}/" "${parts[@]:2}"
done
expect_absent "$T/d9" "mismatched '/' with remote URLs"

# An S3 endpoint nobody listens on: one line naming host:port and the masked
# URL, exit 1; also as SRC and in the -v and --debug logs.
U3="s3://AKIDTEST:TOPSECRETVALUE@127.0.0.1:1/bucket/p/"
M3="s3://AKIDTEST:****@127.0.0.1:1/bucket/p/"
sm --no-https "$S/" "$U3"
expect_error 1 "cannot reach 127\.0\.0\.1:1" "dead S3 endpoint"
expect_hidden "dead S3 endpoint" "$M3" TOPSECRETVALUE
sm --no-https "$U3" "$T/d9/"
expect_error 1 "cannot reach 127\.0\.0\.1:1" "dead S3 endpoint as SRC"
expect_hidden "dead S3 endpoint as SRC" "$M3" TOPSECRETVALUE
expect_absent "$T/d9" "dead S3 endpoint as SRC"
for v in -v --debug; do
	sm "$v" --no-https "$S/" "$U3"
	expect_rc 1 "dead S3 endpoint, $v"
	expect_hidden "dead S3 endpoint, $v" "$M3" TOPSECRETVALUE
done

# SFTP with a password in the URL, the port closed (127.0.0.1:1, and a
# ~/.ssh/config alias for it): exit 1 naming host:port, the password never
# printed, also in the --debug log
mkdir -p "$T/home/.ssh"
printf 'Host sm-nowhere\n    HostName 127.0.0.1\n    Port 1\n' >"$T/home/.ssh/config"
for url in "sftp://sftpuser:SFTPDEADSECRET@127.0.0.1:1/x/" "sftpuser:SFTPDEADSECRET@sm-nowhere:/x/"; do
	HOME=$T/home sm "$S/" "$url"
	expect_error 1 "cannot connect to 127\.0\.0\.1:1" "closed SFTP port, DST '$url'"
	expect_hidden "closed SFTP port, DST '$url'" "" SFTPDEADSECRET
	HOME=$T/home sm --debug "$url" "$T/d9/"
	expect_rc 1 "closed SFTP port, SRC '$url', --debug"
	expect_hidden "closed SFTP port, SRC '$url', --debug" "" SFTPDEADSECRET
	expect_absent "$T/d9" "closed SFTP port, SRC '$url'"
done

# --- unreadable files (as nobody): those keys fail, the rest is copied
U=$T/u
mkdir -p "$U/src/sub" "$U/dst"
chmod 755 "$T" "$U" "$U/src" "$U/src/sub"
for f in ok1 "ok 2" sub/ok3 bad1 sub/bad2 "bad 3"; do head -c 1000 /dev/urandom >"$U/src/$f"; done
find "$U/src" -type f -exec chmod 644 {} +
chmod 755 "$U/src/sub"
chmod 000 "$U/src/bad1" "$U/src/sub/bad2" "$U/src/bad 3"
chown nobody "$U/dst"
SM_AS=nobody sm "$U/src/" "$U/dst/"
expect_rc 1 "unreadable files"
expect_field failed 3 "unreadable files"
expect_field copied 3 "unreadable files"
for k in bad1 sub/bad2 "bad 3"; do
	grep -q "^syncmgr: .*$(ere "$k")" "$T/sm.err" || fail "unreadable files: no error line naming '$k'"
	expect_absent "$U/dst/$k" "unreadable key '$k'"
done
for k in ok1 "ok 2" sub/ok3; do
	cmp -s "$U/src/$k" "$U/dst/$k" || fail "unreadable files: readable '$k' not copied correctly"
done
expect_no_temp_files "$U/dst" "unreadable files"

# an unreadable SRC directory is a failed listing: exit 1 and no deletes at all
mkdir "$U/src/locked"
head -c 10 /dev/urandom >"$U/src/locked/f"
chmod 000 "$U/src/locked"
rm -f "$U/src/bad1" "$U/src/sub/bad2" "$U/src/bad 3"
head -c 10 /dev/urandom >"$U/dst/dst-only"
chown nobody "$U/dst/dst-only"
SM_AS=nobody sm --delete-dst "$U/src/" "$U/dst/"
expect_rc 1 "unreadable SRC dir with --delete-dst"
grep -q "^syncmgr: .*locked" "$T/sm.err" || fail "unreadable SRC dir: no error line naming 'locked'"
[ -e "$U/dst/dst-only" ] || fail "unreadable SRC dir: --delete-dst deleted 'dst-only' after a failed listing"

# a DST directory that nobody cannot write: keys fail, exit 1, no temp files
mkdir -p "$U/dst2/sub"
chown -R nobody "$U/dst2"
chmod 555 "$U/dst2/sub"
chmod 755 "$U/src/locked"
SM_AS=nobody sm "$U/src/" "$U/dst2/"
expect_rc 1 "unwritable DST subdir"
summary >/dev/null # one summary line, or fail here (not inside a substitution)
[ "$(field failed)" -ge 1 ] || fail "unwritable DST subdir: no failed keys"
expect_absent "$U/dst2/sub/ok3" "unwritable DST subdir"
expect_no_temp_files "$U/dst2" "unwritable DST subdir"
cmp -s "$U/src/ok1" "$U/dst2/ok1" || fail "unwritable DST subdir: 'ok1' elsewhere not copied"

src_unchanged "end"
