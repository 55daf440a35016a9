#!/bin/bash
# Issue 24 item 1: directories get SRC's mode & ~umask without --perms, as
# files do (a private 0700 directory stays private), with and without
# --dirs, whether a directory is made for its own key or on the way to a
# file in it; exact with --perms. With --dirs --perms the DST root's mode
# and mtime follow SRC's root.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init tree_dir_modes

umask 022
mode() { stat -c %a "$1"; }
mkdir -p "$T/src/private/inner" "$T/src/shared" "$T/src/group/deep/er" "$T/src/open"
echo p >"$T/src/private/inner/f"
echo s >"$T/src/shared/f"
echo g >"$T/src/group/deep/er/f"
chmod 0700 "$T/src/private" "$T/src/private/inner"
chmod 0755 "$T/src/shared"
chmod 0750 "$T/src/group" "$T/src/group/deep"
chmod 0777 "$T/src/open"
chmod 2770 "$T/src/group/deep/er"

for dirs in "" --dirs; do
	rm -rf "$T/dst"
	E2E_CONTEXT="mode '${dirs:-files only}', no --perms"
	sm $dirs "$T/src/" "$T/dst/"
	expect_rc 0 "sync"
	for d in private private/inner group group/deep; do
		[ "$(mode "$T/dst/$d")" = "$(mode "$T/src/$d")" ] ||
			fail "'$d' is $(mode "$T/dst/$d") on DST, $(mode "$T/src/$d") on SRC (umask 022)"
	done
	[ "$(mode "$T/dst/shared")" = 755 ] || fail "'shared' is $(mode "$T/dst/shared")"
	# & ~umask, and no setgid without --perms (as files)
	[ "$(mode "$T/dst/group/deep/er")" = 750 ] || fail "'group/deep/er' is $(mode "$T/dst/group/deep/er"), want 750"
	if [ -n "$dirs" ]; then
		[ "$(mode "$T/dst/open")" = 755 ] || fail "'open' is $(mode "$T/dst/open"), want 755"
	fi
	sm $dirs "$T/src/" "$T/dst/"
	expect_rc 0 "second run"
	expect_field copied 0 "second run"
done

# --perms: exact, setgid included
rm -rf "$T/dst"
E2E_CONTEXT="--perms"
sm --perms "$T/src/" "$T/dst/"
expect_rc 0 "--perms"
[ "$(mode "$T/dst/group/deep/er")" = 2770 ] || fail "'group/deep/er' is $(mode "$T/dst/group/deep/er"), want 2770"
[ "$(mode "$T/dst/private")" = 700 ] || fail "'private' is $(mode "$T/dst/private")"

# --dirs --perms: the root follows SRC's root, mode and mtime, on an existing DST
E2E_CONTEXT="the root"
chmod 0750 "$T/src"
touch -d '2001-02-03 04:05:06.123456789' "$T/src"
mkdir -p "$T/dst2"
chmod 0777 "$T/dst2"
sm --dirs --perms "$T/src/" "$T/dst2/"
expect_rc 0 "--dirs --perms into an existing DST"
[ "$(mode "$T/dst2")" = 750 ] || fail "the DST root is $(mode "$T/dst2"), SRC's 750"
[ "$(stat -c %y "$T/dst2")" = "$(stat -c %y "$T/src")" ] ||
	fail "the DST root's mtime is $(stat -c %y "$T/dst2"), SRC's $(stat -c %y "$T/src")"
expect_same_tree --perms "$T/src" "$T/dst2" "--dirs --perms"
snap=$(tree_snapshot "$T/dst2")
sm --dirs --perms "$T/src/" "$T/dst2/"
expect_rc 0 "second run"
[ "$(tree_snapshot "$T/dst2")" = "$snap" ] || fail "a second run changed DST"
