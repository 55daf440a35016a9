#!/bin/bash
# The final summary line (exact text and counts) and the exit statuses 0/1/2,
# on small trees whose counts are known in advance.
#
#   Found: N, excluded: N (SIZE), skipped: N (SIZE), copied: N (SIZE), extra: N (SIZE)
#          [, checked: N (SIZE)][, deleted: N][, failed: N][, lost: N]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init summary_exit
need_root

S=$T/src D=$T/dst
mkdir -p "$S/d" "$S/empty"
head -c 100 /dev/urandom >"$S/a"
head -c 2000 /dev/urandom >"$S/b c"
: >"$S/d/e"
head -c 5000 /dev/urandom >"$S/d/f"
# 4 files, 7100 bytes = 6.9 KiB; with --dirs also d/ and empty/: 6 keys

expect_stdout_empty() {
	[ ! -s "$T/sm.out" ] || fail "$1: expected nothing on stdout, got: $(head -c 300 "$T/sm.out")"
}

# 1. first copy
sm "$S/" "$D/"
expect_rc 0 "first copy"
expect_summary "Found: 4, excluded: 0 (0 B), skipped: 0 (0 B), copied: 4 (6.9 KiB), extra: 0 (0 B)" "first copy"
expect_stdout_empty "first copy"
expect_same_tree --no-dirs "$S" "$D" "first copy"
[ ! -e "$D/empty" ] || fail "first copy without --dirs created the empty dir 'empty/'"

# 2. nothing changed
sm "$S/" "$D/"
expect_rc 0 "second pass"
expect_summary "Found: 4, excluded: 0 (0 B), skipped: 4 (6.9 KiB), copied: 0 (0 B), extra: 0 (0 B)" "second pass"

# 3. DST-only keys are extra (without --dirs a DST-only dir is not a key)
head -c 10 /dev/urandom >"$D/x"
mkdir "$D/xd"
head -c 1 /dev/urandom >"$D/xd/y"
sm "$S/" "$D/"
expect_rc 0 "extra keys"
expect_summary "Found: 4, excluded: 0 (0 B), skipped: 4 (6.9 KiB), copied: 0 (0 B), extra: 2 (11 B)" "DST-only x, xd/y"

# 4. --dirs: directories are keys; empty/ is created, xd/ is extra
sm --dirs "$S/" "$D/"
expect_rc 0 "--dirs"
expect_summary "Found: 6, excluded: 0 (0 B), skipped: 5 (6.9 KiB), copied: 1 (0 B), extra: 3 (11 B)" "--dirs"
[ -d "$D/empty" ] || fail "--dirs did not create 'empty/'"

# 5. --check-all finds a same-size change; --delete-dst removes the 3 DST-only keys
printf 'X' | dd of="$D/a" bs=1 seek=50 conv=notrunc status=none
if cmp -s "$S/a" "$D/a"; then printf 'Y' | dd of="$D/a" bs=1 seek=50 conv=notrunc status=none; fi
sm --check-all --dirs --delete-dst "$S/" "$D/"
expect_rc 0 "--check-all --dirs --delete-dst"
expect_summary "Found: 6, excluded: 0 (0 B), skipped: 5 (6.8 KiB), copied: 1 (100 B), extra: 0 (0 B), checked: 4 (6.9 KiB), deleted: 3" \
	"--check-all --dirs --delete-dst after a same-size change of 'a'"
expect_same_tree "$S" "$D" "after --check-all --dirs --delete-dst"

# 6. --check-all on an unchanged tree: all checked, nothing copied
sm --check-all "$S/" "$D/"
expect_rc 0 "--check-all unchanged"
expect_summary "Found: 4, excluded: 0 (0 B), skipped: 4 (6.9 KiB), copied: 0 (0 B), extra: 0 (0 B), checked: 4 (6.9 KiB)" "--check-all unchanged"

# 7. -q: the summary is the only stderr line; -v: it is still the last line
sm -q "$S/" "$D/"
expect_rc 0 "-q"
expect_summary "Found: 4, excluded: 0 (0 B), skipped: 4 (6.9 KiB), copied: 0 (0 B), extra: 0 (0 B)" "-q"
[ "$(wc -l <"$T/sm.err")" -eq 1 ] || fail "-q: expected only the summary on stderr, got: $(cat "$T/sm.err")"
sm -v --delete-dst "$S/" "$D/"
expect_rc 0 "-v"
expect_summary "Found: 4, excluded: 0 (0 B), skipped: 4 (6.9 KiB), copied: 0 (0 B), extra: 0 (0 B)" "-v"

# 8. size units: B, x.y KiB below 10, whole KiB at 10 and above, MiB
S2=$T/src2 D2=$T/dst2
mkdir "$S2"
head -c 1023 /dev/urandom >"$S2/k"
sm "$S2/" "$D2/"
expect_summary "Found: 1, excluded: 0 (0 B), skipped: 0 (0 B), copied: 1 (1023 B), extra: 0 (0 B)" "1023 bytes"
head -c 1536 /dev/urandom >"$S2/l"
sm "$S2/" "$D2/"
expect_summary "Found: 2, excluded: 0 (0 B), skipped: 1 (1023 B), copied: 1 (1.5 KiB), extra: 0 (0 B)" "1536 bytes"
head -c 12000 /dev/urandom >"$S2/m"
sm "$S2/" "$D2/"
expect_summary "Found: 3, excluded: 0 (0 B), skipped: 2 (2.5 KiB), copied: 1 (12 KiB), extra: 0 (0 B)" "12000 bytes"
head -c $((3 * 1024 * 1024 + 1)) /dev/urandom >"$S2/n"
sm "$S2/" "$D2/"
expect_summary "Found: 4, excluded: 0 (0 B), skipped: 3 (14 KiB), copied: 1 (3.0 MiB), extra: 0 (0 B)" "3 MiB + 1 byte"

# 9. a single file (no trailing /)
sm "$S/b c" "$T/single"
expect_rc 0 "single file"
expect_summary "Found: 1, excluded: 0 (0 B), skipped: 0 (0 B), copied: 1 (2.0 KiB), extra: 0 (0 B)" "single file"
cmp -s "$S/b c" "$T/single" || fail "single file: '$T/single' differs from SRC 'b c'"

# 10. exit 1: a key fails (unreadable as nobody); the summary ends in failed: 1
U=$T/u
mkdir -p "$U/src" "$U/dst"
chmod 755 "$T" "$U" "$U/src"
head -c 10 /dev/urandom >"$U/src/ok1"
head -c 20 /dev/urandom >"$U/src/ok2"
head -c 30 /dev/urandom >"$U/src/secret"
chmod 644 "$U/src/ok1" "$U/src/ok2"
chmod 000 "$U/src/secret"
chown nobody "$U/dst"
SM_AS=nobody sm "$U/src/" "$U/dst/"
expect_rc 1 "unreadable file"
expect_summary "Found: 3, excluded: 0 (0 B), skipped: 0 (0 B), copied: 2 (30 B), extra: 0 (0 B), failed: 1" "unreadable file"
grep -q "^syncmgr: .*secret" "$T/sm.err" || fail "unreadable file: no 'syncmgr: ' error naming 'secret' on stderr"

# 11. exit 1: SRC missing
sm "$T/missing/" "$T/dst3/"
expect_rc 1 "missing SRC"

# 12. exit 2: usage errors; no summary line for those
for args in "--bogus-option $S/ $T/dst4/" "$S/ $T/dst4" "--threads 0 $S/ $T/dst4/" "$S/" ""; do
	# shellcheck disable=SC2086
	sm $args
	expect_rc 2 "usage error '$args'"
	[ "$(grep -c '^Found: ' "$T/sm.err" || true)" = 0 ] || fail "usage error '$args' printed a summary line"
done
[ ! -e "$T/dst4" ] || fail "a usage error created DST"

# 13. exit 0: --help and --version
sm --help
expect_rc 0 "--help"
grep -q -- "--delete-dst" "$T/sm.out" || fail "--help does not list --delete-dst on stdout"
sm --version
expect_rc 0 "--version"
[ -s "$T/sm.out" ] || fail "--version printed nothing on stdout"
