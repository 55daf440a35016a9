#!/bin/bash
# Issue 24 item 10: FIFOs, sockets and devices on DST are DST keys: kept
# and counted extra without --delete-dst, removed (and counted) with it
# when SRC lacks them, replaced by SRC's file of the same name. A special
# file on SRC is not copied, and the DST key of its name stays.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init tree_special_dst
need_root

mkdir -p "$T/src/d" "$T/dst/d"
echo f >"$T/src/f"
echo was-a-fifo >"$T/src/d/replaced"
mkfifo "$T/src/srcfifo"
echo kept >"$T/dst/srcfifo"
mkfifo "$T/dst/fifo" "$T/dst/d/replaced"
mknod "$T/dst/chr" c 1 3
mknod "$T/dst/blk" b 7 200
"$PY" -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$T/dst/d/sock"

sm "$T/src/" "$T/dst/"
expect_rc 0 "without --delete-dst"
for k in fifo chr blk d/sock; do [ -e "$T/dst/$k" ] || fail "'$k' went without --delete-dst"; done
expect_field extra 4 "without --delete-dst"
[ -f "$T/dst/d/replaced" ] && [ "$(cat "$T/dst/d/replaced")" = was-a-fifo ] ||
	fail "the DST FIFO was not replaced by SRC's file"

sm --delete-dst "$T/src/" "$T/dst/"
expect_rc 0 "--delete-dst"
for k in fifo chr blk d/sock; do [ ! -e "$T/dst/$k" ] || fail "'$k' stayed with --delete-dst"; done
expect_field deleted 4 "--delete-dst"
[ "$(cat "$T/dst/srcfifo")" = kept ] || fail "the DST key of a SRC FIFO's name went"
sm --delete-dst "$T/src/" "$T/dst/"
expect_field deleted 0 "a run after"
expect_field copied 0 "a run after"
