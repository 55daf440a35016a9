#!/usr/bin/env bash
# SFTP/SSH failures against a real OpenSSH server on loopback
# (tests/servers/sshd.sh). Each refused case exits 1 with ONE clear line on
# stderr (besides the summary, if any) and writes nothing:
#  - unknown host key (no known_hosts): refused with the host key fingerprint
#    and the ssh-keyscan line (which, run, makes the sync work); with
#    StrictHostKeyChecking accept-new the key is added (OpenSSH accepts the
#    file, the entries already there stay) and the sync succeeds;
#  - changed host key (sshd.sh rekey): refused with "CHANGED" and the
#    ssh-keygen -R line, also with accept-new and StrictHostKeyChecking no;
#    known_hosts is left alone; after ssh-keygen -R, accept-new works again;
#  - a refused identity: "permission denied (publickey)" naming user@host:port;
#  - a closed port: fails fast with "cannot connect to 127.0.0.1:PORT";
#  - ConnectTimeout 2 against a listener that drops SYNs (its accept queue is
#    full) and against one that accepts but never speaks SSH: fails within
#    ConnectTimeout + 10 s;
#  - a server that offers password authentication, no usable key, stdin not a
#    terminal (also with a controlling terminal, via script(1)): fails at
#    once, never prompts;
#  - a missing remote SRC directory (and a SRC that is a file): names the path;
#  - a full server disk stops the run with one message (not one per key).
# (TEST-NET addresses are not used for the timeout: this machine sits on
# 192.0.2.0/24, whose gateway refuses, and its network accepts TCP
# connections to other outside addresses.)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init sftp_errors

SSHD_PORT=${SSHD_PORT:-2242} sshd_start
SSHD_PW_PORT=${SSHD_PW_PORT:-2243}
export HOME=$SSH_TEST_HOME SSH_AUTH_SOCK=
KH=$SSH_TEST_KNOWN_HOSTS
CFG=$SSH_TEST_CONFIG
R=$T/remote
mkdir -p "$T/src/d" "$R"
echo one >"$T/src/one"
echo two >"$T/src/d/two"
cp "$KH" "$T/kh.orig"
cp "$CFG" "$T/config.orig"

# Failures that do not stop the remaining cases: reported together at the end.
DEFERRED=()
defer_fail() {
	echo "  FAIL (deferred) [$E2E_NAME]: $*" >&2
	DEFERRED+=("$*")
}

# refused WHAT NOT_WRITTEN STRING...: exit 1, exactly one stderr line besides
# the summary, holding every STRING; NOT_WRITTEN does not exist
refused() {
	local what=$1 path=$2 s n
	shift 2
	expect_rc 1 "$what"
	n=$(err_lines | wc -l)
	[ "$n" -eq 1 ] || fail "$what: expected one error line on stderr, got $n"
	for s in "$@"; do
		grep -qF -- "$s" "$T/sm.err" || fail "$what: the message lacks '$s'"
	done
	[ ! -e "$path" ] || fail "$what: $path was written"
	note "$what: $(err_lines)"
}

# within WHAT SECONDS: the last sm took at most SECONDS
within() {
	local took=$((SECONDS - SM_T0))
	[ "$took" -le "$2" ] || fail "$1: took $took s (more than $2 s)"
}
smt() {
	SM_T0=$SECONDS
	sm "$@"
}

host_entry() { # NAME EXTRA-LINES: a Host block like sm-test's plus EXTRA-LINES
	printf '\nHost %s\n    HostName 127.0.0.1\n    Port %s\n    User %s\n    IdentityFile %s\n    IdentitiesOnly yes\n    UserKnownHostsFile %s\n%s\n' \
		"$1" "$SSHD_PORT" "$SSH_TEST_USER" "$SSH_TEST_KEY" "$KH" "$2" >>"$CFG"
}
host_entry sm-accept "    StrictHostKeyChecking accept-new"
host_entry sm-nocheck "    StrictHostKeyChecking no"
KHNAME="[127.0.0.1]:$SSHD_PORT"

# 1. unknown host: no known_hosts at all
rm -f "$KH"
sm "$T/src/" "sm-test:$R/c1/"
refused "unknown host" "$R/c1" "is not a known host" "ssh-keyscan -p $SSHD_PORT 127.0.0.1 >> $KH"
[ ! -e "$KH" ] || fail "unknown host: known_hosts was created without accept-new"
grep -qF -- "$SSHD_HOST_FP" "$T/sm.err" ||
	defer_fail "unknown host: the message does not show the ED25519 host key fingerprint $SSHD_HOST_FP (OpenSSH's ssh shows that one): $(err_lines)"
# the same refusal when SFTP is SRC: nothing written locally
sm "sm-test:$R/" "$T/c1back/"
refused "unknown host (SRC)" "$T/c1back" "is not a known host" "ssh-keyscan"
# the hint works: after it, the sync goes through
ssh-keyscan -p "$SSHD_PORT" 127.0.0.1 >>"$KH" 2>/dev/null
sm "$T/src/" "sm-test:$R/c1/"
expect_rc 0 "after the ssh-keyscan hint"
expect_same_tree "$T/src" "$R/c1" "after the ssh-keyscan hint"

# 2. accept-new: no known_hosts -> created with the key; entries already
#    there (a comment, another host, a hashed one) stay
rm -f "$KH"
sm "$T/src/" "sm-accept:$R/c2/"
expect_rc 0 "accept-new, no known_hosts"
expect_same_tree "$T/src" "$R/c2" "accept-new, no known_hosts"
[ -s "$KH" ] || fail "accept-new: known_hosts was not created"
ssh-keygen -F "$KHNAME" -f "$KH" >/dev/null || fail "accept-new: no $KHNAME in known_hosts: $(cat "$KH")"
HOME=$SSH_TEST_HOME timeout 15 ssh -F "$CFG" -o BatchMode=yes -o StrictHostKeyChecking=yes \
	-o UserKnownHostsFile="$KH" sm-test true </dev/null >"$T/ssh.out" 2>&1 ||
	fail "accept-new: OpenSSH's ssh does not accept the known_hosts syncmgr wrote: $(cat "$T/ssh.out")"
sm "$T/src/" "sm-test:$R/c2/"
expect_rc 0 "strict checking after accept-new added the key"
summary >/dev/null # one summary line, or fail here (not inside a substitution)
expect_field copied 0 "strict checking after accept-new added the key"
other=$(cut -d' ' -f1,2 "$SSH_TEST_WRONG_KEY.pub")
echo "hashed.example $other" >"$T/hashed"
ssh-keygen -H -f "$T/hashed" >/dev/null 2>&1
{
	echo "# a comment of the user's"
	echo "other.example $other"
	cat "$T/hashed"
} >"$KH"
cp "$KH" "$T/kh.before"
sm "$T/src/" "sm-accept:$R/c2b/"
expect_rc 0 "accept-new, other entries in known_hosts"
ssh-keygen -F "$KHNAME" -f "$KH" >/dev/null || fail "accept-new: no $KHNAME added: $(cat "$KH")"
for h in other.example hashed.example; do
	ssh-keygen -F "$h" -f "$KH" >/dev/null || fail "accept-new: the entry for $h was lost: $(cat "$KH")"
done
while IFS= read -r line; do
	grep -qxF -- "$line" "$KH" ||
		defer_fail "accept-new rewrote known_hosts and dropped the line '$line' (ssh appends; now: $(tr '\n' '|' <"$KH"))"
done <"$T/kh.before"
cp "$T/kh.orig" "$KH"

# 3. a refused identity (and 3b, an RSA key refused for its SHA-1 signature)
sm "$T/src/" "sm-test-wrong:$R/c3/"
refused "wrong identity" "$R/c3" "permission denied (publickey)" "$SSH_TEST_USER@127.0.0.1:$SSHD_PORT"

# 3b. an authorized RSA key that OpenSSH still refuses (libssh2 1.10 signs
#     RSA with SHA-1): the message says why and what to use instead
ssh-keygen -q -t rsa -b 2048 -N '' -f "$T/id_rsa"
cat "$T/id_rsa.pub" >>"$SSHD_DIR/authorized_keys"
printf '\nHost sm-rsa\n    HostName 127.0.0.1\n    Port %s\n    User %s\n    IdentityFile %s\n    IdentitiesOnly yes\n    UserKnownHostsFile %s\n' \
	"$SSHD_PORT" "$SSH_TEST_USER" "$T/id_rsa" "$KH" >>"$CFG"
sm "$T/src/" "sm-rsa:$R/c3r/"
refused "RSA key" "$R/c3r" "permission denied (publickey)" "the RSA key $T/id_rsa was refused" \
	"SHA-1" "ed25519"

# 4. a closed port: fails fast
closed=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
smt "$T/src/" "$SSH_TEST_USER@127.0.0.1:$closed:$R/c4/"
refused "closed port" "$R/c4" "cannot connect to 127.0.0.1:$closed"
within "closed port" 8

# 5. ConnectTimeout 2: a listener that never answers the SYN, and one that
#    accepts but never sends the SSH banner
cat >"$T/listener.py" <<'EOF'
import socket, sys, time
mode, portfile = sys.argv[1], sys.argv[2]
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(0)
port = s.getsockname()[1]
held = []
if mode == "nosyn":
    # never accept, and fill the accept queue: Linux then drops new SYNs
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        held.append(c)
    time.sleep(0.3)
with open(portfile + ".tmp", "w") as f:
    f.write("%d\n" % port)
import os
os.rename(portfile + ".tmp", portfile)
while True:
    if mode == "mute":
        c, _ = s.accept()
        held.append(c)
    else:
        time.sleep(3600)
EOF
listener() { # MODE: start one, set LPORT
	"$PY" "$T/listener.py" "$1" "$T/port.$1" 2>"$T/listener.$1.log" &
	local pid=$!
	on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
	for _ in $(seq 100); do
		[ -s "$T/port.$1" ] && break
		sleep 0.05
	done
	[ -s "$T/port.$1" ] || fail "listener $1 did not start: $(cat "$T/listener.$1.log")"
	LPORT=$(cat "$T/port.$1")
}
listener nosyn
printf '\nHost sm-nosyn\n    HostName 127.0.0.1\n    Port %s\n    ConnectTimeout 2\n' "$LPORT" >>"$CFG"
smt "$T/src/" "sm-nosyn:$R/c5/"
refused "no answer to SYN, ConnectTimeout 2" "$R/c5" "cannot connect to 127.0.0.1:$LPORT" "within 2 s"
within "no answer to SYN, ConnectTimeout 2" 12
listener mute
printf '\nHost sm-mute\n    HostName 127.0.0.1\n    Port %s\n    ConnectTimeout 2\n' "$LPORT" >>"$CFG"
smt "$T/src/" "sm-mute:$R/c5b/"
refused "no SSH banner, ConnectTimeout 2" "$R/c5b" "127.0.0.1:$LPORT"
within "no SSH banner, ConnectTimeout 2" 12

# 6. no password prompt off a terminal: a server that offers passwords, no
#    usable key (IdentitiesOnly, a missing IdentityFile)
PW=$T/sshd-pw
on_exit "'$E2E_DIR/../servers/sshd.sh' stop '$PW' >/dev/null 2>&1"
SSHD_PORT=$SSHD_PW_PORT SSHD_PASSWORD=1 "$E2E_DIR/../servers/sshd.sh" start "$PW" >/dev/null 2>"$T/sshd-pw.log" ||
	fail "the password sshd did not start: $(tail -20 "$T/sshd-pw.log")"
printf '\nHost sm-pw\n    HostName 127.0.0.1\n    Port %s\n    User %s\n    IdentityFile %s\n    IdentitiesOnly yes\n    UserKnownHostsFile %s\n' \
	"$SSHD_PW_PORT" "$SSH_TEST_USER" "$T/no-such-key" "$PW/home/.ssh/known_hosts" >>"$CFG"
smt "$T/src/" "sm-pw:$R/c6/" # sm: stdin /dev/null, timeout 60 (fails on a timeout)
refused "password only, stdin not a terminal" "$R/c6" "permission denied (" "password" \
	"$SSH_TEST_USER@127.0.0.1:$SSHD_PW_PORT"
within "password only, stdin not a terminal" 20
# with a controlling terminal but stdin not one: still no prompt (script(1)
# is util-linux's, always there on Debian: its absence fails, never skips)
command -v script >/dev/null || fail "script(1) is missing: the terminal variant of the password case cannot run"
SM_T0=$SECONDS
set +e
timeout -k 5 60 script -qec "$(printf '%q ' "$SYNCMGR" "$T/src/" "sm-pw:$R/c6/") </dev/null" \
	"$T/typescript" </dev/null >"$T/script.out" 2>&1
rc=$?
set -e
[ "$rc" -lt 124 ] || fail "password only, on a terminal with stdin /dev/null: timed out or crashed ($rc)"
[ "$rc" -eq 1 ] || fail "password only, on a terminal with stdin /dev/null: exit $rc: $(cat "$T/script.out")"
grep -q "permission denied (" "$T/script.out" ||
	fail "password only, on a terminal with stdin /dev/null: no 'permission denied' (did it run?): $(cat "$T/script.out")"
rc=0
grep -qi "password:" "$T/script.out" || rc=$?
[ "$rc" -eq 1 ] || fail "password only, on a terminal with stdin /dev/null: prompted (grep status $rc): $(cat "$T/script.out")"
within "password only, on a terminal with stdin /dev/null" 20
[ ! -e "$R/c6" ] || fail "password only, on a terminal: $R/c6 was written"

# a wrong password in the URL: refused naming user@host:port, the password
# never printed (also not in the --debug log)
printf '\nHost sm-pwurl\n    HostName 127.0.0.1\n    Port %s\n    IdentityFile %s\n    IdentitiesOnly yes\n    UserKnownHostsFile %s\n' \
	"$SSHD_PW_PORT" "$T/no-such-key" "$PW/home/.ssh/known_hosts" >>"$CFG"
PWURL="$SSH_TEST_USER:NotThePw-Secret9@sm-pwurl:$R/c6b/"
pw_hidden() { # WHAT: the password is on neither stdout nor stderr of the last run
	local f rc
	for f in "$T/sm.err" "$T/sm.out"; do
		rc=0
		grep -qF "NotThePw-Secret9" "$f" || rc=$?
		[ "$rc" -eq 1 ] || fail "$1: the password was printed on ${f##*/sm.} (grep status $rc): $(grep -F NotThePw "$f" | head -3)"
	done
}
PWLOG=$(. "$PW/env" && echo "$SSHD_LOG")
[ -f "$PWLOG" ] || fail "the password sshd has no log at '$PWLOG'"
tried=$(grep -c "Failed password for $SSH_TEST_USER " "$PWLOG" || true)
smt "$T/src/" "$PWURL"
refused "a wrong password in the URL" "$R/c6b" "permission denied (" "$SSH_TEST_USER@127.0.0.1:$SSHD_PW_PORT"
pw_hidden "a wrong password in the URL"
[ "$(grep -c "Failed password for $SSH_TEST_USER " "$PWLOG" || true)" -gt "$tried" ] ||
	fail "a wrong password in the URL: the server saw no password attempt (its log: $(tail -3 "$PWLOG"))"
within "a wrong password in the URL" 20
sm --debug "$T/src/" "$PWURL"
expect_rc 1 "a wrong password in the URL, --debug"
pw_hidden "a wrong password in the URL, --debug"

# 7. a missing remote SRC directory, and a SRC that is a file
sm "sm-test:$R/no-such-dir/" "$T/c7/"
refused "missing remote SRC" "$T/c7" "$R/no-such-dir"
echo file >"$R/a-file"
sm "sm-test:$R/a-file/" "$T/c7b/"
refused "remote SRC is a file" "$T/c7b" "$R/a-file"

# 7b. a full server disk (a 2 MiB tmpfs): the run stops with one message
#     instead of failing every key, and leaves no temporary file
FULL=$T/fullfs
mkdir -p "$FULL"
mount -t tmpfs -o size=2m tmpfs "$FULL" || fail "cannot mount a small tmpfs for the full-disk case (needs root)"
on_exit "umount '$FULL' 2>/dev/null"
mkdir -p "$T/fsrc"
for i in $(seq 1 20); do head -c 300000 /dev/urandom >"$T/fsrc/f$i"; done
sm -p 1 "$T/fsrc/" "sm-test:$FULL/d/"
expect_rc 1 "a full server disk"
grep -q "no space left on the server" "$T/sm.err" || fail "a full server disk: $(head -3 "$T/sm.err")"
grep -q "is out of space" "$T/sm.err" || fail "a full server disk: the run did not stop: $(head -3 "$T/sm.err")"
[ "$(field failed)" = 1 ] || fail "a full server disk: $(field failed) keys failed, not 1 (the run should stop)"
[ -z "$(find "$FULL" -name '.~sm*')" ] || fail "a full server disk: temporary files left: $(find "$FULL" -name '.~sm*')"
umount "$FULL"

# 8. a changed host key: refused, also with accept-new and with
#    StrictHostKeyChecking no; known_hosts is not touched
old_fp=$SSHD_HOST_FP
"$E2E_DIR/../servers/sshd.sh" rekey "$SSHD_DIR" >/dev/null 2>"$T/rekey.log" ||
	fail "sshd.sh rekey failed: $(tail -5 "$T/rekey.log")"
# shellcheck disable=SC1091
. "$SSHD_DIR/env"
[ "$SSHD_HOST_FP" != "$old_fp" ] || fail "rekey kept the host key"
cp "$KH" "$T/kh.rekey"
for h in sm-test sm-accept sm-nocheck; do
	sm "$T/src/" "$h:$R/c8-$h/"
	refused "changed host key ($h)" "$R/c8-$h" "CHANGED" "ssh-keygen -R '$KHNAME'" "$SSHD_HOST_FP"
	cmp -s "$KH" "$T/kh.rekey" || fail "changed host key ($h): known_hosts was modified"
done
sm "sm-test:$R/" "$T/c8back/"
refused "changed host key (SRC)" "$T/c8back" "CHANGED" "ssh-keygen -R"
# the hint works: after ssh-keygen -R, accept-new takes the new key
ssh-keygen -R "$KHNAME" -f "$KH" >/dev/null 2>&1
sm "$T/src/" "sm-accept:$R/c8/"
expect_rc 0 "accept-new after ssh-keygen -R"
expect_same_tree "$T/src" "$R/c8" "accept-new after ssh-keygen -R"

if ((${#DEFERRED[@]})); then
	# shellcheck disable=SC2034 # read by fail
	SM_CMD=""
	fail "$(printf '%s\n' "${DEFERRED[@]}")"
fi
