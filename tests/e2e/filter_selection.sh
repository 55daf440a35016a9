#!/bin/bash
# Selection options (SPEC.md section 1 "Selection") on a small real tree, each
# checked through the exact set of "copy KEY" lines of a --dirs --dry run into
# an empty DST: --files-from (keys, a "dir/" prefix line, a missing key warned
# about once), --start/--end (inclusive), --min-size/--max-size (K = 1024,
# inclusive), --min-age/--max-age, --start-time/--end-time (plain dates, date
# and time, RFC 3339), --limit.  Then real --delete-dst runs: DST keys that the
# rules or the selection leave out are never deleted (nor overwritten).  Then
# bad values: exit 2 and one line naming the option and the value; and
# --include without --exclude: a warning naming --include.
#
#   SYNCMGR=/path/to/syncmgr bash tests/e2e/filter_selection.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init filter_selection

S=$T/src E=$T/empty-dst
mkdir -p "$S/d" "$S/empty" "$S/g" "$E"
mkf() { head -c "$2" /dev/zero | tr '\0' x >"$S/$1"; }
# sizes: 1K..4K bounds are inclusive (d/e is exactly 1 KiB, d/f exactly 4 KiB)
mkf a 100
mkf b 2000
mkf c 5000
mkf d/e 1024
mkf d/f 4096
mkf d/g.o 3000
mkf g/h 10
mkf old 50
# mtimes (directories keep "now"; size and time bounds apply to files only)
touch -d '10 minutes ago' "$S/a"
touch -d '2 hours ago' "$S/b"
touch -d '2020-06-15 12:00:00 UTC' "$S/c"
touch -d '30 minutes ago' "$S/d/e"
touch -d '5 hours ago' "$S/d/f"
touch -d '2019-12-20 12:00:00 UTC' "$S/d/g.o"
touch -d '2020-03-01 12:00:00 UTC' "$S/old"
# every key, in byte order:
ALL=(a b c d/ d/e d/f d/g.o empty/ g/ g/h old)
snap_src=$(tree_snapshot "$S")

# expect_plan WHAT KEY...: stdout of the last (dry) run, as a set, must be
# exactly "copy KEY" for the KEYs, each printed once
expect_plan() {
	local what=$1 want got
	shift
	want=$(if [ $# -gt 0 ]; then printf 'copy %s\n' "$@"; fi | LC_ALL=C sort)
	got=$(LC_ALL=C sort "$T/sm.out")
	[ "$want" = "$got" ] || fail "$what: --dry output differs (< expected, > got):
$(diff <(echo "$want") <(echo "$got") | grep '^[<>]' | sed 's/^/    /')"
	[ "$(wc -l <"$T/sm.out")" -eq "$(LC_ALL=C sort -u "$T/sm.out" | wc -l)" ] ||
		fail "$what: a line is printed twice"
}

# dry WHAT EXPECTED_KEYS... -- OPTIONS...: a --dirs --dry run into the empty
# DST with OPTIONS; exit 0, no warnings, a summary, the exact plan
dry() {
	local what=$1 keys=()
	shift
	while [ "$1" != -- ]; do keys+=("$1"); shift; done
	shift
	E2E_CONTEXT="$what"
	sm --dirs --dry "$@" "$S/" "$E/"
	expect_rc 0 "$what"
	summary >/dev/null
	[ -z "$(err_lines)" ] || fail "$what: unexpected stderr lines: $(err_lines | head -3)"
	expect_plan "$what" "${keys[@]}"
	[ -z "$(ls -A "$E")" ] || fail "$what: --dry wrote into DST: $(ls -A "$E")"
}

# 0. no selection: everything
dry "no selection" "${ALL[@]}" --

# 1. --files-from: listed keys, a prefix line, the dirs on the way to a listed
#    key; a listed key missing on SRC is one warning, not an error
printf '%s\n' a d/e g/ nope >"$T/list"
E2E_CONTEXT="--files-from"
sm --dirs --dry --files-from "$T/list" "$S/" "$E/"
expect_rc 0 "--files-from with a missing key"
expect_plan "--files-from" a d/ d/e g/ g/h
n=$(err_lines | grep -c 'nope' || true)
[ "$n" -eq 1 ] || fail "--files-from: the missing key 'nope' should be reported once on stderr, got $n lines: $(err_lines | head -5)"
err_lines | grep 'nope' | grep -qi 'warning' ||
	fail "--files-from: the line about the missing key is not a warning: $(err_lines | grep nope)"
[ "$(err_lines | wc -l)" -eq 1 ] || fail "--files-from: other stderr lines: $(err_lines | head -5)"
# "./" and a leading "/" are dropped, empty lines ignored
printf '%s\n' ./b '' /d/f >"$T/list2"
dry "--files-from with ./ and /" b d/ d/f -- --files-from "$T/list2"

# 2. --start/--end: both bounds inclusive, byte order (d/ < d/e < d/f < d/g.o)
dry "--start b --end d/f" b c d/ d/e d/f -- --start b --end d/f
dry "--start d/f --end g/" d/f d/g.o empty/ g/ -- --start d/f --end g/
dry "--start old" old -- --start old
dry "--end a" a -- --end a

# 3. sizes (K = 1024, bounds inclusive); directories are not size-filtered
dry "--min-size 1K --max-size 4K" b d/ d/e d/f d/g.o empty/ g/ -- --min-size 1K --max-size 4K
dry "--min-size 1025" b c d/ d/f d/g.o empty/ g/ -- --min-size 1025
dry "--max-size 4095" a b d/ d/e d/g.o empty/ g/ g/h old -- --max-size 4095

# 4. ages: --min-age 1h keeps files modified at least 1 h ago, --max-age 1h
#    those modified within the last hour (g/h was written just now)
dry "--min-age 1h" b c d/ d/f d/g.o empty/ g/ old -- --min-age 1h
dry "--max-age 1h" a d/ d/e empty/ g/ g/h -- --max-age 1h
dry "--min-age 20m --max-age 3h" b d/ d/e empty/ g/ -- --min-age 20m --max-age 3h
dry "--max-age 1h30m" a d/ d/e empty/ g/ g/h -- --max-age 1h30m
dry "--min-age 2d" c d/ d/g.o empty/ g/ old -- --min-age 2d

# 5. times: plain date, date and time (local), RFC 3339
dry "--start-time 2020-01-01 --end-time '2021-01-01 00:00:00'" c d/ empty/ g/ old -- \
	--start-time 2020-01-01 --end-time '2021-01-01 00:00:00'
dry "--start-time 2020-06-01T00:00:00Z" a b c d/ d/e d/f empty/ g/ g/h -- \
	--start-time 2020-06-01T00:00:00Z
dry "--end-time 2020-06-01T00:00:00+02:00" d/ d/g.o empty/ g/ old -- \
	--end-time 2020-06-01T00:00:00+02:00

# 6. --limit 3: exactly 3 of the keys (the first 3 in order)
E2E_CONTEXT="--limit 3"
sm --dirs --dry --limit 3 "$S/" "$E/"
expect_rc 0 "--limit 3"
n=$(grep -c '^copy ' "$T/sm.out" || true)
[ "$n" -eq 3 ] || fail "--limit 3: $n copy lines, expected 3: $(tr '\n' '|' <"$T/sm.out")"
[ "$(grep -vc '^copy ' "$T/sm.out" || true)" -eq 0 ] || fail "--limit 3: other stdout lines: $(grep -v '^copy ' "$T/sm.out" | head -3)"
expect_plan "--limit 3 (the first three keys)" a b c
dry "--limit -1" "${ALL[@]}" -- --limit -1
dry "--limit 3 with --start d/" d/ d/e d/f -- --limit 3 --start d/

# 7. rules combined with selection
dry "--exclude '*.o' --max-size 4K" a b d/ d/e d/f empty/ g/ g/h old -- --exclude '*.o' --max-size 4K
printf '%s\n' a d/e g/ >"$T/list4"
dry "--exclude d/ --files-from" a g/ g/h -- --exclude d/ --files-from "$T/list4"

[ "$(tree_snapshot "$S")" = "$snap_src" ] || fail "SRC was modified by the dry runs"

# 8. --delete-dst leaves alone the DST keys that rules or selection exclude
D=$T/dst
mk_dst() {
	rm -rf "$D"
	mkdir -p "$D/d" "$D/keep.tmp" "$D/olddir/sub"
	echo 'dst only, excluded by *.tmp' >"$D/x.tmp"
	echo 'dst only, excluded by *.tmp' >"$D/d/y.tmp"
	echo 'inside an excluded dir' >"$D/keep.tmp/inner"
	echo 'dst version of c' >"$D/c"       # SRC c (5000 B) is above --max-size 4K
	echo 'dst version of d/g.o' >"$D/d/g.o" # SRC d/g.o is excluded by '*.o'
	echo 'dst only, not excluded' >"$D/zz-only"
	echo 'dst only, not excluded' >"$D/olddir/sub/f"
}
mk_dst
snap_kept() {
	local k
	for k in x.tmp d/y.tmp keep.tmp/inner c d/g.o; do
		printf '%s ' "$k"
		sha256sum <"$D/$k" 2>/dev/null || echo missing
	done
}
kept0=$(snap_kept)
OPTS=(--dirs --delete-dst --exclude '*.tmp' --exclude '*.o' --max-size 4K)
E2E_CONTEXT="--delete-dst with excludes and --max-size (dry)"
sm --dry "${OPTS[@]}" "$S/" "$D/"
expect_rc 0 "delete-dst dry run"
got=$(grep '^delete ' "$T/sm.out" | LC_ALL=C sort || true)
want=$(printf '%s\n' "delete olddir/" "delete olddir/sub/" "delete olddir/sub/f" "delete zz-only" | LC_ALL=C sort)
[ "$got" = "$want" ] || fail "delete-dst dry run: planned deletes differ (< expected, > got):
$(diff <(echo "$want") <(echo "$got") | grep '^[<>]' | sed 's/^/    /')"
got=$(grep '^copy ' "$T/sm.out" | LC_ALL=C sort || true)
want=$(printf 'copy %s\n' a b d/e d/f empty/ g/ g/h old | LC_ALL=C sort) # d/ is on DST already
[ "$got" = "$want" ] || fail "delete-dst dry run: planned copies differ (< expected, > got; c, d/g.o, *.tmp are excluded):
$(diff <(echo "$want") <(echo "$got") | grep '^[<>]' | sed 's/^/    /')"

E2E_CONTEXT="--delete-dst with excludes and --max-size"
sm "${OPTS[@]}" "$S/" "$D/"
expect_rc 0 "delete-dst run"
[ "$(snap_kept)" = "$kept0" ] || fail "delete-dst run: excluded DST keys were deleted or changed:
$(diff <(echo "$kept0") <(snap_kept) | grep '^[<>]' | sed 's/^/    /')"
for k in zz-only olddir; do
	[ ! -e "$D/$k" ] || fail "delete-dst run: DST-only key '$k' (not excluded) was not deleted"
done
for k in a b d/e d/f g/h old; do
	cmp -s "$S/$k" "$D/$k" || fail "delete-dst run: '$k' was not copied"
done
[ -d "$D/empty" ] || fail "delete-dst run: empty/ was not created"
expect_field deleted 4 "delete-dst run"
sm "${OPTS[@]}" "$S/" "$D/"
expect_rc 0 "delete-dst second run"
summary >/dev/null # one summary line, or fail here (not inside a substitution)
expect_field copied 0 "delete-dst second run"
expect_field deleted 0 "delete-dst second run"
[ "$(snap_kept)" = "$kept0" ] || fail "delete-dst second run: excluded DST keys changed"

# path selection (--start/--end, --files-from) protects DST keys too
mk_dst
E2E_CONTEXT="--delete-dst with --end"
sm --dirs --delete-dst --end b "$S/" "$D/"
expect_rc 0 "delete-dst --end b"
for k in x.tmp d/y.tmp keep.tmp/inner c d/g.o zz-only olddir/sub/f; do
	[ -e "$D/$k" ] || fail "delete-dst --end b: '$k' (after --end) was deleted"
done
{ cmp -s "$S/a" "$D/a" && cmp -s "$S/b" "$D/b"; } || fail "delete-dst --end b: a and b were not copied"
[ "$(cat "$D/c")" = 'dst version of c' ] || fail "delete-dst --end b: c (after --end) was overwritten"

mk_dst
printf '%s\n' a d/ >"$T/list3"
E2E_CONTEXT="--delete-dst with --files-from"
sm --dirs --delete-dst --files-from "$T/list3" "$S/" "$D/"
expect_rc 0 "delete-dst --files-from"
for k in x.tmp keep.tmp/inner c zz-only olddir/sub/f; do
	[ -e "$D/$k" ] || fail "delete-dst --files-from: unlisted '$k' was deleted"
done
[ ! -e "$D/d/y.tmp" ] || fail "delete-dst --files-from: d/y.tmp (DST-only under the listed prefix d/) was not deleted"
cmp -s "$S/d/g.o" "$D/d/g.o" || fail "delete-dst --files-from: d/g.o (under d/) was not copied"
[ ! -e "$D/b" ] || fail "delete-dst --files-from: unlisted b was copied"

[ "$(tree_snapshot "$S")" = "$snap_src" ] || fail "SRC was modified"

# 9. bad values: exit 2, one "syncmgr: " line naming the option and value,
#    nothing on stdout, no summary, DST not created
# bad WHAT OPTION_RE VALUE_RE OPTIONS...
bad() {
	local what=$1 ore=$2 vre=$3 lines
	shift 3
	E2E_CONTEXT="bad input: $what"
	sm "$@" "$S/" "$T/never/"
	expect_rc 2 "$what"
	[ "$(grep -c '^Found: ' "$T/sm.err" || true)" = 0 ] || fail "$what: a usage error printed a summary line"
	lines=$(cat "$T/sm.err")
	[ -n "$lines" ] || fail "$what: no error message on stderr"
	[ "$(printf '%s\n' "$lines" | wc -l)" -eq 1 ] || fail "$what: expected one line on stderr, got:
$(printf '%s\n' "$lines" | head -5 | sed 's/^/    /')"
	case $lines in "syncmgr: "*) ;; *) fail "$what: error line does not start with 'syncmgr: ': $lines" ;; esac
	printf '%s\n' "$lines" | grep -qE -- "$ore" || fail "$what: error line does not name the option (/$ore/): $lines"
	printf '%s\n' "$lines" | grep -qE -- "$vre" || fail "$what: error line does not name the value (/$vre/): $lines"
	[ ! -s "$T/sm.out" ] || fail "$what: printed on stdout: $(head -c 200 "$T/sm.out")"
	[ ! -e "$T/never" ] || fail "$what: DST was created"
}
bad "--exclude '[a-'" '--exclude' '\[a-' --exclude '[a-'
bad "--include '[a-' --exclude x" '--include' '\[a-' --include '[a-' --exclude x
bad "--files-from /nonexistent" '--files-from' '/nonexistent' --files-from /nonexistent
bad "--min-size 10Q" '--min-size' '10Q' --min-size 10Q
bad "--max-size -1" '--max-size' '-1' --max-size -1
bad "--max-age 3x" '--max-age' '3x' --max-age 3x
bad "--min-age ''" '--min-age' "(''|\"\"|empty|needs)" --min-age ''
bad "--start-time 2020-13-01" '--start-time' '2020-13-01' --start-time 2020-13-01
bad "--end-time 2020-02-30" '--end-time' '2020-02-30' --end-time 2020-02-30
bad "--end-time '2020-01-01 25:00:00'" '--end-time' '2020-01-01 25:00:00' --end-time '2020-01-01 25:00:00'
bad "--limit x" '--limit' "(^|[^a-z])x([^a-z]|$)" --limit x
bad "--min-size 2K --max-size 1K" '--min-size.*--max-size|--max-size.*--min-size' '(2K|2048).*(1K|1024)' \
	--min-size 2K --max-size 1K

# 10. --include without any --exclude: a warning naming --include, the run
#     goes on and selects everything
E2E_CONTEXT="--include alone"
sm --dirs --dry --include x "$S/" "$E/"
expect_rc 0 "--include alone"
expect_plan "--include alone" "${ALL[@]}"
n=$(err_lines | grep -c -- '--include' || true)
[ "$n" -eq 1 ] || fail "--include alone: expected one warning line naming --include, got $n: $(err_lines | head -3)"
err_lines | grep -- '--include' | grep -qi warning || fail "--include alone: not a warning: $(err_lines | grep -- --include)"
