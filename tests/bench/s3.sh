#!/usr/bin/env bash
# tests/bench/s3.sh - S3 benchmark: syncmgr vs rclone sync against a local radosgw
#
# What it measures
#   Wall time (median of --runs), peak RSS, and client and server CPU time of
#   copies between the local disk and a one-machine Ceph radosgw
#   (tests/servers/radosgw.sh, started by this script on 127.0.0.1:--port and
#   stopped on exit), for these seeded data sets (sizes times --scale):
#     SMALL   20k objects of 4 KiB in 200 dirs (80 MiB)      scale: the counts
#     LARGE   2 objects of 512 MiB (1 GiB)                   scale: the size
#     MID     10 objects of 32 MiB (320 MiB)                 scale: the size
#             (syncmgr only, for its peak RSS: the README's S3 goal is
#             <= 128 MiB at -p 10 whatever the object sizes, at -p 64 too)
#   radosgw runs with RADOSGW_QUIET=1 (no debug logging, 32 threads): it
#   shares the two cores with the client, and its per-request logging alone
#   cost more CPU than syncmgr's whole side of a small GET.
#   and these phases per tool and data set:
#     upload     local -> S3, into an empty prefix of a new bucket
#     no-change  the same upload again onto the complete prefix (SMALL only)
#     download   S3 -> local, the objects this tool just uploaded, into an
#                empty local dir
#     upload-p10, upload-p64
#                MID only, syncmgr only: local -> S3 with -p 10 and with
#                -p 64 (ten 32 MiB uploads at once either way), each into
#                an empty prefix of a new bucket
#   Commands (URL = s3://AK:SK@127.0.0.1:PORT/BUCKET/bench/SET):
#     syncmgr -q --no-https SRC/ URL/            syncmgr -q --no-https URL/ DST/
#     syncmgr -q --no-https -p N SRC/ URL/       (MID: N = 10, 64)
#     rclone sync SRC rgw:BUCKET/bench/SET       rclone sync rgw:BUCKET/bench/SET DST
#       with --config W/rclone.conf (empty: rclone may save settings into its
#       config by renaming a temp file over it, which must never be /dev/null)
#       --transfers 10 --checkers 16 -q, and the remote
#       from RCLONE_CONFIG_RGW_* (type s3, provider Ceph, region us-east-1);
#       every other rclone setting is its default (1.60: single PUT up to
#       200 MiB, then 5 MiB parts x4 per file; no-change compares size and
#       modtime, which costs one HEAD per object; downloads check MD5 where
#       the object has one).  syncmgr runs with its defaults (10 threads).
#   Every command runs under /usr/bin/time -f '%e %M %U %S'; `sync` runs before
#   each timed command.  The server's CPU time for a command is the growth of
#   utime + stime (/proc/PID/stat) of its radosgw, ceph-osd and ceph-mon
#   processes from just before to just after it.  Within a round the tools run
#   one after another (upload, no-change, download, then the next tool) and
#   the start position alternates from round to round.  Each tool and round gets a new bucket, removed
#   server-side afterwards (radosgw-admin bucket rm --purge-objects --bypass-gc)
#   so radosgw, which keeps its data in RAM, holds one copy at a time.
#   In round 1 every copy is checked: after an upload, the object listing
#   (keys + sizes, via the aws CLI) must match SRC and every object's
#   contents must match (ETag = MD5 for single-part objects; multipart objects
#   are fetched with the aws CLI and compared with cmp); after a download, DST
#   must equal SRC (file list + sizes, then diff -rq).  A wrong copy or a
#   failing tool ends the script with exit status 1.  A missed target does not.
#   mtimes that did not survive the round trip only give a note.
#
# How to read the output
#   Progress goes to stderr; the report (Markdown, for the README) to stdout:
#     tests/bench/s3.sh > bench-s3.md
#   Table columns: median seconds; throughput from the median time (SMALL:
#   objects/s; LARGE: MB/s, 10^6 B); the highest peak RSS of all runs in MiB;
#   and on syncmgr rows its throughput divided by rclone's for the same data
#   set and phase (> 1 means syncmgr is faster).  Then the median CPU seconds
#   (user + sys) of the client (the tool) and of the server (radosgw + OSD +
#   mon, idle work included) for that row; "CPU floor s" = (client + server
#   CPU) / CPUs, the shortest wall time these CPU seconds allow on this
#   machine; and "busy %" = CPU floor / median wall time: near 100 % the row is
#   CPU-bound (the larger of the two CPU columns says whose CPU), well below
#   it the time goes to waiting (latency, disk, or CPU taken by other
#   processes on the machine, which no column counts).  Then each target with
#   PASS / MISS and the measured value.  Times come with 0.01 s resolution:
#   at tiny --scale the ratios are noise; only --scale 1 numbers mean anything.
#
# Usage: tests/bench/s3.sh [--scale F] [--runs N] [--workdir DIR] [--syncmgr PATH] [--port P]
#   --scale F     multiply the SMALL count and the LARGE size by F (default 1)
#   --runs N      rounds; the median is reported (default 3)
#   --workdir DIR parent of the scratch dir (default /var/tmp); the script works in
#                 a fresh mktemp -d below it and removes that dir on exit
#   --syncmgr P   syncmgr binary (default: $SYNCMGR, else build/manager/syncmgr of
#                 this checkout, else `syncmgr` on PATH)
#   --port P      port for radosgw on 127.0.0.1 (default: $RADOSGW_PORT, else 7491;
#                 must be free: 7480 is what the test suites use)
# Needs: bash, /usr/bin/python3, /usr/bin/time (Debian package `time`), rclone,
# the aws CLI v2 at /usr/bin/aws, radosgw-admin, md5sum, cmp, diff, find
# (tests/servers/radosgw.sh installs the Ceph and awscli packages when run as
# root); about 3x the data size free on disk (~3.3 GB at scale 1) and about
# 2.5x the LARGE set in free RAM for radosgw (~3 GB at scale 1).

set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
prog=${0##*/}
rgw_sh=$repo/tests/servers/radosgw.sh
AWS=/usr/bin/aws

scale=1
runs=3
workparent=/var/tmp
syncmgr=${SYNCMGR:-}
port=${RADOSGW_PORT:-7491}

usage() { sed -n 's/^# \{0,1\}//; /^Usage:/,/^Needs:/p' "$0" | sed '$d'; }
die() { echo "$prog: $*" >&2; exit 2; }
fail() { echo "$prog: $*" >&2; exit 1; }
log() { echo "$*" >&2; }

# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
bench_options "$@"

# ---- tools ------------------------------------------------------------------
[ -x /usr/bin/time ] || die "/usr/bin/time missing (apt-get install time)"
[ -x /usr/bin/python3 ] || die "/usr/bin/python3 missing"
[ -x "$rgw_sh" ] || die "$rgw_sh missing"
for t in rclone diff find sync md5sum cmp ss; do
	command -v "$t" >/dev/null || die "'$t' not found on PATH"
done

# ---- sizes ------------------------------------------------------------------
# scaled COUNT: max(1, round(COUNT * scale))
sc() { awk -v n="$1" -v s="$scale" 'BEGIN { v = int(n * s + 0.5); print (v < 1 ? 1 : v) }'; }
obj_size=4096
small_files=$(sc 20000) small_dirs=$(sc 200)
large_files=2
large_size=$(awk -v s="$scale" 'BEGIN { v = int(536870912 * s / 4096 + 0.5) * 4096; print (v < 4096 ? 4096 : v) }')
small_bytes=$((small_files * obj_size))
large_bytes=$((large_files * large_size))
mid_files=10
mid_size=$(awk -v s="$scale" 'BEGIN { v = int(33554432 * s / 4096 + 0.5) * 4096; print (v < 4096 ? 4096 : v) }')
mid_bytes=$((mid_files * mid_size))
max_set=$((small_bytes > large_bytes ? small_bytes : large_bytes))
max_set=$((mid_bytes > max_set ? mid_bytes : max_set))
data_est=$((small_bytes + small_dirs * 4096 + large_bytes + mid_bytes))
human() { awk -v b="$1" 'BEGIN { split("B KiB MiB GiB TiB", u); i = 1; while (b >= 1024 && i < 5) { b /= 1024; i++ } printf (i == 1 ? "%d %s" : "%.1f %s"), b, u[i] }'; }

# ---- scratch dir and server -----------------------------------------------------
mkdir -p -- "$workparent" || die "cannot create $workparent"
W=$(mktemp -d "$workparent/syncmgr-s3bench.XXXXXX") || die "mktemp -d in $workparent failed"
W=$(cd "$W" && pwd)
srv=$W/rgw
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP PIPE
	if [ -n "${srv:-}" ] && [ -e "$srv" ]; then
		log "$prog: stopping radosgw" || true
		"$rgw_sh" stop "$srv" >/dev/null 2>&1 || log "$prog: radosgw.sh stop $srv failed" 2>/dev/null || true
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
# radosgw (memstore) holds one tool's copy of one data set at a time: ~2x its size.
mem_avail=$(awk '/^MemAvailable:/ { printf "%.0f", $2 * 1024 }' /proc/meminfo)
mem_need=$((max_set * 5 / 2 + 512 * 1048576))
if [ -n "$mem_avail" ] && [ "$mem_avail" -lt "$mem_need" ]; then
	die "not enough free RAM for radosgw: $(human "$mem_avail") available, need ~$(human "$mem_need") (lower --scale)"
fi
# The OSD refuses writes past 95 % of its nominal size (default 8 GiB).
if [ -z "${RADOSGW_MEMSTORE_BYTES:-}" ]; then
	export RADOSGW_MEMSTORE_BYTES=$((max_set * 4 > 8589934592 ? max_set * 4 : 8589934592))
fi

if ss -Hltn "( sport = :$port )" 2>/dev/null | grep -q .; then
	die "port $port is in use (another radosgw?); pick a free one with --port"
fi

log "$prog: scale $scale, runs $runs, workdir $W, syncmgr $syncmgr"
log "$prog: data ~$(human "$data_est"), $(human "$avail") free; starting radosgw on 127.0.0.1:$port ..."
RADOSGW_QUIET=1 RADOSGW_PORT=$port "$rgw_sh" start "$srv" >"$W/rgw-start.log" 2>&1 || {
	sed 's/^/    /' "$W/rgw-start.log" >&2
	fail "radosgw.sh start failed"
}
# shellcheck disable=SC1091
. "$srv/env"
ak=$AWS_ACCESS_KEY_ID sk=$AWS_SECRET_ACCESS_KEY
hostport=${S3_ENDPOINT#http://}

# The server's processes, for bench_server_ticks (lib.sh's bench_exec calls it
# around each timed command).
srv_pids=()
for n in rgw osd mon; do
	pid=$(cat -- "$srv/$n.pid" 2>/dev/null) || fail "no $srv/$n.pid"
	if ! [[ $pid =~ ^[0-9]+$ ]] || ! [ -r "/proc/$pid/stat" ]; then
		fail "$n (pid '$pid' in $srv/$n.pid) is not running"
	fi
	srv_pids+=("$pid")
done
# bench_server_ticks: utime + stime (/proc/PID/stat fields 14 and 15, clock
# ticks, all threads) of the server's processes, summed; fails when one is gone.
bench_server_ticks() {
	local pid stat total=0
	local -a f
	for pid in "${srv_pids[@]}"; do
		read -r stat 2>/dev/null <"/proc/$pid/stat" || return 1
		read -r -a f <<<"${stat##*) }" # f[0] is field 3 (state)
		[[ ${f[11]:-} =~ ^[0-9]+$ && ${f[12]:-} =~ ^[0-9]+$ ]] || return 1
		total=$((total + f[11] + f[12]))
	done
	echo "$total"
}

# The aws CLI and rclone: no CA bundle (rclone 1.60 fails with
# LoadCustomCABundleError when AWS_CA_BUNDLE is set), no user config.
aws_() {
	env -u AWS_CA_BUNDLE -u AWS_PROFILE -u AWS_SESSION_TOKEN AWS_PAGER="" AWS_EC2_METADATA_DISABLED=true \
		AWS_CONFIG_FILE="$W/no-aws-config" AWS_SHARED_CREDENTIALS_FILE="$W/no-aws-credentials" \
		"$AWS" --endpoint-url "$S3_ENDPOINT" "$@"
}
export RCLONE_CONFIG_RGW_TYPE=s3 RCLONE_CONFIG_RGW_PROVIDER=Ceph RCLONE_CONFIG_RGW_ENDPOINT=$S3_ENDPOINT \
	RCLONE_CONFIG_RGW_ACCESS_KEY_ID=$ak RCLONE_CONFIG_RGW_SECRET_ACCESS_KEY=$sk RCLONE_CONFIG_RGW_REGION=us-east-1
: >"$W/rclone.conf"
rclone_flags=(--config "$W/rclone.conf" --transfers 10 --checkers 16)

notes=()
note() { notes+=("$*"); log "$prog: NOTE: $*"; }
# Without tcp_nodelay, beast writes a GET reply's headers and body apart and
# Nagle holds the body back until the client's delayed ACK (~40 ms on Linux).
if ! grep -q '^rgw frontends = .*tcp_nodelay=1' "$srv/ceph.conf"; then
	note "radosgw's beast frontend runs without tcp_nodelay=1 (tests/servers/radosgw.sh): each GET of a small object on a kept-alive connection waits ~40 ms for the client's delayed ACK, so SMALL download rates mostly measure that stall times the number of GETs in flight"
fi

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
gen SMALL small --files "$small_files" --dirs "$small_dirs" --min-size "$obj_size" --max-size "$obj_size" --seed 1
gen LARGE large --files "$large_files" --size "$large_size" --seed 2
gen MID large --files "$mid_files" --size "$mid_size" --seed 3
sync

# ---- measuring --------------------------------------------------------------------
tools=(syncmgr rclone)
declare -A label=([syncmgr]="syncmgr" [rclone]="rclone sync")
results=$W/results
: >"$results"

bucket_of() { echo "smb-${1,,}-$2-r$3"; } # SET TOOL ROUND
prefix_of() { echo "bench/${1,,}"; }      # SET

make_bucket() {
	aws_ s3api create-bucket --bucket "$1" >"$W/aws.out" 2>&1 || {
		sed 's/^/    /' "$W/aws.out" >&2
		fail "create-bucket $1 failed"
	}
}
drop_bucket() {
	if ! timeout 600 radosgw-admin -c "$srv/ceph.conf" bucket rm --bucket="$1" --purge-objects --bypass-gc \
		>"$W/rgw-admin.out" 2>&1; then
		log "$prog: radosgw-admin bucket rm $1 failed; trying aws s3 rb --force"
		aws_ s3 rb --force "s3://$1" >"$W/aws.out" 2>&1 || {
			sed 's/^/    /' "$W/rgw-admin.out" "$W/aws.out" | tail -n 20 >&2
			fail "cannot delete bucket $1"
		}
	fi
}

tool_cmd() { # TOOL PHASE SRC-DIR BUCKET PREFIX DST-DIR -> sets array cmd
	local url="s3://$ak:$sk@$hostport/$4/$5"
	case $1/$2 in
	syncmgr/upload | syncmgr/no-change) cmd=("$syncmgr" -q --no-https "$3/" "$url/") ;;
	syncmgr/download) cmd=("$syncmgr" -q --no-https "$url/" "$6/") ;;
	syncmgr/upload-p*) cmd=("$syncmgr" -q --no-https -p "${2#upload-p}" "$3/" "$url/") ;;
	rclone/upload | rclone/no-change) cmd=(env -u AWS_CA_BUNDLE rclone sync "$3" "rgw:$4/$5" "${rclone_flags[@]}" -q) ;;
	rclone/download) cmd=(env -u AWS_CA_BUNDLE rclone sync "rgw:$4/$5" "$6" "${rclone_flags[@]}" -q) ;;
	esac
}

# run SET PHASE TOOL ROUND: time one command, append
# "SET PHASE TOOL ROUND SECS RSS_KIB CPU_S SRV_CPU_S" (lib.sh's bench_exec)
run() {
	local -a cmd
	tool_cmd "$3" "$2" "$W/src/$1" "$(bucket_of "$1" "$3" "$4")" "$(prefix_of "$1")" "$W/dst"
	bench_exec "$1" "$2" "$3" "$4" "${cmd[*]//$sk/****}"
}

# Sanity-check syncmgr's summary line:
#   Found: N, excluded: 0 (0 B), skipped: S (..), copied: C (..), extra: E (..)
check_summary() {
	local set=$1 phase=$2 round=$3 ef=$4 line found skipped copied n=${nfiles[$1]}
	summary_counts "$set" "$phase" "$round" "$ef" || return 0
	if [ "$phase" = no-change ]; then
		if [ "$found" != "$n" ] || [ "$copied" != 0 ] || [ "$skipped" != "$n" ]; then
			note "syncmgr $set no-change (round $round): expected found=skipped=$n copied=0, summary: $line"
		fi
	elif [ "$found" != "$n" ] || [ "$copied" != "$n" ]; then
		note "syncmgr $set $phase (round $round): expected found=copied=$n, summary: $line"
	fi
}


# verify_upload SET TOOL ROUND: the prefix must hold exactly SRC's files, same bytes.
verify_upload() {
	local set=$1 tool=$2 src=$W/src/$1 bucket prefix key etag
	bucket=$(bucket_of "$set" "$tool" "$3") prefix=$(prefix_of "$set")
	log "$prog: verifying ${label[$tool]}'s upload of $set ..."
	aws_ s3api list-objects-v2 --bucket "$bucket" --prefix "$prefix/" \
		--query 'Contents[].[Key,Size,ETag]' --output text >"$W/objects" 2>"$W/aws.out" || {
		sed 's/^/    /' "$W/aws.out" >&2
		fail "list-objects-v2 on $bucket failed"
	}
	sed -i '/^None$/d; s/"//g' "$W/objects"
	if ! cmp -s <(awk -F '\t' -v p="$prefix/" '{ print substr($1, length(p) + 1), $2 }' "$W/objects" | sort) \
		<(cd "$src" && find . -type f -printf '%P %s\n' | sort); then
		log "$prog: WRONG COPY: ${label[$tool]}'s $set upload differs from SRC (keys/sizes; < S3, > SRC):"
		diff <(awk -F '\t' -v p="$prefix/" '{ print substr($1, length(p) + 1), $2 }' "$W/objects" | sort) \
			<(cd "$src" && find . -type f -printf '%P %s\n' | sort) | head -n 20 | sed 's/^/    /' >&2
		exit 1
	fi
	# Single-part objects: the ETag is the MD5 of the contents.
	awk -F '\t' -v p="$prefix/" '$3 !~ /-/ { print $3 "  " substr($1, length(p) + 1) }' "$W/objects" >"$W/md5s"
	if [ -s "$W/md5s" ] && ! (cd "$src" && md5sum --quiet -c "$W/md5s") >"$W/md5.out" 2>&1; then
		log "$prog: WRONG COPY: ${label[$tool]}'s $set upload: contents differ from SRC (ETag != MD5):"
		head -n 20 "$W/md5.out" | sed 's/^/    /' >&2
		exit 1
	fi
	# Multipart objects: fetch and compare.
	while IFS=$'\t' read -r key _ etag; do
		[[ $etag == *-* ]] || continue
		aws_ s3api get-object --bucket "$bucket" --key "$key" "$W/fetched" >/dev/null 2>"$W/aws.out" || {
			sed 's/^/    /' "$W/aws.out" >&2
			fail "get-object $bucket/$key failed"
		}
		cmp -s "$W/fetched" "$src/${key#"$prefix"/}" || {
			rm -f "$W/fetched"
			log "$prog: WRONG COPY: ${label[$tool]}'s $set upload: s3://$bucket/$key differs from SRC"
			exit 1
		}
		rm -f "$W/fetched"
	done <"$W/objects"
}

# verify_download SET TOOL: DST must equal SRC (names, types, sizes, contents).
verify_download() {
	local set=$1 tool=$2 src=$W/src/$1 dst=$W/dst bad
	log "$prog: verifying ${label[$tool]}'s download of $set ..."
	if ! cmp -s <(listing "$src") <(listing "$dst"); then
		log "$prog: WRONG COPY: ${label[$tool]}'s $set download differs from SRC (names/types/sizes; < SRC, > DST):"
		diff <(listing "$src") <(listing "$dst") | head -n 20 | sed 's/^/    /' >&2
		exit 1
	fi
	if ! diff -rq -- "$src" "$dst" >"$W/diff.out" 2>&1; then
		log "$prog: WRONG COPY: ${label[$tool]}'s $set download differs from SRC (contents):"
		head -n 20 "$W/diff.out" | sed 's/^/    /' >&2
		exit 1
	fi
	bad=$(diff <(cd "$src" && find . -type f -printf '%P %TY-%Tm-%Td %TH:%TM:%.2TS\n' | sort) \
		<(cd "$dst" && find . -type f -printf '%P %TY-%Tm-%Td %TH:%TM:%.2TS\n' | sort) | grep -c '^<' || true)
	[ "$bad" -eq 0 ] || note "${label[$tool]}'s $set download: $bad of ${nfiles[$set]} file(s) have another mtime (to the second) than SRC"
}

fresh_dst() {
	rm -rf -- "$W/dst"
	sync
}

for ((round = 1; round <= runs; round++)); do
	for set in "${sets[@]}"; do
		order=()
		for ((i = 0; i < ${#tools[@]}; i++)); do
			order+=("${tools[(i + round - 1) % ${#tools[@]}]}")
		done
		for tool in "${order[@]}"; do
			bucket=$(bucket_of "$set" "$tool" "$round")
			make_bucket "$bucket"
			run "$set" upload "$tool" "$round"
			[ "$round" -eq 1 ] && verify_upload "$set" "$tool" "$round"
			[ "$set" = SMALL ] && run "$set" no-change "$tool" "$round"
			fresh_dst
			mkdir -p -- "$W/dst"
			run "$set" download "$tool" "$round"
			[ "$round" -eq 1 ] && verify_download "$set" "$tool"
			fresh_dst
			drop_bucket "$bucket"
		done
	done
	# MID: syncmgr's peak RSS with ten 32 MiB uploads at once, at -p 10 and -p 64
	for phase in upload-p10 upload-p64; do
		bucket=$(bucket_of MID syncmgr "$round")
		make_bucket "$bucket"
		run MID "$phase" syncmgr "$round"
		[ "$round" -eq 1 ] && verify_upload MID syncmgr "$round"
		drop_bucket "$bucket"
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
# speedup SET PHASE -> syncmgr throughput / rclone throughput = t_rclone / t_syncmgr
speedup() { div "$(median "$1" "$2" rclone)" "$(median "$1" "$2" syncmgr)"; }

describe() {
	case $1 in
	SMALL) echo "${nfiles[$1]} objects of $(human "$obj_size") in $small_dirs dir(s), $(human "${nbytes[$1]}")" ;;
	LARGE) echo "${nfiles[$1]} objects of $(human "$large_size"), $(human "${nbytes[$1]}")" ;;
	MID) echo "${nfiles[$1]} objects of $(human "$mid_size"), $(human "${nbytes[$1]}") (syncmgr only: peak RSS at -p 10 and -p 64)" ;;
	esac
}

fstype=$(df -PT -- "$W" | awk 'NR == 2 { print $2 }')
cat <<EOF
## S3 benchmark

\`tests/bench/s3.sh --scale $scale --runs $runs\` on $(date -u +%Y-%m-%d), $(uname -sr), $(nproc) CPUs, $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, local side on $fstype.
S3: $(radosgw --version 2>/dev/null | awk '{ print "radosgw", $3, $5 }') (one-machine cluster, memstore, \`tests/servers/radosgw.sh\`) on 127.0.0.1:$port, plain HTTP.
$("$syncmgr" --version 2>&1 | head -n 1) (\`-q --no-https\`, default 10 threads), $(rclone version 2>/dev/null | head -n 1) (\`rclone sync --config EMPTY-FILE --transfers 10 --checkers 16 -q\`, remote type s3, provider Ceph; other settings default).
Median of $runs run(s); each upload into an empty prefix of a new bucket, each download into an empty dir; local writes not flushed to disk in the timing.

EOF
for set in "${sets[@]}" MID; do echo "- **$set**: $(describe "$set")"; done
cat <<EOF

| data set | phase | tool | median s | throughput | peak RSS MiB | syncmgr ÷ rclone (throughput) | client CPU s | server CPU s | CPU floor s | busy % |
|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
ncpu=$(nproc)
for set in "${sets[@]}" MID; do
	for phase in upload no-change download upload-p10 upload-p64; do
		for tool in "${tools[@]}"; do
			t=$(median "$set" "$phase" "$tool")
			[ -n "$t" ] || continue
			if [ "$set" != SMALL ]; then
				tput=$(div "$(awk -v b="${nbytes[$set]}" 'BEGIN { printf "%.6f", b / 1e6 }')" "$t" "%.1f MB/s")
			else
				tput=$(div "${nfiles[$set]}" "$t" "%.0f objects/s")
			fi
			r=""
			[ "$tool" = syncmgr ] && [ -n "$(median "$set" "$phase" rclone)" ] && r=$(speedup "$set" "$phase")
			ccpu=$(median_col "$set" "$phase" "$tool" 7)
			scpu=$(median_col "$set" "$phase" "$tool" 8)
			floor="" busy=""
			if [ -n "$ccpu" ] && [ -n "$scpu" ]; then
				floor=$(awk -v c="$ccpu" -v s="$scpu" -v n="$ncpu" 'BEGIN { printf "%.2f", (c + s) / n }')
				busy=$(div "$(awk -v c="$ccpu" -v s="$scpu" -v n="$ncpu" 'BEGIN { printf "%.6f", (c + s) / n * 100 }')" "$t" "%.0f")
			fi
			printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$set" "$phase" "${label[$tool]}" "$t" "$tput" \
				"$(mib "$(peak "$set" "$phase" "$tool")")" "${r:-–}" "${ccpu:-–}" "${scpu:-–}" "${floor:-–}" "${busy:-–}"
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
target "SMALL upload: syncmgr objects/s ÷ rclone objects/s" "$(speedup SMALL upload)" ">=" 1.5
target "SMALL download: syncmgr objects/s ÷ rclone objects/s" "$(speedup SMALL download)" ">=" 1.5
target "LARGE upload: syncmgr MB/s ÷ rclone MB/s" "$(speedup LARGE upload)" ">=" 1.2
target "LARGE download: syncmgr MB/s ÷ rclone MB/s" "$(speedup LARGE download)" ">=" 1.2
target "syncmgr peak RSS MiB, worst run ($max_rss_where)" "$(mib "$max_rss_kib")" "<=" 128
target "syncmgr peak RSS MiB, ten $(human "$mid_size") uploads at -p 10" "$(mib "$(peak MID upload-p10 syncmgr)")" "<=" 128
target "syncmgr peak RSS MiB, ten $(human "$mid_size") uploads at -p 64" "$(mib "$(peak MID upload-p64 syncmgr)")" "<=" 128

if [ ${#notes[@]} -gt 0 ]; then
	printf '\n### Notes\n\n'
	printf -- '- %s\n' "${notes[@]}"
fi
awk -v s="$scale" 'BEGIN { exit !(s < 1) }' &&
	printf '\n_Scale %s: times this small are dominated by start-up and the 0.01 s timer resolution; do not quote them._\n' "$scale"
exit 0
