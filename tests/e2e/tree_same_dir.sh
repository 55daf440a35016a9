#!/bin/bash
# Issue 24 item 8: SRC and DST that are one directory reached by different
# paths (a bind mount, a symlinked parent), or one inside the other that
# way, are recognised by device and inode, not only by their real paths:
# `--delete-src src/ alias/` deleted every SRC file. Now a usage error
# naming both, and nothing is touched.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init tree_same_dir
need_root

mkdir -p "$T/src/sub" "$T/alias" "$T/other"
echo a >"$T/src/a"
echo b >"$T/src/sub/b"
mount --bind "$T/src" "$T/alias" || fail "cannot bind-mount $T/src on $T/alias"
on_exit "umount '$T/alias'"
ln -s "$T" "$T/link"
snap=$(tree_snapshot "$T/src")

check() { # WHAT SYNCMGR-ARGS...: a usage error naming the overlap, SRC untouched
	local what=$1
	shift
	sm "$@"
	expect_rc 2 "$what"
	grep -qE "(is inside|are the same file)" "$T/sm.err" || fail "$what: no message naming the overlap: $(cat "$T/sm.err")"
	[ "$(tree_snapshot "$T/src")" = "$snap" ] || fail "$what: SRC changed"
}
check "the same directory through a bind mount" --delete-src "$T/src/" "$T/alias/"
check "the same directory, --delete-dst" --delete-dst "$T/alias/" "$T/src/"
check "DST inside SRC through a bind mount" "$T/src/" "$T/alias/sub/"
check "DST not yet made inside SRC through a bind mount" "$T/src/" "$T/alias/new/deeper/"
check "SRC inside DST through a bind mount" "$T/alias/sub/" "$T/src/"
check "the same directory through a symlinked parent" --delete-src "$T/src/" "$T/link/src/"
check "one file through a bind mount" --delete-src "$T/src/a" "$T/alias/a"

# two directories that only look alike are fine
sm "$T/src/" "$T/other/"
expect_rc 0 "a different directory"
