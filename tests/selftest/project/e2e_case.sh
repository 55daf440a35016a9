#!/usr/bin/env bash
# One end-to-end test of the harness self-test, on tests/e2e/lib.sh with a
# fake syncmgr. Only `ok` may pass; every other case hides a failure the way
# real tests could, and must still fail.
set -euo pipefail
# shellcheck source=../../e2e/lib.sh
. "$E2E_LIB"
e2e_init "selftest-$1"
case $1 in
ok) # a correct run: exactly one summary line, nothing copied
	sm a/ b/
	expect_rc 0 "fake run"
	[ "$(field copied)" = 0 ] || fail "second pass copied $(field copied)"
	;;
failing) # a plain failing check
	fail "a deliberately failing test"
	;;
nosummary) # no summary line: `field` used to print 0 here and pass
	FAKE_SUMMARIES=0 sm a/ b/
	[ "$(field copied)" = 0 ] || fail "second pass copied $(field copied)"
	;;
twosummaries) # a doubled summary line
	FAKE_SUMMARIES=2 sm a/ b/
	[ "$(field copied)" = 0 ] || fail "second pass copied $(field copied)"
	;;
subshell) # a failing check inside a pipeline whose status nobody reads
	FAKE_RC=1 sm a/ b/
	expect_rc 0 "fake run" | cat
	;;
deferred) # a deferred failure, then the test runs on to its end
	defer_fail "a deliberately deferred failure"
	sm a/ b/
	expect_rc 0 "fake run"
	;;
*)
	fail "unknown case '$1'"
	;;
esac
