#!/usr/bin/env bash
# An S3 object replaced while syncmgr reads it in parallel ranged GETs.
#
# syncmgr reads an object larger than 8 MiB (S3_CHUNK in common/store/s3.c)
# in 8 MiB ranged GETs: the first alone, the rest up to 4 at once, each
# pinned with If-Match to the ETag of the first reply. An object replaced
# between two ranges then answers 412 (SM_ECHANGED): the read fails instead
# of mixing versions, and worker/xfer.c copies the key once more from
# scratch, unless --check-change asks to fail a key whose SRC changed.
#
# The replacement is staged, not raced: tests/servers/fault_proxy.py holds
# its reply to the first GET of the object (already answered by radosgw with
# the old version's first 8 MiB and ETag) until the test has overwritten the
# object, directly on radosgw, with other bytes of the same size. Then:
#  A. by default the run succeeds and DST is the new version, whole (the
#     first attempt saw a 412, the second read the new object);
#  B. with --check-change the key fails (exit 1, "failed: 1"), and the DST
#     file that was there before is left exactly as it was, no temp file.
# In both, a DST that mixes old and new bytes fails the test, and so does a
# run in which the proxy never held the reply or radosgw never answered 412.
# Ports: radosgw on RADOSGW_PORT (default 7492), the proxies on
# S3_PIN_PROXY_PORT (default 7650) and the port after it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init s3_replaced_mid_read

export RADOSGW_PORT=${RADOSGW_PORT:-7492}
PROXY_PORT=${S3_PIN_PROXY_PORT:-7650}
CHUNK=$((8 << 20))
SIZE=$((5 * CHUNK)) # five ranged GETs
rgw_start
aws s3api create-bucket --bucket pin >/dev/null

head -c "$SIZE" /dev/urandom >"$T/old.bin"
head -c "$SIZE" /dev/urandom >"$T/new.bin"
printf 'a small neighbour\n' >"$T/small.txt"

# put_object FILE: make FILE the content of pin/obj/big.bin (one PUT, on
# radosgw directly)
put_object() {
	aws s3api put-object --bucket pin --key obj/big.bin --body "$1" >/dev/null
}

# version FILE: "old", "new", "missing", or which 8 MiB chunks are which
version() {
	"$PY" - "$1" "$T/old.bin" "$T/new.bin" "$CHUNK" <<'EOF'
import os, sys
path, old, new, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if not os.path.exists(path):
    print("missing"); sys.exit()
a, o, n = (open(p, "rb").read() for p in (path, old, new))
if a == o:
    print("old"); sys.exit()
if a == n:
    print("new"); sys.exit()
parts = []
for i in range(0, max(len(a), 1), chunk):
    c = a[i:i + chunk]
    parts.append("old" if c == o[i:i + chunk] else "new" if c == n[i:i + chunk] else "neither")
print("%d bytes, not one version: its 8 MiB chunks are %s" % (len(a), " ".join(parts)))
EOF
}

# hold_proxy NAME: a proxy in front of radosgw on the next port that holds
# its reply to the first GET of obj/big.bin until $T/NAME.go exists (it
# creates $T/NAME.held once it holds it); sets PROXY (host:port)
hold_proxy() {
	start_proxy "$1" --p503 0 --preset 0 --hold-reply-of '^GET /pin/obj/big\.bin$' \
		--hold-until "$T/$1.go" --hold-signal "$T/$1.held" --hold-timeout 30
}

# replace_when_held NAME: in the background, once proxy NAME holds the first
# reply, overwrite the object with new.bin and let the proxy go on
replace_when_held() {
	(
		for _ in $(seq 600); do
			[ -e "$T/$1.held" ] && break
			sleep 0.05
		done
		[ -e "$T/$1.held" ] || { echo "the proxy held no reply within 30 s"; exit 1; }
		put_object "$T/new.bin" || { echo "aws s3api put-object failed"; exit 1; }
		touch "$T/$1.go"
	) >"$T/replacer.log.$1" 2>&1 &
	REPLACER=$!
	on_exit "kill $REPLACER 2>/dev/null; wait $REPLACER 2>/dev/null"
}

# staged NAME: the replacement happened while the reply was held, and
# radosgw refused a range pinned to the old ETag
staged() {
	wait "$REPLACER" || fail "$1: the replacement was not staged: $(cat "$T/replacer.log.$1")"
	stop_proxy "$1"
	[ "$(pstat "$1" held)" = 1 ] && [ "$(pstat "$1" hold-timeout)" = 0 ] ||
		fail "$1: the proxy did not hold the first reply until the object was replaced: $(cat "$T/proxy.log.$1")"
	grep -qE '^fault_proxy: holding the reply to GET /pin/obj/big\.bin \[bytes=0-' "$T/proxy.log.$1" ||
		fail "$1: the held reply was not the first ranged GET: $(cat "$T/proxy.log.$1")"
	[ "$(pstat "$1" status-412)" -ge 1 ] ||
		fail "$1: no ranged GET was refused with 412 (was it pinned with If-Match?): $(tail -1 "$T/proxy.log.$1")"
}

# file_state FILE: inode, size, mode, mtime, ctime and content hash
file_state() {
	stat -c '%i %s %a %y %z' "$1" && sha256sum <"$1"
}

# A. default: the 412 fails the first attempt, the second copies the new
# version whole
put_object "$T/old.bin"
aws s3 cp --quiet "$T/small.txt" s3://pin/obj/small.txt
hold_proxy a
replace_when_held a
sm --no-https -v "s3://$CRED@$PROXY/pin/obj/" "$T/dst-a/"
got=$(version "$T/dst-a/big.bin")
[ "$got" != old ] && [ "$got" != new ] && [ "$got" != missing ] &&
	fail "A: DST big.bin mixes the versions: $got"
expect_rc 0 "A: an object replaced mid-read, copied again"
[ "$got" = new ] || fail "A: DST big.bin is $got, expected the new version (the first attempt failed on 412)"
[ "$(field copied)" = 2 ] && [ "$(field failed)" = 0 ] ||
	fail "A: expected 2 copied and none failed: $(summary)"
cmp -s "$T/small.txt" "$T/dst-a/small.txt" || fail "A: small.txt differs"
expect_no_temp_files "$T/dst-a" "A"
staged a
note "A: $(tail -1 "$T/proxy.log.a")"

# B. --check-change: the key fails; the DST file there before stays as it was
put_object "$T/old.bin"
mkdir -p "$T/dst-b"
head -c 1000 /dev/urandom >"$T/dst-b/big.bin"
touch -d '@1000000000' "$T/dst-b/big.bin" # older, other size: it is copied
before=$(file_state "$T/dst-b/big.bin")
hold_proxy b
replace_when_held b
sm --no-https -v --check-change "s3://$CRED@$PROXY/pin/obj/" "$T/dst-b/"
after=$(file_state "$T/dst-b/big.bin" 2>&1 || true)
[ "$before" = "$after" ] || fail "B: the failed key changed DST big.bin (now $(version "$T/dst-b/big.bin"))
    before: ${before//$'\n'/ }
    after:  ${after//$'\n'/ }"
expect_rc 1 "B: --check-change, an object replaced mid-read"
[ "$(field failed)" = 1 ] && [ "$(field copied)" = 1 ] ||
	fail "B: expected big.bin failed and small.txt copied: $(summary)"
grep -q "'obj/big.bin' changed while it was read" "$T/sm.err" ||
	fail "B: no 'changed while it was read' error for obj/big.bin: $(err_lines | tail -5)"
cmp -s "$T/small.txt" "$T/dst-b/small.txt" || fail "B: small.txt differs"
expect_no_temp_files "$T/dst-b" "B"
staged b
note "B: $(tail -1 "$T/proxy.log.b")"
