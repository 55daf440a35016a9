#!/usr/bin/env bash
# ssh_config keywords users rely on (issue 23 item 2), against OpenSSH on
# loopback (tests/servers/sshd.sh); ProxyJump through namespaced hosts is
# ssh_jump.sh.
#  - IdentitiesOnly yes with an ssh-agent holding an encrypted copy of the
#    configured key (its .pub file gone: the public part is read from the
#    private key) and, first, a key the server refuses: the agent's copy
#    logs in without a prompt, and the refused key is never offered (the
#    server's log has no attempt with it);
#  - ProxyCommand (ssh -W through the same server) works, and the command
#    is gone after the run;
#  - Match originalhost / user apply as in ssh;
#  - a keyword syncmgr does not support where it applies (BindAddress),
#    `Match exec`, and a keyword ssh does not know: the run stops with ONE
#    line naming the keyword, the file and the line, and no connection is
#    made (never a silent direct one); IgnoreUnknown lets the unknown one
#    pass, as in ssh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init ssh_config

SSHD_PORT=${SSHD_PORT:-2367} sshd_start
export HOME=$SSH_TEST_HOME SSH_AUTH_SOCK=
CFG=$SSH_TEST_CONFIG
KH=$SSH_TEST_KNOWN_HOSTS
R=$T/remote
mkdir -p "$T/src/d" "$R"
echo one >"$T/src/one"
echo two >"$T/src/d/two"

# refused WHAT DIR STRING...: exit 1, one stderr line besides the summary,
# holding every STRING; DIR not made; no connection since MARK
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
	n=$(tail -n +"$((MARK + 1))" "$SSHD_LOG" | grep -c 'Connection from' || true)
	[ "$n" -eq 0 ] || fail "$what: $n connections were made"
	note "$what: $(err_lines)"
}
mark() { MARK=$(wc -l <"$SSHD_LOG"); }

line_of() { grep -n -- "$1" "$CFG" | head -n 1 | cut -d: -f1; }

# 1. IdentitiesOnly yes + an agent with an encrypted copy of the key
cp "$SSH_TEST_KEY" "$T/id_enc"
ssh-keygen -q -p -P '' -N 'secret phrase' -f "$T/id_enc" >/dev/null
printf '#!/bin/sh\necho "secret phrase"\n' >"$T/askpass"
chmod 0700 "$T/askpass"
AGENT_SOCK=$T/agent.sock
ssh-agent -a "$AGENT_SOCK" >"$T/agent.out" 2>&1 || fail "ssh-agent did not start: $(cat "$T/agent.out")"
AGENT_PID=$(sed -n 's/^SSH_AGENT_PID=\([0-9]*\);.*/\1/p' "$T/agent.out")
[ -n "$AGENT_PID" ] || fail "ssh-agent gave no pid: $(cat "$T/agent.out")"
on_exit "kill $AGENT_PID 2>/dev/null"
SSH_AUTH_SOCK=$AGENT_SOCK ssh-add "$SSH_TEST_WRONG_KEY" </dev/null >/dev/null 2>&1 || fail "ssh-add of the refused key failed"
SSH_AUTH_SOCK=$AGENT_SOCK DISPLAY=:0 SSH_ASKPASS=$T/askpass SSH_ASKPASS_REQUIRE=force \
	ssh-add "$T/id_enc" </dev/null >/dev/null 2>&1 || fail "ssh-add of the encrypted key failed"
rm -f "$T/id_enc.pub"
wrong_fp=$(ssh-keygen -lf "$SSH_TEST_WRONG_KEY" | awk '{ print $2 }')
printf '\nHost sm-agent\n    HostName 127.0.0.1\n    Port %s\n    User %s\n    IdentityFile %s\n    IdentitiesOnly yes\n    UserKnownHostsFile %s\n' \
	"$SSHD_PORT" "$SSH_TEST_USER" "$T/id_enc" "$KH" >>"$CFG"
mark
SSH_AUTH_SOCK=$AGENT_SOCK sm "$T/src/" "sm-agent:$R/a/"
expect_rc 0 "IdentitiesOnly with the key in the agent"
expect_same_tree "$T/src" "$R/a" "IdentitiesOnly with the key in the agent"
if tail -n +"$((MARK + 1))" "$SSHD_LOG" | grep -qF -- "$wrong_fp"; then
	fail "IdentitiesOnly: the agent's other key was offered: $(tail -n +"$((MARK + 1))" "$SSHD_LOG" | grep -F -- "$wrong_fp" | head -n 2)"
fi
# without the agent, the encrypted key cannot be used: the message says so
SSH_AUTH_SOCK='' sm "$T/src/" "sm-agent:$R/a2/"
expect_rc 1 "IdentitiesOnly, no agent"
grep -q "is encrypted and no ssh-agent holds it" "$T/sm.err" || fail "IdentitiesOnly, no agent: $(err_lines)"

# 2. ProxyCommand: ssh -W through the same server
printf '\nHost sm-pc\n    HostName 127.0.0.1\n    Port %s\n    User %s\n    IdentityFile %s\n    IdentitiesOnly yes\n    UserKnownHostsFile %s\n    ProxyCommand ssh -F %s -W %%h:%%p sm-test\n' \
	"$SSHD_PORT" "$SSH_TEST_USER" "$SSH_TEST_KEY" "$KH" "$CFG" >>"$CFG"
sm "$T/src/" "sm-pc:$R/pc/"
expect_rc 0 "ProxyCommand"
expect_same_tree "$T/src" "$R/pc" "ProxyCommand"
if pgrep -f -- "-F $CFG -W" >/dev/null; then fail "ProxyCommand: the command still runs after the run"; fi

# 3. Match originalhost and user, as ssh evaluates them
printf '\nMatch originalhost sm-m* user %s\n    HostName 127.0.0.1\n    Port %s\n    IdentityFile %s\n    IdentitiesOnly yes\n    UserKnownHostsFile %s\nMatch originalhost sm-m2 !user nobody-here\n    Port 1\n' \
	"$SSH_TEST_USER" "$SSHD_PORT" "$SSH_TEST_KEY" "$KH" >>"$CFG"
sm "$T/src/" "$SSH_TEST_USER@sm-m1:$R/m/"
expect_rc 0 "Match originalhost and user"
expect_same_tree "$T/src" "$R/m" "Match originalhost and user"

# 4. refused: a keyword that applies, Match exec, an unknown keyword
printf '\nHost sm-bind\n    HostName 127.0.0.1\n    Port %s\n    BindAddress 127.0.0.1\n' "$SSHD_PORT" >>"$CFG"
mark
sm "$T/src/" "sm-bind:$R/b/"
refused "BindAddress" "$R/b" "$CFG:$(line_of 'BindAddress 127.0.0.1')" "'BindAddress' is not supported"
printf '\nMatch originalhost sm-exec exec "true"\n    Port %s\n' "$SSHD_PORT" >>"$CFG"
mark
sm "$T/src/" "sm-exec:$R/e/"
refused "Match exec" "$R/e" "$CFG:$(line_of 'sm-exec exec')" "'Match exec' is not supported"
cp "$CFG" "$T/config.before-unknown"
printf '\nHost sm-never-used\n    NoSuchKeyword yes\n' >>"$CFG"
mark
sm "$T/src/" "sm-test:$R/u/"
refused "an unknown keyword" "$R/u" "$CFG:$(line_of NoSuchKeyword)" "bad configuration option 'NoSuchKeyword'"
{
	echo "IgnoreUnknown nosuchkeyword"
	cat "$CFG"
} >"$T/config.new"
cat "$T/config.new" >"$CFG"
sm "$T/src/" "sm-test:$R/u/"
expect_rc 0 "an unknown keyword IgnoreUnknown names"
