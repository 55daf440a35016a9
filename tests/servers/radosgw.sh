#!/usr/bin/env bash
# A real S3 server for tests: Ceph radosgw on a one-machine Ceph cluster (one
# mon, one memstore OSD, no mgr) kept entirely under one directory.
#
#   radosgw.sh start DIR [ADDR:PORT...]   start; also listen on each extra ADDR:PORT
#                                         (e.g. 10.77.0.1:7480 for namespaced workers)
#   radosgw.sh stop DIR                   kill the processes whose pid files are in DIR,
#                                         wait for them, remove DIR
#   radosgw.sh status DIR                 exit 0 if this DIR's radosgw answers
#
# `start` installs the Debian packages it needs when they are missing, listens on
# 127.0.0.1:7480 (RADOSGW_PORT overrides the port; never 0.0.0.0), waits until a
# signed S3 request works (at most RADOSGW_TIMEOUT s, default 60) and writes
# DIR/env, to be sourced:
#   export S3_ENDPOINT=http://127.0.0.1:7480 AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...
#          AWS_REGION=us-east-1 ...
# When RADOSGW_SSL_PORT is set (a port number), radosgw also serves HTTPS on
# 127.0.0.1:$RADOSGW_SSL_PORT (beast's ssl_endpoint) with a throwaway self-signed
# certificate made at start (EC P-256, subjectAltName IP:127.0.0.1 and
# DNS:localhost, CA:TRUE, so it is its own CA file) in DIR/ssl/{cert,key}.pem;
# `start` then also waits for an HTTPS answer verified with that file, and
# DIR/env adds
#   export S3_HTTPS_ENDPOINT=https://127.0.0.1:PORT S3_CA_BUNDLE=DIR/ssl/cert.pem
# (e.g. AWS_CA_BUNDLE=$S3_CA_BUNDLE, or `aws --ca-bundle "$S3_CA_BUNDLE"`).
# A server that does not come up makes `start` fail with the tail of its log.
# DIR must be empty, missing, or a directory this script made (which `start`
# stops and wipes first). Only processes named in DIR/*.pid are ever killed.
#
# Data lives in RAM (memstore): about 2x the stored bytes. The OSD reports
# RADOSGW_MEMSTORE_BYTES (default 8 GiB) of capacity; the cluster refuses
# writes past 95 % of it.
#
# RADOSGW_QUIET=1 (benchmarks) turns Ceph's logging off, the per-request
# lines and the in-memory debug ring alike, and runs radosgw with 32 threads
# instead of 512: on two shared cores that takes about a fifth off
# radosgw's CPU per small GET, which every client pays for in wall time.
# Tests keep the logs, which `start` shows when something fails.
set -euo pipefail

ACCESS_KEY=SMTESTACCESSKEY00000
SECRET_KEY=smtestsecretkey0000000000000000000000000
REGION=us-east-1
PORT=${RADOSGW_PORT:-7480}
SSL_PORT=${RADOSGW_SSL_PORT:-}
TIMEOUT=${RADOSGW_TIMEOUT:-60}
MEMSTORE_BYTES=${RADOSGW_MEMSTORE_BYTES:-8589934592}
QUIET=${RADOSGW_QUIET:-}
PACKAGES=(radosgw ceph-mon ceph-osd ceph-common awscli curl iproute2)
MARKER=.radosgw-sh
PIDS=(rgw osd mon) # pid file names, in stopping order

me=radosgw.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# A PID is ours when it is alive (not a zombie: PID 1 may reap late) and its
# command line names this DIR's ceph.conf.
is_ours() { # pid dir
	local pid=$1 state
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	state=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$pid/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ] || return 1
	tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$2/ceph.conf"
}

# TERM the given PIDs, KILL them after 5 s, wait until they are gone (at most
# 10 s).
term_wait() { # dir pid...
	local dir=$1 pid i
	shift
	local live=("$@")
	for pid in "${live[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for ((i = 0; i < 100 && ${#live[@]}; i++)); do
		((i == 50)) && for pid in "${live[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
		sleep 0.05
		local still=()
		for pid in "${live[@]}"; do is_ours "$pid" "$dir" && still+=("$pid"); done
		live=(${still[@]+"${still[@]}"})
	done
	((${#live[@]} == 0)) || {
		say "processes ${live[*]} did not exit"
		return 1
	}
}

# Kill the processes in DIR's pid files and wait until they are gone, one by
# one: radosgw hangs on exit once the cluster is gone, and the OSD waits 5 s
# for the mon's acknowledgement of its shutdown.
stop_pids() { # dir
	local dir=$1 name pid ok=0
	for name in "${PIDS[@]}"; do
		[ -f "$dir/$name.pid" ] || continue
		pid=$(<"$dir/$name.pid")
		if is_ours "$pid" "$dir"; then
			term_wait "$dir" "$pid" || ok=1
		fi
	done
	((ok)) || for name in "${PIDS[@]}"; do rm -f "$dir/$name.pid"; done
	return $ok
}

http_code() { # url [curl args...]
	local url=$1
	shift
	curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" "$url" 2>/dev/null || true
}

# curl 7.88's --aws-sigv4 does not send x-amz-content-sha256, which radosgw
# requires (else SignatureDoesNotMatch): pass the empty body's hash.
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
signed_code() { # url [curl args...]
	http_code "$@" --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
		-H "x-amz-content-sha256: $EMPTY_SHA256"
}

# make_cert SSLDIR: a throwaway self-signed certificate for 127.0.0.1 and
# localhost in SSLDIR/cert.pem (its key in SSLDIR/key.pem). CA:TRUE with
# keyCertSign lets cert.pem serve as the CA file that verifies it. The
# extensions come from a config of our own, not from the system's openssl.cnf.
make_cert() { # ssldir
	local d=$1
	mkdir -p "$d"
	cat >"$d/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
x509_extensions = ext
prompt = no
[dn]
CN = radosgw.sh test server
[ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, digitalSignature, keyCertSign
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
	(umask 077 && openssl req -x509 -config "$d/openssl.cnf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-nodes -keyout "$d/key.pem" -out "$d/cert.pem" -days 7 -sha256) >"$d/openssl.out" 2>&1 || {
		cat "$d/openssl.out" >&2
		die "openssl could not make the test certificate in $d"
	}
	chmod 0644 "$d/cert.pem"
}

cmd_start() {
	(($# >= 1)) || usage
	local dir extra=() a
	for a in "${@:2}"; do
		[[ $a =~ ^(\[[0-9A-Fa-f:.]+\]|[0-9]{1,3}(\.[0-9]{1,3}){3}):[0-9]+$ ]] ||
			die "bad address '$a' (want IPv4:PORT or [IPv6]:PORT)"
		case $a in 0.0.0.0:* | \[::\]:*) die "refusing to listen on all interfaces ($a)" ;; esac
		extra+=("$a")
	done
	[[ $PORT =~ ^[0-9]+$ ]] || die "bad RADOSGW_PORT '$PORT'"
	if [ -n "$SSL_PORT" ]; then
		if ! [[ $SSL_PORT =~ ^[1-9][0-9]{0,4}$ ]] || ((SSL_PORT > 65535)); then
			die "bad RADOSGW_SSL_PORT '$SSL_PORT' (want a port number)"
		fi
		for a in "127.0.0.1:$PORT" ${extra[@]+"${extra[@]}"}; do
			[ "$a" != "127.0.0.1:$SSL_PORT" ] || die "RADOSGW_SSL_PORT $SSL_PORT is also a plain HTTP endpoint"
		done
		PACKAGES+=(openssl)
	fi

	ensure_packages

	dir=$(absdir "$1" create) || die "cannot create $1"
	[ "$dir" != / ] || die "refusing DIR /"
	if [ -e "$dir/$MARKER" ]; then
		stop_pids "$dir" || die "could not stop the previous server in $dir"
		find "$dir" -mindepth 1 -delete
	elif [ -n "$(ls -A -- "$dir")" ]; then
		die "$dir is not empty and was not made by $me"
	fi
	touch "$dir/$MARKER"

	local endpoints=("127.0.0.1:$PORT" ${extra[@]+"${extra[@]}"}) ep
	for ep in "${endpoints[@]}"; do
		local_addr "${ep%:*}" || die "${ep%:*} is not an address of this machine (for 10.77.0.1, create the bridge first)"
		if listening "${ep%:*}" "${ep##*:}"; then
			ss -ltnp 2>/dev/null | grep -F ":${ep##*:} " >&2 || true
			die "$ep is already in use (a server left by another run? stop it with its own DIR)"
		fi
	done
	if [ -n "$SSL_PORT" ]; then
		if listening 127.0.0.1 "$SSL_PORT"; then
			ss -ltnp 2>/dev/null | grep -F ":$SSL_PORT " >&2 || true
			die "127.0.0.1:$SSL_PORT (RADOSGW_SSL_PORT) is already in use (a server left by another run? stop it with its own DIR)"
		fi
		# rgw frontends is split at white space: the certificate paths cannot hold any.
		[[ $dir != *[[:space:]]* ]] || die "DIR '$dir' contains white space: radosgw cannot take its certificate paths"
	fi

	# A free port for the monitor in 3300-3399, first tried where the radosgw
	# port points, so that servers on different ports rarely race for one.
	local monport i
	for ((i = 0; i < 100; i++)); do
		monport=$((3300 + (PORT + i) % 100))
		listening 127.0.0.1 "$monport" || break
	done
	((i < 100)) || die "no free port in 3300-3399 for ceph-mon"

	mkdir -p "$dir"/{mon,osd,rgw,run,log,crash}
	local asok="$dir/run/\$cluster-\$name.asok"
	((${#dir} <= 60)) || asok="" # unix socket paths are limited to 107 bytes
	local fsid frontends="beast"
	fsid=$(</proc/sys/kernel/random/uuid)
	for ep in "${endpoints[@]}"; do frontends+=" endpoint=$ep"; done
	if [ -n "$SSL_PORT" ]; then
		make_cert "$dir/ssl"
		frontends+=" ssl_endpoint=127.0.0.1:$SSL_PORT ssl_certificate=$dir/ssl/cert.pem"
		frontends+=" ssl_private_key=$dir/ssl/key.pem"
	fi
	# Without it beast sends a reply's headers and body as two segments under
	# Nagle, and a kept-alive client's delayed ACK stalls each GET ~40 ms.
	frontends+=" tcp_nodelay=1"
	local global_quiet="" rgw_quiet="" sub
	if [ -n "$QUIET" ]; then
		for sub in rgw ms osd objecter rados memstore monc mon paxos auth asok throttle \
			finisher context optracker objclass crush bluestore filestore journal; do
			global_quiet+="debug $sub = 0/0"$'\n'
		done
		rgw_quiet="rgw thread pool size = 32"
	fi
	cat >"$dir/ceph.conf" <<EOF
# Written by tests/servers/radosgw.sh: a throwaway one-machine cluster.
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$monport
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind msgr2 = true
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
ms cluster mode = crc
ms service mode = crc
ms client mode = crc
ms mon cluster mode = crc
ms mon service mode = crc
ms mon client mode = crc
keyring = $dir/keyring
run dir = $dir/run
crash dir = $dir/crash
admin socket = $asok
log file = $dir/log/\$name.log
log to syslog = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
# Commit map changes fast: radosgw creates its pools one by one at startup.
paxos propose interval = 0.1
$global_quiet

[mon]
mon data = $dir/mon
mon cluster log file = $dir/log/mon-cluster.log

[osd]
osd data = $dir/osd
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
osd class load list = *
osd class default list = *

[client.rgw]
rgw data = $dir/rgw
rgw frontends = $frontends
rgw dns name = localhost
rgw init timeout = $TIMEOUT
$rgw_quiet
EOF
	: >"$dir/keyring"
	export CEPH_CONF="$dir/ceph.conf"
	local conf=(-c "$dir/ceph.conf")
	local t0=$SECONDS

	# fail NAME...: show the logs of the named daemons, stop what was started.
	fail() {
		local msg=$1 n
		shift
		for n in "$@"; do
			show_log "$n" "$dir/log/$n.out"
			show_log "$n" "$dir/log/$(logname "$n")"
		done
		stop_pids "$dir" || true
		die "$msg (logs in $dir/log)"
	}
	logname() {
		case $1 in mon) echo mon.a.log ;; osd) echo osd.0.log ;; rgw) echo client.rgw.log ;; *) echo "$1.none" ;; esac
	}
	launch() { # name command...
		local name=$1
		shift
		"$@" </dev/null >>"$dir/log/$name.out" 2>&1 &
		local pid=$! i
		echo "$pid" >"$dir/$name.pid"
		# Until the child has exec'd, its command line is this script's.
		for ((i = 0; i < 100; i++)); do
			is_ours "$pid" "$dir" && break
			[ -e "/proc/$pid" ] || break
			sleep 0.02
		done
	}
	alive() { is_ours "$(<"$dir/$1.pid")" "$dir"; }

	monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$monport]" "$dir/monmap" \
		>"$dir/log/monmaptool.out" 2>&1 || fail "monmaptool failed" monmaptool
	ceph-mon "${conf[@]}" -i a --mkfs --monmap "$dir/monmap" --keyring "$dir/keyring" \
		>"$dir/log/mon-mkfs.out" 2>&1 || fail "ceph-mon --mkfs failed" mon-mkfs mon
	launch mon ceph-mon "${conf[@]}" -f -i a

	local id
	id=$(timeout 30 ceph "${conf[@]}" --connect-timeout 25 osd create 2>"$dir/log/ceph-cli.out") ||
		{ alive mon || fail "ceph-mon died" mon; fail "cannot reach ceph-mon" ceph-cli mon; }
	[ "$id" = 0 ] || fail "ceph osd create gave '$id', not 0" ceph-cli mon
	ceph-osd "${conf[@]}" -i 0 --mkfs >"$dir/log/osd-mkfs.out" 2>&1 ||
		fail "ceph-osd --mkfs failed" osd-mkfs osd
	launch osd ceph-osd "${conf[@]}" -f -i 0
	launch rgw radosgw "${conf[@]}" -f -n client.rgw

	# Wait for the anonymous bucket listing (200) on every endpoint.
	local deadline=$((SECONDS + TIMEOUT)) n up
	while :; do
		for n in mon osd rgw; do alive "$n" || fail "$n died while starting" "$n"; done
		up=1
		for ep in "${endpoints[@]}"; do
			[ "$(http_code "http://$ep/")" = 200 ] || up=0
		done
		if [ -n "$SSL_PORT" ] && ((up)); then
			[ "$(http_code "https://127.0.0.1:$SSL_PORT/" --cacert "$dir/ssl/cert.pem")" = 200 ] || up=0
		fi
		((up)) && break
		((SECONDS < deadline)) || fail "radosgw did not answer within $TIMEOUT s" rgw osd mon
		sleep 0.2
	done

	timeout "$TIMEOUT" radosgw-admin "${conf[@]}" user create --uid=smtest --display-name="syncmgr tests" \
		--access-key="$ACCESS_KEY" --secret="$SECRET_KEY" >"$dir/log/user-create.out" 2>&1 ||
		fail "radosgw-admin user create failed" user-create rgw
	while [ "$(signed_code "http://127.0.0.1:$PORT/")" != 200 ]; do
		((SECONDS < deadline + 10)) || fail "a signed request to radosgw does not succeed" rgw
		sleep 0.2
	done
	if [ -n "$SSL_PORT" ]; then
		[ "$(signed_code "https://127.0.0.1:$SSL_PORT/" --cacert "$dir/ssl/cert.pem")" = 200 ] ||
			fail "a signed HTTPS request to 127.0.0.1:$SSL_PORT does not succeed" rgw
	fi

	{
		echo "# radosgw started by tests/servers/radosgw.sh; source this file."
		echo "export S3_ENDPOINT=http://127.0.0.1:$PORT AWS_ACCESS_KEY_ID=$ACCESS_KEY" \
			"AWS_SECRET_ACCESS_KEY=$SECRET_KEY AWS_REGION=$REGION AWS_DEFAULT_REGION=$REGION"
		if ((${#extra[@]})); then
			local urls=()
			for ep in "${extra[@]}"; do urls+=("http://$ep"); done
			echo "export S3_EXTRA_ENDPOINTS='${urls[*]}'"
		fi
		if [ -n "$SSL_PORT" ]; then
			echo "export S3_HTTPS_ENDPOINT=https://127.0.0.1:$SSL_PORT S3_CA_BUNDLE=$dir/ssl/cert.pem"
		fi
	} >"$dir/env"
	say "radosgw ready on ${endpoints[*]}${SSL_PORT:+ (HTTPS on 127.0.0.1:$SSL_PORT)} in $((SECONDS - t0)) s; source $dir/env"
}

cmd_stop() {
	(($# == 1)) || usage
	local dir
	dir=$(absdir "$1") || return 0 # nothing to stop
	[ -e "$dir/$MARKER" ] || [ -z "$(ls -A -- "$dir")" ] ||
		die "$dir was not made by $me; not touching it"
	stop_pids "$dir" || die "could not stop every process of $dir (left in place)"
	rm -rf -- "$dir"
}

cmd_status() {
	(($# == 1)) || usage
	local dir n ep
	dir=$(absdir "$1") || die "no $1"
	for n in mon osd rgw; do
		if ! [ -f "$dir/$n.pid" ] || ! is_ours "$(<"$dir/$n.pid")" "$dir"; then die "$n is not running"; fi
	done
	[ -f "$dir/env" ] || die "not started (no $dir/env)"
	ep=$(sed -n 's/.*S3_ENDPOINT=\([^ ]*\).*/\1/p' "$dir/env")
	[ "$(signed_code "$ep/")" = 200 ] || die "radosgw at $ep does not answer"
	echo "radosgw running at $ep"
	ep=$(sed -n 's/.*S3_HTTPS_ENDPOINT=\([^ ]*\).*/\1/p' "$dir/env")
	if [ -n "$ep" ]; then
		[ "$(signed_code "$ep/" --cacert "$dir/ssl/cert.pem")" = 200 ] || die "radosgw at $ep does not answer"
		echo "radosgw running at $ep"
	fi
}

case ${1:-} in
start | stop | status)
	cmd=$1
	shift
	"cmd_$cmd" "$@"
	;;
*) usage ;;
esac
