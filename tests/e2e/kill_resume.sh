#!/usr/bin/env bash
# SIGKILL at random points, then a re-run with --delete-dst (issue "No key
# lost"): after the re-run DST equals SRC, no temp file (.~sm*) and no open
# multipart upload is left under DST, and nothing outside DST was touched.
# Local -> local and local -> S3, KILL_POINTS (default 20) points each, at
# times spread over a full run's duration (seeded: KILL_SEED). Also: SIGINT
# and SIGTERM stop a run cleanly (exit 1, "interrupted", the summary last,
# no temp file, no open upload), and a temp file of a killed run is reported
# by a run without --delete-dst.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init kill_resume

POINTS=${KILL_POINTS:-20}
RANDOM=${KILL_SEED:-7}

gentree gen --seed 5 --files 300 --out "$T/src" >/dev/null
find "$T/src" -type l -delete # S3 keeps no symlinks: one tree for both
# one object large enough for a multipart upload (> 32 MiB), one not
head -c $((36 * 1024 * 1024)) /dev/urandom >"$T/src/big1.bin"
head -c $((12 * 1024 * 1024)) /dev/urandom >"$T/src/big2.bin"
mkdir -p "$T/outside"
echo keep >"$T/outside/sentinel"

# run_killed DELAY_MS ARGS...: start syncmgr, SIGKILL it after DELAY_MS
run_killed() {
	local ms=$1 pid
	shift
	"$SYNCMGR" "$@" >/dev/null 2>"$T/killed.err" </dev/null &
	pid=$!
	sleep "$(printf '0.%03d' "$ms")"
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# duration_ms ARGS...: one full run's wall time
duration_ms() {
	local t0 t1
	t0=$(date +%s%N)
	sm "$@"
	expect_rc 0 "a full run to time"
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}

# ------------------------------------------------------------ local -> local
# DST starts as an older, partial copy with keys SRC lacks.
mkdir -p "$T/dst0"
cp -a "$T/src/." "$T/dst0/"
find "$T/dst0" -type f -name '*.bin' -delete
find "$T/dst0" -type f | awk 'NR % 4 == 0' | while IFS= read -r f; do echo changed >>"$f"; done
mkdir -p "$T/dst0/only-on-dst"
echo x >"$T/dst0/only-on-dst/x"
rm -rf "$T/dst"
cp -a "$T/dst0" "$T/dst"
full=$(duration_ms --delete-dst "$T/src/" "$T/dst/")
[ "$full" -lt 999 ] || full=999
outside=$(tree_snapshot "$T/outside")
for ((i = 1; i <= POINTS; i++)); do
	ms=$((RANDOM % (full + 1)))
	E2E_CONTEXT="local point $i: SIGKILL after $ms of $full ms"
	rm -rf "$T/dst"
	cp -a "$T/dst0" "$T/dst"
	run_killed "$ms" --delete-dst "$T/src/" "$T/dst/"
	sm --delete-dst "$T/src/" "$T/dst/"
	expect_rc 0 "the re-run after a SIGKILL"
	expect_same_tree --no-dirs "$T/src" "$T/dst" "after a SIGKILL and a re-run"
	expect_no_temp_files "$T/dst" "after a SIGKILL and a re-run"
	[ "$(tree_snapshot "$T/outside")" = "$outside" ] || fail "a key outside DST changed"
done
E2E_CONTEXT=""

# A killed run's temp file, met by a run without --delete-dst: reported, kept;
# with --delete-dst: removed.
# (a temp name carries check digits of its first 8 hex digits: store.h)
stale=.~sm0000beef$("$PY" -c '
h = 2166136261
for b in b"syncmgr-tmp:0000beef":
    h = ((h ^ b) * 16777619) & 0xffffffff
print("%08x" % h)').big1.bin
printf 'half' >"$T/dst/$stale"
sm "$T/src/" "$T/dst/"
expect_rc 0 "a run over a stale temp file"
grep -q "'$stale' is a temp file an interrupted run left" "$T/sm.err" ||
	fail "a stale temp file on DST was not reported"
[ -e "$T/dst/$stale" ] || fail "a stale temp file was removed without --delete-dst"
sm --delete-dst "$T/src/" "$T/dst/"
expect_rc 0 "--delete-dst over a stale temp file"
expect_no_temp_files "$T/dst" "--delete-dst over a stale temp file"

# SIGINT and SIGTERM: a clean stop.
for sig in INT TERM; do
	rm -rf "$T/dst"
	# slowed puts (the hidden test fault): the run cannot end before the
	# signal, however fast the machine
	"$SYNCMGR" --threads 2 --test-fault dst=put:1:slow "$T/src/" "$T/dst/" >/dev/null 2>"$T/sig.err" </dev/null &
	pid=$!
	for _ in $(seq 200); do
		[ -n "$(temp_files "$T/dst")" ] && break
		sleep 0.005
	done
	kill -"$sig" "$pid"
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 1 ] || fail "SIG$sig: exit $rc, expected 1"
	grep -q "interrupted (SIG$sig)" "$T/sig.err" || fail "SIG$sig: no 'interrupted' line: $(cat "$T/sig.err")"
	summary_last "$T/sig.err" | grep -q '^Found: ' || fail "SIG$sig: the summary is not the last line"
	expect_no_temp_files "$T/dst" "after SIG$sig"
done

# ------------------------------------------------------------ local -> S3
rgw_start
aws s3api create-bucket --bucket kill >/dev/null
echo keep | aws s3 cp - s3://kill/outside/sentinel >/dev/null
echo keep | aws s3 cp - s3://kill/dstx >/dev/null # beside the DST prefix
U="s3://$CRED@$HP/kill"
uploads() {
	aws s3api list-multipart-uploads --bucket kill --prefix "$1" --query 'Uploads[].Key' \
		--output text | grep -v '^None$' || true
}
full=$(duration_ms --no-https --delete-dst "$T/src/" "$U/dst/")
[ "$full" -lt 999 ] || full=999
for ((i = 1; i <= POINTS; i++)); do
	ms=$((RANDOM % (full + 1)))
	E2E_CONTEXT="S3 point $i: SIGKILL after $ms of $full ms"
	# every 4th point starts from an empty DST, the others from a full one
	# with big files missing, so uploads are under way when the kill comes
	if ((i % 4 == 0)); then
		aws s3 rm --recursive --quiet s3://kill/dst/
	else
		aws s3 rm --recursive --quiet s3://kill/dst/ --exclude '*' --include 'big*'
	fi
	run_killed "$ms" --no-https --delete-dst "$T/src/" "$U/dst/"
	sm --no-https --delete-dst "$T/src/" "$U/dst/"
	expect_rc 0 "the S3 re-run after a SIGKILL"
	left=$(uploads dst/)
	[ -z "$left" ] || fail "multipart uploads left open under DST: $left"
done
E2E_CONTEXT=""
sm --no-https "$U/dst/" "$T/back/"
expect_rc 0 "S3 -> local"
expect_same_tree --no-dirs "$T/src" "$T/back" "S3 DST after SIGKILLs and re-runs"
[ "$(aws s3 cp s3://kill/outside/sentinel -)" = keep ] && [ "$(aws s3 cp s3://kill/dstx -)" = keep ] ||
	fail "a key outside the S3 DST changed"

# An upload a killed run left, seen by a run without --delete-dst: reported.
aws s3api create-multipart-upload --bucket kill --key dst/orphan >/dev/null
sm --no-https "$T/src/" "$U/dst/"
expect_rc 0 "a run over an open upload"
grep -q "1 multipart uploads an interrupted run left (--delete-dst aborts them)" "$T/sm.err" ||
	fail "an open upload under DST was not reported: $(cat "$T/sm.err")"

# SIGTERM during a multipart upload (its first part held by a proxy until the
# signal came): the upload is aborted.
aws s3 rm --quiet s3://kill/dst/big1.bin
sm --no-https --delete-dst "$T/src/" "$U/dst/" >/dev/null # abort the orphan
aws s3 rm --quiet s3://kill/dst/big1.bin
start_proxy hold --p503 0 --preset 0 --hold-reply-of 'PUT /kill/dst/big1.bin\?.*partNumber=1' \
	--hold-until "$T/release" --hold-signal "$T/held"
"$SYNCMGR" --no-https "$T/src/" "s3://$CRED@$PROXY/kill/dst/" >/dev/null 2>"$T/sig.err" </dev/null &
pid=$!
for _ in $(seq 1000); do
	[ -e "$T/held" ] && break
	sleep 0.01
done
[ -e "$T/held" ] || fail "the multipart upload's first part never came"
[ -n "$(uploads dst/)" ] || fail "no multipart upload is open while its part is held"
kill -TERM "$pid"
sleep 0.2
touch "$T/release"
rc=0
wait "$pid" || rc=$?
stop_proxy hold
[ "$rc" -eq 1 ] || fail "SIGTERM during an upload: exit $rc, expected 1: $(cat "$T/sig.err")"
left=$(uploads dst/)
[ -z "$left" ] || fail "SIGTERM left multipart uploads open: $left"
