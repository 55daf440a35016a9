#!/bin/bash
# Global byte order: names that sort differently once '/' is appended to
# directory names (a-b < a.b/ < a/ < a0 < ab/), UTF-8, spaces, a newline, and a
# directory of ~3100 entries (so task boundaries fall inside it), with DST-only
# keys interleaved everywhere.  With --dirs --links --delete-dst, at -p 1, -p 8
# and with parallel listing, DST must end equal to SRC, exactly the DST-only
# keys must be deleted, and a second pass must copy and delete nothing.  The
# summary's counts and sizes are computed from the trees on disk.
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
# what the first pass copies: the 5 files and the dir removed above and the 3
# files of another size (in the dry run's plan a newline shows as '\n')
copied_keys=("big/0500" "big/0097/inside" "a"$'\n'"b" "x/a-b/inner" "a.b/a.b/x" "ab/empty/"
	"big/1234" "a-b" "a b")
expected_copies=$(printf 'copy %s\n' big/0500 big/0097/inside 'a\nb' x/a-b/inner a.b/a.b/x ab/empty/ \
	big/1234 a-b "a b" | LC_ALL=C sort)
want_copied=${#copied_keys[@]}
want_deleted=$((${#dst_only_files[@]} + ${#dst_only_dirs[@]}))
nsrc=$(find "$S" -mindepth 1 -printf x | wc -c)

# The sizes in the summary, from the tree on disk (not from syncmgr): a file
# counts its size, a symlink (--links) the length of its target, a directory
# 0; printed as the summary prints them (B below 1 KiB, then KiB, MiB, ... of
# 1024, one decimal below 10).
# bytes_of ROOT [KEY...]: the bytes of the KEYs below ROOT (all keys if none)
bytes_of() {
	"$PY" - "$@" <<'EOF'
import os, stat, sys
root, keys = sys.argv[1], sys.argv[2:]
def size(p):
    st = os.lstat(p)
    if stat.S_ISREG(st.st_mode):
        return st.st_size
    if stat.S_ISLNK(st.st_mode):
        return len(os.fsencode(os.readlink(p)))
    if stat.S_ISDIR(st.st_mode):
        return 0
    sys.exit("bytes_of: %r is neither a file, a symlink nor a directory" % p)
if keys:
    print(sum(size(os.path.join(root, k)) for k in keys))
else:
    total = 0
    for d, dirs, files in os.walk(root):
        total += sum(size(os.path.join(d, n)) for n in dirs + files)
    print(total)
EOF
}
fmt_size() {
	"$PY" - "$1" <<'EOF'
import sys
b = int(sys.argv[1])
if b < 1024:
    print("%d B" % b)
else:
    v, u = b / 1024.0, 0
    while v >= 1024.0 and u < 5:
        v, u = v / 1024.0, u + 1
    print(("%.1f %s" if v < 10 else "%.0f %s") % (v, ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"][u]))
EOF
}
all_bytes=$(bytes_of "$S")
copied_bytes=$(bytes_of "$S" "${copied_keys[@]}")
[ "$copied_bytes" -gt 0 ] && [ "$all_bytes" -gt "$copied_bytes" ] ||
	fail "bytes_of: implausible byte counts (all $all_bytes, copied $copied_bytes)"
want_copied_size=$(fmt_size "$copied_bytes")
want_skipped_size=$(fmt_size $((all_bytes - copied_bytes)))
want_all_size=$(fmt_size "$all_bytes")
note "SRC: $all_bytes bytes ($want_all_size); the first pass copies $copied_bytes ($want_copied_size)"

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
	got=$(grep '^copy ' "$T/sm.out" | LC_ALL=C sort || true)
	[ "$got" = "$expected_copies" ] || fail "dry run $opts: planned copies differ (< expected, > got):
$(diff <(echo "$expected_copies") <(echo "$got") | grep '^[<>]' | sed 's/^/    /')"
	expect_summary "Found: $nsrc, excluded: 0 (0 B), skipped: $((nsrc - want_copied)) ($want_skipped_size), copied: $want_copied ($want_copied_size), extra: 0 (0 B), deleted: $want_deleted" \
		"dry run $opts"

	# shellcheck disable=SC2086
	sm --dirs --links --delete-dst $opts "$S/" "$D/"
	expect_rc 0 "first pass $opts"
	expect_summary "Found: $nsrc, excluded: 0 (0 B), skipped: $((nsrc - want_copied)) ($want_skipped_size), copied: $want_copied ($want_copied_size), extra: 0 (0 B), deleted: $want_deleted" \
		"first pass $opts"
	expect_same_tree "$S" "$D" "first pass $opts"
	expect_no_temp_files "$D" "first pass $opts"

	# shellcheck disable=SC2086
	sm --dirs --links --delete-dst $opts "$S/" "$D/"
	expect_rc 0 "second pass $opts"
	expect_summary "Found: $nsrc, excluded: 0 (0 B), skipped: $nsrc ($want_all_size), copied: 0 (0 B), extra: 0 (0 B)" \
		"second pass $opts"
	expect_same_tree "$S" "$D" "second pass $opts"
done

# default mode (files only, symlinks followed) into an empty DST, against rsync -L
E2E_CONTEXT="default mode"
sm -p 8 "$S/" "$T/plain/"
expect_rc 0 "default mode"
rsync -r -L "$S/" "$T/plain-rsync/" || fail "rsync -r -L failed"
expect_same_tree --no-dirs "$T/plain" "$T/plain-rsync" "default mode vs rsync -r -L"
nplain=$(find "$T/plain-rsync" -type f -printf x | wc -c)
plain_size=$(fmt_size "$(bytes_of "$T/plain-rsync")")
expect_summary "Found: $nplain, excluded: 0 (0 B), skipped: 0 (0 B), copied: $nplain ($plain_size), extra: 0 (0 B)" \
	"default mode (the files rsync -r -L copies)"
sm -p 1 "$S/" "$T/plain/"
expect_rc 0 "default mode, second pass"
expect_summary "Found: $nplain, excluded: 0 (0 B), skipped: $nplain ($plain_size), copied: 0 (0 B), extra: 0 (0 B)" \
	"default mode, second pass"
