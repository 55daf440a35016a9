#!/bin/bash
# Actions and change-detection options: --delete-src, --delete-src-after,
# --inplace, --check-new, --force-update, --limit, --max-failure.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init actions
need_root

rnd() { head -c "$2" /dev/urandom >"$1"; }
ino() { stat -c %i "$1"; }

# ---------------------------------------------------------------- --delete-src
S=$T/ds/src D=$T/ds/dst
mkdir -p "$S/sub" "$D/sub"
for f in same1 "same 2" sub/same3 diff new sub/new2; do rnd "$S/$f" 1000; done
for f in same1 "same 2" sub/same3; do cp -p "$S/$f" "$D/$f"; done
rnd "$D/diff" 10
cp -a "$S" "$T/ds/orig"
sm --delete-src "$S/" "$D/"
expect_rc 0 "--delete-src"
for f in same1 "same 2" sub/same3; do
	[ ! -e "$S/$f" ] || fail "--delete-src: '$f' is identical on DST but was kept on SRC"
done
for f in diff new sub/new2; do
	[ -e "$S/$f" ] || fail "--delete-src: '$f' was not identical on DST before the run but was deleted from SRC"
done
expect_same_tree --no-dirs "$T/ds/orig" "$D" "--delete-src: DST"
expect_field copied 3 "--delete-src"
expect_field deleted 3 "--delete-src (3 SRC keys deleted)"
# the second pass finds the other three identical and deletes them too
sm --delete-src "$S/" "$D/"
expect_rc 0 "--delete-src second pass"
left=$(find "$S" -type f) || fail "--delete-src second pass: cannot list SRC"
[ -z "$left" ] || fail "--delete-src second pass: SRC still has files: $left"
expect_same_tree --no-dirs "$T/ds/orig" "$D" "--delete-src second pass: DST"

# ---------------------------------------------------------- --delete-src-after
S=$T/dsa/src D=$T/dsa/dst
mkdir -p "$S/sub/deep" "$D"
for f in n1 "n 2" sub/n3 sub/deep/n4 kept; do rnd "$S/$f" 2000; done
cp -p "$S/kept" "$D/kept"
cp -a "$S" "$T/dsa/orig"
sm --delete-src-after --check-new "$S/" "$D/"
expect_rc 0 "--delete-src-after"
left=$(cd "$S" && find . -type f | sort)
[ "$left" = "./kept" ] || fail "--delete-src-after: expected only 'kept' (skipped, not copied) left on SRC, got: ${left//$'\n'/ }"
expect_same_tree --no-dirs "$T/dsa/orig" "$D" "--delete-src-after: DST"
expect_field copied 4 "--delete-src-after"
expect_field deleted 4 "--delete-src-after (4 SRC keys deleted)"

# ------------------------------------------------------------------- --inplace
S=$T/ip/src D=$T/ip/dst
mkdir -p "$S" "$D"
rnd "$S/grow" 5000
rnd "$S/shrink" 3000
rnd "$S/new" 100
rnd "$D/grow" 1000
rnd "$D/shrink" 9000
i_grow=$(ino "$D/grow") i_shrink=$(ino "$D/shrink")
ln "$D/grow" "$T/ip/hardlink-to-grow"
sm --inplace "$S/" "$D/"
expect_rc 0 "--inplace"
expect_field copied 3 "--inplace"
[ "$(ino "$D/grow")" = "$i_grow" ] || fail "--inplace: inode of 'grow' changed ($i_grow -> $(ino "$D/grow"))"
[ "$(ino "$D/shrink")" = "$i_shrink" ] || fail "--inplace: inode of 'shrink' changed"
expect_same_tree "$S" "$D" "--inplace"
cmp -s "$S/grow" "$T/ip/hardlink-to-grow" || fail "--inplace: the hard link to 'grow' does not see the new content"
expect_no_temp_files "$D" "--inplace"
# without --inplace an update is temp + rename: a new inode
rnd "$S/grow" 6000
i_grow=$(ino "$D/grow")
sm "$S/" "$D/"
expect_rc 0 "update without --inplace"
[ "$(ino "$D/grow")" != "$i_grow" ] || fail "update without --inplace rewrote 'grow' in place (same inode)"
cmp -s "$S/grow" "$D/grow" || fail "update without --inplace: 'grow' differs"

# ------------------------------------------------------------------ --check-new
S=$T/cn/src D=$T/cn/dst
mkdir -p "$S/sub" "$D"
for f in a b sub/c; do rnd "$S/$f" 4000; done
: >"$S/empty"
sm --check-new "$S/" "$D/"
expect_rc 0 "--check-new"
expect_field copied 4 "--check-new"
expect_field checked 4 "--check-new (every copy verified)"
expect_same_tree "$S" "$D" "--check-new"
sm --check-new "$S/" "$D/"
expect_rc 0 "--check-new second pass"
summary >/dev/null # one summary line, or fail here (not inside a substitution)
expect_field copied 0 "--check-new second pass"
expect_field checked 0 "--check-new second pass (nothing copied, nothing to verify)"

# --------------------------------------------------------------- --force-update
ia=$(ino "$D/a")
sm --force-update "$S/" "$D/"
expect_rc 0 "--force-update"
expect_field copied 4 "--force-update"
expect_field skipped 0 "--force-update"
[ "$(ino "$D/a")" != "$ia" ] || fail "--force-update: 'a' was not rewritten (same inode)"
sm -f --check-new "$S/" "$D/"
expect_rc 0 "-f --check-new"
expect_field copied 4 "-f --check-new"
expect_field checked 4 "-f --check-new"
expect_same_tree "$S" "$D" "--force-update"

# ---------------------------------------------------------------------- --limit
S=$T/lim/src D=$T/lim/dst
mkdir -p "$S"
for i in 0 1 2 3 4 5 6 7 8 9; do rnd "$S/f$i" 100; done
sm --limit 3 "$S/" "$D/"
expect_rc 0 "--limit 3"
expect_field copied 3 "--limit 3"
n=$(find "$D" -type f | wc -l)
[ "$n" -eq 3 ] || fail "--limit 3: expected 3 files on DST, got $n"
# the limit counts processed keys, skipped ones included (as juicefs sync):
# the same first 3 keys again, now all skipped
sm --limit 3 "$S/" "$D/"
expect_rc 0 "--limit 3, second run"
expect_field copied 0 "--limit 3, second run"
expect_field skipped 3 "--limit 3, second run"
sm --limit 5 -f "$S/" "$D/"
expect_rc 0 "--limit 5 -f"
expect_field copied 5 "--limit 5 -f"
n=$(find "$D" -type f | wc -l)
[ "$n" -eq 5 ] || fail "--limit 5 -f: expected 5 files on DST, got $n"
sm --limit -1 "$S/" "$D/"
expect_rc 0 "--limit -1"
expect_field copied 5 "--limit -1"
expect_same_tree "$S" "$D" "--limit -1"
expect_no_temp_files "$D" "--limit"

# ---------------------------------------------------------------- --max-failure
# 300 files, every third unreadable (as nobody); -p 2 --max-failure 5 must stop
# after about 5 failures: at most max-failure + threads keys fail, and the run
# does not get through all 300 keys.
M=$T/mf
mkdir -p "$M/src" "$M/dst"
chmod 755 "$T" "$M" "$M/src"
for i in $(seq -w 0 299); do printf '%s\n' "$i" >"$M/src/f$i"; done
chmod 644 "$M"/src/*
for i in $(seq -w 0 3 299); do chmod 000 "$M/src/f$i"; done
chown nobody "$M/dst"
SM_AS=nobody sm -p 2 --max-failure 5 "$M/src/" "$M/dst/"
expect_rc 1 "--max-failure 5"
summary >/dev/null # one summary line, or fail here (not inside a substitution)
failed=$(field failed) copied=$(field copied)
[ "$failed" -ge 5 ] || fail "--max-failure 5: only $failed keys failed, the run should have gone on to 5"
[ "$failed" -le 7 ] || fail "--max-failure 5 -p 2: $failed keys failed; expected the run to stop after 5 (at most 5 + 2 in flight)"
[ $((copied + failed)) -lt 300 ] || fail "--max-failure 5: all 300 keys were handled (copied $copied, failed $failed): the run did not stop"
expect_no_temp_files "$M/dst" "--max-failure"
# --max-failure 0 = never stop
rm -rf "${M:?}/dst"/*
SM_AS=nobody sm -p 2 --max-failure 0 "$M/src/" "$M/dst/"
expect_rc 1 "--max-failure 0"
expect_field failed 100 "--max-failure 0"
expect_field copied 200 "--max-failure 0"
