#!/bin/bash
# What the user sees (issue 12 items 5 and 6): the progress display on a
# terminal, captured from a pseudo-terminal with script(1) during a 2 GiB copy
# and a 50 000-file run; the progress log lines off a terminal; the second
# summary line; --dry's marking; -v's line per key copied, deleted or failed.
# progress_frames.py parses and checks the frames (see there).
#
# The hidden fault mode put:N:slow (store.h) caps puts at 512 MiB/s, so the
# 2 GiB copy lasts at least 4 s whatever the machine: frames every 200 ms see
# its bytes move. The 50 000-file run lists ahead of the copies only as far as
# the task queue allows, so its listing is complete only once most keys are
# copied: frames show "listing..." first, then a percentage (the last task
# is handed out only once the listing is complete). The bytes of one
# large file also move on the S3 and SFTP backends, both ways (log lines
# every 100 ms off a terminal).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init progress

command -v script >/dev/null || fail "script (util-linux) is not installed"
FRAMES=("$PY" "$E2E_DIR/progress_frames.py")

# on_tty ARGS...: run syncmgr on a pseudo-terminal (stdin, stdout and stderr),
# the capture in $T/tty.out; sets SM_RC.
on_tty() {
	e2e_stop_if_failed
	SM_CMD="syncmgr $(printf '%q ' "$@") (on a pseudo-terminal)"
	set +e
	timeout -k 5 300 script -qfec "$(printf '%q ' "$SYNCMGR" "$@")" /dev/null >"$T/tty.out" </dev/null
	SM_RC=$?
	set -e
	[ "$SM_RC" -lt 124 ] || fail "syncmgr crashed or timed out on a pseudo-terminal (exit $SM_RC)"
}

# expect_lines_summary FILE FOUND-ERE WHAT: FILE (the lines besides the
# frames) ends in a summary line matching FOUND-ERE and the "Elapsed:" line.
expect_lines_summary() {
	[ "$(wc -l <"$1")" -ge 2 ] || fail "$3: expected the two summary lines, got: $(cat "$1")"
	tail -n 2 "$1" | head -n 1 | grep -qxE -- "$2" || fail "$3: summary differs: $(tail -n 2 "$1" | head -n 1)"
	tail -n 1 "$1" | grep -qxE '^Elapsed: [0-9hms.]+, [0-9.]+ keys/s, [0-9.]+ (B|KiB|MiB|GiB)/s copied' ||
		fail "$3: no 'Elapsed:' line after the summary: $(tail -n 1 "$1")"
}
BIG_SUMMARY='Found: 1, excluded: 0 \(0 B\), skipped: 0 \(0 B\), copied: 1 \(2\.0 GiB\), extra: 0 \(0 B\)'

# ---------------------------------------------------------- one 2 GiB file
S=$T/big D=$T/big-dst
mkdir "$S"
truncate -s 2G "$S/big.bin" # sparse: SRC costs nothing, DST 2 GiB of tmpfs
printf 'x' | dd of="$S/big.bin" bs=1 seek=$((1 << 30)) conv=notrunc status=none
on_tty --test-fault dst=put:1:slow "$S/" "$D/"
expect_rc 0 "2 GiB on a terminal"
"${FRAMES[@]}" "$T/tty.out" --total $((2 << 30)) --between 5 --want-percent \
	--lines "$T/tty.lines" --show 8 >"$T/big.frames" ||
	fail "2 GiB on a terminal: bad progress frames (capture: $(head -c 600 "$T/tty.out" | cat -v))"
expect_lines_summary "$T/tty.lines" "$BIG_SUMMARY" "2 GiB"
cmp -s "$S/big.bin" "$D/big.bin" || fail "2 GiB: the copy differs"
note "2 GiB frames:"
sed 's/^/    /' "$T/big.frames" >&2
rm -rf "$D"

# The same off a terminal: a "progress:" log line with the same figures
# every SYNCMGR_PROGRESS_MS (5 s unless set).
set +e
SYNCMGR_PROGRESS_MS=300 timeout -k 5 300 "$SYNCMGR" --test-fault dst=put:1:slow "$S/" "$D/" \
	>"$T/log.out" 2>"$T/log.err" </dev/null
SM_RC=$?
set -e
expect_rc 0 "2 GiB off a terminal"
"${FRAMES[@]}" --log "$T/log.err" --total $((2 << 30)) --between 3 --want-percent \
	--lines "$T/log.lines" >/dev/null || fail "2 GiB off a terminal: bad progress lines: $(head -3 "$T/log.err")"
grep -q '^syncmgr: progress: [0-9]*%, 0/1 keys, .*ETA ' "$T/log.err" ||
	fail "off a terminal: no progress line with a percentage and an ETA: $(head -3 "$T/log.err")"
expect_lines_summary "$T/log.lines" "$BIG_SUMMARY" "2 GiB off a terminal"
rm -rf "$D"
"$SYNCMGR" --help | grep -q SYNCMGR_PROGRESS_MS && fail "--help names the tests' SYNCMGR_PROGRESS_MS"

# ---------------------------------------------------------- 50 000 files
S=$T/many D=$T/many-dst
"$PY" - "$S" <<'EOF'
import os, sys
root = sys.argv[1]
for d in range(100):
    os.makedirs(f"{root}/d{d:03}")
    for f in range(500):
        with open(f"{root}/d{d:03}/f{f:03}", "wb") as fh:
            fh.write(b"x" * ((d * 500 + f) % 4096))
EOF
total=$(find "$S" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
# the 20 000th put fails: its error line must come out whole between frames;
# a frame every 20 ms (SYNCMGR_PROGRESS_MS) so that even a fast machine shows
# several of each kind
export SYNCMGR_PROGRESS_MS=20
on_tty --test-fault dst=put:20000 "$S/" "$D/"
unset SYNCMGR_PROGRESS_MS
expect_rc 1 "50 000 files on a terminal"
"${FRAMES[@]}" "$T/tty.out" --total "$total" --want-listing --want-percent --min-frames 20 \
	--lines "$T/tty.lines" --show 8 >"$T/many.frames" ||
	fail "50 000 files: bad progress frames (capture: $(head -c 600 "$T/tty.out" | cat -v))"
[ "$(wc -l <"$T/tty.lines")" -eq 3 ] ||
	fail "50 000 files: expected the error line and the two summary lines, got: $(head -5 "$T/tty.lines")"
# (main labels the side: "DST: injected ...")
grep -qxE "syncmgr: error: (DST: )?injected permanent fault on put 'd[0-9]+/f[0-9]+'" "$T/tty.lines" ||
	fail "50 000 files: the error line is not whole: $(head -3 "$T/tty.lines")"
expect_lines_summary "$T/tty.lines" \
	'Found: 50000, excluded: 0 \(0 B\), skipped: 0 \(0 B\), copied: 49999 \([0-9]+ MiB\), extra: 0 \(0 B\), failed: 1' \
	"50 000 files"
note "50 000 files frames:"
sed 's/^/    /' "$T/many.frames" >&2

# --dry on a terminal: the plan on stdout and the status line on stderr share
# the terminal; every plan line comes out whole. SYNCMGR_PROGRESS_MS=1 draws
# a frame every millisecond, so frames and plan lines come mixed.
rm -rf "$D"
mkdir "$D"
export SYNCMGR_PROGRESS_MS=1
on_tty --dry "$S/" "$D/"
unset SYNCMGR_PROGRESS_MS
expect_rc 0 "--dry on a terminal"
"${FRAMES[@]}" "$T/tty.out" --min-frames 10 --lines "$T/tty.lines" >/dev/null ||
	fail "--dry on a terminal: bad frames"
n=$(grep -c '^copy d[0-9][0-9][0-9]/f[0-9][0-9][0-9]$' "$T/tty.lines" || true)
[ "$n" -eq 50000 ] || fail "--dry on a terminal: $n whole 'copy KEY' lines, expected 50000: $(grep -v '^copy ' "$T/tty.lines" | head -3)"
[ "$(grep -vc '^copy ' "$T/tty.lines")" -eq 2 ] || fail "--dry on a terminal: other lines: $(grep -v '^copy ' "$T/tty.lines" | head -5)"
rm -rf "$S" "$D"

# ---------------------------------------------------------- S3 and SFTP
# one 384 MiB file each way, DST's puts capped at 512 MiB/s; the progress
# log lines must show its bytes moving
rgw_start
aws s3api create-bucket --bucket progress >/dev/null
SSHD_PORT=${SSHD_PORT:-2247} sshd_start
S=$T/one
mkdir "$S" "$T/sftp"
head -c $((384 << 20)) /dev/urandom >"$S/one.bin"
remote() { # WHAT SRC DST
	set +e
	HOME=$SSH_TEST_HOME SSH_AUTH_SOCK='' SYNCMGR_PROGRESS_MS=100 timeout -k 5 120 \
		"$SYNCMGR" --no-https --test-fault dst=put:1:slow "$2" "$3" >"$T/log.out" 2>"$T/log.err" </dev/null
	SM_RC=$?
	set -e
	SM_CMD="syncmgr $2 $3"
	expect_rc 0 "$1"
	"${FRAMES[@]}" --log "$T/log.err" --total $((384 << 20)) --between 3 --want-percent \
		--lines "$T/log.lines" >/dev/null || fail "$1: bad progress lines"
	expect_lines_summary "$T/log.lines" \
		'Found: 1, excluded: 0 \(0 B\), skipped: 0 \(0 B\), copied: 1 \(384 MiB\), extra: 0 \(0 B\)' "$1"
}
remote "local -> S3" "$S/" "s3://$CRED@$HP/progress/"
remote "S3 -> local" "s3://$CRED@$HP/progress/" "$T/from-s3/"
cmp -s "$S/one.bin" "$T/from-s3/one.bin" || fail "S3 -> local: the copy differs"
remote "local -> SFTP" "$S/" "sm-test:$T/sftp/"
rm -rf "$T/from-s3"
remote "SFTP -> local" "sm-test:$T/sftp/" "$T/from-sftp/"
cmp -s "$S/one.bin" "$T/from-sftp/one.bin" || fail "SFTP -> local: the copy differs"
rm -rf "$S" "$T/sftp" "$T/from-sftp"

# ---------------------------------------------------------- the summary's second line
S=$T/src D=$T/dst
mkdir -p "$S/d"
head -c 100 /dev/urandom >"$S/a"
head -c 2000 /dev/urandom >"$S/d/b"
ln -s a "$S/l"
mkdir -p "$D/gone"
head -c 10 /dev/urandom >"$D/x"

sm --dry --dirs --links --delete-dst "$S/" "$D/"
expect_rc 0 "--dry"
expect_summary "Found: 4, excluded: 0 (0 B), skipped: 0 (0 B), copied: 4 (2.1 KiB), extra: 0 (0 B), deleted: 2" "--dry"
tail -n 1 "$T/sm.err" | grep -qxE 'Elapsed: [0-9hms.]+, [0-9.]+ keys/s; dry run, nothing was changed: would copy 4 \(2\.1 KiB\), delete 2' ||
	fail "--dry: the second line does not say it was a dry run: $(tail -n 1 "$T/sm.err")"

sm -q "$S/" "$T/q/"
expect_rc 0 "-q"
[ "$(wc -l <"$T/sm.err")" -eq 1 ] || fail "-q: expected the summary line alone, got: $(cat "$T/sm.err")"

# ---------------------------------------------------------- -v: each key as it happens
sm -v --dirs --links --delete-dst "$S/" "$D/"
expect_rc 0 "-v"
expect_summary "Found: 4, excluded: 0 (0 B), skipped: 0 (0 B), copied: 4 (2.1 KiB), extra: 0 (0 B), deleted: 2" "-v"
tail -n 1 "$T/sm.err" | grep -qE '^Elapsed: ' || fail "-v: no 'Elapsed:' line: $(tail -n 1 "$T/sm.err")"
for want in "copied 'a' (100 B)" "copied 'd/' (directory)" "copied 'd/b' (2.0 KiB)" \
	"copied 'l' (symlink)" "deleted 'x'" "deleted 'gone/'"; do
	[ "$(grep -cxF "syncmgr: $want" "$T/sm.err")" -eq 1 ] || fail "-v: no line 'syncmgr: $want' (once): $(err_lines)"
done
[ "$(err_lines | wc -l)" -eq 6 ] || fail "-v: other lines than the 6 keys: $(err_lines)"
[ ! -s "$T/sm.out" ] || fail "-v: printed on stdout: $(cat "$T/sm.out")"
sm -v --dirs --links --delete-dst "$S/" "$D/"
expect_rc 0 "-v again"
[ -z "$(err_lines)" ] || fail "-v, nothing to do: lines besides the summary: $(err_lines)"

# a failed key is an error line (the same with and without -v), the others copied
rm -rf "$D"
sm -v --threads 1 --test-fault dst=put:1 "$S/" "$D/"
expect_rc 1 "-v with a failing key"
[ "$(err_lines | grep -cE '^syncmgr: error: (DST: )?injected permanent fault on put ')" -eq 1 ] ||
	fail "-v: the failed key is not one error line: $(err_lines)"
[ "$(err_lines | grep -c "^syncmgr: copied '")" -eq 2 ] || fail "-v: expected 2 keys copied: $(err_lines)"

# --dry -v: the plan on stdout, no "copied" lines (nothing was)
rm -rf "$D"
sm --dry -v "$S/" "$D/"
expect_rc 0 "--dry -v"
grep -q "copied '" "$T/sm.err" && fail "--dry -v: says copied: $(err_lines)"
[ "$(grep -c '^copy ' "$T/sm.out")" -eq 3 ] || fail "--dry -v: expected 3 'copy KEY' lines: $(cat "$T/sm.out")"
exit 0
