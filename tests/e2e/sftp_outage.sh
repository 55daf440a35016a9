#!/usr/bin/env bash
# SSH outages ridden out, once (issue 23 item 4), against OpenSSH on loopback
# (tests/servers/sshd.sh). Each case stops syncmgr (SIGSTOP) once the first
# files have reached DST, changes the server, and lets syncmgr go on:
#  - a 2 s outage: sshd and its sessions killed, syncmgr continued, sshd
#    started again 2 s later with the same keys. Every key arrives (exit 0,
#    trees equal, no temp file left), the outage is one warning line, not
#    one per key;
#  - the host key changed mid-run (sshd.sh rekey): the run stops with exit 1
#    and ONE error line naming the change, after a handful of handshakes
#    (not one per key);
#  - authentication refused mid-run (the client's identity swapped for one
#    the server refuses, and sshd restarted): the same, one line,
#    "permission denied".
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init sftp_outage

SSHD_PORT=${SSHD_PORT:-2360} sshd_start
export HOME=$SSH_TEST_HOME SSH_AUTH_SOCK=
SSHD_SH=$E2E_DIR/../servers/sshd.sh
R=$T/remote
mkdir -p "$R"
# 8000 small files in 80 directories: long enough a run to stop it midway
"$PY" - "$T/src" <<'EOF'
import os, sys
root = sys.argv[1]
for d in range(80):
    p = os.path.join(root, "d%02d" % d)
    os.makedirs(p)
    for f in range(100):
        with open(os.path.join(p, "f%03d" % f), "wb") as fh:
            fh.write(os.urandom(512 + (d * 100 + f) % 2048))
EOF
# A Host entry of this test's own, whose identity a case may swap.
cp "$SSH_TEST_KEY" "$T/id_now"
printf '\nHost sm-out\n    HostName 127.0.0.1\n    Port %s\n    User %s\n    IdentityFile %s\n    IdentitiesOnly yes\n    UserKnownHostsFile %s\n' \
	"$SSHD_PORT" "$SSH_TEST_USER" "$T/id_now" "$SSH_TEST_KNOWN_HOSTS" >>"$SSH_TEST_CONFIG"

# run_stopped DST: start syncmgr SRC -> sm-out:DST in the background and
# stop it (SIGSTOP) once 20 files are on DST; sets SM_PID.
run_stopped() {
	SM_CMD="syncmgr $T/src/ sm-out:$1/"
	"$SYNCMGR" "$T/src/" "sm-out:$1/" >"$T/sm.out" 2>"$T/sm.err" </dev/null &
	SM_PID=$!
	on_exit "kill -KILL $SM_PID 2>/dev/null"
	"$PY" - "$1" "$SM_PID" <<'EOF' || fail "could not stop syncmgr midway"
import os, signal, sys, time
root, pid = sys.argv[1], int(sys.argv[2])
deadline = time.time() + 60
while time.time() < deadline:
    n = 0
    for _, _, files in os.walk(root):
        n += sum(1 for f in files if not f.startswith(".~sm"))
    if n >= 20:
        os.kill(pid, signal.SIGSTOP)
        sys.exit(0)
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    if open("/proc/%d/stat" % pid).read().split(") ")[1][0] == "Z":
        sys.exit("syncmgr ended before 20 files were on DST")
    time.sleep(0.005)
sys.exit("no 20 files on DST within 60 s")
EOF
}

# finish: continue syncmgr and wait for it (at most 120 s); sets SM_RC
finish() {
	kill -CONT "$SM_PID" 2>/dev/null || true
	local i
	for ((i = 0; i < 2400; i++)); do
		[ "$(sed 's/^[0-9]* (.*) \(.\).*/\1/' "/proc/$SM_PID/stat" 2>/dev/null || echo Z)" != Z ] || break
		sleep 0.05
	done
	if ((i == 2400)); then
		kill -KILL "$SM_PID" 2>/dev/null || true
		fail "syncmgr did not end within 120 s of the change"
	fi
	set +e
	wait "$SM_PID"
	SM_RC=$?
	set -e
}

# stderr lines besides the summary and the progress lines (not a terminal:
# one every 5 s)
msgs() { err_lines | grep -v '^syncmgr: progress: ' || true; }

# one_error WHAT STRING: exit 1, exactly one line on stderr besides the
# summary, holding STRING
one_error() {
	expect_rc 1 "$1"
	local n
	n=$(msgs | wc -l)
	[ "$n" -eq 1 ] || fail "$1: expected one error line on stderr, got $n: $(msgs | head -n 5)"
	msgs | grep -qF -- "$2" || fail "$1: the message lacks '$2': $(msgs)"
	note "$1: $(msgs)"
}

# connections since MARK (a line count of the sshd log)
connections_since() { tail -n +"$(($1 + 1))" "$SSHD_LOG" | grep -c 'Connection from' || true; }

# 1. a 2 s outage mid-run: every key arrives
run_stopped "$R/a"
"$SSHD_SH" down "$SSHD_DIR" >/dev/null 2>"$T/sshd.log" || fail "sshd.sh down: $(cat "$T/sshd.log")"
kill -CONT "$SM_PID" 2>/dev/null || true
sleep 2
"$SSHD_SH" up "$SSHD_DIR" >/dev/null 2>"$T/sshd.log" || fail "sshd.sh up: $(cat "$T/sshd.log")"
finish
expect_rc 0 "a 2 s outage mid-run"
expect_same_tree "$T/src" "$R/a" "a 2 s outage mid-run"
expect_no_temp_files "$R/a" "a 2 s outage mid-run"
n=$(msgs | wc -l)
[ "$n" -le 1 ] || fail "a 2 s outage mid-run: $n lines on stderr (one warning at most): $(msgs | head -n 5)"
note "outage: $(msgs)"

# 2. the host key changed mid-run: one line, a handful of handshakes
run_stopped "$R/b"
"$SSHD_SH" rekey "$SSHD_DIR" >/dev/null 2>"$T/sshd.log" || fail "sshd.sh rekey: $(cat "$T/sshd.log")"
# shellcheck disable=SC1091
. "$SSHD_DIR/env"
mark=$(wc -l <"$SSHD_LOG")
finish
one_error "host key changed mid-run" "CHANGED"
n=$(connections_since "$mark")
[ "$n" -le 4 ] || fail "host key changed mid-run: $n connections after the change (a handful at most)"
# known_hosts: the new keys, for the next case
"$PY" - "$SSHD_DIR" "$SSH_TEST_KNOWN_HOSTS" <<'EOF'
import sys
d, kh = sys.argv[1], sys.argv[2]
names = open(kh).read().split()[0]
with open(kh, "w") as f:
    for t in ("ed25519", "ecdsa"):
        k = open("%s/ssh_host_%s_key.pub" % (d, t)).read().split()
        f.write("%s %s %s\n" % (names, k[0], k[1]))
EOF

# 3. authentication refused mid-run: one line
run_stopped "$R/c"
"$SSHD_SH" down "$SSHD_DIR" >/dev/null 2>"$T/sshd.log" || fail "sshd.sh down: $(cat "$T/sshd.log")"
cp "$SSH_TEST_WRONG_KEY" "$T/id_now"
"$SSHD_SH" up "$SSHD_DIR" >/dev/null 2>"$T/sshd.log" || fail "sshd.sh up: $(cat "$T/sshd.log")"
# shellcheck disable=SC1091
. "$SSHD_DIR/env"
mark=$(wc -l <"$SSHD_LOG")
finish
one_error "authentication refused mid-run" "permission denied (publickey)"
n=$(connections_since "$mark")
[ "$n" -le 4 ] || fail "authentication refused mid-run: $n connections after the change (a handful at most)"
