#!/usr/bin/env bash
# ProxyJump and ProxyCommand to a host behind a bastion (issue 23 item 2).
# Two network namespaces joined by a bridge of this test's own
# (10.223.0.0/24): w1 (10.223.0.11) and w2 (10.223.0.12), each running a
# private OpenSSH server (tests/servers/sshd.sh) on port 22 and on its own
# loopback. w2 resets every SSH connection that does not come from w1
# (nftables), so a silent direct connection fails; syncmgr runs here.
#  - ProxyJump w1: the sync works, and w2's log shows the login came from
#    10.223.0.11;
#  - two hops (w1, then w1's own loopback sshd, reachable only inside w1);
#  - ProxyCommand ssh -W through w1;
#  - without a jump (ProxyJump none) the connection is refused;
#  - a hop whose host key is not known: refused with one line naming it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init ssh_jump
need_root
for t in ip nft ssh; do command -v "$t" >/dev/null || fail "$t is not installed"; done
SSHD_SH=$E2E_DIR/../servers/sshd.sh
NET=10.223.0
BR=sm23-br
P1=${SSHD_PORT:-2368}       # w1's loopback sshd
P2=${SSHD_PORT2:-$((P1 + 1))} # w2's

# leftovers of a killed run of this test (only this test's names)
for ns in sm23-w1 sm23-w2; do ip netns del "$ns" 2>/dev/null || true; done
ip link del "$BR" 2>/dev/null || true

on_exit "ip link del $BR 2>/dev/null; ip netns del sm23-w1 2>/dev/null; ip netns del sm23-w2 2>/dev/null"
ip link add "$BR" type bridge || fail "cannot create bridge $BR"
ip addr add "$NET.1/24" dev "$BR"
ip link set "$BR" up
for i in 1 2; do
	ns=sm23-w$i
	ip netns add "$ns" || fail "cannot create network namespace $ns"
	ip link add "sm23-v${i}h" address "02:23:00:00:0$i:01" type veth peer name "sm23-v${i}n" address "02:23:00:00:0$i:02"
	ip link set "sm23-v${i}n" netns "$ns"
	ip link set "sm23-v${i}h" master "$BR" up
	ip -n "$ns" addr add "$NET.1$i/24" dev "sm23-v${i}n"
	ip -n "$ns" link set "sm23-v${i}n" up
	ip -n "$ns" link set lo up
done
ip neigh flush dev "$BR" 2>/dev/null || true

# the servers (stopped before the namespaces go)
W1=$T/w1
W2=$T/w2
on_exit "'$SSHD_SH' stop '$W1' >/dev/null 2>&1; '$SSHD_SH' stop '$W2' >/dev/null 2>&1"
ip netns exec sm23-w1 env SSHD_PORT="$P1" "$SSHD_SH" start "$W1" "$NET.11:22" >/dev/null 2>"$T/w1.log" ||
	fail "sshd in w1 did not start: $(tail -5 "$T/w1.log")"
ip netns exec sm23-w2 env SSHD_PORT="$P2" "$SSHD_SH" start "$W2" "$NET.12:22" >/dev/null 2>"$T/w2.log" ||
	fail "sshd in w2 did not start: $(tail -5 "$T/w2.log")"
cat "$W1/home/.ssh/id_ed25519.pub" >>"$W2/authorized_keys"
ip netns exec sm23-w2 nft -f - <<EOF || fail "nft in w2 failed"
table inet sm23 {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 22 ip saddr != $NET.11 reject with tcp reset
	}
}
EOF

# the client: its own home, one key, both servers' host keys
export HOME=$T/home SSH_AUTH_SOCK=
mkdir -p "$HOME/.ssh"
chmod 0700 "$HOME" "$HOME/.ssh"
KEY=$W1/home/.ssh/id_ed25519
cat "$W1/home/.ssh/known_hosts" "$W2/home/.ssh/known_hosts" >"$T/kh"
: >"$T/kh-empty"
CFG=$HOME/.ssh/config
common="    User root
    IdentityFile $KEY
    IdentitiesOnly yes
    UserKnownHostsFile $T/kh
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes"
cat >"$CFG" <<EOF
Host w1
    HostName $NET.11
$common
Host w1lo
    HostName 127.0.0.1
    Port $P1
$common
Host w1-unknown
    HostName $NET.11
    UserKnownHostsFile $T/kh-empty
Host w1-unknown
$common
Host w2-twohops
    ProxyJump w1,w1lo
Host w2-cmd
    ProxyCommand ssh -F $CFG -o BatchMode=yes -W %h:%p w1
Host w2-direct
    ProxyJump none
Host w2-via-unknown
    ProxyJump w1-unknown
Host w2 w2-*
    HostName $NET.12
    ProxyJump w1
$common
EOF
chmod 0600 "$CFG"
mkdir -p "$T/src/d"
echo one >"$T/src/one"
echo two >"$T/src/d/two"
R=$T/remote # the namespaces share the file system

accepted_from_w1() { grep -c "Accepted publickey for root from $NET.11 " "$W2/sshd.log" || true; }

# 1. ProxyJump w1
n0=$(accepted_from_w1)
sm "$T/src/" "w2:$R/j1/"
expect_rc 0 "ProxyJump w1"
expect_same_tree "$T/src" "$R/j1" "ProxyJump w1"
[ "$(accepted_from_w1)" -gt "$n0" ] || fail "ProxyJump w1: w2's log shows no login from $NET.11: $(grep Accepted "$W2/sshd.log" | tail -n 3)"
if grep "Accepted publickey" "$W2/sshd.log" | grep -v " from $NET.11 \| from 127.0.0.1 " | grep -q .; then
	fail "ProxyJump w1: w2 accepted a login from elsewhere: $(grep Accepted "$W2/sshd.log" | tail -n 3)"
fi
sm "$T/src/" "w2:$R/j1/"
expect_rc 0 "ProxyJump w1, nothing to do"
expect_field copied 0 "ProxyJump w1, nothing to do"

# 2. two hops: w1, then w1's loopback sshd
n0=$(accepted_from_w1)
sm "$T/src/" "w2-twohops:$R/j2/"
expect_rc 0 "ProxyJump w1,w1lo"
expect_same_tree "$T/src" "$R/j2" "ProxyJump w1,w1lo"
grep -q "Accepted publickey for root from 127.0.0.1 " "$W1/sshd.log" ||
	fail "ProxyJump w1,w1lo: w1's loopback sshd shows no login"
[ "$(accepted_from_w1)" -gt "$n0" ] || fail "ProxyJump w1,w1lo: w2's log shows no login from $NET.11"

# 3. ProxyCommand ssh -W w1
sm "$T/src/" "w2-cmd:$R/j3/"
expect_rc 0 "ProxyCommand ssh -W through w1"
expect_same_tree "$T/src" "$R/j3" "ProxyCommand ssh -W through w1"

# 4. no jump: refused by w2
sm "$T/src/" "w2-direct:$R/j4/"
expect_rc 1 "no jump"
grep -q "cannot connect to $NET.12:22" "$T/sm.err" || fail "no jump: $(err_lines)"
[ ! -e "$R/j4" ] || fail "no jump: $R/j4 was written"

# 5. a hop whose host key is unknown
sm "$T/src/" "w2-via-unknown:$R/j5/"
expect_rc 1 "a hop with an unknown host key"
[ "$(err_lines | wc -l)" -eq 1 ] || fail "a hop with an unknown host key: $(err_lines)"
grep -q "$NET.11 is not a known host" "$T/sm.err" || fail "a hop with an unknown host key: $(err_lines)"
[ ! -e "$R/j5" ] || fail "a hop with an unknown host key: $R/j5 was written"
note "unknown hop: $(err_lines)"
