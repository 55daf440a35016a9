#!/usr/bin/env bash
# Tests of the tests: feed tests/harness.sh (the functions tests/run.sh counts
# with) each way a failure could pass unseen, and require that it is counted
# as failed:
#   - end-to-end tests on tests/e2e/lib.sh that fail plainly, lack their
#     summary line, have it twice, fail a check inside a pipeline, or defer
#     a failure and run on to their end;
#   - a truncated, a malformed and a short meson test log;
#   - a `meson test` that dies, with a stale all-passing log left behind;
#   - a fuzz target with undefined behaviour (with and without
#     -fno-sanitize-recover), and one that crashes;
#   - a tool the suite needs that is missing.
# Exit 0 when every case was counted as it should be.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
W=$(mktemp -d /tmp/sm-selftest.XXXXXX)
trap 'rm -rf "$W"' EXIT
log=$W/harness.log
bad=0
# shellcheck source=../harness.sh
. "$top/tests/harness.sh" # SANITIZE_C_ARGS; each case counts in a subshell of its own

# case_ NAME WANT_PASSED WANT_FAILED_MIN FUNCTION ARGS...: run a harness
# function with fresh counters; passes must equal WANT_PASSED and failures be
# at least WANT_FAILED_MIN (exactly 0 when it is 0).
case_() {
	local name=$1 want_p=$2 want_f=$3 got p f
	shift 3
	got=$(
		# shellcheck source=../harness.sh
		. "$top/tests/harness.sh"
		"$@" >>"$log" 2>&1
		echo "$passed $failed"
	)
	read -r p f <<<"$got"
	if [ "${p:-x}" = "$want_p" ] && [[ "${f:-}" =~ ^[0-9]+$ ]] &&
		{ [ "$f" -ge "$want_f" ] && { [ "$want_f" -gt 0 ] || [ "$f" -eq 0 ]; }; }; then
		echo "selftest: $name: counted $p passed, $f failed, as it should"
	else
		echo "selftest: FAIL $name: counted '${p:-}' passed, '${f:-}' failed; want $want_p passed, >= $want_f failed" >&2
		bad=1
	fi
}

# 1. End-to-end tests through meson: only `ok` passes.
meson setup "$W/build" "$here/project" >"$W/setup.log" 2>&1 || {
	cat "$W/setup.log" >&2
	echo "selftest: FAIL cannot set up the self-test project" >&2
	exit 1
}
case_ "e2e tests (failing, no summary, two summaries, failure in a pipeline, deferred)" 1 5 \
	harness_meson_stage selftest-e2e "$W/build"
for t in failing nosummary twosummaries subshell deferred; do
	case_ "e2e test '$t' alone" 0 1 harness_meson_stage "selftest-$t" "$W/build" "$t"
done
case_ "e2e test 'ok' alone" 1 0 harness_meson_stage selftest-ok "$W/build" ok

# 2. Test logs that cannot be trusted.
meson test -C "$W/build" ok >/dev/null 2>&1
good=$W/build/meson-logs/testlog.json
if [ ! -s "$good" ]; then
	echo "selftest: FAIL meson wrote no test log for 'ok'" >&2
	exit 1
fi
{
	cat "$good"
	head -c 40 "$good"
} >"$W/truncated.json"
case_ "a truncated test log" 1 1 harness_count "$W/truncated.json" truncated 2
{
	cat "$good"
	echo '{"name": "x", "result": '
} >"$W/malformed.json"
case_ "a malformed test log line" 1 1 harness_count "$W/malformed.json" malformed 2
case_ "a log with fewer results than registered tests" 1 1 harness_count "$good" short 3
cat "$good" "$good" >"$W/twice.json"
case_ "a log with the same result twice" 1 1 harness_count "$W/twice.json" twice 1
case_ "an empty test log" 0 5 harness_count /dev/null empty 5
case_ "a complete passing log" 1 0 harness_count "$good" complete 1

# 3. `meson test` dies before writing its log, and a stale passing log of an
# earlier run lies in the build dir: nothing may be counted as passed.
printf '#!/bin/sh\nkill -KILL "$PPID"\n' >"$W/killer"
chmod 755 "$W/killer"
stale_then_die() {
	cp "$good" "$W/build/meson-logs/testlog.json"
	harness_meson_stage selftest-stale "$W/build" --wrapper "$W/killer" ok
}
case_ "meson test killed, a stale passing log left" 0 1 stale_then_die

# 4. Fuzz targets: undefined behaviour (fatal, and reported only), a crash.
printf 'x' >"$W/seed"
mkdir -p "$W/corpus"
cp "$W/seed" "$W/corpus/"
if clang -g -fsanitize=fuzzer,address,undefined "$SANITIZE_C_ARGS" -o "$W/fuzz_ub" \
	"$here/fuzz_ub.c" 2>"$W/cc.log" &&
	clang -g -fsanitize=fuzzer,address,undefined -o "$W/fuzz_ub_recover" \
		"$here/fuzz_ub.c" 2>>"$W/cc.log"; then
	FUZZ_SECONDS=3 case_ "a fuzz target with undefined behaviour" 0 1 \
		harness_fuzz fuzz_ub "$W/fuzz_ub" "$W/corpus" "$W/fuzz_ub.log"
	# The same target built to recover, run with UBSan told not to halt: the
	# "runtime error" line in its output alone must fail it.
	recover_run() {
		UBSAN_OPTIONS=halt_on_error=0 harness_fuzz fuzz_ub_recover "$W/fuzz_ub_recover" \
			"$W/corpus" "$W/fuzz_ub_recover.log"
	}
	FUZZ_SECONDS=3 case_ "a fuzz target with undefined behaviour, recovering" 0 1 recover_run
	case_ "a fuzz target that is missing" 0 1 harness_fuzz fuzz_none "$W/none" "$W/corpus" "$W/none.log"
else
	cat "$W/cc.log" >&2
	echo "selftest: FAIL cannot build the fuzz targets of the self-test" >&2
	bad=1
fi

# 5. A tool the suite needs is missing.
case_ "a missing tool" 0 1 harness_need sm-no-such-tool

if [ "$bad" -ne 0 ]; then
	echo "selftest: the harness's own messages:" >&2
	tail -60 "$log" >&2
fi
exit "$bad"
