#!/bin/bash
# Issue 24 item 9: only names syncmgr made are taken for its temp files.
# Its temp names carry check digits (".~sm" + 8 hex + 8 hex of check + "."
# + name): a user's file named like an old temp name (".~sm0badcafe.notes")
# or with a wrong check is copied and counted like any other key; a real
# temp file an interrupted run left is not copied, but counted (found and
# excluded on SRC, extra on DST, deleted with --delete-dst) and named in a
# warning.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init tree_temp_names

# debris_name NAME: a temp name of another run for NAME (store.h)
debris_name() {
	"$PY" - "$1" <<'EOF'
import sys
hex8 = "0001beef"
h = 2166136261
for b in b"syncmgr-tmp:" + hex8.encode():
    h = ((h ^ b) * 16777619) & 0xffffffff
print(".~sm%s%08x.%s" % (hex8, h, sys.argv[1]))
EOF
}
S=$T/src
mkdir -p "$S/d"
echo notes >"$S/.~sm0badcafe.notes"
echo wrong >"$S/d/.~sm0badcafe12345678.x"
echo plain >"$S/plain"
left=$(debris_name half.bin)
printf 'half' >"$S/$left"

sm "$S/" "$T/dst/"
expect_rc 0 "first run"
[ "$(cat "$T/dst/.~sm0badcafe.notes")" = notes ] || fail "the user's '.~sm0badcafe.notes' was not copied"
[ -f "$T/dst/d/.~sm0badcafe12345678.x" ] || fail "a name with a wrong check was not copied"
[ ! -e "$T/dst/$left" ] || fail "a temp file an interrupted run left was copied"
grep -q "SRC: '$left' is a temp file an interrupted run left" "$T/sm.err" || fail "no warning naming '$left': $(err_lines)"
# found: the 3 keys and the temp file; excluded: the temp file
expect_summary "Found: 4, excluded: 1 (4 B), skipped: 0 (0 B), copied: 3 (18 B), extra: 0 (0 B)" "first run"

# on DST: kept and counted without --delete-dst, removed with it
printf 'half' >"$T/dst/d/$left"
sm "$S/" "$T/dst/"
expect_rc 0 "a temp file on DST"
grep -q "DST: 'd/$left' is a temp file an interrupted run left" "$T/sm.err" || fail "no warning naming 'd/$left': $(err_lines)"
expect_field extra 1 "a temp file on DST"
sm --delete-dst "$S/" "$T/dst/"
expect_rc 0 "--delete-dst"
[ ! -e "$T/dst/d/$left" ] || fail "--delete-dst kept the temp file"
expect_field deleted 1 "--delete-dst"
[ -f "$T/dst/.~sm0badcafe.notes" ] || fail "--delete-dst removed the user's file"
sm --delete-dst "$S/" "$T/dst/"
expect_field copied 0 "a run after"
expect_field deleted 0 "a run after"
