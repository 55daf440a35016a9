#!/usr/bin/env bash
# --fsync over SFTP: every file is fsynced on the server (fsync@openssh.com)
# before it is closed and renamed into place, small files (one pipelined
# chain) and large ones (streamed) alike; without --fsync no fsync is sent.
# Proven from the server's request log (sftp-server -l DEBUG3).
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
