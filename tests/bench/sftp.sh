#!/usr/bin/env bash
# tests/bench/sftp.sh - SFTP benchmark: syncmgr vs rsync -a -e ssh and rclone sync, local -> SFTP on loopback
#
# What it measures
#   Wall time (median of --runs), peak RSS, and client and server CPU time of
#   copies from the local disk to a private OpenSSH server on 127.0.0.1:--port
#   (tests/servers/sshd.sh, started by this script and stopped on exit; its
#   remote side is a directory on this machine, below the scratch dir), for
#   these seeded data sets (sizes times --scale):
#     SMALL   20k files of 0.5-8 KiB in 200 dirs (~85 MB)   scale: the counts
#     LARGE   2 files of 512 MiB (1 GiB)                    scale: the size
#   and two phases per tool and data set:
#     initial    copy into an empty remote dir (removed with rm -rf on the
#                server side, re-created empty, then `sync`)
#     no-change  the same command again onto the complete remote dir
#   Commands (DST = the remote dir's absolute path; CONF = the sshd's client
#   config, HOME/.ssh/config with `Host sm-test`):
#     HOME=<client home> SSH_AUTH_SOCK= syncmgr -q SRC/ sm-test:DST/
#     SSH_AUTH_SOCK= rsync -a -e "ssh -F CONF" SRC/ sm-test:DST/
#     SSH_AUTH_SOCK= rclone sync SRC sftpb:DST --config W/rclone.conf --transfers 10
#         --checkers 16 --sftp-disable-hashcheck -q
#       with the remote from RCLONE_CONFIG_SFTPB_* (type sftp, host 127.0.0.1,
#       port, user, key_file, known_hosts_file, shell_type unix); every other
#       rclone setting is its default (1.60: 32 KiB SFTP chunks, 64 requests in
#       flight per file).  Not --config /dev/null: rclone's sftp backend saves
#       the shell type it detects by renaming a temp file over the config file,
#       which replaces /dev/null with a regular file for the whole machine;
#       shell_type unix is what it would detect, and leaves nothing to save.
#       Without --sftp-disable-hashcheck rclone runs a remote md5sum per file
#       (see /work/shared/TESTBED.md): 20k small files take ~22 min.
#   syncmgr runs with its defaults (10 threads); rsync's ssh and sshd
#   negotiate OpenSSH's defaults.
#   Every command runs under /usr/bin/time -f '%e %M %U %S' (lib.sh's
#   bench_exec); `sync` runs before each timed command.  Within a round the
#   tools run one after another (initial, then no-change, then the next tool)
#   and the start position rotates from round to round.  In round 1 every
#   initial copy is checked: the remote tree must equal SRC (names, types and
#   sizes, then diff -rq for the contents), and for syncmgr and rsync every
#   file's mtime must equal SRC's to the second (SFTP carries whole seconds);
#   rclone's mtimes only give a note.  A wrong copy or a failing tool ends the
#   script with exit status 1.  A missed target does not.
#
# Server CPU ("server CPU s")
#   The CPU time of the sshd's whole process tree while the command ran: the
#   listener, and per connection the privileged monitor (for a root login it
#   also runs the session: the crypto), the pre-auth child, internal-sftp's
#   session child (the SFTP work and the remote file system calls), and for
#   rsync the `rsync --server` processes.  These come and go during a run,
#   and not all are waited for by their sshd: when a client drops the
#   connection, the monitor can exit before its internal-sftp child, which is
#   then reparented (a dev check at 3000 files saw 2 of 11 syncmgr
#   connections do that, ~7 % of the server CPU).  So `sshd.sh start` runs
#   under a small python child subreaper (prctl PR_SET_CHILD_SUBREAPER): the
#   daemonized listener and every orphaned session process become its
#   children, and it waits for them.  bench_server_ticks (lib.sh's
#   bench_exec reads it just before and just after each command) is the
#   reaper's cutime + cstime (/proc/PID/stat fields 16-17: every child it has
#   waited for, with each child's own waited-for children, recursively) plus
#   utime + stime + cutime + cstime (fields 14-17) of the listener and of
#   every other live process below the reaper.  Before reading, it waits (up
#   to 5 s) until the tree is just the reaper and the listener, so the reading
#   never races a session being reaped (the command's sessions end within
#   milliseconds of its client).  The reaper's own few ticks (its wait loop)
#   are left out.  Without a subreaper (prctl refused) the listener's tree
#   alone is counted, with a note.  The server CPU is the sshd side only:
#   the kernel's write-back of the remote files is in no column.
#
# How to read the output
#   Progress goes to stderr; the report (Markdown, for the README) to stdout:
#     tests/bench/sftp.sh --workdir /dev/shm > bench-sftp.md
#   Use a tmpfs work dir (/dev/shm): on this machine's ext4 (mounted with
#   `discard`) the rm -rf of a 20k-file tree between runs makes later creates
#   scan recently deleted inodes and initial-copy times vary many-fold between
#   rounds (README, "Why tmpfs"); tmpfs measures the tools and the server.
#   Table columns: median seconds; throughput from the median time (LARGE
#   initial: MB/s, 10^6 B; otherwise files/s); the highest peak RSS of all
#   runs in MiB; on syncmgr rows its median time divided by rsync's and by
#   rclone's for the same data set and phase (< 1 means syncmgr is faster).
#   Then the median CPU seconds (user + sys) of the client (the tool, with the
#   children it waits for: rsync's ssh) and of the server (see above); "CPU
#   floor s" = (client + server CPU) / CPUs, the shortest wall time these CPU
#   seconds allow on this machine; and "busy %" = CPU floor / median wall
#   time: near 100 % the row is CPU-bound (the larger CPU column says whose),
#   well below it the time goes to waiting (round trips, or CPU taken by other
#   processes on the machine, which no column counts).  Then each target with
#   PASS / MISS and the measured value.  Times come with 0.01 s resolution: at
#   tiny --scale the ratios are noise; only --scale 1 numbers mean anything.
#
# Usage: tests/bench/sftp.sh [--scale F] [--runs N] [--workdir DIR] [--syncmgr PATH] [--port P]
#   --scale F     multiply the SMALL counts and the LARGE size by F (default 1)
#   --runs N      rounds; the median is reported (default 3)
#   --workdir DIR parent of the scratch dir (default /var/tmp; /dev/shm recommended,
#                 see above); the script works in a fresh mktemp -d below it (SRC,
#                 the remote dir and the sshd's dir) and removes that dir on exit
#   --syncmgr P   syncmgr binary (default: $SYNCMGR, else build/manager/syncmgr of
#                 this checkout, else `syncmgr` on PATH)
#   --port P      port for sshd on 127.0.0.1 (default: $SSHD_PORT, else 2260;
#                 must be free: 2222 is what the test suites use)
# Needs: bash, /usr/bin/python3, /usr/bin/time (Debian package `time`), rsync,
# rclone, ssh, /usr/sbin/sshd (tests/servers/sshd.sh installs openssh-server
# when run as root), diff, cmp, find, ss; about 3x the data size free (~3.5 GB
# at scale 1).

set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
prog=${0##*/}
sshd_sh=$repo/tests/servers/sshd.sh

scale=1
runs=3
workparent=/var/tmp
syncmgr=${SYNCMGR:-}
port=${SSHD_PORT:-2260}

usage() { sed -n 's/^# \{0,1\}//; /^Usage:/,/^Needs:/p' "$0" | sed '$d'; }
die() { echo "$prog: $*" >&2; exit 2; }
fail() { echo "$prog: $*" >&2; exit 1; }
log() { echo "$*" >&2; }
notes=()
note() { notes+=("$*"); log "$prog: NOTE: $*"; }

# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
bench_options "$@"

# ---- tools ------------------------------------------------------------------
[ -x /usr/bin/time ] || die "/usr/bin/time missing (apt-get install time)"
[ -x /usr/bin/python3 ] || die "/usr/bin/python3 missing"
[ -x "$sshd_sh" ] || die "$sshd_sh missing"
[ -c /dev/null ] || die "/dev/null is not a character device (mknod -m 666 /dev/null c 1 3)"
for t in rsync rclone diff cmp find sync ss; do
	command -v "$t" >/dev/null || die "'$t' not found on PATH"
done

# ---- sizes ------------------------------------------------------------------
# scaled COUNT: max(1, round(COUNT * scale))
sc() { awk -v n="$1" -v s="$scale" 'BEGIN { v = int(n * s + 0.5); print (v < 1 ? 1 : v) }'; }
small_files=$(sc 20000) small_dirs=$(sc 200)
small_min=512 small_max=8192
large_files=2
large_size=$(awk -v s="$scale" 'BEGIN { v = int(536870912 * s / 4096 + 0.5) * 4096; print (v < 4096 ? 4096 : v) }')
# Disk estimate (bytes): small files average ~1.53 4-KiB blocks.
data_est=$((small_files * 6656 + small_dirs * 4096 + large_files * large_size))
human() { awk -v b="$1" 'BEGIN { split("B KiB MiB GiB TiB", u); i = 1; while (b >= 1024 && i < 5) { b /= 1024; i++ } printf (i == 1 ? "%d %s" : "%.1f %s"), b, u[i] }'; }

# ---- scratch dir and server -----------------------------------------------------
mkdir -p -- "$workparent" || die "cannot create $workparent"
W=$(mktemp -d "$workparent/syncmgr-sftpbench.XXXXXX") || die "mktemp -d in $workparent failed"
W=$(cd "$W" && pwd)
[[ $W =~ ^[A-Za-z0-9._/+-]+$ ]] || { rm -rf -- "$W"; die "work dir '$W' may hold only [A-Za-z0-9._/+-] (sshd.sh's rule)"; }
srv=$W/sshd
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
	local rc=$? i
	trap - EXIT INT TERM HUP PIPE
	if [ -n "${srv:-}" ] && [ -e "$srv" ]; then
		log "$prog: stopping sshd" || true
		"$sshd_sh" stop "$srv" >/dev/null 2>&1 || log "$prog: sshd.sh stop $srv failed" 2>/dev/null || true
	fi
	if [ -n "${reaper_pid:-}" ]; then
		# it exits once the listener and its sessions are gone
		for ((i = 0; i < 50; i++)); do
			case $(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$reaper_pid/stat" 2>/dev/null) in "" | Z | X) break ;; esac
			sleep 0.1
		done
		kill "$reaper_pid" 2>/dev/null || true
		wait "$reaper_pid" 2>/dev/null || true
	fi
	if [ -n "${W:-}" ] && [ -d "$W" ]; then
		log "$prog: removing $W" || true
		rm -rf -- "$W"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE

avail=$(df -Pk -- "$W" | awk 'NR == 2 { printf "%.0f", $4 * 1024 }')
need=$((3 * data_est))
if [ "$avail" -lt "$need" ]; then
	die "not enough free space in $workparent: $(human "$avail") free, need ~$(human "$need") (3x the ~$(human "$data_est") of data; lower --scale or use --workdir)"
fi

if ss -Hltn "( sport = :$port )" 2>/dev/null | grep -q .; then
	die "port $port is in use (another sshd?); pick a free one with --port"
fi

log "$prog: scale $scale, runs $runs, workdir $W, syncmgr $syncmgr"
log "$prog: data ~$(human "$data_est"), $(human "$avail") free; starting sshd on 127.0.0.1:$port ..."
# sshd.sh start runs under a child subreaper (PR_SET_CHILD_SUBREAPER): the
# daemonized listener becomes its child, and so does every session process
# whose parent exits before reaping it; the reaper waits for them, so their
# CPU time lands in its cutime/cstime (see "Server CPU" above).
reaper_py='
import ctypes, os, sys
sub = ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
rcfile = sys.argv[1]
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
while True:
    try:
        p, st, ru = os.wait4(-1, 0)
    except ChildProcessError:
        break
    if p == pid:
        with open(rcfile + ".new", "w") as f:
            f.write("%d %d\n" % (os.waitstatus_to_exitcode(st), sub))
        os.rename(rcfile + ".new", rcfile)
        if not sub:
            break
        pid = -1
    elif pid == -1:  # an orphan after the start: log its CPU seconds
        with open(rcfile + ".orphans", "a") as f:
            f.write("%d %.2f\n" % (p, ru.ru_utime + ru.ru_stime))
'
SSHD_PORT=$port /usr/bin/python3 -c "$reaper_py" "$W/sshd-start.rc" "$sshd_sh" start "$srv" \
	</dev/null >"$W/sshd-start.log" 2>&1 &
reaper_pid=$!
while [ ! -e "$W/sshd-start.rc" ] && kill -0 "$reaper_pid" 2>/dev/null; do sleep 0.1; done
read -r start_rc reaper_ok 2>/dev/null <"$W/sshd-start.rc" || start_rc=255 reaper_ok=0
if [ "$start_rc" != 0 ]; then
	sed 's/^/    /' "$W/sshd-start.log" >&2
	fail "sshd.sh start failed"
fi
# shellcheck disable=SC1091
. "$srv/env"
if [ "$SSHD_ADDR" != 127.0.0.1 ] || [ "$SSHD_PORT" != "$port" ]; then
	fail "sshd.sh's env names $SSHD_ADDR:$SSHD_PORT, not 127.0.0.1:$port"
fi
# shellcheck disable=SC2153  # SSHD_PID comes from $srv/env
sshd_pid=$SSHD_PID
if ! [[ $sshd_pid =~ ^[0-9]+$ ]] || ! [ -r "/proc/$sshd_pid/stat" ]; then
	fail "the sshd listener (pid '$sshd_pid' in $srv/env) is not running"
fi
ssh_home=$SSH_TEST_HOME ssh_config=$SSH_TEST_CONFIG

# proc_scan: every process's parent in ppid_of, its utime + stime + cutime +
# cstime (/proc/PID/stat fields 14-17, clock ticks) in ticks_of, and its
# cutime + cstime alone in rcticks_of.
declare -A ppid_of ticks_of rcticks_of
# shellcheck disable=SC2317  # called from bench_server_ticks
proc_scan() {
	local f stat pid
	local -a a
	ppid_of=() ticks_of=() rcticks_of=()
	for f in /proc/[0-9]*/stat; do
		read -r stat 2>/dev/null <"$f" || continue
		pid=${stat%% *}
		read -r -a a <<<"${stat##*) }" # a[0] is field 3 (state)
		[[ ${a[1]:-} =~ ^[0-9]+$ && ${a[14]:-} =~ ^[0-9]+$ ]] || continue
		ppid_of[$pid]=${a[1]}
		ticks_of[$pid]=$((a[11] + a[12] + a[13] + a[14]))
		rcticks_of[$pid]=$((a[13] + a[14]))
	done
}
ppid_of_pid() { local s; read -r s 2>/dev/null <"/proc/$1/stat" || return 0; read -r -a s <<<"${s##*) }"; echo "${s[1]}"; }
# descendants ROOT: the PIDs below ROOT in the last proc_scan, on one line.
# shellcheck disable=SC2317  # called from bench_server_ticks
descendants() {
	local p q out=""
	for p in "${!ppid_of[@]}"; do
		q=${ppid_of[$p]}
		while [ -n "$q" ] && [ "$q" -gt 1 ]; do
			if [ "$q" = "$1" ]; then
				out+="$p "
				break
			fi
			q=${ppid_of[$q]:-}
		done
	done
	echo "$out"
}
# bench_server_ticks (lib.sh's bench_exec calls it around each timed command):
# the CPU ticks of the sshd's process tree, as described in the header: the
# reaper's cutime + cstime plus utime + stime + cutime + cstime of the
# listener and any other live process below the reaper.  Waits up to 5 s
# until the tree is just the reaper and the listener; when sessions are still
# there then, adds their ticks (a reaping in between may count one twice or
# not at all) and says so.  Fails when the listener is gone.
# (It runs in a command substitution: it leaves its remarks in $W/server-busy.)
# shellcheck disable=SC2317  # invoked by lib.sh's bench_exec
bench_server_ticks() {
	local i d total p
	for ((i = 0; i < 100; i++)); do
		proc_scan
		[ -n "${ticks_of[$sshd_pid]:-}" ] || return 1
		d=$(descendants "$tree_root")
		d=" ${d} "
		d=${d// $sshd_pid / }
		d=${d# }
		d=${d% }
		[ -n "$d" ] || break
		sleep 0.05
	done
	total=${ticks_of[$sshd_pid]}
	if [ "$tree_root" = "$reaper_pid" ]; then
		[ -n "${rcticks_of[$reaper_pid]:-}" ] || return 1
		total=$((total + rcticks_of[$reaper_pid]))
	fi
	if [ -n "$d" ]; then
		echo "$(wc -w <<<"$d") $d" >>"$W/server-busy"
		for p in $d; do total=$((total + ${ticks_of[$p]:-0})); done
	fi
	echo "$total"
}
if [ "$reaper_ok" = 1 ] && [ "$(ppid_of_pid "$sshd_pid")" = "$reaper_pid" ]; then
	tree_root=$reaper_pid
else
	tree_root=$sshd_pid
	note "server CPU: no child subreaper (prctl PR_SET_CHILD_SUBREAPER failed, or the listener is not the reaper's child): only the listener's tree is counted; session processes sshd does not wait for (internal-sftp children that outlive their connection's sshd) are missing from the server CPU"
fi


# rclone's remote, from the environment.  NOT --config /dev/null: rclone
# 1.60's sftp backend saves the remote shell type it detects into the config
# file, by writing a temp file and renaming it over the config, which turns
# /dev/null into a regular file for the whole machine.  So the remote states
# shell_type=unix (what rclone would detect and save; nothing left to save)
# and rclone gets an empty config file of its own in the scratch dir.
export RCLONE_CONFIG_SFTPB_TYPE=sftp RCLONE_CONFIG_SFTPB_HOST=127.0.0.1 RCLONE_CONFIG_SFTPB_PORT=$port \
	RCLONE_CONFIG_SFTPB_USER=$SSH_TEST_USER RCLONE_CONFIG_SFTPB_KEY_FILE=$SSH_TEST_KEY \
	RCLONE_CONFIG_SFTPB_KNOWN_HOSTS_FILE=$SSH_TEST_KNOWN_HOSTS RCLONE_CONFIG_SFTPB_SHELL_TYPE=unix
rclone_conf=$W/rclone.conf
: >"$rclone_conf"
rclone_flags=(--config "$rclone_conf" --transfers 10 --checkers 16 --sftp-disable-hashcheck -q)

# ---- data sets ------------------------------------------------------------------
sets=(SMALL LARGE)
declare -A nfiles nbytes
gen() { # SET KIND ARGS...
	local set=$1 kind=$2 out
	shift 2
	log "$prog: generating $set ..."
	out=$(/usr/bin/python3 "$here/gen.py" "$kind" "$W/src/$set" "$@") || fail "gen.py failed"
	read -r "nfiles[$set]" "nbytes[$set]" <<<"$out"
}
gen SMALL small --files "$small_files" --dirs "$small_dirs" --min-size "$small_min" --max-size "$small_max" --seed 1
gen LARGE large --files "$large_files" --size "$large_size" --seed 2
sync

# ---- measuring --------------------------------------------------------------------
tools=(syncmgr rsync rclone)
declare -A label=([syncmgr]="syncmgr" [rsync]="rsync -a -e ssh" [rclone]="rclone sync")
results=$W/results
: >"$results"
dst=$W/remote/dst # the server-side path of the remote dir

tool_cmd() { # TOOL SRC-DIR DST-PATH -> sets array cmd
	case $1 in
	syncmgr) cmd=(env HOME="$ssh_home" SSH_AUTH_SOCK= "$syncmgr" -q "$2/" "sm-test:$3/") ;;
	rsync) cmd=(env SSH_AUTH_SOCK= rsync -a -e "ssh -F $ssh_config" "$2/" "sm-test:$3/") ;;
	rclone) cmd=(env SSH_AUTH_SOCK= rclone sync "$2" "sftpb:$3" "${rclone_flags[@]}") ;;
	esac
}

# run SET PHASE TOOL ROUND: time one command, append
# "SET PHASE TOOL ROUND SECS RSS_KIB CPU_S SRV_CPU_S" (lib.sh's bench_exec)
run() {
	local -a cmd
	tool_cmd "$3" "$W/src/$1" "$dst"
	bench_exec "$1" "$2" "$3" "$4" "$(printf '%q ' "${cmd[@]}")"
	[ -c /dev/null ] || fail "/dev/null is no longer a character device after ${label[$3]}'s $1 $2 run (round $4): restore it (mknod -m 666 /dev/null c 1 3) and find out who replaced it"
}

# Sanity-check syncmgr's summary line:
#   Found: N, excluded: 0 (0 B), skipped: S (..), copied: C (..), extra: E (..)
# shellcheck disable=SC2317  # called from lib.sh's bench_exec
check_summary() {
	local set=$1 phase=$2 round=$3 ef=$4 line found skipped copied n=${nfiles[$1]}
	summary_counts "$set" "$phase" "$round" "$ef" || return 0
	if [ "$phase" = initial ]; then
		if [ "$found" != "$n" ] || [ "$copied" != "$n" ]; then
			note "syncmgr $set initial (round $round): expected found=copied=$n, summary: $line"
		fi
	elif [ "$found" != "$n" ] || [ "$copied" != 0 ] || [ "$skipped" != "$n" ]; then
		note "syncmgr $set no-change (round $round): expected found=skipped=$n copied=0, summary: $line"
	fi
}

mtimes() { (cd "$1" && find . -type f -printf '%P %TY-%Tm-%Td %TH:%TM:%.2TS\n' | sort); }

# verify SET TOOL: the remote dir must equal SRC (names, types, sizes,
# contents; for syncmgr and rsync file mtimes to the second).
verify() {
	local set=$1 tool=$2 src=$W/src/$1 bad
	log "$prog: verifying ${label[$tool]}'s copy of $set ..."
	if ! cmp -s <(listing "$src") <(listing "$dst"); then
		log "$prog: WRONG COPY: ${label[$tool]}'s $set copy differs from SRC (names/types/sizes; < SRC, > remote):"
		diff <(listing "$src") <(listing "$dst") | head -n 20 | sed 's/^/    /' >&2
		exit 1
	fi
	if ! diff -rq -- "$src" "$dst" >"$W/diff.out" 2>&1; then
		log "$prog: WRONG COPY: ${label[$tool]}'s $set copy differs from SRC (contents):"
		head -n 20 "$W/diff.out" | sed 's/^/    /' >&2
		exit 1
	fi
	bad=$(diff <(mtimes "$src") <(mtimes "$dst") | grep -c '^<' || true)
	if [ "$bad" -ne 0 ]; then
		if [ "$tool" = rclone ]; then
			note "${label[$tool]}'s $set copy: $bad of ${nfiles[$set]} file(s) have another mtime (to the second) than SRC"
		else
			log "$prog: WRONG COPY: ${label[$tool]}'s $set copy: $bad of ${nfiles[$set]} file(s) have another mtime (to the second) than SRC (< SRC, > remote):"
			diff <(mtimes "$src") <(mtimes "$dst") | head -n 10 | sed 's/^/    /' >&2
			exit 1
		fi
	fi
}

fresh_dst() {
	rm -rf -- "$W/remote"
	mkdir -p -- "$dst"
	sync
}

for ((round = 1; round <= runs; round++)); do
	for set in "${sets[@]}"; do
		order=()
		for ((i = 0; i < ${#tools[@]}; i++)); do
			order+=("${tools[(i + round - 1) % ${#tools[@]}]}")
		done
		for tool in "${order[@]}"; do
			fresh_dst
			run "$set" initial "$tool" "$round"
			if [ "$round" -eq 1 ]; then
				verify "$set" "$tool"
			fi
			run "$set" no-change "$tool" "$round"
		done
		rm -rf -- "$W/remote"
	done
done

# ---- report --------------------------------------------------------------------
# median_col SET PHASE TOOL COL -> median of results column COL ("" when not measured)
median_col() {
	awk -v s="$1" -v p="$2" -v t="$3" -v c="$4" '$1 == s && $2 == p && $3 == t && $c != "" && $c != "-" { print $c }' "$results" |
		sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%.2f", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
# median SET PHASE TOOL -> seconds ("" when not measured)
median() { median_col "$1" "$2" "$3" 5; }
# peak SET PHASE TOOL -> highest peak RSS in KiB
peak() {
	awk -v s="$1" -v p="$2" -v t="$3" '$1 == s && $2 == p && $3 == t && $6 > m { m = $6 } END { print m + 0 }' "$results"
}
# div A B [FMT] -> A/B, or n/a
div() { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf f, a / b }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# tratio SET PHASE TOOL -> syncmgr's median time / TOOL's
tratio() { div "$(median "$1" "$2" syncmgr)" "$(median "$1" "$2" "$3")"; }

describe() {
	case $1 in
	SMALL) echo "${nfiles[$1]} files of 0.5-8 KiB in $small_dirs dir(s), $(human "${nbytes[$1]}")" ;;
	LARGE) echo "${nfiles[$1]} files of $(human "$large_size"), $(human "${nbytes[$1]}")" ;;
	esac
}

fstype=$(df -PT -- "$W" | awk 'NR == 2 { print $2 }')
sshd_version=$(ssh -V 2>&1 | awk '{ sub(/,$/, "", $1); print $1 }')
cat <<EOF
## SFTP benchmark

\`tests/bench/sftp.sh --scale $scale --runs $runs\` on $(date -u +%Y-%m-%d), $(uname -sr), $(nproc) CPUs, $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, SRC and the remote dir on $fstype.
Server: $sshd_version sshd (\`tests/servers/sshd.sh\`, internal-sftp, key login as $SSH_TEST_USER) on 127.0.0.1:$port; the remote dir is on this machine.
$("$syncmgr" --version 2>&1 | head -n 1) (\`-q SRC/ sm-test:DST/\`, default 10 threads), $(rsync --version | head -n 1 | awk '{ print $1, $2, $3 }') (\`rsync -a -e "ssh -F CONF"\`), $(rclone version 2>/dev/null | head -n 1) (\`rclone sync --transfers 10 --checkers 16 --sftp-disable-hashcheck -q\`, remote type sftp with shell_type unix, an empty config file; other settings default).
Median of $runs run(s); each initial copy into an empty remote dir, the no-change pass the same command again; remote writes not flushed to disk in the timing.

EOF
for set in "${sets[@]}"; do echo "- **$set**: $(describe "$set")"; done
cat <<EOF

| data set | phase | tool | median s | throughput | peak RSS MiB | syncmgr ÷ rsync (time) | syncmgr ÷ rclone (time) | client CPU s | server CPU s | CPU floor s | busy % |
|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
ncpu=$(nproc)
for set in "${sets[@]}"; do
	for phase in initial no-change; do
		for tool in "${tools[@]}"; do
			t=$(median "$set" "$phase" "$tool")
			[ -n "$t" ] || continue
			if [ "$set" = LARGE ] && [ "$phase" = initial ]; then
				tput=$(div "$(awk -v b="${nbytes[$set]}" 'BEGIN { printf "%.6f", b / 1e6 }')" "$t" "%.1f MB/s")
			else
				tput=$(div "${nfiles[$set]}" "$t" "%.0f files/s")
			fi
			rrs="" rrc=""
			if [ "$tool" = syncmgr ]; then
				rrs=$(tratio "$set" "$phase" rsync)
				rrc=$(tratio "$set" "$phase" rclone)
			fi
			ccpu=$(median_col "$set" "$phase" "$tool" 7)
			scpu=$(median_col "$set" "$phase" "$tool" 8)
			floor="" busy=""
			if [ -n "$ccpu" ] && [ -n "$scpu" ]; then
				floor=$(awk -v c="$ccpu" -v s="$scpu" -v n="$ncpu" 'BEGIN { printf "%.2f", (c + s) / n }')
				busy=$(div "$(awk -v c="$ccpu" -v s="$scpu" -v n="$ncpu" 'BEGIN { printf "%.6f", (c + s) / n * 100 }')" "$t" "%.0f")
			fi
			printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$set" "$phase" "${label[$tool]}" "$t" "$tput" \
				"$(mib "$(peak "$set" "$phase" "$tool")")" "${rrs:-–}" "${rrc:-–}" "${ccpu:-–}" "${scpu:-–}" "${floor:-–}" "${busy:-–}"
		done
	done
done

# ---- targets ----------------------------------------------------------------------
# target NAME VALUE OP LIMIT
target() {
	local v=$2 res
	if [ "$v" = n/a ]; then
		res="n/a"
	elif awk -v v="$v" -v op="$3" -v l="$4" 'BEGIN { exit !(op == "<=" ? v <= l + 1e-9 : v >= l - 1e-9) }'; then
		res=PASS
	else
		res=MISS
	fi
	printf '| %s | %s | %s %s | %s |\n' "$1" "$v" "$3" "$4" "$res"
}
max_rss=$(awk '$3 == "syncmgr" && $6 > m { m = $6; w = $1 " " $2 } END { print m + 0, w }' "$results")
read -r max_rss_kib max_rss_where <<<"$max_rss"

cat <<EOF

### Targets

| target | measured | goal | result |
|---|---:|---:|---|
EOF
target "SMALL initial: syncmgr time ÷ rsync -a -e ssh" "$(tratio SMALL initial rsync)" "<=" 0.67
target "SMALL initial: syncmgr time ÷ rclone sync" "$(tratio SMALL initial rclone)" "<=" 0.30
target "SMALL no-change: syncmgr time ÷ rsync -a -e ssh" "$(tratio SMALL no-change rsync)" "<=" 1.00
# throughput ratio = (bytes / t_syncmgr) / (bytes / t_rsync) = t_rsync / t_syncmgr
target "LARGE initial: syncmgr MB/s ÷ rsync -a -e ssh MB/s" "$(div "$(median LARGE initial rsync)" "$(median LARGE initial syncmgr)")" ">=" 0.90
target "syncmgr peak RSS MiB, worst run ($max_rss_where)" "$(mib "$max_rss_kib")" "<=" 128

if [ "$tree_root" = "$reaper_pid" ]; then
	read -r n_orphans orphan_cpu < <(awk '{ n++; c += $2 } END { printf "%d %.2f\n", n, c }' "$W/sshd-start.rc.orphans" 2>/dev/null || echo "0 0.00")
	if [ "$n_orphans" -gt 0 ]; then
		note "server CPU: $n_orphans sshd session process(es) outlived the sshd that forked them and were reaped by the subreaper (${orphan_cpu} s CPU in all, counted in the server CPU column; a count of the listener's tree alone would miss them)"
	else
		note "server CPU: every sshd session process was waited for inside the listener's tree (the subreaper reaped no orphan)"
	fi
fi
if [ -s "$W/server-busy" ]; then
	note "server CPU: $(wc -l <"$W/server-busy") reading(s) found sshd sessions still running after 5 s; their live ticks were added (such a reading can miss or double-count a session reaped while it was taken)"
fi
if [ ${#notes[@]} -gt 0 ]; then
	printf '\n### Notes\n\n'
	printf -- '- %s\n' "${notes[@]}"
fi
awk -v s="$scale" 'BEGIN { exit !(s < 1) }' &&
	printf '\n_Scale %s: times this small are dominated by start-up (SSH handshakes) and the 0.01 s timer resolution; do not quote them._\n' "$scale"
exit 0
