#!/usr/bin/env bash
# The SIGSTOP reproduction of issue 22 (test a): a run stopped for longer
# than the lease while tasks are in flight, then continued. Nobody could
# renew a lease meanwhile, so no task is handed out twice: every key is
# decided once (--debug's decision lines), the counts are right, DST equals
# SRC. The lease is lowered (SYNCMGR_TEST_LEASE_MS) so that the pause is a
# few seconds, and puts crawl (put:1:crawl) so that tasks are in flight
# when it comes. Through the in-process workers over inproc:// and over
# tcp://127.0.0.1 (SYNCMGR_TEST_DISPATCH_URL, port DISPATCH_PORT or 7830).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init dispatch_pause

N=400
mkdir -p "$T/src"
for i in $(seq 1 $N); do echo "key $i" >"$T/src/k$i"; done
PORT=${DISPATCH_PORT:-7830}

for via in inproc "tcp://127.0.0.1:$PORT"; do
	E2E_CONTEXT="workers over $via"
	rm -rf "$T/dst"
	url=
	[ "$via" = inproc ] || url=$via
	SYNCMGR_TEST_DISPATCH_URL=$url SYNCMGR_TEST_LEASE_MS=2000 SYNCMGR_PROGRESS_MS=100 \
		timeout -k 5 120 "$SYNCMGR" -p 8 --check-all --debug --test-fault dst=put:1:crawl \
		"$T/src/" "$T/dst/" >"$T/sm.out" 2>"$T/sm.err" </dev/null &
	pid=$!
	# stop it once some keys are copied and many are still to go
	for ((i = 0; i < 600; i++)); do
		copied=$(grep -o 'copied [0-9]*' "$T/sm.err" | tail -n 1 | cut -d' ' -f2 || true)
		[ "${copied:-0}" -lt 20 ] || break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	[ "${copied:-0}" -ge 20 ] && [ "${copied:-0}" -lt $N ] || fail "no run in progress to stop (copied: ${copied:-none})"
	kill -STOP "$pid"
	sleep 3 # a lease and a half
	kill -CONT "$pid"
	set +e
	wait "$pid"
	SM_RC=$?
	set -e
	SM_CMD="syncmgr -p 8 --check-all --debug (stopped 3 s, lease 2 s)"
	expect_rc 0 "the run stopped for longer than its lease"
	decided=$(grep -c "^syncmgr: debug: copy '" "$T/sm.err" || true)
	twice=$(grep "^syncmgr: debug: copy '" "$T/sm.err" | sort | uniq -d | head -n 3)
	[ -z "$twice" ] || fail "keys decided twice: $twice"
	[ "$decided" -eq $N ] || fail "$decided copy decisions for $N keys"
	if grep -q -e 'lease expired' -e 'stopping it' "$T/sm.err"; then
		fail "a task was taken back: $(grep -e 'lease expired' -e 'stopping it' "$T/sm.err" | head -n 2)"
	fi
	expect_field copied $N "copied"
	expect_field checked $N "checked"
	expect_same_tree "$T/src" "$T/dst" "DST after the pause"
done
