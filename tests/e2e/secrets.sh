#!/usr/bin/env bash
# What a user sees about passwords, secret keys, credentials and SSH keys,
# against a real OpenSSH server and a real radosgw on loopback:
#  - a password holding '@' (and '+', or '/') splits at the last '@' before
#    the host in all three SFTP forms: the server sees a password attempt for
#    the right user on the right port;
#  - an S3 secret key holding '/', '+' and '@', unencoded in the URL, syncs
#    (users made with radosgw-admin for it), and so does its %-encoded form;
#  - a bad port is one line naming it, exit 2; a bad host, a closed port, a
#    refused key, a wrong password or secret, a missing bucket exit 1;
#  - S3 with no credentials anywhere, or AWS_PROFILE naming a profile the
#    file lacks, or an unreadable credentials file: one line saying so,
#    exit 1 (never unsigned requests);
#  - an encrypted ed25519 key that no agent holds: off a terminal one line
#    "key '...' is encrypted and no ssh-agent holds it", exit 1; on a
#    pseudo-terminal the passphrase is asked once ("Enter passphrase for key
#    '...': ", echo off) and the sync works; three wrong answers fail.
# In every case, at the default level, -v and --debug, neither stdout nor
# stderr holds any secret, nor any 4 characters of one.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init secrets
need_root

SSHD_PORT=${SSHD_PORT:-2360} sshd_start
SSHD_PW_PORT=${SSHD_PW_PORT:-$((SSHD_PORT + 1))}
export HOME=$SSH_TEST_HOME SSH_AUTH_SOCK=
CFG=$SSH_TEST_CONFIG
KH=$SSH_TEST_KNOWN_HOSTS
U=$SSH_TEST_USER
R=$T/remote
mkdir -p "$T/src/d" "$R"
echo one >"$T/src/one"
echo two >"$T/src/d/two"

# The secrets: odd mixes, so that no 4 characters of one are ordinary text.
PW_AT='Hq9@Zt+Wv@Rk'    # an SFTP password with '@' and '+'
PW_SLASH='Jd4/Mn+Yc8@Ls' # an SFTP password with '/', '+' and '@'
KEYPASS='Kp7+Xw@Qd9'     # the encrypted key's passphrase
WRONG1='Gf5@Bn2' WRONG2='Tz8+Cq3' WRONG3='Ey6/Hm1'
SK_SLASH='Qz7+Wx/9Kv@Jm3' # S3 secret keys: '/', '+', '@'
SK_AT='Vb2@Nh5+Tc8'
SK_OTHER='Yb4@Lp/Nc+Ud8' # in a credentials profile that is not chosen
SECRETS=("$PW_AT" "$PW_SLASH" "$KEYPASS" "$WRONG1" "$WRONG2" "$WRONG3" "$SK_SLASH" "$SK_AT" "$SK_OTHER")

# hidden_in WHAT FILE...: no secret, nor any 4 characters of one, in FILEs
hidden_in() {
	local what=$1 s k frag f
	shift
	for s in "${SECRETS[@]}"; do
		for ((k = 0; k + 4 <= ${#s}; k++)); do
			frag=${s:k:4}
			for f in "$@"; do
				if grep -qF -- "$frag" "$f"; then
					fail "$what: '$frag' of a secret is printed in ${f##*/}: $(grep -F -- "$frag" "$f" | head -2)"
				fi
			done
		done
	done
}
hidden() { hidden_in "$1" "$T/sm.out" "$T/sm.err"; }

# one_line WHAT RC MSG: exit RC, one stderr line besides the summary,
# holding MSG; no secret anywhere
one_line() {
	local what=$1 rc=$2 msg=$3 n
	expect_rc "$rc" "$what"
	n=$(err_lines | wc -l)
	[ "$n" -eq 1 ] || fail "$what: expected one error line on stderr, got $n: $(err_lines | head -5)"
	grep -qF -- "$msg" "$T/sm.err" || fail "$what: the message lacks '$msg': $(err_lines)"
	hidden "$what"
	note "$what: $(err_lines)"
}

# refused RC WHAT MSG ARGS...: syncmgr ARGS gives one_line at the default
# level, and the same exit and no secret with -v and with --debug
refused() {
	local rc=$1 what=$2 msg=$3 lvl
	shift 3
	sm "$@"
	one_line "$what" "$rc" "$msg"
	for lvl in -v --debug; do
		sm "$lvl" "$@"
		expect_rc "$rc" "$what, $lvl"
		hidden "$what, $lvl"
	done
}

# on_tty ANSWERS OUT CMD...: CMD on a pseudo-terminal (its stdin, stdout and
# stderr; its controlling terminal), answering each passphrase prompt with
# the next line of ANSWERS once the prompt shows (the prompt turns echo off
# and flushes what was typed before it); all it printed goes to OUT. Sets rc.
cat >"$T/on_tty.py" <<'EOF'
import os, pty, select, sys, time
answers = open(sys.argv[1]).read().splitlines()
out = open(sys.argv[2], "wb")
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[3], sys.argv[3:])
seen, sent = b"", 0
deadline = time.monotonic() + 90
while time.monotonic() < deadline:
    r, _, _ = select.select([fd], [], [], 1)
    if not r:
        continue
    try:
        data = os.read(fd, 4096)
    except OSError:  # EIO: the child closed the terminal
        break
    if not data:
        break
    seen += data
    out.write(data)
    out.flush()
    while sent < len(answers) and seen.count(b" for key '") > sent:  # one per prompt
        os.write(fd, answers[sent].encode() + b"\n")
        sent += 1
else:
    os.kill(pid, 9)
_, st = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(st))
EOF
on_tty() {
	local answers=$1 out=$2
	shift 2
	printf '%s\n' "$answers" >"$T/answers"
	set +e
	timeout -k 5 120 "$PY" "$T/on_tty.py" "$T/answers" "$out" "$@"
	rc=$?
	set -e
	[ "$rc" -lt 124 ] || fail "on a terminal: timed out or crashed ($rc): $(tail -5 "$out")"
}

# ---------------------------------------------------------------- SSH keys

# an encrypted ed25519 key, authorized, offered alone
ssh-keygen -q -t ed25519 -N "$KEYPASS" -C secrets.sh -f "$T/id_enc" </dev/null
cat "$T/id_enc.pub" >>"$SSHD_DIR/authorized_keys"
printf '\nHost sm-enc\n    HostName 127.0.0.1\n    Port %s\n    User %s\n    IdentityFile %s\n    IdentitiesOnly yes\n    UserKnownHostsFile %s\n' \
	"$SSHD_PORT" "$U" "$T/id_enc" "$KH" >>"$CFG"
ENC_MSG="ssh: key '$T/id_enc' is encrypted and no ssh-agent holds it; add it with ssh-add or use an unencrypted key"

# off a terminal: one line, exit 1, nothing written
refused 1 "encrypted key, stdin not a terminal" "$ENC_MSG" "$T/src/" "sm-enc:$R/k1/"
[ ! -e "$R/k1" ] || fail "encrypted key, off a terminal: $R/k1 was written"
# a controlling terminal, but stdin not one: no prompt either
command -v script >/dev/null || fail "script(1) is missing (util-linux)"
set +e
timeout -k 5 60 script -qec "$(printf '%q ' "$SYNCMGR" "$T/src/" "sm-enc:$R/k1/") </dev/null" \
	"$T/typescript" </dev/null >"$T/script.out" 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "encrypted key, stdin /dev/null on a terminal: exit $rc: $(cat "$T/script.out")"
grep -qF "$ENC_MSG" "$T/script.out" || fail "encrypted key, stdin /dev/null on a terminal: $(cat "$T/script.out")"
if grep -qi "enter passphrase" "$T/script.out"; then
	fail "encrypted key, stdin /dev/null on a terminal: prompted: $(cat "$T/script.out")"
fi
hidden_in "encrypted key, stdin /dev/null on a terminal" "$T/script.out"

# on a terminal: asked once (many files, 8 threads: the later connections
# reuse it), the sync works; the passphrase is not echoed
mkdir -p "$T/many"
for i in $(seq 1 40); do head -c 200000 /dev/urandom >"$T/many/f$i"; done
on_tty "$KEYPASS" "$T/tty1.out" "$SYNCMGR" -p 8 "$T/many/" "sm-enc:$R/k2/"
[ "$rc" -eq 0 ] || fail "encrypted key on a terminal: exit $rc: $(tail -5 "$T/tty1.out")"
expect_same_tree "$T/many" "$R/k2" "encrypted key on a terminal"
[ "$(grep -c "Enter passphrase for key '$T/id_enc': " "$T/tty1.out")" -eq 1 ] ||
	fail "encrypted key on a terminal: not asked exactly once: $(grep -i passphrase "$T/tty1.out")"
hidden_in "encrypted key on a terminal" "$T/tty1.out"
note "encrypted key on a terminal: $(grep -i passphrase "$T/tty1.out" | tr -d '\r')"

# three wrong answers: asked three times, then refused
on_tty "$WRONG1"$'\n'"$WRONG2"$'\n'"$WRONG3" "$T/tty2.out" "$SYNCMGR" "$T/src/" "sm-enc:$R/k3/"
[ "$rc" -eq 1 ] || fail "wrong passphrases: exit $rc: $(tail -5 "$T/tty2.out")"
grep -qF "wrong passphrase for key '$T/id_enc'" "$T/tty2.out" || fail "wrong passphrases: $(cat "$T/tty2.out")"
[ "$(grep -c "Bad passphrase, try again for key '$T/id_enc': " "$T/tty2.out")" -eq 2 ] ||
	fail "wrong passphrases: not asked three times: $(grep -i passphrase "$T/tty2.out")"
[ ! -e "$R/k3" ] || fail "wrong passphrases: $R/k3 was written"
hidden_in "wrong passphrases" "$T/tty2.out"

# ---------------------------------------------------------- SFTP passwords

# A server that takes passwords (none is right: root has no usable one);
# the sshd log's "Failed password for USER from 127.0.0.1" proves the URL
# was split into the right user and host, and the password sent.
PW=$T/sshd-pw
on_exit "'$E2E_DIR/../servers/sshd.sh' stop '$PW' >/dev/null 2>&1"
SSHD_PORT=$SSHD_PW_PORT SSHD_PASSWORD=1 "$E2E_DIR/../servers/sshd.sh" start "$PW" >/dev/null 2>"$T/sshd-pw.log" ||
	fail "the password sshd did not start: $(tail -20 "$T/sshd-pw.log")"
PWLOG=$(. "$PW/env" && echo "$SSHD_LOG")
cat "$PW/home/.ssh/known_hosts" >>"$KH"
printf '\nHost sm-pwurl\n    HostName 127.0.0.1\n    Port %s\n    IdentityFile %s\n    IdentitiesOnly yes\n    UserKnownHostsFile %s\n' \
	"$SSHD_PW_PORT" "$T/no-such-key" "$KH" >>"$CFG"
failed_pw() { grep -c "Failed password for $U from 127.0.0.1" "$PWLOG" || true; }
PWURLS=( # WHAT|URL
	"'@' in the password, scp form, a Host alias|$U:$PW_AT@sm-pwurl:$R/p/"
	"'@' in the password, scp form with a port|$U:$PW_AT@127.0.0.1:$SSHD_PW_PORT:$R/p/"
	"'@' in the password, sftp://|sftp://$U:$PW_AT@127.0.0.1:$SSHD_PW_PORT$R/p/"
	"'/' in the password, sftp://|sftp://$U:$PW_SLASH@127.0.0.1:$SSHD_PW_PORT$R/p/"
	"'/' in the password, scp form with a port|$U:$PW_SLASH@127.0.0.1:$SSHD_PW_PORT:$R/p/"
	"the password %-encoded, sftp://|sftp://$U:Jd4%2FMn%2BYc8%40Ls@127.0.0.1:$SSHD_PW_PORT$R/p/"
)
for case in "${PWURLS[@]}"; do
	what=${case%%|*} url=${case#*|}
	before=$(failed_pw)
	refused 1 "wrong password, $what" "$U@127.0.0.1:$SSHD_PW_PORT: permission denied (" "$T/src/" "$url"
	[ "$(failed_pw)" -ge $((before + 3)) ] ||
		fail "wrong password, $what: the server saw no password attempt for $U ($(tail -3 "$PWLOG"))"
	sm "$url" "$T/back/"
	one_line "wrong password, $what, as SRC" 1 "permission denied ("
done
[ ! -e "$R/p" ] || fail "wrong passwords: $R/p was written"
[ ! -e "$T/back" ] || fail "wrong passwords: $T/back was written"

# usage errors naming the URL: the password masked
refused 2 "bad port (scp form)" "'$U:****@127.0.0.1:99999:$R/x/': bad port '99999' (1-65535)" \
	"$T/src/" "$U:$PW_AT@127.0.0.1:99999:$R/x/"
refused 2 "port 0 (sftp://)" "bad port '0' (1-65535)" "$T/src/" "sftp://$U:$PW_AT@127.0.0.1:0$R/x/"
refused 2 "port abc (sftp://)" "bad port 'abc' (1-65535)" "$T/src/" "sftp://$U:$PW_SLASH@127.0.0.1:abc$R/x/"
refused 2 "no host" "'$U:****@:$R/x/': no host" "$T/src/" "$U:$PW_AT@:$R/x/"
refused 2 "SRC and DST disagree on '/'" "'$U:****@sm-pwurl:$R/x' must both end in '/'" \
	"$T/src/" "$U:$PW_AT@sm-pwurl:$R/x"
# run errors
refused 1 "unknown host" "cannot resolve 'no-such-host.invalid'" "$T/src/" "$U:$PW_AT@no-such-host.invalid:$R/x/"
closed=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
refused 1 "closed port" "cannot connect to 127.0.0.1:$closed" "$T/src/" "sftp://$U:$PW_SLASH@127.0.0.1:$closed$R/x/"
refused 1 "refused key, a password the server does not take" "permission denied (publickey)" \
	"$T/src/" "$U:$PW_AT@sm-test-wrong:$R/x/"
[ ! -e "$R/x" ] || fail "SFTP errors: $R/x was written"

# ---------------------------------------------------------- S3 secret keys

RADOSGW_PORT=${RADOSGW_PORT:-7488} rgw_start
ADMIN=(radosgw-admin -c "$RGW/ceph.conf")
AK_SLASH=SMSECRETSLASH0000001 AK_AT=SMSECRETAT0000000002
"${ADMIN[@]}" user create --uid=sm-slash --display-name="secrets.sh" --access-key="$AK_SLASH" \
	--secret="$SK_SLASH" >"$T/user1.out" 2>&1 || fail "radosgw-admin user create: $(tail -3 "$T/user1.out")"
"${ADMIN[@]}" user create --uid=sm-at --display-name="secrets.sh" --access-key="$AK_AT" \
	--secret="$SK_AT" >"$T/user2.out" 2>&1 || fail "radosgw-admin user create: $(tail -3 "$T/user2.out")"
mb() { # AK SK BUCKET
	AWS_ACCESS_KEY_ID=$1 AWS_SECRET_ACCESS_KEY=$2 aws s3 mb "s3://$3" >/dev/null 2>"$T/mb.err" ||
		fail "cannot make bucket $3 as $1: $(cat "$T/mb.err")"
}
for _ in $(seq 50); do # a new user takes a moment to be known to radosgw
	AWS_ACCESS_KEY_ID=$AK_SLASH AWS_SECRET_ACCESS_KEY=$SK_SLASH aws s3 ls >/dev/null 2>&1 && break
	sleep 0.2
done
mb "$AK_SLASH" "$SK_SLASH" sec-slash
mb "$AK_AT" "$SK_AT" sec-at

# the raw secrets in the URL: synced, at every level; back down with the
# %-encoded form
for lvl in "" -v --debug; do
	sm $lvl --no-https "$T/src/" "s3://$AK_SLASH:$SK_SLASH@$HP/sec-slash/t/"
	expect_rc 0 "secret key with '/', '+', '@' ${lvl:-(default level)}"
	hidden "secret key with '/', '+', '@' ${lvl:-(default level)}"
	sm $lvl --no-https "$T/src/" "s3://$AK_AT:$SK_AT@$HP/sec-at/t/"
	expect_rc 0 "secret key with '@', '+' ${lvl:-(default level)}"
	hidden "secret key with '@', '+' ${lvl:-(default level)}"
done
sm --no-https "s3://$AK_SLASH:Qz7%2BWx%2F9Kv%40Jm3@$HP/sec-slash/t/" "$T/s3back/"
expect_rc 0 "secret key %-encoded, as SRC"
expect_same_tree "$T/src" "$T/s3back" "secret key with '/', '+', '@' (up, then down %-encoded)"

# errors with a known secret
M3="s3://$AK_SLASH:****@$HP"
refused 2 "S3 bad port" "'s3://$AK_SLASH:****@127.0.0.1:70000/b/': bad port '70000' (1-65535)" \
	"$T/src/" "s3://$AK_SLASH:$SK_SLASH@127.0.0.1:70000/b/"
refused 2 "S3 missing bucket name" "missing the bucket" "$T/src/" "s3://$AK_SLASH:$SK_SLASH@$HP/"
refused 1 "S3 wrong secret key" "SignatureDoesNotMatch" \
	--no-https "$T/src/" "s3://$AK_SLASH:$SK_AT@$HP/sec-slash/w/"
refused 1 "S3 no such bucket" "no-such-bucket" \
	--no-https "$T/src/" "s3://$AK_SLASH:$SK_SLASH@$HP/no-such-bucket/w/"
refused 1 "S3 no such bucket, as SRC" "no-such-bucket" \
	--no-https "s3://$AK_AT:$SK_AT@$HP/no-such-bucket/w/" "$T/back/"
refused 1 "S3 closed port" "127.0.0.1:$closed" \
	--no-https "$T/src/" "s3://$AK_SLASH:$SK_SLASH@127.0.0.1:$closed/b/"
refused 2 "S3 SRC and DST disagree on '/'" "'$M3/sec-slash/t' must both end in '/'" \
	"$T/src/" "s3://$AK_SLASH:$SK_SLASH@$HP/sec-slash/t"
[ ! -e "$T/back" ] || fail "S3 errors: $T/back was written"

# ------------------------------------------------------- S3 credentials

# From here on no credentials in the environment.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE
H=$T/awshome
mkdir -p "$H"
chmod 755 "$T" "$H"
URL3="s3://$HP/sec-slash/c/"
# A run error (the configuration), not a usage error: exit 1. (Deferred, so
# the remaining cases still run when only the status is wrong.)
creds_refused() { # WHAT STRING...
	local what=$1 lvl
	shift
	for lvl in "" -v --debug; do
		HOME=$H sm $lvl --no-https "$T/src/" "$URL3"
		[ "$SM_RC" -eq 1 ] || defer_fail "$what ${lvl:-(default level)}: exit $SM_RC, want 1 (no credentials is no usage error)"
		[ "$(err_lines | wc -l)" -eq 1 ] || fail "$what: expected one error line, got: $(err_lines)"
		for s in "$@"; do
			grep -qF -- "$s" "$T/sm.err" || fail "$what: the message lacks '$s': $(err_lines)"
		done
		hidden "$what ${lvl:-(default level)}"
	done
	note "$what: $(err_lines)"
}
creds_refused "no credentials anywhere" \
	"'$URL3': no credentials found (not in the URL, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY unset, no $H/.aws/credentials)"
mkdir -p "$H/.aws"
chmod 755 "$H/.aws"
printf '[other]\naws_access_key_id = %s\naws_secret_access_key = %s\n\n[sm]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
	"$AK_AT" "$SK_OTHER" "$AK_SLASH" "$SK_SLASH" >"$H/.aws/credentials"
chmod 600 "$H/.aws/credentials"
creds_refused "no default profile" "no credentials found" "no profile 'default' in $H/.aws/credentials"
export AWS_PROFILE=nope
creds_refused "AWS_PROFILE naming no profile" "'$URL3': AWS_PROFILE 'nope': no such profile in $H/.aws/credentials"
# the profile that exists works
export AWS_PROFILE=sm
HOME=$H sm --no-https "$T/src/" "$URL3"
expect_rc 0 "AWS_PROFILE naming a profile in the file"
hidden "AWS_PROFILE naming a profile in the file"
# a credentials file that cannot be read (as nobody): names the file
HOME=$H SM_AS=nobody sm --no-https "$T/src/" "$URL3"
[ "$SM_RC" -eq 1 ] || defer_fail "unreadable credentials file: exit $SM_RC, want 1"
grep -qF "cannot read the credentials in $H/.aws/credentials: permission denied" "$T/sm.err" ||
	fail "unreadable credentials file: $(err_lines)"
hidden "unreadable credentials file"
note "unreadable credentials file: $(err_lines)"
unset AWS_PROFILE
