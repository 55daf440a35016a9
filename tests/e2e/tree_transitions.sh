#!/bin/bash
# Issue 24 item 6: a path that turned from a directory into a file, or
# back, or into a symlink, is fixed in one run with --delete-dst, with and
# without --dirs: the key in the way goes with the run's deletes, and the
# new one is copied after them, counted once. Without --delete-dst, or when
# the directory in the way holds a key the run keeps, the key fails with a
# message that says why; nothing is lost.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init tree_transitions

# the tree before: x/ a directory (nested), y a file, z a directory, w a symlink
before() {
	rm -rf "$T/src" "$T/dst"
	mkdir -p "$T/src/x/s/t" "$T/src/z"
	echo a >"$T/src/x/a"
	echo deep >"$T/src/x/s/t/f"
	echo y >"$T/src/y"
	echo zz >"$T/src/z/f"
	ln -s x "$T/src/w"
}
# ... and after: x a file, y a directory, z a symlink, w a directory
after() {
	rm -rf "$T/src/x" "$T/src/y" "$T/src/z" "$T/src/w"
	echo now-a-file >"$T/src/x"
	mkdir -p "$T/src/y/d"
	echo c >"$T/src/y/d/c"
	ln -s y "$T/src/z"
	mkdir "$T/src/w"
	echo w >"$T/src/w/f"
}

for dirs in "" --dirs; do
	E2E_CONTEXT="mode '${dirs:-files only}'"
	cmp=--no-dirs
	[ -z "$dirs" ] || cmp=
	before
	sm $dirs --links --delete-dst "$T/src/" "$T/dst/"
	expect_rc 0 "first run"
	after
	sm $dirs --links --delete-dst "$T/src/" "$T/dst/"
	expect_rc 0 "the run after the changes"
	# shellcheck disable=SC2086
	expect_same_tree $cmp "$T/src" "$T/dst" "one run after the changes"
	[ -f "$T/dst/x" ] || fail "x is not a file on DST"
	expect_field failed 0 "the run after the changes"
	# copied: x, y/d/c, z, w/f (+ y/, y/d/, w/ with --dirs); deleted: x/a,
	# x/s/t/f, y, z/f, w (+ x/, x/s/, x/s/t/, z/ with --dirs)
	if [ -z "$dirs" ]; then
		expect_field copied 4 "the run after the changes"
		expect_field deleted 5 "the run after the changes"
	else
		expect_field copied 7 "the run after the changes"
		expect_field deleted 9 "the run after the changes"
	fi
	expect_no_temp_files "$T/dst" "after the changes"
	sm $dirs --links --delete-dst "$T/src/" "$T/dst/"
	expect_rc 0 "the run after that"
	expect_field copied 0 "the run after that"
	expect_field deleted 0 "the run after that"
	# and back: x a directory again, y a file again
	rm -rf "$T/src/x" "$T/src/y"
	mkdir -p "$T/src/x/s"
	echo back >"$T/src/x/s/b"
	echo y-again >"$T/src/y"
	sm $dirs --links --delete-dst "$T/src/" "$T/dst/"
	expect_rc 0 "back again"
	# shellcheck disable=SC2086
	expect_same_tree $cmp "$T/src" "$T/dst" "one run after changing back"
done
E2E_CONTEXT=""

# Without --delete-dst nothing of DST is removed: the keys in the way fail,
# saying how to replace them.
before
sm --dirs --links "$T/src/" "$T/dst/"
expect_rc 0 "first run"
after
sm --dirs --links "$T/src/" "$T/dst/"
expect_rc 1 "no --delete-dst"
grep -q "'x'.*directory is in the way.*(--delete-dst replaces it)" "$T/sm.err" ||
	fail "no message for 'x' naming --delete-dst: $(cat "$T/sm.err")"
[ -f "$T/dst/x/a" ] && [ -f "$T/dst/y" ] || fail "DST keys went without --delete-dst"

# A directory in the way that holds a key the run keeps (excluded) stays,
# and the file fails, naming that key.
before
echo keep >"$T/src/x/keep.tmp"
sm --links --delete-dst "$T/src/" "$T/dst/"
expect_rc 0 "first run"
after
sm --links --delete-dst --exclude '*.tmp' "$T/src/" "$T/dst/"
expect_rc 1 "a kept key in the directory in the way"
grep -q "'x/keep.tmp'" "$T/sm.err" || fail "the message does not name the kept key: $(cat "$T/sm.err")"
[ -f "$T/dst/x/keep.tmp" ] || fail "the excluded key went"
expect_field failed 1 "a kept key in the directory in the way"
