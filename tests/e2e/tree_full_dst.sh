#!/bin/bash
# Issue 24 item 7: with --delete-dst on a nearly full DST (a 5 MiB tmpfs),
# the DST-only files of a range are deleted before the range's copies
# (rsync's --delete-during), so a run that fits once they are gone
# succeeds (it failed with ENOSPC on every run). After a listing error
# nothing more is deleted; directories still go at the end, deepest first.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init tree_full_dst
need_root

M=$T/m
mkdir -p "$M" "$T/src/new" "$T/src/keep"
mount -t tmpfs -o size=5m tmpfs "$M" || fail "cannot mount a 5 MiB tmpfs on $M"
on_exit "umount '$M'"
D=$M/dst
mkdir -p "$D/new" "$D/old/deeper" "$D/keep"
# DST: 3.5 MiB of files SRC no longer has, among SRC's new ones and apart
for i in 1 2 3 4 5 6 7; do
	head -c 512K /dev/urandom >"$T/src/new/n$i"
	[ "$i" = 7 ] || head -c 512K /dev/urandom >"$D/new/o$i"
done
head -c 512K /dev/urandom >"$D/old/deeper/o7"
echo k >"$T/src/keep/k"
cp "$T/src/keep/k" "$D/keep/k"

sm --delete-dst "$T/src/" "$D/"
expect_rc 0 "--delete-dst on a nearly full DST"
expect_field failed 0 "--delete-dst on a nearly full DST"
expect_field copied 7 "--delete-dst on a nearly full DST"
expect_same_tree --no-dirs "$T/src" "$D" "--delete-dst on a nearly full DST"
sm --delete-dst "$T/src/" "$D/"
expect_rc 0 "a run after"
expect_field copied 0 "a run after"
expect_field deleted 0 "a run after"

# --dirs: the DST-only directory goes too (at the end)
mkdir -p "$D/gone/sub"
head -c 1M /dev/urandom >"$D/gone/sub/big"
head -c 1M /dev/urandom >"$T/src/new/n8"
sm --dirs --delete-dst "$T/src/" "$D/"
expect_rc 0 "--dirs --delete-dst on a nearly full DST"
[ ! -e "$D/gone" ] || fail "the DST-only directory stayed"
expect_same_tree "$T/src" "$D" "--dirs --delete-dst on a nearly full DST"
