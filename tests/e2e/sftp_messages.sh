#!/usr/bin/env bash
# Messages of SFTP runs (issue 23 item 6), against OpenSSH on loopback
# (tests/servers/sshd.sh):
#  - a SRC file that grows while it is copied to an SFTP DST
#    (--check-change) is reported under its SRC name ("SRC: 'd/zz-grow'
#    ..."), not as the DST path of a file that was never written;
#  - with --debug (and -v), keys holding a newline, a carriage return, a
#    tab and an escape sequence are written escaped, up and down: stderr has
#    no control byte but the newline that ends each line.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init sftp_messages

SSHD_PORT=${SSHD_PORT:-2365} sshd_start
export HOME=$SSH_TEST_HOME SSH_AUTH_SOCK=
R=$T/remote
mkdir -p "$R"

# 1. a file that grows while it is copied (--check-change: it fails at
#    once): syncmgr stopped (SIGSTOP) once its temp file shows on DST,
#    shorter than SRC; SRC grown meanwhile
mkdir -p "$T/src/d"
echo small >"$T/src/d/a-small"
head -c $((64 << 20)) /dev/zero >"$T/src/d/zz-grow"
SM_CMD="syncmgr --check-change $T/src/ sm-test:$R/g/"
"$SYNCMGR" --check-change "$T/src/" "sm-test:$R/g/" >"$T/sm.out" 2>"$T/sm.err" </dev/null &
SM_PID=$!
on_exit "kill -KILL $SM_PID 2>/dev/null"
"$PY" - "$R/g/d" "$SM_PID" $((64 << 20)) <<'EOF' || fail "could not stop syncmgr midway"
import os, signal, sys, time
d, pid, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
deadline = time.time() + 60
while time.time() < deadline:
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        names = []
    for n in names:
        if n.startswith(".~sm") and n.endswith("zz-grow"):
            try:
                got = os.stat(os.path.join(d, n)).st_size
            except FileNotFoundError:
                continue
            if 0 < got < size:
                os.kill(pid, signal.SIGSTOP)
                sys.exit(0)
    if open("/proc/%d/stat" % pid).read().split(") ")[1][0] == "Z":
        sys.exit("syncmgr ended before its temp file showed")
    time.sleep(0.002)
sys.exit("no temp file within 60 s")
EOF
head -c $((1 << 20)) /dev/zero >>"$T/src/d/zz-grow"
kill -CONT "$SM_PID"
set +e
wait "$SM_PID"
SM_RC=$?
set -e
expect_rc 1 "a file that grew while it was copied"
expect_field failed 1 "a file that grew while it was copied"
grep -q "SRC: 'd/zz-grow'" "$T/sm.err" ||
	fail "a file that grew while it was copied: not reported under its SRC name: $(err_lines)"
if grep -q "$R/g/d/zz-grow" "$T/sm.err"; then
	fail "a file that grew while it was copied: reported under its DST path: $(err_lines)"
fi
expect_no_temp_files "$R/g" "a file that grew while it was copied"
note "grown: $(err_lines)"
rm -f "$T/src/d/zz-grow"

# 2. --debug with control characters in keys, up and down
mkdir -p "$T/odd"
"$PY" - "$T/odd" <<'EOF'
import os, sys
for n in ("new\nline", "car\rret", "tab\tbed", "esc\x1b[31mred", "bell\x07"):
    with open(os.path.join(sys.argv[1], n), "w") as f:
        f.write(n)
EOF
# no control byte but the newline ending each line
no_controls() {
	"$PY" - "$T/sm.err" <<'EOF'
import sys
data = open(sys.argv[1], "rb").read()
bad = sorted({b for b in data if (b < 32 and b != 10) or b == 127})
if bad:
    sys.exit("control bytes %s in: %r" % (bad, data[:400]))
if b"new\\nline" not in data or b"esc\\x1b[31mred" not in data:
    sys.exit("the keys are not shown escaped: %r" % data[:400])
EOF
}
sm --debug -v "$T/odd/" "sm-test:$R/odd/"
expect_rc 0 "--debug up"
no_controls || fail "--debug up: raw control characters on stderr"
sm --debug -v "sm-test:$R/odd/" "$T/odd-back/"
expect_rc 0 "--debug down"
no_controls || fail "--debug down: raw control characters on stderr"
expect_same_tree "$T/odd" "$T/odd-back" "--debug down"
