#!/bin/bash
# Issue 24 item 3: as a non-root user with --perms, a read-only (0555) SRC
# directory's mode is set after its children are written, so the tree
# arrives whole in one run (a Go module cache is such a tree), and a later
# run writes into it again (opening it for its owner meanwhile, then
# restoring it). Without --perms the same holds for SRC's mode & ~umask.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init tree_readonly
need_root

chmod 0755 "$T"
umask 022
mk_src() {
	rm -rf "$T/src"
	mkdir -p "$T/src/mod@v1/sub/deeper" "$T/src/rw"
	echo a >"$T/src/mod@v1/go.mod"
	echo b >"$T/src/mod@v1/sub/b.go"
	echo c >"$T/src/mod@v1/sub/deeper/c.go"
	echo r >"$T/src/rw/r"
	chmod 0444 "$T/src/mod@v1/go.mod" "$T/src/mod@v1/sub/b.go" "$T/src/mod@v1/sub/deeper/c.go"
	chmod 0555 "$T/src/mod@v1/sub/deeper" "$T/src/mod@v1/sub" "$T/src/mod@v1"
	chown -R nobody:nogroup "$T/src"
}
mode() { stat -c %a "$1"; }

for opts in "--perms" "--dirs --perms" "" "--dirs"; do
	E2E_CONTEXT="as nobody, options '$opts'"
	mk_src
	rm -rf "$T/dst"
	mkdir "$T/dst"
	chown nobody:nogroup "$T/dst"
	# shellcheck disable=SC2086
	SM_AS=nobody sm $opts "$T/src/" "$T/dst/"
	expect_rc 0 "first run"
	expect_field failed 0 "first run"
	for d in mod@v1 mod@v1/sub mod@v1/sub/deeper; do
		[ "$(mode "$T/dst/$d")" = 555 ] || fail "'$d' is $(mode "$T/dst/$d") on DST, want 555"
	done
	[ -f "$T/dst/mod@v1/sub/deeper/c.go" ] || fail "the deepest file is missing"
	cmp=--perms
	[ -n "$opts" ] || cmp=""
	# shellcheck disable=SC2086
	expect_same_tree $cmp --no-dirs "$T/src" "$T/dst" "first run"
	snap=$(tree_snapshot "$T/dst")
	# shellcheck disable=SC2086
	SM_AS=nobody sm $opts "$T/src/" "$T/dst/"
	expect_rc 0 "second run"
	expect_field copied 0 "second run"
	[ "$(tree_snapshot "$T/dst")" = "$snap" ] || fail "a second run changed DST"
	# a new file in the read-only directory: written, the mode put back
	chmod u+w "$T/src/mod@v1/sub"
	echo new >"$T/src/mod@v1/sub/new.go"
	chown nobody:nogroup "$T/src/mod@v1/sub/new.go"
	chmod u-w "$T/src/mod@v1/sub"
	# shellcheck disable=SC2086
	SM_AS=nobody sm $opts "$T/src/" "$T/dst/"
	expect_rc 0 "a file added to a read-only directory"
	expect_field copied 1 "a file added to a read-only directory"
	[ "$(cat "$T/dst/mod@v1/sub/new.go")" = new ] || fail "the new file did not arrive"
	[ "$(mode "$T/dst/mod@v1/sub")" = 555 ] || fail "'mod@v1/sub' is $(mode "$T/dst/mod@v1/sub") after the write, want 555"
done
