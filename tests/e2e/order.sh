#!/bin/bash
# Global byte order: names that sort differently once '/' is appended to
# directory names (a-b < a.b/ < a/ < a0 < ab/), UTF-8, spaces, a newline, and a
# directory of ~3100 entries (so task boundaries fall inside it), with DST-only
# keys interleaved everywhere.  With --dirs --links --delete-dst, at -p 1, -p 8
# and with parallel listing, DST must end equal to SRC, exactly the DST-only
# keys must be deleted, and a second pass must copy and delete nothing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init order

S=$T/src B=$T/dst-base
gentree order --out "$S" --many 3000
cp -a "$S" "$B"

# DST-only keys, interleaved with SRC keys in byte order
dst_only_files=("a.c" "a/zz" "a/a.b/x" "big/0100-b" "big/0097.b" "big/00971" "big/2999x"
	"big/3000" "big/0031/sub/f" "a.a/f" "x/a-c" "日本語" "zzz-last" "a b c" "0-")
dst_only_dirs=("big/0031/sub/" "a.a/")
for k in "${dst_only_files[@]}"; do
	mkdir -p "$(dirname "$B/$k")"
	printf 'dst only %s\n' "$k" >"$B/$k"
done
ln -s a.c "$B/a.c.lnk"
dst_only_files+=("a.c.lnk")
# SRC keys missing on DST (to be copied) and keys with another size
rm -f "$B/big/0500" "$B/big/0097/inside" "$B/a"$'\n'"b" "$B/x/a-b/inner" "$B/a.b/a.b/x"
rmdir "$B/ab/empty"
for k in big/1234 a-b "a b"; do printf 'longer content\n' >>"$B/$k"; done
want_copied=9
want_deleted=$((${#dst_only_files[@]} + ${#dst_only_dirs[@]}))
nsrc=$(find "$S" -mindepth 1 -printf x | wc -c)

expected_deletes=$(for k in "${dst_only_files[@]}" "${dst_only_dirs[@]}"; do echo "delete $k"; done | LC_ALL=C sort)

n=0
for opts in "-p 1" "-p 8" "-p 8 --list-threads 4 --list-depth 2"; do
	n=$((n + 1))
	D=$T/dst$n
	rm -rf "$D"
	cp -a "$B" "$D"
	E2E_CONTEXT="options '$opts'"
	# shellcheck disable=SC2086
	sm --dry --dirs --links --delete-dst $opts "$S/" "$D/"
	expect_rc 0 "dry run $opts"
	got=$(grep '^delete ' "$T/sm.out" | LC_ALL=C sort || true)
	[ "$got" = "$expected_deletes" ] || fail "dry run $opts: planned deletes differ (< expected, > got):
$(diff <(echo "$expected_deletes") <(echo "$got") | grep '^[<>]' | sed 's/^/    /')"
	ncopy=$(grep -c '^copy ' "$T/sm.out" || true)
	[ "$ncopy" -eq "$want_copied" ] || fail "dry run $opts: $ncopy copy lines, expected $want_copied: $(grep '^copy ' "$T/sm.out" | tr '\n' '|')"

	# shellcheck disable=SC2086
	sm --dirs --links --delete-dst $opts "$S/" "$D/"
	expect_rc 0 "first pass $opts"
	expect_summary "Found: $nsrc, excluded: 0 (0 B), skipped: $((nsrc - want_copied)) ($(summary | sed -E 's/.*skipped: [0-9]+ \(([^)]*)\).*/\1/')), copied: $want_copied ($(summary | sed -E 's/.*copied: [0-9]+ \(([^)]*)\).*/\1/')), extra: 0 (0 B), deleted: $want_deleted" \
		"first pass $opts"
	expect_same_tree "$S" "$D" "first pass $opts"
	expect_no_temp_files "$D" "first pass $opts"

	# shellcheck disable=SC2086
	sm --dirs --links --delete-dst $opts "$S/" "$D/"
	expect_rc 0 "second pass $opts"
	expect_field found "$nsrc" "second pass $opts"
	expect_field copied 0 "second pass $opts"
	expect_field skipped "$nsrc" "second pass $opts"
	expect_field deleted 0 "second pass $opts"
	expect_field extra 0 "second pass $opts"
	expect_same_tree "$S" "$D" "second pass $opts"
done

# default mode (files only, symlinks followed) into an empty DST, against rsync -L
E2E_CONTEXT="default mode"
sm -p 8 "$S/" "$T/plain/"
expect_rc 0 "default mode"
rsync -r -L "$S/" "$T/plain-rsync/" || fail "rsync -r -L failed"
expect_same_tree --no-dirs "$T/plain" "$T/plain-rsync" "default mode vs rsync -r -L"
sm -p 1 "$S/" "$T/plain/"
expect_field copied 0 "default mode, second pass"
