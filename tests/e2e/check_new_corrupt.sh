#!/usr/bin/env bash
# --check-new catches a copy that arrived corrupted. The hidden test option
# --test-fault dst=put:2:corrupt makes DST's second put store its data with
# the first byte's lowest bit flipped while reporting success
# (sm_store_set_fault in common/store/store.c); -p 1 makes that the second key
# in order, 'b.bin'.
#  - without --check-new the damage lands silently: exit 0, nothing failed, and
#    DST differs from SRC in exactly that file, by that one bit (the fault
#    works, and only a re-read can see it);
#  - with --check-new (and with --check-all, which verifies new copies too)
#    the run names the key, counts it failed (summary: copied 4, checked 4,
#    failed 1) and exits 1; the other keys arrive intact;
#  - the same command run again, without the fault, repairs the key: exit 0,
#    one copy, verified, DST equal to SRC.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init check_new_corrupt

S=$T/src
mkdir -p "$S/c"
head -c 5000 /dev/urandom >"$S/a.txt"
head -c 300000 /dev/urandom >"$S/b.bin" # the second put
head -c 1 /dev/urandom >"$S/c/d"
head -c 3145728 /dev/urandom >"$S/c/e.big"
head -c 70000 /dev/urandom >"$S/f"
BAD=b.bin

# diff_keys A B: the files that differ between trees A and B, one a line, as
# "KEY SIZE_A SIZE_B BYTES_DIFFERENT FIRST_DIFF_OFFSET XOR_AT_IT"
diff_keys() {
	"$PY" - "$1" "$2" <<'EOF'
import os, sys
a, b = sys.argv[1], sys.argv[2]
def files(root):
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out
A, B = files(a), files(b)
for k in sorted(set(A) | set(B)):
    x, y = A.get(k), B.get(k)
    if x == y:
        continue
    if x is None or y is None:
        print(k, "missing-in-" + ("a" if x is None else "b"))
        continue
    diff = [i for i in range(min(len(x), len(y))) if x[i] != y[i]]
    first = diff[0] if diff else -1
    print(k, len(x), len(y), len(diff), first, x[first] ^ y[first] if diff else 0)
EOF
}

# 1. the fault without --check-new: the corruption lands silently
sm -p 1 --test-fault dst=put:2:corrupt "$S/" "$T/silent/"
expect_rc 0 "corrupted put without --check-new"
expect_field copied 5 "corrupted put without --check-new"
expect_field failed 0 "corrupted put without --check-new"
got=$(diff_keys "$S" "$T/silent")
[ "$got" = "$BAD 300000 300000 1 0 1" ] ||
	fail "put:2:corrupt should flip the lowest bit of the first byte of '$BAD' alone (as KEY SIZE SIZE NDIFF OFFSET XOR); DST differs by:
    ${got:-nothing}"

# 2. --check-new (and --check-all) catch it: the key fails, the rest arrives
for opt in --check-new --check-all; do
	E2E_CONTEXT="$opt"
	D=$T/dst${opt#--check}
	sm -p 1 "$opt" --test-fault dst=put:2:corrupt "$S/" "$D/"
	expect_rc 1 "corrupted put with $opt"
	expect_field failed 1 "corrupted put with $opt"
	expect_field copied 4 "corrupted put with $opt"
	expect_field checked 4 "corrupted put with $opt"
	err_lines | grep -qF "'$BAD' differs between SRC and DST" ||
		fail "$opt: no error names '$BAD' as differing; stderr: $(err_lines | head -5)"
	[ "$(err_lines | grep -c "differs between SRC and DST")" = 1 ] ||
		fail "$opt: more than one key reported as differing: $(err_lines | head -5)"
	got=$(diff_keys "$S" "$D" | grep -v "^$BAD " || true)
	[ -z "$got" ] || fail "$opt: keys other than '$BAD' differ on DST: $got"
	expect_no_temp_files "$D" "$opt"

	# 3. the same command again, without the fault, repairs the key
	sm -p 1 "$opt" "$S/" "$D/"
	expect_rc 0 "$opt run after the failed verification"
	expect_field copied 1 "$opt run after the failed verification (only '$BAD' is copied again)"
	expect_field failed 0 "$opt run after the failed verification"
	expect_same_tree "$S" "$D" "$opt run after the failed verification: '$BAD' is repaired"
done
E2E_CONTEXT=""
