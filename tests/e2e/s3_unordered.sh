#!/usr/bin/env bash
# Stores that list out of byte order (SPEC.md §2): syncmgr notices, says so
# once per store, lists such a store level by level, and syncs exactly what
# it would from a store in byte order; never an error, never a skip.
#  - s3rver (lists in directory order: "a/x" before "a-b") and radosgw
#    behind a proxy that shuffles every page of a flat listing: upload,
#    download, --delete-dst and --update round trips of a random tree with
#    the order-sensitive names (a-b, a.b/, a/, a0) end equal to SRC;
#  - a switch after N keys (the proxy swaps two keys on page 3 only; s3rver
#    with the disorder after 2500 keys) lists every key once (--dry's keys
#    against find), and --debug says where it switched;
#  - on s3rver a page that ends inside "a/" while "a-b" comes after the
#    whole of "a/" (s3rver then never lists "a-b" in a flat listing): the
#    key is found all the same;
#  - a key held back to the next page (it shows its disorder only after keys
#    that sort after it were given): the run says which store and that keys
#    were not synced, fails, and deletes nothing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init s3_unordered

WARN="lists keys out of byte order: listing it level by level"

# files DIR: the relative paths of the files of a local tree, sorted
files() { (cd "$1" && find . -type f | sed 's|^\./||' | LC_ALL=C sort); }

# warned SIDE WHAT: exactly one warning that SIDE's store lists out of order
warned() {
	local n
	n=$(grep -c -- "$WARN" "$T/sm.err" || true)
	[ "$n" -eq 1 ] || fail "$2: expected one warning that the store lists out of byte order, got $n"
	grep -q "^syncmgr: warning: $1: s3: .*$WARN\$" "$T/sm.err" ||
		fail "$2: the warning does not name $1's store: $(grep -- "$WARN" "$T/sm.err")"
}

# not_warned WHAT
not_warned() {
	! grep -q -- "$WARN" "$T/sm.err" || fail "$1: a warning about the order: $(grep -- "$WARN" "$T/sm.err")"
}

# no_errors WHAT: nothing but warnings on stderr (the summary aside)
no_errors() {
	local bad
	bad=$(err_lines | grep -v '^syncmgr: warning: ' || true)
	[ -z "$bad" ] || fail "$1: unexpected messages: $bad"
}

# roundtrip NAME URL: the four round trips against the store URL
# (a bucket URL ending in '/'); the tree is $T/src.
roundtrip() {
	local name=$1 u=$2 n
	local src=$T/src-$name back=$T/back-$name
	cp -a "$T/src" "$src"
	n=$(files "$src" | wc -l)

	sm --no-https "$src/" "$u$name/"
	expect_rc 0 "$name: local -> S3"
	expect_field copied "$n" "$name: local -> S3"
	no_errors "$name: local -> S3"
	sm --no-https "$src/" "$u$name/"
	expect_rc 0 "$name: local -> S3, no change"
	expect_field copied 0 "$name: local -> S3, no change"
	expect_field extra 0 "$name: local -> S3, no change"
	warned DST "$name: local -> S3, no change"
	no_errors "$name: local -> S3, no change"

	sm --no-https "$u$name/" "$back/"
	expect_rc 0 "$name: S3 -> local"
	warned SRC "$name: S3 -> local"
	no_errors "$name: S3 -> local"
	expect_field found "$n" "$name: S3 -> local"
	expect_same_tree "$src" "$back" --no-dirs --mtime "$name: local -> S3 -> local"

	# --delete-dst: some files gone, some new ones with the tricky names
	local gone=0 f
	while IFS= read -r f; do
		rm -- "$src/$f"
		gone=$((gone + 1))
	done < <(files "$src" | awk 'NR % 9 == 4 && !/(^|\/)dirfile$/')
	for f in a-b-new a.b/new a/new a0new a/a-b/new2 "a/a b-new"; do
		mkdir -p "$(dirname "$src/$f")"
		echo "$f" >"$src/$f"
	done
	sm --no-https --delete-dst "$src/" "$u$name/"
	expect_rc 0 "$name: --delete-dst"
	expect_field deleted "$gone" "$name: --delete-dst"
	expect_field copied 6 "$name: --delete-dst"
	warned DST "$name: --delete-dst"
	no_errors "$name: --delete-dst"
	sm --no-https --delete-dst "$u$name/" "$back/"
	expect_rc 0 "$name: --delete-dst down"
	expect_field deleted "$gone" "$name: --delete-dst down"
	expect_field copied 6 "$name: --delete-dst down"
	warned SRC "$name: --delete-dst down"
	expect_same_tree "$src" "$back" --no-dirs --mtime "$name: after --delete-dst both ways"

	# --update: a newer SRC file goes up; an older local copy is refreshed
	printf 'UPDATED' >"$src/a-b"
	touch -d '@1900000000' "$src/a-b"
	sm --no-https --update "$src/" "$u$name/"
	expect_rc 0 "$name: --update up"
	expect_field copied 1 "$name: --update up"
	warned DST "$name: --update up"
	touch -d '@1000000000' "$back/a-b"
	sm --no-https --update "$u$name/" "$back/"
	expect_rc 0 "$name: --update down"
	expect_field copied 1 "$name: --update down"
	warned SRC "$name: --update down"
	[ "$(cat "$back/a-b")" = UPDATED ] || fail "$name: the newer a-b did not arrive"
	sm --no-https --update "$u$name/" "$back/"
	expect_rc 0 "$name: --update, no change"
	expect_field copied 0 "$name: --update, no change"
	expect_same_tree "$src" "$back" --no-dirs --mtime "$name: --update round trip"
}

# dry_keys URL WHAT: the keys a download of URL into an empty dir would
# copy (--dry), sorted; fails unless the run succeeds
dry_keys() {
	sm --no-https --dry --debug "$1" "$T/nowhere/"
	expect_rc 0 "$2"
	sed -n 's/^copy //p' "$T/sm.out" | LC_ALL=C sort
}

# ---- s3rver: a store in directory order ----
s3rver_start
aws s3api create-bucket --bucket unordered >/dev/null
U3="s3://$S3RVER_CRED@$S3RVER_HP/unordered/"

gentree gen --seed 13 --out "$T/src" --files 400 --no-newline >/dev/null
s3rver_tree "$T/src"
roundtrip s3rver "$U3"

# A switch after 2000 keys: 2500 names that both orders agree on, then dir
# z/ before z-b (s3rver walks z/ first): the third page shows it.
mkdir -p "$T/late/z"
for i in $(seq -w 0 2499); do echo "$i" >"$T/late/k$i"; done
echo x >"$T/late/z/x"
echo y >"$T/late/z-b"
echo y >"$T/late/z.c"
sm --no-https "$T/late/" "${U3}late/"
expect_rc 0 "late disorder: upload"
files "$T/late" >"$T/want.late"
dry_keys "${U3}late/" "late disorder: the listed keys" >"$T/got.late"
diff "$T/want.late" "$T/got.late" >"$T/diff" ||
	fail "late disorder: the keys listed differ from the tree: $(head -5 "$T/diff")"
warned SRC "late disorder"
grep -q "switches to level by level after 2000 keys" "$T/sm.err" ||
	fail "late disorder: --debug does not tell the switch after 2000 keys: $(grep -i 'level by level' "$T/sm.err")"

# A page boundary inside a/ (1500 keys) with a-b after the whole of a/ in
# s3rver's walk: no page shows disorder, and s3rver's second page starts
# after "a/k0999" by value, so a flat listing never sees a-b.
mkdir -p "$T/edge/a"
for i in $(seq -w 0 1499); do echo "$i" >"$T/edge/a/k$i"; done
echo ab >"$T/edge/a-b"
echo adot >"$T/edge/a.b"
echo a0 >"$T/edge/a0"
sm --no-https "$T/edge/" "${U3}edge/"
expect_rc 0 "boundary: upload"
files "$T/edge" >"$T/want.edge"
dry_keys "${U3}edge/" "boundary: the listed keys" >"$T/got.edge"
diff "$T/want.edge" "$T/got.edge" >"$T/diff" ||
	fail "boundary: the keys listed differ from the tree: $(head -5 "$T/diff")"
warned SRC "boundary"
grep -q "'a-b' sorts before 'a/k0999' but was not listed before it" "$T/sm.err" ||
	fail "boundary: --debug does not say why it switched: $(grep -i 'level by level' "$T/sm.err")"

# ---- radosgw behind a proxy that reorders flat listings ----
rgw_start
aws s3api create-bucket --bucket unordered >/dev/null
UR="s3://$CRED@$HP/unordered/"
start_proxy shuffle --p503 0 --preset 0 --shuffle-list --seed 13
UP="s3://$CRED@$PROXY/unordered/"
rm -rf "$T/src"
gentree gen --seed 14 --out "$T/src" --files 1200 --no-newline >/dev/null
find "$T/src" -type l -delete
roundtrip shuffled "$UP"
stop_proxy shuffle
[ "$(pstat shuffle reordered)" -gt 0 ] || fail "the shuffling proxy reordered no listing"

# the same tree straight from radosgw: in byte order, nothing to say
sm --no-https "$UR"shuffled/ "$T/back-shuffled/"
expect_rc 0 "radosgw without the proxy"
expect_field copied 0 "radosgw without the proxy"
not_warned "radosgw without the proxy"

# A switch after 2000 keys: two keys swapped on the third page only.
sm --no-https "$T/late/" "${UR}late/"
expect_rc 0 "radosgw: late tree up"
start_proxy swap --p503 0 --preset 0 --swap-list-page 3
dry_keys "s3://$CRED@$PROXY/unordered/late/" "swap on page 3: the listed keys" >"$T/got.swap"
diff "$T/want.late" "$T/got.swap" >"$T/diff" ||
	fail "swap on page 3: the keys listed differ from the tree: $(head -5 "$T/diff")"
warned SRC "swap on page 3"
grep -q "switches to level by level after 2000 keys" "$T/sm.err" ||
	fail "swap on page 3: --debug does not tell the switch after 2000 keys: $(grep -i 'level by level' "$T/sm.err")"
stop_proxy swap
[ "$(pstat swap reordered)" -eq 1 ] || fail "the proxy swapped keys on $(pstat swap reordered) pages, not 1"

# A key held back from page 1 to page 2: keys after it were given before
# it showed. The run says so, fails, and deletes nothing on DST.
sm --no-https "${UR}late/" "$T/late-copy/"
expect_rc 0 "late tree down"
start_proxy hold --p503 0 --preset 0 --late-list-key
sm --no-https --delete-dst "s3://$CRED@$PROXY/unordered/late/" "$T/late-copy/"
expect_rc 1 "a key held back to page 2"
grep -q "SRC: s3: .*lists keys out of byte order, which showed only after 'k0999': keys before it were left out (1), they are not synced by this run" "$T/sm.err" ||
	fail "a key held back to page 2: no message about the key not synced: $(cat "$T/sm.err")"
expect_field deleted 0 "a key held back to page 2"
stop_proxy hold
expect_same_tree "$T/late" "$T/late-copy" --no-dirs "a key held back to page 2: DST unchanged"

# ---- keys that are odd as paths, and a level larger than a page, listed
# level by level on both sides (the shuffling proxy in front of SRC and DST):
# "/lead", "e//f", "c/./d", "a/../b", ".", ".." and "x/" holding bytes are
# keys like any other (an empty name is a level too), and a level of 2500
# keys is read once per run however many range tasks cut it; with runs
# spilled to TMPDIR every 300 names (SYNCMGR_TEST_DIR_SPILL) as well
aws s3api create-bucket --bucket odd >/dev/null
ODD=("/lead" "e//f" "e//g/h" "c/./d" "a/../b" "." ".." "x/" "y//" "a-b" "a/z" "a0")
for k in "${ODD[@]}"; do
	printf 'data %s\n' "$k" >"$T/body"
	aws s3api put-object --bucket odd --key "src/$k" --body "$T/body" >/dev/null
done
sm --no-https "$T/late/" "s3://$CRED@$HP/odd/src/big/"
expect_rc 0 "odd keys: the large level up"
# keys KEYFILE PREFIX: the keys under PREFIX of bucket odd, sorted, into KEYFILE
keys() {
	aws s3api list-objects-v2 --bucket odd --prefix "$2" --query 'Contents[].Key' --output text |
		tr '\t' '\n' | sed "s|^$2||" | LC_ALL=C sort >"$1"
}
keys "$T/want.odd" src/
[ "$(wc -l <"$T/want.odd")" -eq $((${#ODD[@]} + 2503)) ] ||
	fail "odd keys: the SRC prefix holds $(wc -l <"$T/want.odd") keys"
start_proxy oddsh --p503 0 --preset 0 --shuffle-list --seed 21
UO="s3://$CRED@$PROXY/odd"
for spill in "" 300; do
	SYNCMGR_TEST_DIR_SPILL=$spill sm --no-https --debug "$UO/src/" "$UO/dst$spill/"
	expect_rc 0 "odd keys level by level (spill '$spill'): S3 -> S3"
	expect_field copied "$(wc -l <"$T/want.odd")" "odd keys level by level (spill '$spill')"
	keys "$T/got.odd" "dst$spill/"
	diff "$T/want.odd" "$T/got.odd" >"$T/diff" ||
		fail "odd keys level by level (spill '$spill'): DST differs from SRC: $(head -5 "$T/diff")"
	if [ -n "$spill" ]; then
		grep -q "^syncmgr: 's3://$PROXY/odd/src/big/': 25[0-9][0-9] names sorted on disk" "$T/sm.err" ||
			fail "odd keys level by level: the level of 2503 keys was not sorted on disk: $(grep 'sorted on disk' "$T/sm.err")"
	fi
	# a second run finds everything in place, and reads each DST level once
	SYNCMGR_TEST_DIR_SPILL=$spill sm --no-https --debug -p 8 "$UO/src/" "$UO/dst$spill/"
	expect_rc 0 "odd keys level by level (spill '$spill'): no change"
	expect_field copied 0 "odd keys level by level (spill '$spill'): no change"
	grep -q "^syncmgr: debug: DST: s3: listing cache: .* served again" "$T/sm.err" ||
		fail "odd keys level by level (spill '$spill'): DST levels did not come from the listing cache"
done
# --delete-dst of keys only DST has, among the odd ones
for k in "e//zz" "c/./e" "big/k9999" "zz/"; do
	aws s3api put-object --bucket odd --key "dst/$k" --body "$T/body" >/dev/null
done
sm --no-https --delete-dst "$UO/src/" "$UO/dst/"
expect_rc 0 "odd keys level by level: --delete-dst"
expect_field deleted 4 "odd keys level by level: --delete-dst"
keys "$T/got.odd" dst/
diff "$T/want.odd" "$T/got.odd" >"$T/diff" ||
	fail "odd keys level by level: --delete-dst left DST unlike SRC: $(head -5 "$T/diff")"
stop_proxy oddsh
[ "$(pstat oddsh reordered)" -gt 0 ] || fail "the shuffling proxy reordered no listing of the odd keys"
