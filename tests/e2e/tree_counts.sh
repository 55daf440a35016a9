#!/bin/bash
# Issue 24 item 11: honest counts. A run that stops early (DST out of
# space, --max-failure) accounts for every key it found: the summary's
# excluded + skipped + copied + failed + lost + "not done" equal "Found";
# --max-failure says that it stopped the run; --dry --perms lists the
# pending mode changes of files and directories as "chmod KEY"; --limit
# counts deletes, in key order, as juicefs sync does.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init tree_counts
need_root

accounted() { # WHAT: every key found is accounted for
	local f
	f=$(($(field excluded) + $(field skipped) + $(field copied) + $(field failed) + $(field lost) + $(field 'not done')))
	[ "$f" -eq "$(field found)" ] || fail "$1: $f keys accounted for, $(field found) found: $(summary)"
}

# 1. out of space: 7 files of 300 KiB on a 1 MiB tmpfs
M=$T/m
mkdir -p "$M" "$T/src"
mount -t tmpfs -o size=1m tmpfs "$M" || fail "cannot mount a tmpfs on $M"
on_exit "umount '$M'"
for i in 1 2 3 4 5 6 7; do head -c 300K /dev/urandom >"$T/src/f$i"; done
sm -p 1 "$T/src/" "$M/dst/"
expect_rc 1 "out of space"
grep -q "out of space" "$T/sm.err" || fail "out of space: no line saying so: $(err_lines)"
accounted "out of space"
[ "$(field 'not done')" -ge 1 ] || fail "out of space: no key 'not done': $(summary)"

# 2. --max-failure: every key unreadable to nobody
chmod 0755 "$T"
mkdir -p "$T/u/src" "$T/u/dst"
for i in $(seq 1 40); do echo "$i" >"$T/u/src/k$i"; done
chmod 0600 "$T"/u/src/k*
chown -R nobody:nogroup "$T/u/dst"
SM_AS=nobody sm -p 1 --max-failure 3 "$T/u/src/" "$T/u/dst/"
expect_rc 1 "--max-failure 3"
grep -q "keys failed (--max-failure 3): stopping" "$T/sm.err" ||
	fail "--max-failure: no line saying it stopped the run: $(err_lines | tail -5)"
accounted "--max-failure 3"
[ "$(field 'not done')" -ge 1 ] || fail "--max-failure: no key 'not done': $(summary)"

# 3. --dry --perms: pending mode changes, files and directories
mkdir -p "$T/p/src/d" "$T/p/dst/d"
echo f >"$T/p/src/d/f"
cp -p "$T/p/src/d/f" "$T/p/dst/d/f"
chmod 0600 "$T/p/src/d/f"
chmod 0700 "$T/p/src/d"
chmod 0755 "$T/p/dst/d"
sm --dry --perms --dirs "$T/p/src/" "$T/p/dst/"
expect_rc 0 "--dry --perms"
got=$({ grep '^chmod ' "$T/sm.out" || true; } | sort | tr '\n' ' ')
[ "$got" = "chmod d/ chmod d/f " ] || fail "--dry --perms listed '$got'"
[ "$(stat -c %a "$T/p/dst/d/f")" != 600 ] || fail "--dry changed a mode"
accounted "--dry --perms"

# 4. --limit counts deletes as juicefs sync does: each key copied, skipped
# or deleted takes one, in key order
mkdir -p "$T/l/src" "$T/l/dst"
for k in b d f; do echo "$k" >"$T/l/src/$k"; done
for k in a c e; do echo "$k" >"$T/l/dst/$k"; done
sm --limit 3 --delete-dst "$T/l/src/" "$T/l/dst/"
expect_rc 0 "--limit 3 --delete-dst"
expect_field copied 1 "--limit 3 --delete-dst"
expect_field deleted 2 "--limit 3 --delete-dst"
left=$(cd "$T/l/dst" && ls | tr '\n' ' ')
[ "$left" = "b e " ] || fail "--limit 3 --delete-dst: DST holds '$left', want 'b e ' (a, b, c taken in key order)"
sm --limit 3 --delete-dst "$T/l/src/" "$T/l/dst/"
expect_field skipped 1 "--limit 3 --delete-dst, again"
expect_field copied 1 "--limit 3 --delete-dst, again"
expect_field deleted 1 "--limit 3 --delete-dst, again"
left=$(cd "$T/l/dst" && ls | tr '\n' ' ')
[ "$left" = "b d " ] || fail "--limit 3 --delete-dst, again: DST holds '$left', want 'b d ' (b, d, e taken)"
