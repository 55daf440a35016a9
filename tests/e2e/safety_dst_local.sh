#!/usr/bin/env bash
# Issue 11, local DST (common/store/file.c):
#  1. --inplace where DST holds a FIFO, a character device or a symlink (to a
#     file outside DST) and SRC a regular file: the run does not hang (a FIFO
#     opened for writing blocks until a reader comes), writes into none of
#     them, and fails each such key with one error line naming it ("not a
#     regular file"); the other keys are copied; nothing outside DST changes.
#  2. chmod never follows a symlink: --perms on existing and new DST
#     directories and files (setattr and mkdir) makes no chmod system call
#     that resolves a name relative to a directory the way a symlink is
#     followed (fchmodat(dirfd, "name", mode) without AT_SYMLINK_NOFOLLOW): a
#     directory replaced by a symlink between the listing and the chmod would
#     have the link's target chmod'ed. Checked from strace, since the race
#     itself cannot be staged reliably: every chmod is an fchmod(fd), an
#     fchmodat2(..., AT_SYMLINK_NOFOLLOW), or a chmod of /proc/self/fd/N (an
#     O_PATH|O_NOFOLLOW descriptor: glibc's AT_SYMLINK_NOFOLLOW).
#  3. a SRC directory that cannot be opened (nobody, a 0700 directory) is
#     one failure, one error line, with --list-threads 1 and 3; the rest is
#     copied and --delete-dst deletes nothing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init safety_dst_local
need_root

# error_names KEY WORDS: an error line on stderr names 'KEY' and holds WORDS
error_names() {
	grep -F -- "'$1'" "$T/sm.err" | grep -v '^Found: ' | grep -qiF -- "$2"
}

O=$T/outside
mkdir -p "$O"
echo "outside, keep" >"$O/target.txt"
chmod 0640 "$O/target.txt"

# ------------------------------------------------- 1. --inplace, non-regular
S=$T/ip/src D=$T/ip/dst
mkdir -p "$S" "$D"
for f in fifo.txt dev.txt lnk.txt ok.txt; do echo "new contents of $f" >"$S/$f"; done
mkfifo "$D/fifo.txt"
mknod "$D/dev.txt" c 1 3 # like /dev/null: writes vanish
ln -s "$O/target.txt" "$D/lnk.txt"
before=$(tree_snapshot "$O")
dev_before=$(stat -c '%F %t:%T' "$D/dev.txt")
smt 20 --inplace "$S/" "$D/"
if [ "$SM_RC" -ge 124 ]; then
	defer_fail "--inplace with a FIFO on DST: syncmgr hung (killed after 20 s, exit $SM_RC)"
else
	[ "$SM_RC" -eq 1 ] || defer_fail "--inplace, non-regular DST files: exit $SM_RC, want 1"
	[ "$(field failed)" = 3 ] || defer_fail "--inplace, non-regular DST files: failed $(field failed), want 3 (fifo.txt, dev.txt, lnk.txt)"
	for k in fifo.txt dev.txt lnk.txt; do
		error_names "$k" "not a regular file" ||
			defer_fail "--inplace: no error line naming '$k' as not a regular file"
	done
fi
[ -p "$D/fifo.txt" ] || defer_fail "--inplace: DST fifo.txt is no longer a FIFO ($(stat -c %F "$D/fifo.txt" 2>&1))"
[ "$(stat -c '%F %t:%T' "$D/dev.txt")" = "$dev_before" ] || defer_fail "--inplace: DST dev.txt changed: $(stat -c '%F %t:%T' "$D/dev.txt")"
[ -L "$D/lnk.txt" ] && [ "$(readlink "$D/lnk.txt")" = "$O/target.txt" ] || defer_fail "--inplace: DST lnk.txt is no longer the symlink"
cmp -s "$S/ok.txt" "$D/ok.txt" || defer_fail "--inplace: ok.txt was not copied"
[ "$before" = "$(tree_snapshot "$O")" ] || defer_fail "--inplace: something outside DST changed: $(diff <(echo "$before") <(tree_snapshot "$O") | head -5)"
expect_no_temp_files "$D" "--inplace, non-regular DST files"

# --------------------------------------------- 2. chmod never follows a link
S=$T/ch/src D=$T/ch/dst
mkdir -p "$S/old" "$S/new" "$D/old"
echo a >"$S/old/f"
echo b >"$S/new/g"
cp -p "$S/old/f" "$D/old/f"
chmod 0750 "$S/old" "$S/new"
chmod 0600 "$S/old/f"
chmod 0755 "$D/old"
chmod 0644 "$D/old/f"
: >"$T/strace.out"
SM_CMD="strace -f syncmgr --dirs --perms $S/ $D/"
set +e
# (LeakSanitizer cannot run under ptrace: an ASan build's leak check is off here)
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
	timeout -k 5 60 strace -f -qq -o "$T/strace.out" -e trace=/chmod \
	"$SYNCMGR" --dirs --perms "$S/" "$D/" >"$T/sm.out" 2>"$T/sm.err" </dev/null
SM_RC=$?
set -e
[ "$SM_RC" -eq 0 ] || defer_fail "--dirs --perms under strace: exit $SM_RC"
expect_same_tree --perms "$S" "$D" "--dirs --perms under strace"
grep -qE 'chmod' "$T/strace.out" || defer_fail "strace saw no chmod at all (strace broken?): $(head -3 "$T/strace.out")"
# a chmod-family call that resolves "name" below a directory and follows a
# symlink there: fchmodat(FD, "name", MODE) with no AT_SYMLINK_NOFOLLOW, or a
# chmod("path") not of /proc/self/fd/N
bad=$(grep -E '(fchmodat2?|chmod)\(' "$T/strace.out" |
	grep -vE 'fchmod\([0-9]+,' |
	grep -vE 'AT_SYMLINK_NOFOLLOW' |
	grep -vE '"/proc/self/fd/[0-9]+"' || true)
[ -z "$bad" ] || defer_fail "chmod through a name that may be a symlink: $(echo "$bad" | head -4 | tr '\n' '|')"

# ------------------- 3. a SRC directory that cannot be opened, reported once
# (run as nobody; the directory is root's 0700). With --list-threads the
# cursor of the neighbouring subtree ran on into it and reported it again.
chmod 0755 "$T"
S=$T/lk/src
mkdir -p "$S/a" "$S/locked" "$S/z"
echo 1 >"$S/a/1.txt"
echo secret >"$S/locked/secret.txt"
echo 2 >"$S/z/2.txt"
chmod -R a+rX "$T/lk"
chmod 0700 "$S/locked"
for lt in 1 3; do
	D=$T/lk/dst$lt
	mkdir -p "$D"
	echo "only on DST" >"$D/extra.txt"
	chown -R nobody:nogroup "$D"
	what="an unreadable SRC directory, --list-threads $lt"
	SM_AS=nobody sm --delete-dst --list-threads "$lt" "$S/" "$D/"
	[ "$SM_RC" -eq 1 ] || defer_fail "$what: exit $SM_RC, want 1"
	[ "$(field failed)" = 1 ] || defer_fail "$what: failed $(field failed), want 1"
	n=$(grep -c "locked/'" "$T/sm.err" || true)
	[ "$n" -eq 1 ] || defer_fail "$what: $n error lines about 'locked/', want 1"
	cmp -s "$S/a/1.txt" "$D/a/1.txt" && cmp -s "$S/z/2.txt" "$D/z/2.txt" || defer_fail "$what: the readable files were not copied"
	[ -e "$D/extra.txt" ] || defer_fail "$what: DST-only 'extra.txt' deleted after a failed listing"
done

