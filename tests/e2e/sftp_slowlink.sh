#!/usr/bin/env bash
# SFTP over a slow link: the client in a network namespace of its own,
# joined to this one by a veth pair held to 40 Mbit/s on both ends (tc tbf),
# the private OpenSSH server listening on this side's address of the pair,
# and the namespace's TCP buffers small (64 KiB to send, 128 KiB to
# receive). The client's socket stays full for whole transfers, so libssh2 sends SSH
# packets in part all the time (the SFTP engine must finish such a packet
# before it sends any other) and large replies come in at the link's rate;
# ServerAliveInterval 1 / ServerAliveCountMax 1 make the I/O timeout 2 s:
#  - 16 MiB up and down arrive intact, no connection given up;
#  - the link was slow: each transfer took at least 90 % of the time its
#    bytes need at 40 Mbit/s, and the sending side's tbf qdisc passed them
#    and held some back (its overlimits counter grew);
#  - 300 small files up together with the large one (one run: their
#    requests share a connection while the large file fills the link),
#    then all of it down again.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init sftp_slowlink
need_root

# Leftovers of a run that was killed before its cleanup (its PID is gone)
# would route this run's subnet twice: remove them first.
for ns in $(ip netns list 2>/dev/null | awk '/^smslow[0-9]+/ { print $1 }'); do
	kill -0 "${ns#smslow}" 2>/dev/null || ip netns del "$ns" 2>/dev/null || true
done
for l in $(ip -o link show 2>/dev/null | awk -F': ' '$2 ~ /^smslh[0-9]+/ { sub(/@.*/, "", $2); print $2 }'); do
	kill -0 "${l#smslh}" 2>/dev/null || ip link del "$l" 2>/dev/null || true
done
NS=smslow$$
VH=smslh$$ # this side
VN=smsln$$ # the namespace's side
# a /30 of 10.79.0.0/16 of this run's own, so that two runs never clash
net=$(($$ % 16000))
ADDR_H=10.79.$((net / 64)).$((net % 64 * 4 + 1))
ADDR_N=10.79.$((net / 64)).$((net % 64 * 4 + 2))
mac=$(printf '%02x:%02x' $((net / 256)) $((net % 256)))
ip netns add "$NS" || fail "cannot create network namespace $NS"
on_exit "ip netns del '$NS' 2>/dev/null; ip link del '$VH' 2>/dev/null"
ip link add "$VH" address "02:00:01:$mac:01" type veth peer name "$VN" address "02:00:02:$mac:01"
ip link set "$VN" netns "$NS"
ip addr add "$ADDR_H/30" dev "$VH"
ip link set "$VH" up
ip -n "$NS" addr add "$ADDR_N/30" dev "$VN"
ip -n "$NS" link set "$VN" up
ip -n "$NS" link set lo up
ip neigh flush dev "$VH" 2>/dev/null || true
RATE_MBIT=40
tc qdisc replace dev "$VH" root tbf rate ${RATE_MBIT}mbit burst 64kb latency 50ms
ip netns exec "$NS" tc qdisc replace dev "$VN" root tbf rate ${RATE_MBIT}mbit burst 64kb latency 50ms

# qstat SIDE: set Q_SENT and Q_OVER to the bytes sent and the overlimits of
# the root qdisc of this side's veth (SIDE host) or the namespace's (SIDE
# ns); fails unless it is the ${RATE_MBIT} Mbit/s tbf set up above.  (Sets
# variables rather than printing: a fail in a $(...) would not end the test.)
qstat() {
	local out
	case $1 in
	host) out=$(tc -s qdisc show dev "$VH" root) || fail "tc -s qdisc show dev $VH failed" ;;
	ns) out=$(ip netns exec "$NS" tc -s qdisc show dev "$VN" root) || fail "tc -s qdisc show dev $VN failed" ;;
	*) fail "qstat: bad side '$1'" ;;
	esac
	case $out in "qdisc tbf "*" rate ${RATE_MBIT}Mbit "*) ;; *)
		fail "the $1 side's veth has no ${RATE_MBIT} Mbit/s tbf qdisc: $out" ;;
	esac
	Q_SENT=$(printf '%s\n' "$out" | sed -n 's/^ *Sent \([0-9][0-9]*\) bytes .*/\1/p' | head -n 1)
	Q_OVER=$(printf '%s\n' "$out" | sed -n 's/.*overlimits \([0-9][0-9]*\).*/\1/p' | head -n 1)
	[[ $Q_SENT =~ ^[0-9]+$ && $Q_OVER =~ ^[0-9]+$ ]] || fail "cannot read the $1 side's qdisc statistics: $out"
}
# timed WHAT SENDER BYTES SYNCMGR-ARGS...: run slow() and check that the link
# was slow: the run took at least 90 % of the time BYTES need at RATE_MBIT,
# and the SENDER's (host or ns) qdisc passed at least BYTES and held some
# packets back (overlimits grew)
timed() {
	local what=$1 side=$2 bytes=$3 sent0 over0 t0 t1 us min_us
	shift 3
	qstat "$side"
	sent0=$Q_SENT over0=$Q_OVER
	t0=$EPOCHREALTIME
	slow "$@"
	t1=$EPOCHREALTIME
	qstat "$side"
	us=$((10#${t1//[.,]/} - 10#${t0//[.,]/}))
	min_us=$((bytes * 8 / RATE_MBIT * 9 / 10))
	note "$what: $((us / 1000)) ms, $((bytes * 8 / (us > 0 ? us : 1))) Mbit/s (a ${RATE_MBIT} Mbit/s link needs at least $((min_us / 1000)) ms)"
	[ "$us" -ge "$min_us" ] ||
		fail "$what: took $((us / 1000)) ms, but $bytes bytes need at least $((min_us / 1000)) ms at $RATE_MBIT Mbit/s: the link is not shaped"
	[ $((Q_SENT - sent0)) -ge "$bytes" ] ||
		fail "$what: the $side side's qdisc sent $((Q_SENT - sent0)) bytes, less than the $bytes transferred: the data took another path"
	[ "$Q_OVER" -gt "$over0" ] ||
		fail "$what: the $side side's tbf qdisc never held a packet back (overlimits $over0 -> $Q_OVER): the link was not the limit"
}

# small socket buffers in the namespace: the 1 MiB a file keeps in flight
# does not fit, so sends block part way
ip netns exec "$NS" sysctl -q -w net.ipv4.tcp_wmem="4096 16384 65536" \
	net.ipv4.tcp_rmem="4096 65536 131072" || fail "cannot set the namespace's TCP buffers"

port=${SSHD_PORT:-2244}
SSHD_PORT=$port sshd_start "$ADDR_H:$port"
export HOME=$SSH_TEST_HOME SSH_AUTH_SOCK=
{
	echo
	echo "Host sm-slow"
	sed -n '/^Host sm-test$/,/^$/p' "$HOME/.ssh/config" | sed '1d;/^$/d' |
		sed "s/^\( *HostName\) .*/\1 $ADDR_H/"
	echo "    ServerAliveInterval 1"
	echo "    ServerAliveCountMax 1"
} >>"$HOME/.ssh/config"
R=$T/remote
mkdir -p "$R"

# slow ARGS...: syncmgr in the namespace (sets SM_RC; output in $T/sm.*)
slow() {
	SM_CMD="ip netns exec $NS syncmgr $(printf '%q ' "$@")"
	set +e
	# in the background and waited for, so that a TERM runs the cleanup at once
	timeout -k 5 120 ip netns exec "$NS" env HOME="$HOME" SSH_AUTH_SOCK= "$SYNCMGR" "$@" \
		>"$T/sm.out" 2>"$T/sm.err" </dev/null &
	wait $!
	SM_RC=$?
	set -e
	[ "$SM_RC" -lt 124 ] || fail "syncmgr crashed or timed out (exit $SM_RC)"
}
no_retries() {
	local rc=0
	grep -q "retrying" "$T/sm.err" || rc=$?
	[ "$rc" -eq 1 ] || fail "$1: a connection was given up (grep status $rc): $(grep -m2 retrying "$T/sm.err")"
}

mkdir -p "$T/big"
head -c $((16 << 20)) /dev/urandom >"$T/big/big.bin"
touch -d '@1600000000' "$T/big/big.bin"
timed "16 MiB up" ns $((16 << 20)) -v "$T/big/" "sm-slow:$R/big/"
expect_rc 0 "16 MiB up a 40 Mbit/s link"
no_retries "16 MiB up a 40 Mbit/s link"
cmp "$T/big/big.bin" "$R/big/big.bin" || fail "16 MiB up a 40 Mbit/s link: the copy differs"
timed "16 MiB down" host $((16 << 20)) -v "sm-slow:$R/big/" "$T/bigdown/"
expect_rc 0 "16 MiB down a 40 Mbit/s link"
no_retries "16 MiB down a 40 Mbit/s link"
cmp "$T/big/big.bin" "$T/bigdown/big.bin" || fail "16 MiB down a 40 Mbit/s link: the copy differs"

mkdir -p "$T/mix"
cp "$T/big/big.bin" "$T/mix/"
for i in $(seq 1 300); do
	d=$T/mix/d$((i % 6))
	mkdir -p "$d"
	head -c $((RANDOM % 6000 + 100)) /dev/urandom >"$d/f$i"
done
find "$T/mix" -type f -exec touch -d '@1600000000' {} +
mixbytes=$(find "$T/mix" -type f -printf '%s\n' | awk '{ n += $1 } END { print n + 0 }')
[ "$mixbytes" -gt $((16 << 20)) ] || fail "the mixed tree holds only $mixbytes bytes"
timed "a large file and 300 small ones up" ns "$mixbytes" -v "$T/mix/" "sm-slow:$R/mix/"
expect_rc 0 "a large file and 300 small ones up"
no_retries "a large file and 300 small ones up"
expect_same_tree --no-dirs --mtime "$T/mix" "$R/mix" "a large file and 300 small ones up"
expect_no_temp_files "$R/mix" "a large file and 300 small ones up"
timed "a large file and 300 small ones down" host "$mixbytes" -v "sm-slow:$R/mix/" "$T/mixdown/"
expect_rc 0 "a large file and 300 small ones down"
no_retries "a large file and 300 small ones down"
expect_same_tree --no-dirs --mtime "$T/mix" "$T/mixdown" "a large file and 300 small ones down"
