#!/usr/bin/env bash
# A DST never lets a write escape its root: symlinks on DST where SRC has
# directories are replaced by directories (as rsync does), never written
# through, whatever they point at.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init dst_symlinks

mkdir -p "$T/src/x/y" "$T/src/z" "$T/dst" "$T/outside"
echo secret >"$T/src/x/y/passwd"
echo data >"$T/src/z/file"
echo keep >"$T/outside/keep"
ln -s "$T/outside" "$T/dst/x"      # absolute, pointing out of DST
ln -s ../outside "$T/dst/z"        # relative, pointing out of DST
# every entry of outside/ (itself included): type, mode, size, inode,
# mtime, ctime, owner, content hash
before=$(tree_snapshot "$T/outside")

for opts in "" "--dirs" "--dirs --delete-dst" "--inplace"; do
	rm -rf "$T/dst"
	mkdir -p "$T/dst"
	ln -s "$T/outside" "$T/dst/x"
	ln -s ../outside "$T/dst/z"
	# shellcheck disable=SC2086
	sm $opts "$T/src/" "$T/dst/"
	expect_rc 0 "options '$opts'"
	after=$(tree_snapshot "$T/outside")
	[ "$before" = "$after" ] || fail "options '$opts': a file was written outside DST: $(diff <(echo "$before") <(echo "$after") | head -5)"
	[ -d "$T/dst/x" ] && [ ! -L "$T/dst/x" ] || fail "options '$opts': DST x is not a real directory"
	[ -d "$T/dst/z" ] && [ ! -L "$T/dst/z" ] || fail "options '$opts': DST z is not a real directory"
	[ "$(cat "$T/dst/x/y/passwd")" = secret ] || fail "options '$opts': x/y/passwd not copied"
	[ "$(cat "$T/dst/z/file")" = data ] || fail "options '$opts': z/file not copied"
done

# A symlink deeper down, and a symlinked DST file replaced by a regular file.
rm -rf "$T/dst"
mkdir -p "$T/dst/x"
ln -s "$T/outside" "$T/dst/x/y"
ln -s "$T/outside/keep" "$T/dst/z"
mkdir -p "$T/dst/z.d"
sm --dirs "$T/src/" "$T/dst/"
expect_rc 0 "nested symlinks"
after=$(tree_snapshot "$T/outside")
[ "$before" = "$after" ] || fail "a nested DST symlink let a write escape: $(diff <(echo "$before") <(echo "$after") | head -5)"
[ "$(cat "$T/outside/keep")" = keep ] || fail "a file outside DST was changed"
expect_no_temp_files "$T/dst" "nested symlinks"
