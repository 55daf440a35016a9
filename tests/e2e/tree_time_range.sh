#!/bin/bash
# Issue 24 item 5: mtimes outside what int64 nanoseconds hold (1677-09-21
# to 2262-04-11) never wrap around into another date (1600-01-01 became
# 2184-07-20): such a time is kept as the nearest limit, with a warning
# naming each key; times inside the range stay exact; a second run (with
# --update too) has nothing to do. On tmpfs, which keeps any time.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init tree_time_range
need_root

M=$T/m
mkdir -p "$M"
mount -t tmpfs -o size=16m tmpfs "$M" || fail "cannot mount a tmpfs on $M"
on_exit "umount '$M'"
S=$M/src
mkdir -p "$S/old-dir"
for k in old new mid old-dir/in; do echo "$k" >"$S/$k"; done
touch -d '1600-01-01 00:00:00 UTC' "$S/old" "$S/old-dir"
touch -d '2300-06-01 00:00:00 UTC' "$S/new"
touch -d '1700-01-01 00:00:00.5 UTC' "$S/mid"
year() { date -u -d "@$(stat -c %Y "$1")" +%Y-%m-%d; }
[ "$(year "$S/old")" = 1600-01-01 ] || fail "this tmpfs does not keep 1600-01-01 ($(year "$S/old"))"

for opts in "" "--dirs --perms"; do
	E2E_CONTEXT="options '$opts'"
	rm -rf "$M/dst"
	# shellcheck disable=SC2086
	sm $opts "$S/" "$M/dst/"
	expect_rc 0 "first run"
	for k in old new; do
		grep -q "warning: SRC: '$k': mtime is .* what syncmgr keeps (1677-09-21 to 2262-04-11)" "$T/sm.err" ||
			fail "no warning naming '$k': $(err_lines)"
	done
	[ "$(year "$M/dst/old")" = 1677-09-21 ] || fail "1600-01-01 arrived as $(year "$M/dst/old")"
	[ "$(year "$M/dst/new")" = 2262-04-11 ] || fail "2300-06-01 arrived as $(year "$M/dst/new")"
	[ "$(stat -c %y "$M/dst/mid")" = "$(stat -c %y "$S/mid")" ] ||
		fail "1700-01-01 arrived as $(stat -c %y "$M/dst/mid")"
	if [ -n "$opts" ]; then
		grep -q "warning: SRC: 'old-dir/': mtime is before" "$T/sm.err" || fail "no warning naming 'old-dir/': $(err_lines)"
		[ "$(year "$M/dst/old-dir")" = 1677-09-21 ] || fail "the 1600 directory arrived as $(year "$M/dst/old-dir")"
	fi
	snap=$(tree_snapshot "$M/dst")
	for again in "" --update; do
		# shellcheck disable=SC2086
		sm $opts $again "$S/" "$M/dst/"
		expect_rc 0 "run again $again"
		expect_field copied 0 "run again $again"
		[ "$(tree_snapshot "$M/dst")" = "$snap" ] || fail "running again $again changed DST"
	done
done
