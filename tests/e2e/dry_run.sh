#!/bin/bash
# --dry prints exactly the planned "copy KEY" / "delete KEY" lines on stdout
# (directory keys end in '/') and changes nothing on either side; a missing
# DST is not created.  A real run afterwards does what the dry run announced.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init dry_run

S=$T/src D=$T/dst
mkdir -p "$S/sub" "$S/empty" "$S/same dir"
head -c 10 /dev/urandom >"$S/a"
head -c 20 /dev/urandom >"$S/b c"          # missing on DST, name with a space
head -c 30 /dev/urandom >"$S/sub/d"        # missing on DST
head -c 40 /dev/urandom >"$S/sub/e"        # different size on DST
head -c 50 /dev/urandom >"$S/same"         # identical on DST
head -c 60 /dev/urandom >"$S/same dir/é f" # identical on DST
ln -s a "$S/link"

mkdir -p "$D/sub" "$D/olddir/deep" "$D/same dir"
cp -p "$S/same" "$D/same"
cp -p "$S/same dir/é f" "$D/same dir/é f"
head -c 41 /dev/urandom >"$D/sub/e"
head -c 5 /dev/urandom >"$D/old"
head -c 5 /dev/urandom >"$D/olddir/x y"
head -c 5 /dev/urandom >"$D/olddir/deep/z"
ln -s same "$D/old link"

snap_src=$(tree_snapshot "$S")
snap_dst=$(tree_snapshot "$D")

expect_unchanged() {
	[ "$(tree_snapshot "$S")" = "$snap_src" ] || fail "$1: SRC changed: $(diff <(echo "$snap_src") <(tree_snapshot "$S") | head -5)"
	[ "$(tree_snapshot "$D")" = "$snap_dst" ] || fail "$1: DST changed: $(diff <(echo "$snap_dst") <(tree_snapshot "$D") | head -5)"
}

# expect_plan WHAT LINE...: stdout, as a set of lines, must equal the LINEs
expect_plan() {
	local what=$1 want got
	shift
	want=$(printf '%s\n' "$@" | LC_ALL=C sort)
	got=$(LC_ALL=C sort "$T/sm.out")
	[ "$want" = "$got" ] || fail "$what: --dry output differs (< expected, > got):
$(diff <(echo "$want") <(echo "$got") | grep '^[<>]' | sed 's/^/    /')"
	[ "$(wc -l <"$T/sm.out")" -eq "$(LC_ALL=C sort -u "$T/sm.out" | wc -l)" ] ||
		fail "$what: a line is printed twice"
}

# 1. default: files only, symlinks followed, nothing deleted
sm --dry "$S/" "$D/"
expect_rc 0 "--dry"
expect_plan "--dry" "copy a" "copy b c" "copy link" "copy sub/d" "copy sub/e"
summary >/dev/null
expect_unchanged "--dry"

# 2. mirror: dirs, symlinks, deletes (DST-only dir keys deleted too)
sm --dry --dirs --links --delete-dst "$S/" "$D/"
expect_rc 0 "--dry --dirs --links --delete-dst"
expect_plan "--dry --dirs --links --delete-dst" \
	"copy a" "copy b c" "copy empty/" "copy link" "copy sub/d" "copy sub/e" \
	"delete old" "delete old link" "delete olddir/" "delete olddir/deep/" \
	"delete olddir/deep/z" "delete olddir/x y"
expect_unchanged "--dry --dirs --links --delete-dst"

# 3. --delete-dst without --dirs: DST-only files go, directories stay
sm --dry --delete-dst "$S/" "$D/"
expect_rc 0 "--dry --delete-dst"
expect_plan "--dry --delete-dst" "copy a" "copy b c" "copy link" "copy sub/d" "copy sub/e" \
	"delete old" "delete old link" "delete olddir/deep/z" "delete olddir/x y"
expect_unchanged "--dry --delete-dst"

# 4. --force-update and --check-all: everything is copied, still nothing written
sm --dry -f --dirs "$S/" "$D/"
expect_rc 0 "--dry -f --dirs"
grep -qxF "copy same" "$T/sm.out" || fail "--dry -f: 'copy same' missing from the plan"
grep -qxF "copy same dir/é f" "$T/sm.out" || fail "--dry -f: 'copy same dir/é f' missing from the plan"
expect_unchanged "--dry -f --dirs"
sm --dry --check-all --perms --inplace "$S/" "$D/"
expect_rc 0 "--dry --check-all --perms --inplace"
expect_unchanged "--dry --check-all --perms --inplace"

# 5. --delete-src / --delete-src-after in a dry run delete nothing on SRC
sm --dry --delete-src "$S/" "$D/"
expect_rc 0 "--dry --delete-src"
expect_unchanged "--dry --delete-src"
sm --dry --delete-src-after --dirs --delete-dst "$S/" "$D/"
expect_rc 0 "--dry --delete-src-after"
expect_unchanged "--dry --delete-src-after"

# 6. a missing DST is not created
sm --dry --dirs "$S/" "$T/newdst/"
expect_rc 0 "--dry to a missing DST"
if [ -e "$T/newdst" ] || [ -L "$T/newdst" ]; then fail "--dry created the missing DST '$T/newdst'"; fi
expect_plan "--dry to a missing DST" "copy a" "copy b c" "copy empty/" "copy link" \
	"copy same" "copy same dir/" "copy same dir/é f" "copy sub/" "copy sub/d" "copy sub/e"
sm --dry "$S/same" "$T/newfile"
expect_rc 0 "--dry single file"
[ ! -e "$T/newfile" ] || fail "--dry created the single-file DST '$T/newfile'"

# 7. the real run does what the dry run said
sm --dry --dirs --links --delete-dst "$S/" "$D/"
expect_rc 0 "--dry before the real run"
plan=("copy a" "copy b c" "copy empty/" "copy link" "copy sub/d" "copy sub/e"
	"delete old" "delete old link" "delete olddir/" "delete olddir/deep/"
	"delete olddir/deep/z" "delete olddir/x y")
expect_plan "--dry before the real run" "${plan[@]}"
ncopy=0 ndel=0
for l in "${plan[@]}"; do
	case $l in "copy "*) ncopy=$((ncopy + 1)) ;; "delete "*) ndel=$((ndel + 1)) ;; esac
done
sm --dirs --links --delete-dst "$S/" "$D/"
expect_rc 0 "real run"
[ ! -s "$T/sm.out" ] || fail "real run printed on stdout: $(head -c 200 "$T/sm.out")"
expect_field copied "$ncopy" "real run vs the dry run's copy lines"
expect_field deleted "$ndel" "real run vs the dry run's delete lines"
expect_same_tree "$S" "$D" "real run after the dry run"
