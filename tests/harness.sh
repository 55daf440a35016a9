# shellcheck shell=bash
# How tests/run.sh runs and counts its stages, in one place so that the
# self-test (tests/selftest/selftest.sh) feeds the very same functions broken
# inputs and checks that each is counted as failed. Every function here fails
# closed: a result it cannot read, a test it cannot find, a sanitizer report
# or a non-zero exit nobody explained is a failure, never a silent pass.
#
# Source it, then call the functions; they add to these counters:
passed=0
failed=0
failures=()
HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Every sanitizer error is fatal, in every stage: UBSan's "runtime error"
# otherwise prints and carries on (and a fuzz run then exits 0). The builds
# also get -fno-sanitize-recover=all (SANITIZE_C_ARGS).
SANITIZE_C_ARGS="-fno-sanitize-recover=all"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"

harness_fail() { # label message
	failed=$((failed + 1))
	failures+=("$1: $2")
	echo "FAILED $1: $2" >&2
}

harness_pass() {
	passed=$((passed + 1))
}

# harness_count LOG LABEL EXPECTED: add the results of one meson testlog.json.
# A line that is not a complete JSON result, a result that is not a pass, and
# every expected test without a result count as failures.
harness_count() {
	local log=$1 label=$2 expected=$3 out rc=0
	if [ ! -s "$log" ]; then
		harness_fail "$label" "no test results in $log (expected $expected)"
		failed=$((failed + expected - 1))
		return
	fi
	out=$(/usr/bin/python3 - "$log" "$label" "$expected" <<'PY'
import json, sys
log, label, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = f = 0
names = set()
with open(log, "rb") as fh:
    lines = fh.read().split(b"\n")
if lines and lines[-1] == b"":
    lines.pop()
else:
    # the last line has no newline: meson did not finish writing it
    f += 1
    print(f"FAILED {label}: the test log's last line is incomplete", file=sys.stderr)
for i, raw in enumerate(lines, 1):
    try:
        r = json.loads(raw)
        name, result = r["name"], r["result"]
    except Exception as e:
        f += 1
        print(f"FAILED {label}: test log line {i} unreadable ({e})", file=sys.stderr)
        continue
    if name in names:
        f += 1
        print(f"FAILED {label}: {name} has two results", file=sys.stderr)
        continue
    names.add(name)
    if result in ("OK", "EXPECTEDFAIL"):
        p += 1
    else:
        f += 1
        print(f"FAILED {label}: {name} ({result})", file=sys.stderr)
missing = expected - len(names)
if missing > 0:
    f += missing
    print(f"FAILED {label}: {missing} of {expected} registered tests have no result",
          file=sys.stderr)
elif missing < 0:
    f += -missing
    print(f"FAILED {label}: {-missing} results more than the {expected} registered tests",
          file=sys.stderr)
print(p, f)
PY
) || rc=$?
	local p f
	read -r p f <<<"$out"
	if [ "$rc" -ne 0 ] || ! [[ "${p:-}" =~ ^[0-9]+$ && "${f:-}" =~ ^[0-9]+$ ]]; then
		harness_fail "$label" "could not read $log (reader exit $rc)"
		return
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	((f == 0)) || failures+=("$label: $f failed (see FAILED lines above)")
}

# harness_sanitizer_reports DIR LABEL: a sanitizer report file (log_path) is a
# failure even when the process that wrote it exited 0 or was expected to fail.
harness_sanitizer_reports() {
	local dir=$1 label=$2 f
	for f in "$dir"/*; do
		[ -e "$f" ] || continue
		harness_fail "$label" "sanitizer report $(basename "$f"):"
		sed -n '1,30p' "$f" >&2
	done
}

# harness_meson_stage LABEL BUILDDIR [meson test selectors...]: run the tests
# a stage selects and count them against the number meson lists for the same
# selectors. Stale logs go first, so an old run is never counted; a non-zero
# exit of `meson test` that its log does not explain is one more failure.
harness_meson_stage() {
	local label=$1 dir=$2 list expected rc=0 before
	shift 2
	rm -f "$dir"/meson-logs/testlog*.json "$dir"/meson-logs/testlog*.txt
	if ! list=$(meson test -C "$dir" --no-rebuild --list "$@" 2>"$dir.list.log"); then
		harness_fail "$label" "meson test --list failed: $(tail -3 "$dir.list.log")"
		return
	fi
	expected=$(grep -cv -e '^$' -e '^ninja: ' <<<"$list")
	if [ "$expected" -eq 0 ]; then
		harness_fail "$label" "no tests selected by '$*'"
		return
	fi
	local san
	san=$(realpath -m "$dir.sanitizer") # absolute: tests run in other directories
	rm -rf "$san"
	mkdir -p "$san"
	before=$failed
	ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$san/asan" \
		UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$san/ubsan" \
		TSAN_OPTIONS="$TSAN_OPTIONS:log_path=$san/tsan" \
		meson test -C "$dir" --print-errorlogs "$@" || rc=$?
	harness_count "$dir/meson-logs/testlog.json" "$label" "$expected"
	harness_sanitizer_reports "$san" "$label"
	if [ "$rc" -ne 0 ] && [ "$failed" -eq "$before" ]; then
		harness_fail "$label" "meson test exited $rc, yet no test was counted as failed"
	fi
}

# harness_fuzz LABEL EXE CORPUS_DIR LOG: run a libFuzzer target briefly on a
# copy of its seed corpus. A crash, a non-zero exit, any sanitizer report in
# its output (UBSan's included) or a run that never started is a failure.
harness_fuzz() {
	local label=$1 exe=$2 seeds=$3 log=$4 rc=0 corpus
	if [ ! -x "$exe" ]; then
		harness_fail "$label" "no fuzz target $exe"
		return
	fi
	corpus=$(mktemp -d)
	if [ -d "$seeds" ]; then
		cp -r "$seeds"/. "$corpus/"
	fi
	# a crashing input is kept beside the log, never in the working directory
	rm -rf "$log.artifacts"
	mkdir -p "$log.artifacts"
	"$exe" -max_total_time="${FUZZ_SECONDS:-20}" -timeout=5 -print_final_stats=1 \
		-artifact_prefix="$log.artifacts/" "$corpus" >"$log" 2>&1 </dev/null || rc=$?
	rm -rf "$corpus"
	local bad
	bad=$(grep -m1 -E 'runtime error:|ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|SUMMARY: ' "$log" || true)
	if [ "$rc" -ne 0 ] || [ -n "$bad" ]; then
		harness_fail "$label" "exit $rc${bad:+, $bad}: see $log"
		tail -30 "$log" >&2
	elif ! grep -q 'Done [0-9]* runs' "$log"; then
		harness_fail "$label" "no 'Done N runs' line: the fuzzer did not run (see $log)"
	else
		harness_pass
		echo "$label: $(grep -o 'Done [0-9]* runs' "$log"), no crash"
	fi
}

# harness_need CMD...: a tool a stage needs; missing is a failure, not a skip.
harness_need() {
	local c ok=0
	for c in "$@"; do
		if ! command -v "$c" >/dev/null; then
			harness_fail "tools" "'$c' is not installed (install.sh should have installed it)"
			ok=1
		fi
	done
	return "$ok"
}

# harness_summary: the FAILED lines, then the one line CI reads.
harness_summary() {
	local f
	for f in "${failures[@]}"; do echo "FAILED: $f"; done
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}
