#!/usr/bin/env bash
# An S3 server that lists in directory order, for the tests of syncmgr's
# out-of-order listing: s3rver (the npm fork @20minutes/s3rver 5.0.0), a
# node.js S3 mock that keeps objects as files under one directory.
#
#   s3rver.sh start DIR [PORT]   start on 127.0.0.1:PORT (default $S3RVER_PORT,
#                                else 4568; never 0.0.0.0)
#   s3rver.sh stop DIR           kill this DIR's server, wait for it, remove DIR
#   s3rver.sh status DIR         exit 0 if this DIR's server answers
#
# `start` installs Debian's nodejs (and npm, when no npm comes with it) when
# missing (as root), and the npm package into a cache directory
# ($S3RVER_CACHE, default ~/.cache/syncmgr/s3rver-5.0.0) when it is not
# there yet, from the npm registry. It waits until the server answers (at
# most S3RVER_TIMEOUT s, default 30) and writes DIR/env, to be sourced:
#   export S3_ENDPOINT=http://127.0.0.1:PORT AWS_ACCESS_KEY_ID=S3RVER
#          AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
# Create buckets with the aws CLI as on any S3 server. S3RVER_LAX_SIGNATURES=1
# starts it with allowMismatchedSignatures (see below).
#
# What this server does (verified with 5.0.0), and why it is in the tests:
# - it lists in directory order, not byte order: "a/x" before "a-b" (it walks
#   its directories, each sorted by file name), as hierarchical-namespace
#   buckets and some gateways do;
# - a continuation token is the last key of the page, and the next page holds
#   the keys after that key's value in its walk: a key it walks later that
#   sorts before that key is never listed by that flat listing;
# - a delimiter listing shows a prefix only for a directory that holds an
#   object itself: "d/" is missing when d/ holds only d/e/f (trees for it put
#   a file in every directory that has files below it);
# - it canonicalizes a signed query with encodeURIComponent, which leaves
#   ! ' ( ) * alone where SigV4 encodes them: a query value holding one (a
#   start-after of "x!") gets SignatureDoesNotMatch, unless
#   S3RVER_LAX_SIGNATURES=1 (it then takes any well-formed signature);
# - it escapes ' (and & < > ") in listed keys twice ("a&#x27;b"), and its
#   DeleteObjects deletes another key than one with a tab or a trailing space
#   (and answers that it deleted the one asked for): trees for it avoid
#   those names;
# - it has no ListMultipartUploads (501 NotImplemented: syncmgr warns that
#   it cannot sweep interrupted uploads);
# - it ignores encoding-type=url (keys come as they are), does not check
#   payload hashes or part sizes, and has no ListParts or abort of multipart
#   uploads; node needs --openssl-legacy-provider (tokens use DES), and a
#   CompleteMultipartUpload naming a missing part would kill it without the
#   uncaughtException handler the launcher installs.
# A server that does not come up makes `start` fail with the tail of its log.
# DIR must be empty, missing, or a directory this script made (which `start`
# stops and wipes first). Only the process named in DIR/s3rver.pid (when its
# command line names DIR's launcher) is ever killed.
set -euo pipefail

PKG=@20minutes/s3rver
VERSION=5.0.0
PORT=${S3RVER_PORT:-4568}
TIMEOUT=${S3RVER_TIMEOUT:-30}
LAX=${S3RVER_LAX_SIGNATURES:-}
CACHE=${S3RVER_CACHE:-${HOME:-/root}/.cache/syncmgr/s3rver-$VERSION}
PACKAGES=(nodejs curl)
MARKER=.s3rver-sh
ACCESS_KEY=S3RVER
SECRET_KEY=S3RVER
REGION=us-east-1

me=s3rver.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# A PID is ours when it is alive (not a zombie) and its command line names
# this DIR's launcher.
is_ours() { # pid dir
	local pid=$1 state
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	state=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$pid/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ] || return 1
	tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$2/run.js"
}

stop_pid() { # dir
	local dir=$1 pid i
	[ -f "$dir/s3rver.pid" ] || return 0
	pid=$(<"$dir/s3rver.pid")
	if is_ours "$pid" "$dir"; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			is_ours "$pid" "$dir" || break
			((i == 50)) && kill -KILL "$pid" 2>/dev/null
			sleep 0.05
		done
		! is_ours "$pid" "$dir" || {
			say "process $pid did not exit"
			return 1
		}
	fi
	rm -f "$dir/s3rver.pid"
}

http_code() { # url
	curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" 2>/dev/null || true
}

# The npm package in $CACHE, installed once (under a lock: tests may start
# servers at the same time) into a temporary directory renamed into place.
ensure_package() {
	local main=$CACHE/node_modules/$PKG/package.json
	[ -f "$main" ] && return 0
	command -v npm >/dev/null || die "npm is missing (install Debian's npm, or nodejs with npm)"
	mkdir -p "$(dirname "$CACHE")"
	exec {lockfd}>"$CACHE.lock"
	flock "$lockfd"
	if [ ! -f "$main" ]; then
		local tmp
		tmp=$(mktemp -d "$CACHE.tmp.XXXXXX")
		say "installing $PKG@$VERSION into $CACHE (npm)"
		if ! npm install --prefix "$tmp" --no-audit --no-fund --no-save --loglevel=error \
			"$PKG@$VERSION" </dev/null >"$tmp.log" 2>&1; then
			tail -20 "$tmp.log" >&2
			rm -rf "$tmp" "$tmp.log"
			die "npm could not install $PKG@$VERSION"
		fi
		rm -f "$tmp.log"
		rm -rf "$CACHE"
		mv "$tmp" "$CACHE"
	fi
	exec {lockfd}>&-
	[ -f "$main" ] || die "$PKG is not in $CACHE after npm install"
}

cmd_start() {
	(($# >= 1 && $# <= 2)) || usage
	local dir
	PORT=${2:-$PORT}
	if ! [[ $PORT =~ ^[1-9][0-9]{0,4}$ ]] || ((PORT > 65535)); then
		die "bad port '$PORT' (want a port number)"
	fi
	command -v npm >/dev/null || PACKAGES+=(npm)
	ensure_packages
	command -v node >/dev/null || die "node is missing after installing nodejs"
	ensure_package

	dir=$(absdir "$1" create) || die "cannot create $1"
	[ "$dir" != / ] || die "refusing DIR /"
	if [ -e "$dir/$MARKER" ]; then
		stop_pid "$dir" || die "could not stop the previous server in $dir"
		find "$dir" -mindepth 1 -delete
	elif [ -n "$(ls -A -- "$dir")" ]; then
		die "$dir is not empty and was not made by $me"
	fi
	touch "$dir/$MARKER"
	if listening 127.0.0.1 "$PORT"; then
		ss -ltnp 2>/dev/null | grep -F ":$PORT " >&2 || true
		die "127.0.0.1:$PORT is already in use (a server left by another run? stop it with its own DIR)"
	fi
	mkdir -p "$dir/data"
	cat >"$dir/run.js" <<'EOF'
// Written by tests/servers/s3rver.sh: s3rver on 127.0.0.1 only.
// A CompleteMultipartUpload naming a missing part throws outside any
// request: log it and keep serving.
process.on('uncaughtException', (e) => console.error('uncaught exception:', (e && e.stack) || e))
process.on('unhandledRejection', (e) => console.error('unhandled rejection:', (e && e.stack) || e))
const [, , pkg, directory, port, lax] = process.argv
const S3rver = require(pkg)
const allowMismatchedSignatures = lax === 'lax'
new S3rver({ directory, address: '127.0.0.1', port: Number(port), silent: true, allowMismatchedSignatures })
  .run()
  .then(({ address, port }) => console.log(`s3rver listening on ${address}:${port}`))
  .catch((e) => {
    console.error('cannot start:', (e && e.stack) || e)
    process.exit(1)
  })
EOF
	node --openssl-legacy-provider "$dir/run.js" "$CACHE/node_modules/$PKG" "$dir/data" "$PORT" \
		"${LAX:+lax}" </dev/null >"$dir/s3rver.log" 2>&1 &
	local pid=$! deadline=$((SECONDS + TIMEOUT))
	echo "$pid" >"$dir/s3rver.pid"
	while [ "$(http_code "http://127.0.0.1:$PORT/")" = 000 ]; do
		if ! kill -0 "$pid" 2>/dev/null; then
			show_log s3rver "$dir/s3rver.log"
			die "s3rver exited while starting (log in $dir/s3rver.log)"
		fi
		if ((SECONDS >= deadline)); then
			show_log s3rver "$dir/s3rver.log"
			stop_pid "$dir" || true
			die "s3rver did not answer on 127.0.0.1:$PORT within $TIMEOUT s"
		fi
		sleep 0.1
	done
	{
		echo "# s3rver started by tests/servers/s3rver.sh; source this file."
		echo "export S3_ENDPOINT=http://127.0.0.1:$PORT AWS_ACCESS_KEY_ID=$ACCESS_KEY" \
			"AWS_SECRET_ACCESS_KEY=$SECRET_KEY AWS_REGION=$REGION AWS_DEFAULT_REGION=$REGION"
	} >"$dir/env"
	say "s3rver ready on 127.0.0.1:$PORT; source $dir/env"
}

cmd_stop() {
	(($# == 1)) || usage
	local dir
	dir=$(absdir "$1") || return 0 # nothing to stop
	[ -e "$dir/$MARKER" ] || [ -z "$(ls -A -- "$dir")" ] ||
		die "$dir was not made by $me; not touching it"
	stop_pid "$dir" || die "could not stop the server of $dir (left in place)"
	rm -rf -- "$dir"
}

cmd_status() {
	(($# == 1)) || usage
	local dir ep
	dir=$(absdir "$1") || die "no $1"
	if ! [ -f "$dir/s3rver.pid" ] || ! is_ours "$(<"$dir/s3rver.pid")" "$dir"; then
		die "s3rver is not running"
	fi
	[ -f "$dir/env" ] || die "not started (no $dir/env)"
	ep=$(sed -n 's/.*S3_ENDPOINT=\([^ ]*\).*/\1/p' "$dir/env")
	[ "$(http_code "$ep/")" != 000 ] || die "s3rver at $ep does not answer"
	echo "s3rver running at $ep"
}

case ${1:-} in
start | stop | status)
	c=$1
	shift
	"cmd_$c" "$@"
	;;
*) usage ;;
esac
