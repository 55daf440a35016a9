#!/usr/bin/env bash
# The whole test suite, from a fresh clone: packages; a self-test of this
# harness (a failing test, a missing summary, a truncated log, a fuzz target
# with undefined behaviour must each count as failed); a normal build with
# every suite (unit, conformance, e2e); an ASan+UBSan build with the unit and
# conformance suites and the local, S3 and SFTP end-to-end tests; a
# ThreadSanitizer build with the threaded unit tests and the SFTP engine's
# suites; the fuzz targets; the clang-format check. Every sanitizer error is
# fatal. Ends with the one line "N passed, N failed" (tests/harness.sh
# counts, failing closed).
set -uo pipefail
cd "$(dirname "$0")/.."

./install.sh --deps-only || {
	echo "0 passed, 1 failed"
	exit 1
}
# shellcheck source=tests/harness.sh
. tests/harness.sh

build() { # dir, meson options...
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || {
			cat "$dir.setup.log"
			return 1
		}
	fi
	ninja -C "$dir" >"$dir.ninja.log" 2>&1 || {
		tail -50 "$dir.ninja.log"
		return 1
	}
}

harness_need clang clang-format script python3 meson ninja

# 0. The harness itself: each way a failure could pass unseen must count.
if bash tests/selftest/selftest.sh; then
	harness_pass
else
	harness_fail "selftest" "the harness let a failure pass (see above)"
fi

# 1. Normal build, every suite.
if build build; then
	harness_meson_stage "build" build --num-processes 2
else
	harness_fail "build" "the build failed"
fi

# 1b. The release build install.sh makes (-O3 warns where -O0 does not).
if build build-release-check --buildtype=release; then
	harness_pass
else
	harness_fail "release-build" "the release build (install.sh's) failed"
fi

# 2. ASan+UBSan: the unit and conformance suites, and the end-to-end tests of
# the local, S3 and SFTP backends (the syncmgr they run is the sanitized one).
asan_e2e=(e2e-rsync_compat e2e-summary_exit e2e-dry_run e2e-bad_input e2e-modified_during
	e2e-actions e2e-order e2e-dst_symlinks e2e-filter_selection e2e-s3_roundtrip
	e2e-sftp_roundtrip e2e-safety_local e2e-safety_s3 e2e-kill_resume e2e-safety_dst_local
	e2e-safety_sftp e2e-json_report e2e-metrics e2e-preflight e2e-options e2e-dirs_delete
	e2e-s3_outage e2e-ssh_jump e2e-ssh_config)
if build build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug \
	-Dc_args="$SANITIZE_C_ARGS" -Dc_link_args="$SANITIZE_C_ARGS"; then
	harness_meson_stage "asan" build-asan --num-processes 2 --suite unit --suite conformance
	harness_meson_stage "asan-e2e" build-asan --num-processes 1 "${asan_e2e[@]}"
else
	harness_fail "asan" "the ASan+UBSan build failed"
fi

# 3. ThreadSanitizer: the threaded unit tests (transfer pool, dispatch, the
# worker's task threads and reporter, parallel lister, engine), the listing
# cache that range cursors on many threads share (conformance-file,
# conformance-sftp), and the SFTP engine's
# threads (conformance, round trips against OpenSSH with dropped and silent
# connections, a slow link), and the --metrics server's thread reading the
# run's counters while it runs (e2e-metrics).
if build build-tsan -Db_sanitize=thread -Dbuildtype=debug \
	-Dc_args="$SANITIZE_C_ARGS" -Dc_link_args="$SANITIZE_C_ARGS"; then
	SM_CONFORMANCE_HUGE_NAMES=80000 harness_meson_stage "tsan" build-tsan --num-processes 1 \
		pool dispatch worker lister engine dircache dirtab spill conformance-file conformance-sftp \
		e2e-sftp_roundtrip e2e-sftp_slowlink e2e-metrics
else
	harness_fail "tsan" "the ThreadSanitizer build failed"
fi

# 4. Fuzzing: the filter rules and the S3 and SFTP reply parsers, briefly,
# from the seed corpora.
fuzz_targets=(filter s3xml sftp)
if CC=clang build build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
	-Dbuildtype=debug -Dc_args="$SANITIZE_C_ARGS" -Dc_link_args="$SANITIZE_C_ARGS"; then
	for target in "${fuzz_targets[@]}"; do
		harness_fuzz "fuzz_$target" "build-fuzz/tests/fuzz_$target" \
			"tests/fuzz/corpus/$target" "build-fuzz.$target.log"
	done
else
	harness_fail "fuzz" "the fuzz build failed"
fi

# 5. Formatting (a clang-format that cannot run fails too).
if command -v clang-format >/dev/null; then
	if git ls-files -z '*.c' '*.h' | xargs -0 clang-format --dry-run -Werror >clang-format.log 2>&1; then
		harness_pass
	else
		harness_fail "clang-format" "$(grep -c 'error:' clang-format.log) places need formatting (run clang-format -i; see clang-format.log)"
	fi
fi

harness_summary
