#!/usr/bin/env bash
# --fsync over SFTP: every file is fsynced on the server (fsync@openssh.com)
# before it is closed and renamed into place, small files (one pipelined
# chain) and large ones (streamed) alike; without --fsync no fsync is sent.
# Proven from the server's request log (sftp-server -l DEBUG3). SRC keys are
# deleted only once durable: --delete-src-after to SFTP fsyncs each file, and
# to a server without fsync@openssh.com it keeps SRC (exit 1).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init sftp_fsync

SSHD_SFTP_LOG=DEBUG3 SSHD_PORT=${SSHD_PORT:-2249} sshd_start
[ -f "${SSHD_SFTP_LOG_FILE:-}" ] || fail "sshd.sh wrote no SSHD_SFTP_LOG_FILE"
export HOME=$SSH_TEST_HOME SSH_AUTH_SOCK=
R=$T/remote
mkdir -p "$T/src" "$R"
for i in 1 2 3; do echo "small $i" >"$T/src/s$i"; done
head -c $((4 * 1024 * 1024)) /dev/urandom >"$T/src/big"

# fsyncs LOGFROM: the fsync requests in the log since byte LOGFROM
fsyncs() { tail -c "+$1" "$SSHD_SFTP_LOG_FILE" | tr -d '\r' | grep -c ': fsync' || true; }

from=$(($(stat -c %s "$SSHD_SFTP_LOG_FILE") + 1))
sm "$T/src/" "sm-test:$R/plain/"
expect_rc 0 "without --fsync"
[ "$(fsyncs "$from")" = 0 ] || fail "without --fsync, $(fsyncs "$from") fsync requests were sent"

from=$(($(stat -c %s "$SSHD_SFTP_LOG_FILE") + 1))
sm --fsync "$T/src/" "sm-test:$R/synced/"
expect_rc 0 "--fsync"
expect_same_tree "$T/src" "$R/synced" "--fsync over SFTP"
n=$(fsyncs "$from")
[ "$n" = 4 ] || fail "--fsync: $n fsync requests for 4 files:
$(tail -c "+$from" "$SSHD_SFTP_LOG_FILE" | tr -d '\r' | grep -E 'fsync|close|open' | head -20)"

# SRC keys go only after their copies are durable: --delete-src-after to an
# SFTP DST fsyncs each file (without --fsync)...
mkdir -p "$T/mv"
for i in 1 2 3; do echo "move $i" >"$T/mv/m$i"; done
cp -a "$T/mv" "$T/mv.orig"
from=$(($(stat -c %s "$SSHD_SFTP_LOG_FILE") + 1))
sm --delete-src-after "$T/mv/" "sm-test:$R/moved/"
expect_rc 0 "--delete-src-after to SFTP"
expect_same_tree "$T/mv.orig" "$R/moved" "--delete-src-after to SFTP"
[ -z "$(ls -A "$T/mv")" ] || fail "--delete-src-after to SFTP left SRC keys: $(ls "$T/mv")"
n=$(fsyncs "$from")
[ "$n" = 3 ] || fail "--delete-src-after to SFTP: $n fsync requests for 3 files"

# ...and on a server without fsync@openssh.com, SRC is kept.
SSHD_SFTP_DENY=fsync SSHD_PORT=${SSHD_PORT2:-2250} "$E2E_DIR/../servers/sshd.sh" start "$T/sshd2" \
	>/dev/null 2>"$T/sshd2.log" || fail "the second sshd did not start: $(tail -5 "$T/sshd2.log")"
on_exit "'$E2E_DIR/../servers/sshd.sh' stop '$T/sshd2' >/dev/null 2>&1"
# shellcheck disable=SC1091
. "$T/sshd2/env"
export HOME=$SSH_TEST_HOME
cp -a "$T/mv.orig/." "$T/mv/"
sm --delete-src-after "$T/mv/" "sm-test:$R/moved2/"
expect_rc 1 "--delete-src-after to a server without fsync@openssh.com"
grep -q "cannot be synced" "$T/sm.err" || fail "no message saying DST cannot be synced: $(cat "$T/sm.err")"
expect_same_tree "$T/mv.orig" "$T/mv" "SRC kept when DST cannot be synced"
