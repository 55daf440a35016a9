#!/usr/bin/env bash
# Host keys as strict as OpenSSH (issue 23 item 1), against OpenSSH on
# loopback (tests/servers/sshd.sh; its host keys are ed25519 and ECDSA).
# Each refusal exits 1 with one line and writes nothing, and OpenSSH's ssh
# is asked the same question where it answers it:
#  - known_hosts holds only a key of another type (RSA) for the host: a
#    changed key, also with StrictHostKeyChecking accept-new (ssh refuses
#    too), and known_hosts is left as it was;
#  - the server's key is marked @revoked (besides a plain entry for it):
#    refused, naming the line (ssh refuses too);
#  - only a @cert-authority line names the host: refused, "host
#    certificates are not supported", also with accept-new;
#  - GlobalKnownHostsFile is read: the host's key only there is enough; a
#    changed key there is refused naming that file;
#  - an unknown host with UserKnownHostsFile none: the advice names no
#    file that is not read;
#  - HashKnownHosts yes with accept-new: the line added is hashed, and ssh
#    accepts the file.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init sftp_hostkeys

SSHD_PORT=${SSHD_PORT:-2363} sshd_start
export HOME=$SSH_TEST_HOME SSH_AUTH_SOCK=
KH=$SSH_TEST_KNOWN_HOSTS
CFG=$SSH_TEST_CONFIG
NAME="[127.0.0.1]:$SSHD_PORT"
R=$T/remote
mkdir -p "$T/src" "$R"
echo one >"$T/src/one"
cp "$KH" "$T/kh.orig"

# host_entry ALIAS EXTRA-LINES: a Host block logging in as sm-test does,
# with EXTRA-LINES (its own known_hosts settings)
host_entry() {
	printf '\nHost %s\n    HostName 127.0.0.1\n    Port %s\n    User %s\n    IdentityFile %s\n    IdentitiesOnly yes\n%s\n' \
		"$1" "$SSHD_PORT" "$SSH_TEST_USER" "$SSH_TEST_KEY" "$2" >>"$CFG"
}
host_entry sm-strict "    UserKnownHostsFile $KH
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes"
host_entry sm-accept "    UserKnownHostsFile $KH
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking accept-new"
host_entry sm-global "    UserKnownHostsFile $T/kh.user
    GlobalKnownHostsFile $T/kh.none $T/kh.global
    StrictHostKeyChecking yes"
host_entry sm-nofile "    UserKnownHostsFile none
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes"
host_entry sm-hash "    UserKnownHostsFile $T/kh.hash
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking accept-new
    HashKnownHosts yes"

# refused WHAT DIR STRING...: exit 1, one stderr line besides the summary,
# holding every STRING; DIR not made
refused() {
	local what=$1 path=$2 s n
	shift 2
	expect_rc 1 "$what"
	n=$(err_lines | wc -l)
	[ "$n" -eq 1 ] || fail "$what: expected one error line on stderr, got $n: $(err_lines | head -n 4)"
	for s in "$@"; do
		grep -qF -- "$s" "$T/sm.err" || fail "$what: the message lacks '$s': $(err_lines)"
	done
	[ ! -e "$path" ] || fail "$what: $path was written"
	note "$what: $(err_lines)"
}

# ssh_says ALIAS: OpenSSH's verdict on the same host (exit status of a login)
ssh_says() {
	timeout 15 ssh -F "$CFG" -o BatchMode=yes "$1" true </dev/null >"$T/ssh.out" 2>&1
}

key() { awk '{ print $1 " " $2 }' "$SSHD_DIR/ssh_host_$1_key.pub"; }

# 1. only a key of another type is known: CHANGED, also under accept-new
ssh-keygen -q -t rsa -b 2048 -N '' -f "$T/other_rsa"
echo "$NAME $(cut -d' ' -f1,2 "$T/other_rsa.pub")" >"$KH"
cp "$KH" "$T/kh.before"
for h in sm-strict sm-accept; do
	sm "$T/src/" "$h:$R/c1/"
	refused "another key type known ($h)" "$R/c1" "CHANGED" "RSA key in $KH:1" "ssh-keygen -R '$NAME'"
	cmp -s "$KH" "$T/kh.before" || fail "another key type known ($h): known_hosts was changed: $(cat "$KH")"
	if ssh_says "$h"; then
		fail "another key type known ($h): OpenSSH's ssh logs in, so this test is wrong"
	fi
	grep -q "REMOTE HOST IDENTIFICATION HAS CHANGED" "$T/ssh.out" ||
		fail "another key type known ($h): ssh says something else: $(cat "$T/ssh.out")"
done

# 2. @revoked: the server's ed25519 key, also listed plainly: refused; with
#    its ECDSA key known too, that one is asked for and used (as ssh does)
{
	echo "$NAME $(key ed25519)"
	echo "@revoked $NAME $(key ed25519)"
} >"$KH"
sm "$T/src/" "sm-strict:$R/c2/"
refused "revoked key" "$R/c2" "is marked @revoked in $KH:2" "$SSHD_HOST_FP"
if ssh_says sm-strict; then fail "revoked key: OpenSSH's ssh logs in, so this test is wrong"; fi
echo "$NAME $(key ecdsa)" >>"$KH"
sm "$T/src/" "sm-strict:$R/c2/"
expect_rc 0 "a revoked key and a good one of another type"
ssh_says sm-strict || fail "a revoked key and a good one: OpenSSH's ssh refuses, so this test is wrong: $(cat "$T/ssh.out")"

# 3. only a @cert-authority line names the host
ssh-keygen -q -t ed25519 -N '' -f "$T/ca"
echo "@cert-authority $NAME,other.example $(cut -d' ' -f1,2 "$T/ca.pub")" >"$KH"
cp "$KH" "$T/kh.before"
for h in sm-strict sm-accept; do
	sm "$T/src/" "$h:$R/c3/"
	refused "@cert-authority only ($h)" "$R/c3" "@cert-authority line $KH:1" "host certificates are not supported"
	cmp -s "$KH" "$T/kh.before" || fail "@cert-authority only ($h): known_hosts was changed: $(cat "$KH")"
done

# 4. GlobalKnownHostsFile: the key there (a missing global file before it)
: >"$T/kh.user"
cp "$T/kh.orig" "$T/kh.global"
sm "$T/src/" "sm-global:$R/c4/"
expect_rc 0 "the host key in GlobalKnownHostsFile"
expect_same_tree "$T/src" "$R/c4" "the host key in GlobalKnownHostsFile"
echo "$NAME $(cut -d' ' -f1,2 "$T/other_rsa.pub")" >"$T/kh.global"
sm "$T/src/" "sm-global:$R/c4b/"
refused "a changed key in GlobalKnownHostsFile" "$R/c4b" "CHANGED" "$T/kh.global:1" "-f '$T/kh.global'"

# 5. unknown host, UserKnownHostsFile none: no advice to a file not read
sm "$T/src/" "sm-nofile:$R/c5/"
refused "unknown host, UserKnownHostsFile none" "$R/c5" "is not a known host" "UserKnownHostsFile is none" "$SSHD_HOST_FP"
# shellcheck disable=SC2088 # the literal text, as the old advice printed it
if grep -q '~/.ssh/known_hosts\|>> ' "$T/sm.err"; then
	fail "unknown host, UserKnownHostsFile none: the advice names a file that is not read: $(err_lines)"
fi

# 6. HashKnownHosts yes, accept-new: a hashed line, which ssh accepts
rm -f "$T/kh.hash"
sm "$T/src/" "sm-hash:$R/c6/"
expect_rc 0 "accept-new with HashKnownHosts"
if [ "$(wc -l <"$T/kh.hash")" -ne 1 ] || ! grep -q '^|1|' "$T/kh.hash"; then
	fail "accept-new with HashKnownHosts: the line added is not hashed: $(cat "$T/kh.hash")"
fi
ssh-keygen -F "$NAME" -f "$T/kh.hash" >/dev/null || fail "accept-new with HashKnownHosts: ssh-keygen -F does not find $NAME"
timeout 15 ssh -F "$CFG" -o BatchMode=yes -o StrictHostKeyChecking=yes sm-hash true </dev/null >"$T/ssh.out" 2>&1 ||
	fail "accept-new with HashKnownHosts: OpenSSH's ssh does not accept the file: $(cat "$T/ssh.out")"
sm "$T/src/" "sm-hash:$R/c6/"
expect_rc 0 "strict checking against the hashed line"

# 7. HostKeyAlias: known_hosts is searched for the alias; the advice for an
#    unknown one writes the key under the alias, and works
host_entry sm-alias "    UserKnownHostsFile $T/kh.alias
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    HostKeyAlias my-alias"
: >"$T/kh.alias"
sm "$T/src/" "sm-alias:$R/c7/"
refused "unknown HostKeyAlias" "$R/c7" "my-alias (HostKeyAlias of 127.0.0.1:$SSHD_PORT) is not a known host"
advice=$(sed -n 's/.*then add it with: //p' "$T/sm.err")
[ -n "$advice" ] || fail "unknown HostKeyAlias: no advice: $(err_lines)"
bash -c "$advice" 2>/dev/null
grep -q '^my-alias ' "$T/kh.alias" || fail "unknown HostKeyAlias: the advice did not add my-alias: $(cat "$T/kh.alias")"
sm "$T/src/" "sm-alias:$R/c7/"
expect_rc 0 "HostKeyAlias after the advice"
expect_same_tree "$T/src" "$R/c7" "HostKeyAlias after the advice"
