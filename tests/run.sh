#!/usr/bin/env bash
# The whole test suite, from a fresh clone: packages, a normal build with
# every suite (unit, conformance, e2e), an ASan+UBSan build with the unit and
# conformance suites, a ThreadSanitizer build with the SFTP conformance and
# round trips, the fuzz targets, and the clang-format check. Ends with the one line
# "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

./install.sh --deps-only || { echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
failures=()

# Count the results meson wrote to a build dir's testlog.json.
count() { # build-dir label
	local log="$1/meson-logs/testlog.json"
	if [ ! -s "$log" ]; then
		failed=$((failed + 1))
		failures+=("$2: no test results")
		return
	fi
	local p f
	read -r p f < <(/usr/bin/python3 - "$log" "$2" <<'PY'
import json, sys
p = f = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["result"] in ("OK", "EXPECTEDFAIL"):
        p += 1
    else:
        f += 1
        print(f"FAILED {sys.argv[2]}: {r['name']} ({r['result']})", file=sys.stderr)
print(p, f)
PY
)
	passed=$((passed + p))
	failed=$((failed + f))
}

build() { # dir, meson options...
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
	fi
	ninja -C "$dir" >"$dir.ninja.log" 2>&1 || { tail -50 "$dir.ninja.log"; return 1; }
}

# 1. Normal build, every suite.
if build build; then
	meson test -C build --print-errorlogs --num-processes 2
	count build "build"
else
	failed=$((failed + 1))
	failures+=("build failed")
fi

# 2. Sanitizers: unit and conformance suites.
if build build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug; then
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		meson test -C build-asan --print-errorlogs --suite unit --suite conformance \
		--num-processes 2
	count build-asan "asan"
else
	failed=$((failed + 1))
	failures+=("asan build failed")
fi

# 2b. ThreadSanitizer: the SFTP engine's threads (conformance, round
# trips against OpenSSH with dropped and silent connections, a slow link).
if build build-tsan -Db_sanitize=thread -Dbuildtype=debug; then
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
		meson test -C build-tsan --print-errorlogs --num-processes 1 \
		conformance-sftp e2e-sftp_roundtrip e2e-sftp_slowlink
	count build-tsan "tsan"
else
	failed=$((failed + 1))
	failures+=("tsan build failed")
fi

# 3. Fuzzing: the filter rules and the S3 and SFTP reply parsers, briefly, from the
# seed corpora.
fuzz_built=false
if [ -f build-fuzz/build.ninja ] ||
	CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined \
		-Db_lundef=false -Dbuildtype=debug >build-fuzz.setup.log 2>&1; then
	ninja -C build-fuzz tests/fuzz_filter tests/fuzz_s3xml tests/fuzz_sftp >build-fuzz.ninja.log 2>&1 && fuzz_built=true
fi
if $fuzz_built; then
	for target in filter s3xml sftp; do
		corpus=$(mktemp -d)
		cp "tests/fuzz/corpus/$target"/* "$corpus/"
		if "build-fuzz/tests/fuzz_$target" -max_total_time="${FUZZ_SECONDS:-20}" -timeout=5 \
			-print_final_stats=1 "$corpus" >"build-fuzz.$target.log" 2>&1; then
			passed=$((passed + 1))
			echo "fuzz_$target: $(grep -o 'Done [0-9]* runs' "build-fuzz.$target.log"), no crash"
		else
			failed=$((failed + 1))
			failures+=("fuzz_$target found a crash: see build-fuzz.$target.log")
			tail -30 "build-fuzz.$target.log"
		fi
		rm -rf "$corpus"
	done
else
	failed=$((failed + 1))
	failures+=("fuzz build failed")
	tail -30 build-fuzz.ninja.log 2>/dev/null
fi

# 4. Formatting.
bad=$(git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror 2>&1 | grep -c 'error:' || true)
if [ "$bad" = "0" ]; then
	passed=$((passed + 1))
else
	failed=$((failed + 1))
	failures+=("clang-format: $bad places need formatting (run clang-format -i)")
fi

for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
