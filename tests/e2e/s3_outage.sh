#!/usr/bin/env bash
# A short S3 outage mid-run (issue 21 item 3): the endpoint resets its open
# connections and refuses new ones for 3 s (a load balancer restarting,
# tests/servers/fault_proxy.py --outage-file) while 4000 small files go
# through it. Every request that met the outage is retried with backoff
# (common/retry.h): exit 0, every key, byte for byte; the retries of refused
# connections show at -v. The same for a download. And a server that stays
# down fails the run's keys without each one waiting out its retry budget
# past the first minute (not tested here: it takes a minute).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init s3_outage

RADOSGW_PORT=${RADOSGW_PORT:-7480} rgw_start
aws s3api create-bucket --bucket outage >/dev/null
gentree gen --seed 21 --files 4000 --out "$T/src" >/dev/null
find "$T/src" -type l -delete # S3 has no symlinks: keep the comparison about files

# outage_during NAME ARGS...: syncmgr through a proxy NAME (URLs say @PROXY@);
# 0.5 s in, the proxy goes down for 3 s
outage_during() {
	local name=$1
	shift
	start_proxy "$name" --p503 0 --preset 0 --outage-file "$T/down"
	local args=("${@//@PROXY@/$PROXY}")
	SM_CMD="syncmgr $(printf '%q ' "${args[@]}")"
	set +e
	timeout -k 5 300 "$SYNCMGR" "${args[@]}" >"$T/sm.out" 2>"$T/sm.err" </dev/null &
	local run=$!
	sleep 0.5
	if ! kill -0 "$run" 2>/dev/null; then
		wait "$run"
		SM_RC=$?
		fail "$name: the run ended before the outage began"
	fi
	touch "$T/down"
	sleep 3
	rm "$T/down"
	wait "$run"
	SM_RC=$?
	set -e
	stop_proxy "$name"
	[ "$(pstat "$name" outages)" -eq 1 ] || fail "$name: the proxy went down $(pstat "$name" outages) times"
}

outage_during up -v -p 2 --no-https "$T/src/" "s3://$CRED@@PROXY@/outage/up/"
expect_rc 0 "upload through a 3 s outage"
grep -q "retrying.*cannot reach" "$T/sm.err" ||
	fail "upload: no retry of a refused connection at -v (did the outage hit the run?)"
expect_field failed 0 "upload through a 3 s outage"

sm --no-https "s3://$CRED@$HP/outage/up/" "$T/check/"
expect_rc 0 "reading the upload back without the proxy"
expect_same_tree "$T/src" "$T/check" --no-dirs "upload through a 3 s outage"

outage_during down -v -p 2 --no-https "s3://$CRED@@PROXY@/outage/up/" "$T/down-tree/"
expect_rc 0 "download through a 3 s outage"
grep -q "retrying.*cannot reach" "$T/sm.err" || fail "download: no retry of a refused connection at -v"
expect_same_tree "$T/src" "$T/down-tree" --no-dirs "download through a 3 s outage"
