#!/usr/bin/env bash
# The manager <-> worker protocol under trouble (issue 22, tests d, e, g),
# each through the in-process workers over inproc:// and over
# tcp://127.0.0.1 (SYNCMGR_TEST_DISPATCH_URL, port DISPATCH_PORT or 7830):
#  d. 3000 DST-only directories in one range, with the message cap lowered
#     to 64 KiB (SYNCMGR_TEST_MSG_MAX): their deletes go in bounded batches,
#     the run completes and DST equals SRC;
#  e. connections dropped mid-run (SYNCMGR_TEST_DISPATCH_DROP: the manager
#     drops the connection of every 3rd request before answering; puts
#     crawl so that the run makes many requests): workers dial again and
#     send again, the run completes, every key counted once;
#  g. a transfer that stalls (store fault put:3:stall) is canceled after the
#     stall timeout (SYNCMGR_TEST_STALL_MS) and retried: the run completes;
#  h. --dry's plan and -v's lines of the workers (sent to the manager in Log
#     messages, printed by it): every key once, the same through both
#     transports (unit/test_worker checks that the worker prints nothing
#     itself).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init dispatch_net

PORT=${DISPATCH_PORT:-7830}
gentree gen --seed 22 --files 300 --out "$T/src" >/dev/null
find "$T/src" -type l -delete
nsrc=$(find "$T/src" -type f -printf x | wc -c)

mkdir -p "$T/src1"
echo one >"$T/src1/one"

mode=inproc
for via in inproc "tcp://127.0.0.1:$PORT"; do
	E2E_CONTEXT="workers over $via"
	url=
	[ "$via" = inproc ] || url=$via
	export SYNCMGR_TEST_DISPATCH_URL=$url

	# d: thousands of DST-only directories in one range, small messages
	rm -rf "$T/dst1"
	mkdir -p "$T/dst1"
	for a in $(seq 1 30); do
		for b in $(seq 1 50); do mkdir -p "$T/dst1/only-$a/dir-$b/sub"; done
	done
	SYNCMGR_TEST_MSG_MAX=65536 sm --dirs --delete-dst "$T/src1/" "$T/dst1/"
	expect_rc 0 "3000 DST-only directories under a 64 KiB message cap"
	expect_field deleted 3030 "deleted"
	expect_same_tree "$T/src1" "$T/dst1" "DST after deleting its directories"

	# e: connections dropped mid-run
	rm -rf "$T/dst"
	SYNCMGR_TEST_DISPATCH_DROP=3 sm --debug -p 8 --test-fault dst=put:1:crawl "$T/src/" "$T/dst/"
	expect_rc 0 "connections dropped mid-run"
	drops=$(grep -c "dropping the connection" "$T/sm.err" || true)
	[ "$drops" -ge 5 ] || fail "only $drops connections dropped: no test of reconnecting"
	expect_field copied "$nsrc" "copied with connections dropped"
	expect_same_tree --no-dirs "$T/src" "$T/dst" "DST after dropped connections"

	# g: a stalled transfer is retried
	rm -rf "$T/dst"
	SYNCMGR_TEST_STALL_MS=500 sm -v -p 4 --test-fault dst=put:3:stall "$T/src/" "$T/dst/"
	expect_rc 0 "a stalled transfer"
	grep -q "no byte moved for 1 s: stalled" "$T/sm.err" || fail "no retry of the stalled transfer in the log"
	expect_field copied "$nsrc" "copied after a stall"
	expect_field failed 0 "failed after a stall"
	expect_same_tree --no-dirs "$T/src" "$T/dst" "DST after a stalled transfer"

	# h: --dry and -v lines through the manager
	rm -rf "$T/dst"
	sm --dry -p 4 "$T/src/" "$T/dst/"
	expect_rc 0 "--dry"
	grep '^copy ' "$T/sm.out" | LC_ALL=C sort >"$T/plan.$mode"
	[ "$(wc -l <"$T/plan.$mode")" -eq "$(grep -c '^copy ' "$T/sm.out")" ] || fail "--dry: plan lines lost"
	n=$(LC_ALL=C sort -u "$T/plan.$mode" | wc -l)
	[ "$n" -ge "$nsrc" ] || fail "--dry planned $n copies for $nsrc files"
	sm -v -p 4 "$T/src/" "$T/dst/"
	expect_rc 0 "-v"
	n=$(grep -c "^syncmgr: copied '" "$T/sm.err" || true)
	[ "$n" -eq "$(field copied)" ] || fail "-v: $n 'copied' lines for $(field copied) copies"
	mode=tcp
done
cmp -s "$T/plan.inproc" "$T/plan.tcp" || fail "--dry's plan differs between inproc and tcp: $(diff "$T/plan.inproc" "$T/plan.tcp" | head -5)"
