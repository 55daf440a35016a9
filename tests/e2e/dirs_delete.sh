#!/usr/bin/env bash
# Directory deletes at any count (issue 13 item 4): `--dirs --delete-dst`
# removes thousands of DST-only directories, deepest first, with the sort of
# their keys spilled to TMPDIR (the budget lowered so it spills), and keeps a
# DST-only directory that holds an excluded key. --dry lists them and
# deletes nothing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init dirs_delete

mkdir -p "$T/src/keep/sub" "$T/dst/keep/sub"
echo k >"$T/src/keep/sub/f"
# 1230 DST-only directories in 30 trees, 4 deep
for a in $(seq 1 30); do
	for b in $(seq 1 10); do
		mkdir -p "$T/dst/x$a/y$b/z1/w" "$T/dst/x$a/y$b/z2"
	done
done
mkdir -p "$T/dst/held"
echo ex >"$T/dst/held/f.tmp"
ndirs=$(find "$T/dst" -mindepth 1 -type d | wc -l)

export TMPDIR=$T/tmp
mkdir -p "$TMPDIR"
SYNCMGR_TEST_SPILL_BUDGET=4096 sm --dry --dirs --delete-dst --exclude '*.tmp' "$T/src/" "$T/dst/"
expect_rc 0 "--dry"
n=$(grep -c '^delete ' "$T/sm.out" || true)
[ "$n" -eq $((ndirs - 2)) ] || fail "--dry listed $n deletes, want every DST-only directory ($((ndirs - 2)))"
[ "$(find "$T/dst" -mindepth 1 -type d | wc -l)" -eq "$ndirs" ] || fail "--dry deleted directories"

SYNCMGR_TEST_SPILL_BUDGET=4096 sm -v --dirs --delete-dst --exclude '*.tmp' "$T/src/" "$T/dst/"
expect_rc 0 "--dirs --delete-dst"
grep -q "directories to delete sorted on disk" "$T/sm.err" || fail "the sort did not spill (budget 4096)"
left=$(cd "$T/dst" && find . -mindepth 1 -type d | sort | tr '\n' ' ')
[ "$left" = "./held ./keep ./keep/sub " ] || fail "directories left on DST: $left"
[ -f "$T/dst/held/f.tmp" ] || fail "the excluded key went"
[ -z "$(ls -A "$TMPDIR")" ] || fail "sort files left in TMPDIR: $(ls -A "$TMPDIR")"
