#!/usr/bin/env bash
# Run the store conformance suite against a real OpenSSH server: a private
# sshd on loopback started here (tests/servers/sshd.sh) and stopped after,
# reached through nothing but a ~/.ssh/config entry and a key. A server
# that cannot start fails the test. The server is this machine, so the
# suite also reads the server's directory directly (temp files of failed
# puts must not stay behind).
set -euo pipefail
exe=$1
here=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d /tmp/sm-sshd-XXXXXX)
rmdir "$dir"
data=$(mktemp -d /tmp/sm-sftp-data-XXXXXX)
trap '"$here/servers/sshd.sh" stop "$dir" >/dev/null 2>&1 || true; rm -rf "$data"' EXIT
SSHD_PORT=${SSHD_PORT:-2223} "$here/servers/sshd.sh" start "$dir" >/dev/null
# shellcheck disable=SC1091
. "$dir/env"
HOME=$SSH_TEST_HOME SSH_AUTH_SOCK='' SM_EXPECT_CAPS=dirs,links,mode \
	SM_STORE_RAW_DIR="$data/base" SM_STORE_URL="sm-test:$data/base/" "$exe"
