#!/usr/bin/env bash
# SFTP against a real OpenSSH server on loopback (tests/servers/sshd.sh),
# reached with nothing but a ~/.ssh/config Host entry and a key (no agent):
#  - local -> SFTP -> local with --perms --links --dirs keeps contents, modes,
#    whole-second mtimes, symlinks and empty dirs; the remote tree (a local
#    directory here) equals the source too; a second pass copies nothing;
#  - transfer slots share SSH connections: -p 10 opens one, -p 25 at most 3
#    (and the manager one of its own);
#  - --delete-dst over SFTP deletes exactly the DST-only keys, dirs included;
#  - a 2 x 64 MiB file goes up and down intact;
#  - the user@host:port:/path and sftp://user@host:port/path URL forms (the
#    default identity ~/.ssh/id_ed25519 and ~/.ssh/known_hosts) work;
#  - the server's session process SIGKILLed mid-transfer (many files, a large
#    file up and down, -p 2): the run reconnects, exits 0, the tree is
#    complete and no temporary file is left behind;
#  - the server's SFTP process stopped mid-run (sshd still answering
#    keepalives): after ServerAliveInterval x (ServerAliveCountMax + 1)
#    without a reply the run reconnects and completes;
#  - a symlink loop on an SFTP SRC (followed, without --links) is refused.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init sftp_roundtrip

SSHD_PORT=${SSHD_PORT:-2241} sshd_start
export HOME=$SSH_TEST_HOME SSH_AUTH_SOCK=
R=$T/remote # what the server writes, seen directly (the server is on this machine)
mkdir -p "$R"

# Failures that do not stop the remaining cases: reported together at the end.
DEFERRED=()
defer_fail() {
	echo "  FAIL (deferred) [$E2E_NAME]: $*" >&2
	if [ -s "$T/sm.err" ]; then tail -n 5 "$T/sm.err" | sed 's/^/    /' >&2; fi
	DEFERRED+=("$*")
}

# 1. round trip of a random tree: names with spaces, UTF-8, a newline; empty
#    dirs; relative symlinks; random modes; whole-second mtimes
gentree gen --seed 41 --out "$T/src" --files 150 >/dev/null
sm --perms --links --dirs "$T/src/" "sm-test:$R/tree/"
expect_rc 0 "local -> SFTP"
[ "$(field copied)" -gt 150 ] || fail "local -> SFTP copied only $(field copied) keys"
expect_same_tree --perms --mtime "$T/src" "$R/tree" "the tree the server wrote"
expect_no_temp_files "$R/tree" "local -> SFTP"
sm --perms --links --dirs "$T/src/" "sm-test:$R/tree/"
expect_rc 0 "local -> SFTP again"
summary >/dev/null # one summary line, or fail here (not inside a substitution)
expect_field copied 0 "second pass local -> SFTP"
sm --perms --links --dirs "sm-test:$R/tree/" "$T/back/"
expect_rc 0 "SFTP -> local"
expect_same_tree --perms --mtime "$T/src" "$T/back" "local -> SFTP -> local"
sm --perms --links --dirs "sm-test:$R/tree/" "$T/back/"
expect_rc 0 "SFTP -> local again"
summary >/dev/null
expect_field copied 0 "second pass SFTP -> local"
# without --links a symlink is followed: the server's files arrive, no links
sm "sm-test:$R/tree/" "$T/followed/"
expect_rc 0 "SFTP -> local following links"
[ -z "$(find "$T/followed" -type l)" ] || fail "symlinks arrived without --links"
(cd "$T/src" && find -L . -type f | LC_ALL=C sort) >"$T/want.follow"
(cd "$T/followed" && find . -type f | LC_ALL=C sort) >"$T/got.follow"
diff "$T/want.follow" "$T/got.follow" >"$T/diff" ||
	fail "following links over SFTP: files differ from find -L: $(head -5 "$T/diff")"

# 1b. transfer slots share connections (their requests pipelined on one
#     SFTP channel): ten slots one connection, 25 at most three, plus the
#     manager's own (its checks and the end's deletes: the workers open
#     their stores themselves, issue 22)
logins() { grep -c 'Accepted publickey' "$SSHD_LOG" || true; }
shared_run() { # SLOTS MIN MAX: a copy with -p SLOTS opens MIN to MAX connections
	local before n
	before=$(logins)
	sm --links --dirs -p "$1" "$T/src/" "sm-test:$R/shared$1/"
	expect_rc 0 "local -> SFTP with -p $1"
	n=$(($(logins) - before))
	[ "$n" -ge "$2" ] && [ "$n" -le "$3" ] || fail "-p $1 opened $n SSH connections, want $2 to $3"
	expect_same_tree --mtime "$T/src" "$R/shared$1" "local -> SFTP with -p $1"
}
shared_run 10 2 2
shared_run 25 2 4

# 2. --delete-dst over SFTP: exactly the DST-only keys go, directories too
mkdir -p "$R/del"
cp -a "$T/src/." "$R/del/"
mkdir -p "$R/del/only-dir/sub/deeper" "$R/del/only-empty"
echo 1 >"$R/del/only-file"
echo 2 >"$R/del/only-dir/f"
echo 3 >"$R/del/only-dir/sub/g"
echo 4 >"$R/del/only-dir/sub/deeper/h"
ln -s only-file "$R/del/only-link"
[ -d "$T/src/a" ] || fail "gentree made no directory 'a'"
echo 5 >"$R/del/a/only-nested"
# every DST-only entry is a key with --dirs (directories as "dir/")
extra=$(cd "$R/del" && find only-dir only-empty only-file only-link a/only-nested | wc -l)
sm --perms --links --dirs --delete-dst "$T/src/" "sm-test:$R/del/"
expect_rc 0 "--delete-dst over SFTP"
expect_field deleted "$extra" "--delete-dst over SFTP"
expect_field copied 0 "--delete-dst over SFTP (nothing else changes)"
expect_same_tree --perms --mtime "$T/src" "$R/del" "after --delete-dst over SFTP"
# the other way: a local DST loses what the SFTP SRC lacks
echo stray >"$T/back/stray"
mkdir -p "$T/back/stray-dir/x"
sm --perms --links --dirs --delete-dst "sm-test:$R/tree/" "$T/back/"
expect_rc 0 "--delete-dst from SFTP"
expect_field deleted 3 "--delete-dst from SFTP (stray, stray-dir/, stray-dir/x/)"
expect_same_tree --perms --mtime "$T/src" "$T/back" "after --delete-dst from SFTP"

# 3. a 2 x 64 MiB file, up and down
mkdir -p "$T/big"
head -c $((2 * 64 * 1024 * 1024)) /dev/urandom >"$T/big/big.bin"
touch -d '@1500000000' "$T/big/big.bin"
sm "$T/big/" "sm-test:$R/big/"
expect_rc 0 "128 MiB up"
cmp "$T/big/big.bin" "$R/big/big.bin" || fail "128 MiB up: the server's copy differs"
sm "sm-test:$R/big/" "$T/bigback/"
expect_rc 0 "128 MiB down"
cmp "$T/big/big.bin" "$T/bigback/big.bin" || fail "128 MiB down: the copy differs"
expect_same_tree --mtime "$T/big" "$T/bigback" "128 MiB round trip"

# 4. the other URL forms: default identity file and known_hosts of $HOME
if [ ! -f "$HOME/.ssh/id_ed25519" ] || [ ! -f "$HOME/.ssh/known_hosts" ]; then
	fail "the test home lacks ~/.ssh/id_ed25519 or ~/.ssh/known_hosts"
fi
mkdir -p "$T/small/d"
echo one >"$T/small/one"
echo two >"$T/small/d/two"
touch -d '@1234567890' "$T/small/one" "$T/small/d/two"
HP="$SSH_TEST_USER@127.0.0.1:$SSHD_PORT"
sm "$T/small/" "$HP:$R/form1/"
expect_rc 0 "user@host:port:/path up"
expect_same_tree --no-dirs --mtime "$T/small" "$R/form1" "user@host:port:/path up"
sm "$HP:$R/form1/" "$T/form1back/"
expect_rc 0 "user@host:port:/path down"
expect_same_tree --no-dirs --mtime "$T/small" "$T/form1back" "user@host:port:/path down"
sm "$T/small/" "sftp://$HP$R/form2/"
expect_rc 0 "sftp://user@host:port/path up"
expect_same_tree --no-dirs --mtime "$T/small" "$R/form2" "sftp:// up"
sm "sftp://$HP$R/form2/" "$T/form2back/"
expect_rc 0 "sftp://user@host:port/path down"
expect_same_tree --no-dirs --mtime "$T/small" "$T/form2back" "sftp:// down"
sm "sftp://$HP$R/form2/" "$HP:$R/form3/"
expect_rc 0 "SFTP -> SFTP"
expect_same_tree --no-dirs --mtime "$T/small" "$R/form3" "SFTP -> SFTP"

# 5. session processes killed mid-transfer: reconnect and complete.
# sessions: this server's per-connection processes ("sshd: USER@notty")
sessions() { pgrep -P "$SSHD_PID" -f "^sshd: $SSH_TEST_USER@notty" || true; }
bytes_in() { { du -sb --apparent-size "$1" 2>/dev/null || true; } | awk '{ n = $1 } END { print n + 0 }'; }

# kill_run WHAT WATCH MIN_BYTES SRC DST: run syncmgr -p 2 SRC DST in the
# background; once WATCH (the directory DST writes to) holds MIN_BYTES,
# SIGKILL the newest session, and again every 0.3 s while the run lasts
# (at most 3). Retried (with WATCH emptied) until a kill landed while the
# run was in progress. Sets KILLED and SM_RC; output in $T/sm.{out,err}.
kill_run() {
	local what=$1 watch=$2 min=$3 attempt pid victim
	shift 3
	for attempt in 1 2 3 4 5; do
		rm -rf "$watch"
		SM_CMD="syncmgr -p 2 $(printf '%q ' "$@")"
		timeout -k 5 120 "$SYNCMGR" -p 2 "$@" >"$T/sm.out" 2>"$T/sm.err" </dev/null &
		pid=$!
		KILLED=0
		while kill -0 "$pid" 2>/dev/null && [ "$KILLED" -lt 3 ]; do
			if [ "$(bytes_in "$watch")" -ge "$min" ]; then
				victim=$(sessions | tail -n 1)
				if [ -n "$victim" ] && kill -0 "$pid" 2>/dev/null && kill -KILL "$victim" 2>/dev/null; then
					# it counts when the run was still going afterwards
					if kill -0 "$pid" 2>/dev/null; then KILLED=$((KILLED + 1)); fi
					sleep 0.3
				fi
			fi
			sleep 0.02
		done
		set +e
		wait "$pid"
		SM_RC=$?
		set -e
		[ "$SM_RC" -lt 124 ] || fail "$what: syncmgr crashed or timed out (exit $SM_RC)"
		if [ "$KILLED" -gt 0 ]; then
			note "$what: $KILLED session(s) killed during the run (attempt $attempt); its stderr:"
			sed 's/^/      /' "$T/sm.err" | tail -n 8 >&2
			return 0
		fi
		note "$what: the run ended before a session could be killed (attempt $attempt); again"
	done
	fail "$what: could not kill a session while the run was in progress in 5 attempts"
}

# no_temp_left WHAT DIR: no .~sm temp file in DIR (a deferred failure; the
# leftovers are then removed so that the completeness checks still run)
no_temp_left() {
	local left
	left=$(temp_files "$2")
	if [ -n "$left" ]; then
		defer_fail "$1: $(echo "$left" | wc -l) temp file(s) left behind: $(echo "$left" | head -3 | tr '\n' ' ')"
		find "$2" -name '.~sm*' -delete
	fi
}

# 5a. a few hundred files up
mkdir -p "$T/many"
for i in $(seq 1 400); do
	d=$T/many/d$((i % 8))
	mkdir -p "$d"
	head -c $((RANDOM % 40000 + 20000)) /dev/urandom >"$d/f$i"
done
find "$T/many" -type f -exec touch -d '@1600000000' {} + # SFTP keeps whole seconds
kill_run "400 files up" "$R/many" 200000 "$T/many/" "sm-test:$R/many/"
expect_rc 0 "400 files up with sessions killed"
no_temp_left "400 files up with sessions killed" "$R/many"
expect_same_tree --no-dirs --mtime "$T/many" "$R/many" "400 files up with sessions killed"

# 5b. the 128 MiB file up
kill_run "128 MiB up" "$R/bigk" 10000000 "$T/big/" "sm-test:$R/bigk/"
expect_rc 0 "128 MiB up with sessions killed"
cmp "$T/big/big.bin" "$R/bigk/big.bin" || fail "128 MiB up with sessions killed: the copy differs"
no_temp_left "128 MiB up with sessions killed" "$R/bigk"
expect_same_tree --mtime "$T/big" "$R/bigk" "128 MiB up with sessions killed"

# 5c. the 128 MiB file down
kill_run "128 MiB down" "$T/bigk" 10000000 "sm-test:$R/big/" "$T/bigk/"
expect_rc 0 "128 MiB down with sessions killed"
cmp "$T/big/big.bin" "$T/bigk/big.bin" || fail "128 MiB down with sessions killed: the copy differs"
expect_no_temp_files "$T/bigk" "128 MiB down with sessions killed"

# 5d. the many files down
kill_run "400 files down" "$T/manyk" 200000 "sm-test:$R/many/" "$T/manyk/"
expect_rc 0 "400 files down with sessions killed"
expect_same_tree --no-dirs --mtime "$T/many" "$T/manyk" "400 files down with sessions killed"
expect_no_temp_files "$T/manyk" "400 files down with sessions killed"

# 5e. a server that goes silent: the SFTP process of the run's connection
#     stopped (SIGSTOP) mid-run while its sshd still answers keepalives. With
#     ServerAliveInterval 1 and ServerAliveCountMax 1 the engine gives up on
#     the connection after 2 s without a reply; the run reconnects and
#     completes.
{
	echo
	echo "Host sm-alive"
	sed -n '/^Host sm-test$/,/^$/p' "$HOME/.ssh/config" | sed '1d;/^$/d'
	echo "    ServerAliveInterval 1"
	echo "    ServerAliveCountMax 1"
} >>"$HOME/.ssh/config"
STOPPED=()
on_exit 'for p in "${STOPPED[@]}"; do kill -KILL "$p" 2>/dev/null || true; done'
SM_CMD="syncmgr -v -p 4 $T/many/ sm-alive:$R/stall/"
timeout -k 5 120 "$SYNCMGR" -v -p 4 "$T/many/" "sm-alive:$R/stall/" >"$T/sm.out" 2>"$T/sm.err" </dev/null &
pid=$!
while kill -0 "$pid" 2>/dev/null && [ "${#STOPPED[@]}" -eq 0 ]; do
	if [ "$(bytes_in "$R/stall")" -ge 100000 ]; then
		for s in $(sessions); do
			for c in $(pgrep -P "$s" || true); do
				kill -STOP "$c" 2>/dev/null && STOPPED+=("$c")
			done
		done
	fi
	sleep 0.01
done
set +e
wait "$pid"
SM_RC=$?
set -e
# it never comes back (resumed, it would still carry out the requests it
# holds, such as the OPEN of a temp file the run has given up on)
for p in "${STOPPED[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
[ "${#STOPPED[@]}" -gt 0 ] || fail "a silent server: the run ended before its SFTP process could be stopped"
expect_rc 0 "a silent server (SFTP process stopped)"
grep -q "no reply for 2 s" "$T/sm.err" ||
	fail "a silent server: no 'no reply for 2 s' retry in the log: $(grep -m3 retrying "$T/sm.err")"
no_temp_left "a silent server" "$R/stall"
expect_same_tree --no-dirs --mtime "$T/many" "$R/stall" "a silent server (SFTP process stopped)"
note "a silent server: $(grep -m1 'no reply' "$T/sm.err")"

# 6. following symlinks (no --links) on an SFTP SRC refuses a loop, as the
#    file backend does, instead of listing the same directory 40 deep
mkdir -p "$R/loop/d"
echo x >"$R/loop/d/f"
ln -s . "$R/loop/d/self"
ln -s .. "$R/loop/d/up"
sm "sm-test:$R/loop/" "$T/loopdown/"
expect_rc 1 "a symlink loop on an SFTP SRC"
grep -q "symlink loop at 'd/self/'" "$T/sm.err" || grep -q "symlink loop at 'd/up/'" "$T/sm.err" ||
	fail "a symlink loop on an SFTP SRC: no loop message: $(head -3 "$T/sm.err")"
[ "$(find "$T/loopdown" -type f 2>/dev/null | wc -l)" -le 2 ] ||
	fail "a symlink loop on an SFTP SRC: the loop was followed"

if ((${#DEFERRED[@]})); then
	# shellcheck disable=SC2034 # read by fail
	SM_CMD=""
	fail "$(printf '%s\n' "${DEFERRED[@]}")"
fi
