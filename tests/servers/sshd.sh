#!/usr/bin/env bash
# A private OpenSSH server for tests, kept entirely under one directory.
#
#   sshd.sh start DIR [ADDR:PORT...]   start; listen on 127.0.0.1:$SSHD_PORT and on
#                                      each extra ADDR:PORT (e.g. 10.77.0.1:2222 for
#                                      namespaced workers)
#   sshd.sh stop DIR                   kill this DIR's sshd (and its sessions), wait
#                                      for them, remove DIR
#   sshd.sh status DIR                 exit 0 if this DIR's sshd runs and shows its key
#   sshd.sh rekey DIR                  new host keys, sshd restarted on the same
#                                      addresses; known_hosts is NOT updated, so
#                                      clients see a changed host key
#   sshd.sh down DIR                   an outage: kill this DIR's sshd and its
#                                      sessions, keep DIR (keys, config, logs)
#   sshd.sh up DIR                     start it again after `down`, same keys and
#                                      addresses (DIR/env gets the new SSHD_PID)
#
# `start` installs openssh-server/openssh-client when missing (as root),
# listens on 127.0.0.1:2222 (SSHD_PORT overrides the port; never 0.0.0.0),
# waits until every address shows this server's host key and a key login
# works (at most SSHD_TIMEOUT s, default 20), and writes DIR/env, to be sourced:
#   export SSHD_ADDR=127.0.0.1 SSHD_PORT=2222 SSH_TEST_HOME=DIR/home
#          SSH_TEST_USER=root SSHD_PID=... SSHD_HOST_FP=SHA256:... SSHD_LOG=DIR/sshd.log
#          SSH_TEST_CONFIG=DIR/home/.ssh/config SSH_TEST_KEY=DIR/home/.ssh/id_ed25519
#          SSH_TEST_WRONG_KEY=DIR/home/.ssh/id_wrong
#          SSH_TEST_KNOWN_HOSTS=DIR/home/.ssh/known_hosts
#   (and SSHD_EXTRA_ENDPOINTS='ADDR:PORT ...' when extra addresses were given)
# SSHD_HOST_FP is the ed25519 host key's fingerprint as `ssh-keygen -lf` prints it.
#
# DIR/home is a home for the client side (tests use HOME=DIR/home):
#   .ssh/id_ed25519      authorized key (in DIR/authorized_keys), 0600
#   .ssh/id_wrong        a key the server does not accept
#   .ssh/known_hosts     the host keys as [127.0.0.1]:PORT (and each extra address)
#   .ssh/config          Host sm-test (logs in with id_ed25519) and Host
#                        sm-test-wrong (offers only id_wrong)
# OpenSSH's ssh takes ~ from the password database, not from $HOME: run it as
# `HOME=DIR/home ssh -F DIR/home/.ssh/config sm-test ...` (the config names
# its known_hosts by absolute path).
#
# Key authentication only, unless SSHD_PASSWORD=1 (PasswordAuthentication yes,
# PermitRootLogin yes): with UsePAM no, sshd then checks /etc/shadow, and this
# script sets no password anywhere.
#
# The SFTP subsystem is OpenSSH's internal-sftp, unless:
#   SSHD_SFTP_DENY=REQ[,REQ...]  the server refuses these SFTP requests
#       (sftp-server -P; names as `sftp-server -Q requests` prints them, e.g.
#       posix-rename). OpenSSH (9.2) then no longer advertises a refused
#       extension: SSHD_SFTP_DENY=posix-rename is a server without
#       posix-rename@openssh.com, whose clients must use plain RENAME.
#   SSHD_SFTP_LOG=LEVEL  every SFTP request the server handles is logged
#       (sftp-server -l LEVEL: INFO names each open, close, rename, remove...;
#       VERBOSE adds refused requests; DEBUG1 each read and write) to
#       DIR/sftp-server.log, lines ending in CRLF, named in DIR/env as
#       SSHD_SFTP_LOG_FILE. internal-sftp can only log to syslog, so this runs
#       the stand-alone /usr/lib/openssh/sftp-server instead (the same code),
#       through the user's shell.
#   SSHD_SFTP_DIR=DIR  SFTP sessions start in DIR instead of the user's home
#       (internal-sftp -d DIR): the login directory that relative paths and
#       ~ name. DIR may hold only [A-Za-z0-9._/+-].
#   SSHD_SFTP_AS=nobody  the SFTP server runs as nobody:nogroup (setpriv), not
#       as the user who logged in (root here), so a directory the test makes
#       0700 is out of its reach as it is for an unprivileged SFTP user
#       ("permission denied"). This also runs the stand-alone sftp-server.
# A server that does not come up makes `start` fail with the tail of its log.
# DIR must be empty, missing, or a directory this script made (which `start`
# stops and wipes first); its path may hold only [A-Za-z0-9._/+-]. Only the
# process named in DIR/sshd.pid (when its command line names DIR's config)
# and the processes it forked (sessions and the clients' commands) are ever
# killed.
set -euo pipefail

PORT=${SSHD_PORT:-2222}
TIMEOUT=${SSHD_TIMEOUT:-20}
PASSWORD=${SSHD_PASSWORD:-}
SFTP_DENY=${SSHD_SFTP_DENY:-}
SFTP_LOG=${SSHD_SFTP_LOG:-}
SFTP_AS=${SSHD_SFTP_AS:-}
SFTP_DIR=${SSHD_SFTP_DIR:-}
SFTP_SERVER=/usr/lib/openssh/sftp-server
PACKAGES=(openssh-server openssh-client iproute2 procps)
SSHD=/usr/sbin/sshd
MARKER=.sshd-sh

me=sshd.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# proc_state PID: the one-letter state of a process (empty when gone).
proc_state() { sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null || true; }

# A PID is ours when it is alive (not a zombie: PID 1 may reap late) and its
# command line names this DIR's sshd_config. The listener rewrites its
# command line to one string, "sshd: /usr/sbin/sshd -f CONF -E LOG [listener]
# ...", so look for " -f CONF " in it with NULs read as spaces.
is_ours() { # pid dir
	local pid=$1 state cmd
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	state=$(proc_state "$pid")
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ] || return 1
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ " $cmd " == *" $SSHD -f $2/sshd_config "* ]]
}

# Everything a listener forked, as PID:COMM words: per connection the sshd
# monitor and session processes, and the commands the clients run (sshd puts
# each session in a session of its own, so those get no SIGHUP when sshd
# goes). Found before the listener goes; this kernel has no
# /proc/PID/task/TID/children, so ask ps.
sessions_of() { # pid
	ps -e -o pid=,ppid=,comm= 2>/dev/null | awk -v root="$1" '
		{ parent[$1] = $2; comm[$1] = $3 }
		END {
			for (p in parent)
				for (q = parent[p]; q != "" && q > 1; q = parent[q])
					if (q == root) { printf "%s:%s ", p, comm[p]; break }
		}'
}

# A PID:COMM recorded by sessions_of is still to be waited for while that
# PID lives with that name (a reused PID is left alone).
is_session() { # pid:comm
	local pid=${1%%:*} state
	state=$(proc_state "$pid")
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ] &&
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "${1#*:}" ]
}

# Kill DIR's sshd listener and its sessions: TERM, KILL after 5 s, wait until
# they are gone (at most 10 s).
stop_sshd() { # dir
	local dir=$1 pid sess i
	[ -f "$dir/sshd.pid" ] || return 0
	pid=$(<"$dir/sshd.pid")
	if ! is_ours "$pid" "$dir"; then
		rm -f "$dir/sshd.pid"
		return 0
	fi
	read -r -a sess <<<"$(sessions_of "$pid")"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 200; i++)); do
		is_ours "$pid" "$dir" || break
		((i == 100)) && { kill -KILL "$pid" 2>/dev/null || true; }
		sleep 0.05
	done
	is_ours "$pid" "$dir" && {
		say "sshd $pid did not exit"
		return 1
	}
	rm -f "$dir/sshd.pid"
	# The listener is gone: no new sessions. End the ones it had forked.
	local live=()
	for i in ${sess[@]+"${sess[@]}"}; do is_session "$i" && live+=("$i"); done
	((${#live[@]})) || return 0
	for i in "${live[@]}"; do kill -TERM "${i%%:*}" 2>/dev/null || true; done
	local n
	for ((n = 0; n < 100 && ${#live[@]}; n++)); do
		((n == 50)) && for i in "${live[@]}"; do kill -KILL "${i%%:*}" 2>/dev/null || true; done
		sleep 0.05
		local still=()
		for i in "${live[@]}"; do is_session "$i" && still+=("$i"); done
		live=(${still[@]+"${still[@]}"})
	done
	((${#live[@]} == 0)) || {
		say "session processes ${live[*]} did not exit"
		return 1
	}
}

# ep_host ADDR:PORT: the address without brackets; ep_port: the port.
ep_host() {
	local a=${1%:*}
	a=${a#[}
	echo "${a%]}"
}
ep_port() { echo "${1##*:}"; }

# known_host_name ADDR:PORT: the name ssh looks up in known_hosts.
known_host_name() {
	if [ "$(ep_port "$1")" = 22 ]; then ep_host "$1"; else echo "[$(ep_host "$1")]:$(ep_port "$1")"; fi
}

# keygen FILE TYPE [COMMENT]: a new key pair without passphrase (0600).
keygen() {
	local args=(-t "$2")
	[ "$2" = ecdsa ] && args+=(-b 256)
	rm -f -- "$1" "$1.pub"
	(umask 077 && ssh-keygen -q -N '' "${args[@]}" -C "${3:-sshd.sh}" -f "$1" </dev/null) ||
		die "ssh-keygen -t $2 failed for $1"
}

host_keys() { # dir
	keygen "$1/ssh_host_ed25519_key" ed25519 "sshd.sh host key"
	keygen "$1/ssh_host_ecdsa_key" ecdsa "sshd.sh host key"
}

# write_known_hosts DIR FILE: DIR's host keys under the names of every
# endpoint in DIR/endpoints, e.g. "[127.0.0.1]:2222,[10.77.0.1]:2222 ssh-ed25519 AAAA...".
write_known_hosts() {
	local dir=$1 names="" ep kf
	while read -r ep; do names+=${names:+,}$(known_host_name "$ep"); done <"$dir/endpoints"
	(umask 077 && for kf in "$dir"/ssh_host_{ed25519,ecdsa}_key.pub; do
		awk -v n="$names" '{ print n " " $1 " " $2 }' "$kf"
	done >"$2")
}

host_fp() { ssh-keygen -lf "$1/ssh_host_ed25519_key.pub" | awk '{ print $2 }'; }

# shows_key ADDR:PORT PUBFILE: does the server there present that host key?
# (Also proves it is our sshd that answers, not some other server.)
shows_key() {
	local want got
	want=$(awk '{ print $1 " " $2 }' "$2")
	got=$(timeout 5 ssh-keyscan -T 2 -t "${want%% *}" -p "$(ep_port "$1")" "$(ep_host "$1")" 2>/dev/null |
		awk '!/^#/ { print $2 " " $3 }') || true
	[ "$got" = "$want" ]
}

write_env() { # dir
	local dir=$1 user
	user=$(id -un)
	{
		echo "# sshd started by tests/servers/sshd.sh; source this file."
		echo "export SSHD_ADDR=127.0.0.1 SSHD_PORT=$PORT SSH_TEST_HOME=$dir/home SSH_TEST_USER=$user" \
			"SSHD_PID=$(<"$dir/sshd.pid") SSHD_HOST_FP=$(host_fp "$dir") SSHD_LOG=$dir/sshd.log"
		echo "export SSH_TEST_CONFIG=$dir/home/.ssh/config SSH_TEST_KEY=$dir/home/.ssh/id_ed25519" \
			"SSH_TEST_WRONG_KEY=$dir/home/.ssh/id_wrong SSH_TEST_KNOWN_HOSTS=$dir/home/.ssh/known_hosts"
		local eps
		eps=$(sed 1d "$dir/endpoints" | tr '\n' ' ')
		[ -z "$eps" ] || echo "export SSHD_EXTRA_ENDPOINTS='${eps% }'"
		[ ! -e "$dir/sftp-server.log" ] || echo "export SSHD_SFTP_LOG_FILE=$dir/sftp-server.log"
	} >"$dir/env.new"
	mv -f "$dir/env.new" "$dir/env"
}

# launch DIR [KNOWN_HOSTS]: start sshd with DIR/sshd_config, wait until every
# endpoint in DIR/endpoints shows the current ed25519 host key and a key login
# to sm-test works (checked against KNOWN_HOSTS, default the client's).
# On failure: show the logs, stop what was started, fail.
launch() { # dir [known_hosts]
	local dir=$1 kh=${2:-$1/home/.ssh/known_hosts} t0=$SECONDS pid="" ep
	fail() {
		show_log "sshd (stdout/stderr)" "$dir/sshd.out"
		show_log sshd "$dir/sshd.log"
		show_log "ssh client" "$dir/ssh-check.out"
		stop_sshd "$dir" || true
		die "$1 (logs in $dir)"
	}
	"$SSHD" -t -f "$dir/sshd_config" >"$dir/sshd.out" 2>&1 || fail "sshd -t rejects $dir/sshd_config"
	# Daemonizes; the child binds, then writes the pid file.
	"$SSHD" -f "$dir/sshd_config" -E "$dir/sshd.log" </dev/null >>"$dir/sshd.out" 2>&1 ||
		fail "$SSHD exited with $?"
	local deadline=$((SECONDS + TIMEOUT)) up
	while :; do
		if [ -z "$pid" ] && [ -s "$dir/sshd.pid" ]; then
			pid=$(<"$dir/sshd.pid")
			is_ours "$pid" "$dir" || pid=""
		fi
		if [ -n "$pid" ]; then
			is_ours "$pid" "$dir" || fail "sshd $pid died while starting"
			up=1
			while read -r ep; do
				shows_key "$ep" "$dir/ssh_host_ed25519_key.pub" || up=0
			done <"$dir/endpoints"
			((up)) && break
		elif grep -q 'fatal:' "$dir/sshd.log" 2>/dev/null; then
			fail "sshd did not start"
		fi
		((SECONDS < deadline)) || fail "sshd did not show its host key on every address within $TIMEOUT s"
		sleep 0.1
	done
	HOME=$dir/home timeout 15 ssh -F "$dir/home/.ssh/config" -o BatchMode=yes -o ConnectTimeout=5 \
		-o UserKnownHostsFile="$kh" sm-test true </dev/null >"$dir/ssh-check.out" 2>&1 || fail "a key login to sm-test does not work"
	rm -f "$dir/ssh-check.out"
	LAUNCH_SECONDS=$((SECONDS - t0))
}

cmd_start() {
	(($# >= 1)) || usage
	local dir extra=() a
	for a in "${@:2}"; do
		[[ $a =~ ^(\[[0-9A-Fa-f:.]+\]|[0-9]{1,3}(\.[0-9]{1,3}){3}):[0-9]+$ ]] ||
			die "bad address '$a' (want IPv4:PORT or [IPv6]:PORT)"
		case $a in 0.0.0.0:* | \[::\]:* | \[0:0:0:0:0:0:0:0\]:*) die "refusing to listen on all interfaces ($a)" ;; esac
		extra+=("$a")
	done
	if ! [[ $PORT =~ ^[1-9][0-9]{0,4}$ ]] || ((PORT > 65535)); then die "bad SSHD_PORT '$PORT'"; fi
	for a in ${extra[@]+"${extra[@]}"}; do
		[ "$a" != "127.0.0.1:$PORT" ] || die "127.0.0.1:$PORT is always listened on: do not name it again"
	done
	[ "$(printf '%s\n' ${extra[@]+"${extra[@]}"} | sort | uniq -d)" = "" ] || die "an address is given twice"
	[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "bad SSHD_TIMEOUT '$TIMEOUT'"
	case $PASSWORD in "" | 0 | 1) ;; *) die "bad SSHD_PASSWORD '$PASSWORD' (want 1 or nothing)" ;; esac
	case $SFTP_LOG in "" | QUIET | FATAL | ERROR | INFO | VERBOSE | DEBUG | DEBUG1 | DEBUG2 | DEBUG3) ;;
	*) die "bad SSHD_SFTP_LOG '$SFTP_LOG' (want INFO, VERBOSE, DEBUG1... as sftp-server -l takes)" ;;
	esac
	# Paths go unquoted into sshd_config and ssh_config (where % and ~ are special).
	[[ $1 =~ ^[A-Za-z0-9._/+-]+$ ]] || die "DIR '$1' may hold only [A-Za-z0-9._/+-]"

	ensure_packages
	[ -x "$SSHD" ] || die "$SSHD is missing (openssh-server)"
	if [ -n "$SFTP_DENY" ]; then
		local known req
		known=" $("$SFTP_SERVER" -Q requests 2>/dev/null | tr '\n' ' ')" ||
			die "$SFTP_SERVER -Q requests failed (openssh-sftp-server)"
		[[ $SFTP_DENY =~ ^[a-z-]+(,[a-z-]+)*$ ]] || die "bad SSHD_SFTP_DENY '$SFTP_DENY' (want REQ[,REQ...])"
		for req in ${SFTP_DENY//,/ }; do
			[[ $known == *" $req "* ]] || die "SSHD_SFTP_DENY: '$req' is no request of $SFTP_SERVER (-Q requests:$known)"
		done
	fi
	case $SFTP_AS in "" | nobody) ;; *) die "bad SSHD_SFTP_AS '$SFTP_AS' (want nobody or nothing)" ;; esac
	[ -z "$SFTP_DIR" ] || [[ $SFTP_DIR =~ ^/[A-Za-z0-9._/+-]*$ ]] || die "bad SSHD_SFTP_DIR '$SFTP_DIR' (an absolute path of [A-Za-z0-9._/+-])"
	[ -z "$SFTP_LOG$SFTP_AS" ] || [ -x "$SFTP_SERVER" ] || die "$SFTP_SERVER is missing (openssh-sftp-server)"
	[ -z "$SFTP_AS" ] || [ "$(id -u)" -eq 0 ] || die "SSHD_SFTP_AS needs root (setpriv)"

	dir=$(absdir "$1" create) || die "cannot create $1"
	[ "$dir" != / ] || die "refusing DIR /"
	[[ $dir =~ ^[A-Za-z0-9._/+-]+$ ]] || die "DIR '$dir' may hold only [A-Za-z0-9._/+-]"
	if [ -e "$dir/$MARKER" ]; then
		stop_sshd "$dir" || die "could not stop the previous server in $dir"
		find "$dir" -mindepth 1 -delete
	elif [ -n "$(ls -A -- "$dir")" ]; then
		die "$dir is not empty and was not made by $me"
	fi
	touch "$dir/$MARKER"

	local endpoints=("127.0.0.1:$PORT" ${extra[@]+"${extra[@]}"}) ep
	for ep in "${endpoints[@]}"; do
		local_addr "$(ep_host "$ep")" || die "$(ep_host "$ep") is not an address of this machine (for 10.77.0.1, create the bridge first)"
		if listening "$(ep_host "$ep")" "$(ep_port "$ep")"; then
			ss -ltnp 2>/dev/null | grep -F ":$(ep_port "$ep") " >&2 || true
			die "$ep is already in use (a server left by another run? stop it with its own DIR)"
		fi
	done
	printf '%s\n' "${endpoints[@]}" >"$dir/endpoints"

	# sshd's privilege separation directory (fatal when missing).
	if [ ! -d /run/sshd ]; then
		if [ "$(id -u)" -eq 0 ]; then
			mkdir -p /run/sshd && chmod 0755 /run/sshd
		else
			die "/run/sshd is missing (sshd needs it; create it as root)"
		fi
	fi

	local user home=$dir/home
	user=$(id -un) || die "the current user has no name"
	mkdir -p "$home/.ssh"
	chmod 0700 "$home" "$home/.ssh"
	host_keys "$dir"
	keygen "$home/.ssh/id_ed25519" ed25519 "sshd.sh client key"
	keygen "$home/.ssh/id_wrong" ed25519 "sshd.sh unauthorized key"
	(umask 077 && cp "$home/.ssh/id_ed25519.pub" "$dir/authorized_keys")

	write_known_hosts "$dir" "$home/.ssh/known_hosts"
	(
		umask 077
		cat >"$home/.ssh/config" <<EOF
# Written by tests/servers/sshd.sh. Use: HOME=$home ssh -F $home/.ssh/config sm-test
Host sm-test
    HostName 127.0.0.1
    Port $PORT
    User $user
    IdentityFile $home/.ssh/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $home/.ssh/known_hosts
    GlobalKnownHostsFile /dev/null
    UpdateHostKeys no

# The same server, offering only the key it does not accept.
Host sm-test-wrong
    HostName 127.0.0.1
    Port $PORT
    User $user
    IdentityFile $home/.ssh/id_wrong
    IdentitiesOnly yes
    UserKnownHostsFile $home/.ssh/known_hosts
    GlobalKnownHostsFile /dev/null
    UpdateHostKeys no
EOF
	)

	# The SFTP subsystem: internal-sftp, or sftp-server logging to a file
	# and/or running as nobody (sshd runs a subsystem's command line with
	# the user's shell).
	local sftp=internal-sftp
	if [ -n "$SFTP_LOG" ]; then
		: >"$dir/sftp-server.log"
		sftp="$SFTP_SERVER -e -l $SFTP_LOG"
	fi
	if [ -n "$SFTP_AS" ]; then
		[ "$sftp" != internal-sftp ] || sftp=$SFTP_SERVER
		sftp="/usr/bin/setpriv --reuid=nobody --regid=nogroup --clear-groups $sftp"
	fi
	[ -z "$SFTP_DENY" ] || sftp+=" -P $SFTP_DENY"
	[ -z "$SFTP_DIR" ] || sftp+=" -d $SFTP_DIR"
	[ -z "$SFTP_LOG" ] || sftp+=" 2>>$dir/sftp-server.log"

	local listen="" pwauth=no rootlogin=prohibit-password
	for ep in "${endpoints[@]}"; do listen+="ListenAddress $ep"$'\n'; done
	if [ "$PASSWORD" = 1 ]; then
		pwauth=yes
		rootlogin=yes
	fi
	cat >"$dir/sshd_config" <<EOF
# Written by tests/servers/sshd.sh: a throwaway sshd for tests.
Port $PORT
${listen}AddressFamily any
HostKey $dir/ssh_host_ed25519_key
HostKey $dir/ssh_host_ecdsa_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
UsePAM no
# Keys and DIR live under /tmp, which is world-writable.
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication $pwauth
PermitEmptyPasswords no
KbdInteractiveAuthentication no
PermitRootLogin $rootlogin
Subsystem sftp $sftp
UseDNS no
MaxStartups 100:30:200
MaxSessions 64
LoginGraceTime 30
LogLevel VERBOSE
AcceptEnv none
PermitUserEnvironment no
PrintMotd no
PrintLastLog no
X11Forwarding no
EOF
	launch "$dir"
	write_env "$dir"
	say "sshd ready on ${endpoints[*]} in $LAUNCH_SECONDS s (host key $(host_fp "$dir")); source $dir/env"
}

# Common checks of stop/status/rekey: print DIR absolute, or fail.
made_dir() { # dir
	local dir
	dir=$(absdir "$1") || die "no $1"
	[ -e "$dir/$MARKER" ] || die "$dir was not made by $me; not touching it"
	echo "$dir"
}

cmd_stop() {
	(($# == 1)) || usage
	local dir
	dir=$(absdir "$1") || return 0 # nothing to stop
	[ -e "$dir/$MARKER" ] || [ -z "$(ls -A -- "$dir")" ] ||
		die "$dir was not made by $me; not touching it"
	stop_sshd "$dir" || die "could not stop every process of $dir (left in place)"
	rm -rf -- "$dir"
}

cmd_status() {
	(($# == 1)) || usage
	local dir ep
	dir=$(made_dir "$1")
	if ! [ -f "$dir/sshd.pid" ] || ! is_ours "$(<"$dir/sshd.pid")" "$dir"; then die "sshd is not running"; fi
	[ -f "$dir/env" ] || die "not started (no $dir/env)"
	while read -r ep; do
		shows_key "$ep" "$dir/ssh_host_ed25519_key.pub" || die "sshd at $ep does not answer with its host key"
		echo "sshd running at $ep (pid $(<"$dir/sshd.pid"))"
	done <"$dir/endpoints"
}

cmd_rekey() {
	(($# == 1)) || usage
	local dir old
	dir=$(made_dir "$1")
	[ -f "$dir/env" ] || die "not started (no $dir/env)"
	if ! [ -f "$dir/sshd.pid" ] || ! is_ours "$(<"$dir/sshd.pid")" "$dir"; then die "sshd is not running"; fi
	PORT=$(sed -n 's/^Port //p' "$dir/sshd_config")
	old=$(host_fp "$dir")
	stop_sshd "$dir" || die "could not stop the sshd of $dir"
	host_keys "$dir"
	# The client's known_hosts keeps the old keys; launch's login check uses
	# a file with the new ones (kept: tests may want to "accept" the change).
	write_known_hosts "$dir" "$dir/known_hosts.new"
	launch "$dir" "$dir/known_hosts.new"
	write_env "$dir"
	say "sshd restarted with new host keys ($old -> $(host_fp "$dir")); known_hosts still has the old ones; source $dir/env"
}

cmd_down() {
	(($# == 1)) || usage
	local dir
	dir=$(made_dir "$1")
	[ -f "$dir/env" ] || die "not started (no $dir/env)"
	stop_sshd "$dir" || die "could not stop the sshd of $dir"
}

cmd_up() {
	(($# == 1)) || usage
	local dir
	dir=$(made_dir "$1")
	[ -f "$dir/env" ] || die "not started (no $dir/env)"
	if [ -f "$dir/sshd.pid" ] && is_ours "$(<"$dir/sshd.pid")" "$dir"; then die "sshd is running already"; fi
	PORT=$(sed -n 's/^Port //p' "$dir/sshd_config")
	launch "$dir"
	write_env "$dir"
}

case ${1:-} in
start | stop | status | rekey | down | up)
	cmd=$1
	shift
	"cmd_$cmd" "$@"
	;;
*) usage ;;
esac
