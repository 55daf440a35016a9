#!/usr/bin/env bash
# Issue 11, the SFTP backend (common/store/sftp.c) against a real OpenSSH
# server on loopback (tests/servers/sshd.sh; the server writes this machine's
# files, so the test sees the remote tree directly):
#  A. (item 4) symlinks on an SFTP DST where SRC has directories
#     (sub -> /abs/outside, rel -> ../../outside, deep/a -> outside/odir)
#     are replaced by directories, never written through, with plain
#     options, --dirs, --dirs --perms (no SETSTAT through a link), --inplace,
#     --links: exit 0, the tree arrives, nothing outside DST changes.
#  B. (items 4, 8) --inplace where DST holds a symlink to a file outside, a
#     FIFO, a character device: no hang, nothing written into or through
#     them; each key fails with an error line naming it ("not a regular
#     file"); the rest is copied.
#  C. (item 13a) --inplace into a server that refuses WRITE: the failed
#     transfer leaves DST's old bytes as they were (no truncation at OPEN);
#     on a server that takes them, a file that shrinks is cut after its new
#     last byte and one that grows is whole, both in place.
#  D. (item 9) a broken symlink on an SFTP SRC (followed, no --links) is an
#     error as on a local SRC: the same summary and exit status as the file
#     backend gives for the same tree; --delete-dst deletes nothing.
#  E. (item 5) a directory the SFTP server may not open (its SFTP process
#     runs as nobody, the directory is root's 0700), on SRC and on DST: the
#     listing reports it once and goes on (or ends); the run ends; no delete.
#  F. (item 2) --check-change on an SFTP SRC: a file rewritten in place
#     (same size, new mtime) during its copy fails as changed and is not
#     committed; a file appended to after it was listed and before it was
#     read is copied as it was when read, under its mtime of then (as a
#     local SRC's is).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init safety_sftp
need_root

SSHD_PORT=${SSHD_PORT:-2246} sshd_start
export HOME=$SSH_TEST_HOME SSH_AUTH_SOCK=
DENY_PORT=${SSHD_DENY_PORT:-$((SSHD_PORT + 1))}
NOBODY_PORT=${SSHD_NOBODY_PORT:-$((SSHD_PORT + 2))}
R=$T/remote
O=$T/outside
mkdir -p "$R" "$O/odir"
echo keep >"$O/keep"
echo "outside, keep" >"$O/target.txt"
chmod 0755 "$O" "$O/odir"
chmod 0640 "$O/target.txt"

# error_line PATH-END WORDS: an error line (not the summary, not progress)
# holds "PATH-END'" and WORDS
error_line() {
	grep -v -e '^Found: ' -e 'progress:' "$T/sm.err" | grep -F -- "$1'" | grep -qiF -- "$2"
}
# the count of error lines (stderr lines that are not summary or progress)
n_errors() { grep -v -e '^Found: ' -e 'progress:' -e '^Elapsed' "$T/sm.err" | grep -c 'error' || true; }
same_outside() { # WHAT
	[ "$OUT_BEFORE" = "$(tree_snapshot "$O")" ] ||
		defer_fail "$1: something outside DST changed: $(diff <(echo "$OUT_BEFORE") <(tree_snapshot "$O") | grep '^[<>]' | head -4 | tr '\n' '|')"
}

# ------------------------------------------- A. symlinked directories on DST
S=$T/a/src
mkdir -p "$S/sub" "$S/rel" "$S/deep/a/b"
echo evil >"$S/sub/evil.txt"
echo evil2 >"$S/rel/evil2.txt"
echo deep >"$S/deep/a/b/file"
chmod 0750 "$S/sub" "$S/rel" "$S/deep/a" "$S/deep/a/b"
OUT_BEFORE=$(tree_snapshot "$O")
for opts in "" "--dirs" "--dirs --perms" "--inplace" "--links --dirs --perms"; do
	D=$R/a
	rm -rf "$D"
	mkdir -p "$D/deep"
	ln -s "$O" "$D/sub"
	ln -s ../../outside "$D/rel"
	ln -s "$O/odir" "$D/deep/a"
	# shellcheck disable=SC2086
	smt 60 $opts "$S/" "sm-test:$D/"
	what="symlinked DST dirs, options '$opts'"
	[ "$SM_RC" -eq 0 ] || defer_fail "$what: exit $SM_RC, want 0"
	same_outside "$what"
	for dir in sub rel deep/a deep/a/b; do
		[ -d "$D/$dir" ] && [ ! -L "$D/$dir" ] || defer_fail "$what: DST '$dir' is not a real directory"
	done
	for f in sub/evil.txt rel/evil2.txt deep/a/b/file; do
		[ ! -L "$D/${f%%/*}" ] && cmp -s "$S/$f" "$D/$f" || defer_fail "$what: '$f' did not arrive inside DST"
	done
	expect_no_temp_files "$D" "$what"
	OUT_BEFORE=$(tree_snapshot "$O") # go on from what is there (a failure was reported)
done

# ----------------------------------- B. --inplace onto non-regular DST files
S=$T/b/src D=$R/b
mkdir -p "$S" "$D"
for f in fifo.txt dev.txt lnk.txt ok.txt; do echo "new contents of $f" >"$S/$f"; done
mkfifo "$D/fifo.txt"
mknod "$D/dev.txt" c 1 3 # like /dev/null: writes vanish
ln -s "$O/target.txt" "$D/lnk.txt"
dev_before=$(stat -c '%F %t:%T' "$D/dev.txt")
OUT_BEFORE=$(tree_snapshot "$O")
smt 20 --inplace "$S/" "sm-test:$D/"
if [ "$SM_RC" -ge 124 ]; then
	defer_fail "--inplace with a FIFO on the SFTP DST: syncmgr hung (killed after 20 s, exit $SM_RC)"
	# the server's SFTP process is blocked opening the FIFO: let it go
	timeout 2 cat "$D/fifo.txt" >/dev/null 2>&1 || true
else
	[ "$SM_RC" -eq 1 ] || defer_fail "--inplace onto non-regular DST files: exit $SM_RC, want 1"
	[ "$(field failed)" = 3 ] ||
		defer_fail "--inplace onto non-regular DST files: failed $(field failed), want 3 (fifo.txt, dev.txt, lnk.txt)"
	for k in fifo.txt dev.txt lnk.txt; do
		error_line "$k" "not a regular file" || defer_fail "--inplace: no error line naming '$k' as not a regular file"
	done
	cmp -s "$S/ok.txt" "$D/ok.txt" || defer_fail "--inplace: ok.txt was not copied"
fi
[ -p "$D/fifo.txt" ] || defer_fail "--inplace: DST fifo.txt is no longer a FIFO ($(stat -c %F "$D/fifo.txt" 2>&1))"
[ "$(stat -c '%F %t:%T' "$D/dev.txt")" = "$dev_before" ] || defer_fail "--inplace: DST dev.txt changed: $(stat -c '%F %t:%T' "$D/dev.txt")"
[ -L "$D/lnk.txt" ] && [ "$(readlink "$D/lnk.txt")" = "$O/target.txt" ] || defer_fail "--inplace: DST lnk.txt is no longer that symlink"
same_outside "--inplace onto non-regular DST files"
expect_no_temp_files "$D" "--inplace onto non-regular DST files"

# ------------------------------- C. --inplace, a failed transfer keeps DST
"$E2E_DIR/../servers/sshd.sh" stop "$T/sshd-deny" >/dev/null 2>&1 || true
on_exit "'$E2E_DIR/../servers/sshd.sh' stop '$T/sshd-deny' >/dev/null 2>&1"
SSHD_PORT=$DENY_PORT SSHD_SFTP_DENY=write "$E2E_DIR/../servers/sshd.sh" start "$T/sshd-deny" >/dev/null 2>"$T/sshd-deny.log" ||
	fail "the sshd refusing WRITE did not start: $(tail -5 "$T/sshd-deny.log")"
S=$T/c/src D=$R/c
mkdir -p "$S" "$D"
head -c 1000 /dev/urandom >"$D/small.bin"
head -c $((3 << 20)) /dev/urandom >"$D/big.bin"
head -c 1500 /dev/urandom >"$S/small.bin"
head -c $((4 << 20)) /dev/urandom >"$S/big.bin"
sums_before=$(cd "$D" && sha256sum small.bin big.bin)
HOME=$T/sshd-deny/home smt 60 --inplace "$S/" "sm-test:$D/"
[ "$SM_RC" -eq 1 ] || defer_fail "--inplace, WRITE refused: exit $SM_RC, want 1"
[ "$(field failed)" = 2 ] || defer_fail "--inplace, WRITE refused: failed $(field failed), want 2"
sums_after=$(cd "$D" && sha256sum small.bin big.bin)
[ "$sums_before" = "$sums_after" ] ||
	defer_fail "--inplace, WRITE refused: the failed transfer changed DST ($(stat -c '%n %s bytes' "$D/small.bin" "$D/big.bin" | tr '\n' ' '))"
"$E2E_DIR/../servers/sshd.sh" stop "$T/sshd-deny" >/dev/null 2>&1 || true
# and on a server that takes the WRITEs, in place means in place: a file that
# shrinks is cut after its new last byte, one that grows is whole (same inode)
head -c 700 /dev/urandom >"$S/small.bin"
head -c $((5 << 20)) /dev/urandom >"$S/big.bin"
ino_before=$(stat -c %i "$D/small.bin" "$D/big.bin")
smt 60 --inplace "$S/" "sm-test:$D/"
[ "$SM_RC" -eq 0 ] || defer_fail "--inplace, shrink and grow: exit $SM_RC, want 0"
for f in small.bin big.bin; do
	cmp -s "$S/$f" "$D/$f" || defer_fail "--inplace, shrink and grow: '$f' differs ($(stat -c %s "$D/$f") bytes, want $(stat -c %s "$S/$f"))"
done
[ "$(stat -c %i "$D/small.bin" "$D/big.bin")" = "$ino_before" ] || defer_fail "--inplace, shrink and grow: not written in place (new inodes)"

# ------------------------------------- D. a broken symlink on an SFTP SRC
S=$R/d/src
mkdir -p "$S"
echo a >"$S/a.txt"
echo z >"$S/z.txt"
ln -s nowhere "$S/dangling"
for side in local sftp; do
	mkdir -p "$T/d/$side"
	echo "earlier copy" >"$T/d/$side/dangling"
	echo "only on DST" >"$T/d/$side/extra.txt"
done
smt 60 --delete-dst "$S/" "$T/d/local/"
local_rc=$SM_RC local_sum=$(summary)
smt 60 --delete-dst "sm-test:$S/" "$T/d/sftp/"
what="broken symlink on the SFTP SRC with --delete-dst"
[ "$SM_RC" -eq 1 ] || defer_fail "$what: exit $SM_RC, want 1"
[ "$local_rc" -eq 1 ] || defer_fail "$what: the local SRC's run exited $local_rc (the reference), want 1"
[ "$(summary)" = "$local_sum" ] || defer_fail "$what: summary '$(summary)', the local SRC's run: '$local_sum'"
error_line dangling "broken symlink" || defer_fail "$what: no error line naming 'dangling' as a broken symlink"
[ "$(cat "$T/d/sftp/dangling" 2>/dev/null)" = "earlier copy" ] || defer_fail "$what: DST's earlier copy of 'dangling' was deleted or changed"
[ -e "$T/d/sftp/extra.txt" ] || defer_fail "$what: DST-only 'extra.txt' was deleted after a failed SRC listing"
cmp -s "$S/a.txt" "$T/d/sftp/a.txt" && cmp -s "$S/z.txt" "$T/d/sftp/z.txt" || defer_fail "$what: a.txt/z.txt not copied"

# --------------------- E. a directory the SFTP server may not open (nobody)
"$E2E_DIR/../servers/sshd.sh" stop "$T/sshd-nobody" >/dev/null 2>&1 || true
on_exit "'$E2E_DIR/../servers/sshd.sh' stop '$T/sshd-nobody' >/dev/null 2>&1"
SSHD_PORT=$NOBODY_PORT SSHD_SFTP_AS=nobody "$E2E_DIR/../servers/sshd.sh" start "$T/sshd-nobody" >/dev/null 2>"$T/sshd-nobody.log" ||
	fail "the sshd with its SFTP server as nobody did not start: $(tail -5 "$T/sshd-nobody.log")"
chmod 0755 "$T" "$R"
S=$R/e/src
mkdir -p "$S/a" "$S/locked" "$S/z"
echo 1 >"$S/a/1.txt"
echo secret >"$S/locked/secret.txt"
echo 2 >"$S/z/2.txt"
echo top >"$S/top.txt"
chmod 0700 "$S/locked"
chmod -R a+rX "$S/a" "$S/z" "$S/top.txt"
for extra in "" "--list-threads 3"; do
	D=$T/e/dst
	rm -rf "$D"
	mkdir -p "$D"
	echo "only on DST" >"$D/extra.txt"
	what="an SFTP SRC directory that cannot be opened${extra:+ ($extra)}"
	# shellcheck disable=SC2086
	HOME=$T/sshd-nobody/home smt 30 --delete-dst $extra "sm-test:$S/" "$D/"
	if [ "$SM_RC" -ge 124 ]; then
		defer_fail "$what: the run did not end (killed after 30 s)"
		continue
	fi
	[ "$SM_RC" -eq 1 ] || defer_fail "$what: exit $SM_RC, want 1"
	[ "$(field failed)" = 1 ] || defer_fail "$what: failed $(field failed), want 1"
	error_line locked "permission denied" || defer_fail "$what: no error line naming 'locked' (permission denied)"
	n=$(grep -c "locked'" "$T/sm.err" || true)
	[ "$n" -eq 1 ] || defer_fail "$what: $n lines about 'locked', want exactly 1"
	for f in a/1.txt z/2.txt top.txt; do
		cmp -s "$S/$f" "$D/$f" || defer_fail "$what: '$f' (listed around the failing directory) was not copied"
	done
	[ ! -e "$D/locked/secret.txt" ] || defer_fail "$what: 'locked/secret.txt' arrived"
	[ -e "$D/extra.txt" ] || defer_fail "$what: DST-only 'extra.txt' deleted after a failed listing"
done
# the same directory on an SFTP DST
S=$T/e/lsrc D=$R/e/dst
mkdir -p "$S/locked" "$D/locked"
echo a >"$S/a.txt"
echo x >"$S/locked/x.txt"
echo z >"$S/z.txt"
chown -R nobody:nogroup "$D"
chown root:root "$D/locked"
chmod 0700 "$D/locked"
HOME=$T/sshd-nobody/home smt 30 "$S/" "sm-test:$D/"
what="an SFTP DST directory that cannot be opened"
if [ "$SM_RC" -ge 124 ]; then
	defer_fail "$what: the run did not end (killed after 30 s)"
else
	[ "$SM_RC" -eq 1 ] || defer_fail "$what: exit $SM_RC, want 1"
	error_line locked "permission denied" || defer_fail "$what: no error line naming 'locked' (permission denied)"
	[ "$(field failed)" -ge 1 ] || defer_fail "$what: nothing counted failed"
fi
"$E2E_DIR/../servers/sshd.sh" stop "$T/sshd-nobody" >/dev/null 2>&1 || true

# ------------------------------------- F. --check-change on an SFTP SRC
# sessions: this server's per-connection processes; their children run SFTP
sessions() { pgrep -P "$SSHD_PID" -f "^sshd: $SSH_TEST_USER@notty" || true; }
S=$R/f/src D=$T/f/dst
mkdir -p "$S"
head -c $((128 << 20)) /dev/zero | tr '\0' 'a' >"$S/a.bin"
head -c 1000 /dev/zero | tr '\0' 'b' >"$S/b.txt"
touch -d @1600000000 "$S/a.bin" "$S/b.txt"
STOPPED=()
on_exit 'for p in "${STOPPED[@]}"; do kill -CONT "$p" 2>/dev/null || true; done'
changed=""
for attempt in 1 2 3 4 5; do
	rm -rf "$D"
	mkdir -p "$D"
	cp -p "$S/a.bin" "$T/f/a.orig"
	cp -p "$S/b.txt" "$T/f/b.orig"
	SM_CMD="syncmgr --check-change --threads 1 sm-test:$S/ $D/"
	timeout -k 5 120 "$SYNCMGR" --check-change --threads 1 "sm-test:$S/" "$D/" >"$T/sm.out" 2>"$T/sm.err" </dev/null &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		if [ -n "$(find "$D" -name '.~sm*.a.bin' 2>/dev/null)" ]; then
			STOPPED=()
			for s in $(sessions); do
				for c in $(pgrep -P "$s" || true); do kill -STOP "$c" 2>/dev/null && STOPPED+=("$c"); done
			done
			# the copy of a.bin is under way (its temp file is there) and
			# cannot go on: change both files now
			if [ -n "$(find "$D" -name '.~sm*.a.bin' 2>/dev/null)" ] && [ "${#STOPPED[@]}" -gt 0 ]; then
				printf 'CHANGED' | dd of="$S/a.bin" bs=1 seek=$(((128 << 20) - 100)) conv=notrunc status=none
				touch -d @1600000100 "$S/a.bin"
				echo "appended after the listing" >>"$S/b.txt"
				changed=1
			fi
			for c in "${STOPPED[@]}"; do kill -CONT "$c" 2>/dev/null || true; done
			STOPPED=()
			break
		fi
		sleep 0.005
	done
	set +e
	wait "$pid"
	SM_RC=$?
	set -e
	[ -z "$changed" ] || break
	note "--check-change on an SFTP SRC: the copy ended before the files could be changed (attempt $attempt); again"
	cp -p "$T/f/a.orig" "$S/a.bin"
	cp -p "$T/f/b.orig" "$S/b.txt"
done
what="--check-change on an SFTP SRC"
if [ -z "$changed" ]; then
	defer_fail "$what: could not change the files during the copy in 5 attempts"
else
	[ "$SM_RC" -eq 1 ] || defer_fail "$what: exit $SM_RC, want 1 (both files changed)"
	[ "$(field failed)" = 1 ] || defer_fail "$what: failed $(field failed), want 1 (a.bin, rewritten during its copy)"
	error_line a.bin "changed" || defer_fail "$what: no error line saying 'a.bin' changed"
	[ ! -e "$D/a.bin" ] || defer_fail "$what: 'a.bin' changed but was committed at DST ($(stat -c '%s bytes' "$D/a.bin"))"
	# changed before it was opened: copied as it was then, with that mtime
	cmp -s "$S/b.txt" "$D/b.txt" || defer_fail "$what: DST 'b.txt' is not SRC's as it was read"
	[ "$(stat -c %Y "$S/b.txt")" = "$(stat -c %Y "$D/b.txt" 2>/dev/null)" ] ||
		defer_fail "$what: DST 'b.txt' does not have the mtime of the version it holds"
	expect_no_temp_files "$D" "$what"
fi

