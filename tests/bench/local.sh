#!/usr/bin/env bash
# tests/bench/local.sh - local-disk benchmark: syncmgr vs cp -a, rsync -a, rclone sync
#
# What it measures
#   Wall time (median of --runs) and peak RSS of local-to-local copies on one
#   file system, for these seeded data sets (sizes times --scale):
#     SMALL      100k files of 0.5-8 KiB in 1000 dirs (~430 MB)
#     LARGE      8 files of 256 MiB (2 GiB)
#     EMPTY100K  100k empty files in 100 dirs   (syncmgr only: memory check)
#     EMPTY1M    1M empty files in 1000 dirs    (syncmgr only: memory check)
#     ONEDIR1M   1M empty files in ONE directory  (syncmgr, cp -a, rsync -a)
#     DIR10K     200k empty files in 20 dirs of 10k (syncmgr, cp -a, rsync -a)
#     DIRS1M     1M empty directories in 1000 dirs (syncmgr --dirs, cp -a, rsync -a)
#   and two phases per tool and data set:
#     initial    copy into an empty DST (DST removed with rm -rf, then `sync`)
#     no-change  the same command again onto the complete DST (cp -a: skipped)
#   and for DIRS1M a third:
#     delete     from an empty SRC onto the complete DST: every directory
#                deleted (syncmgr --dirs --delete-dst, rsync -a --delete)
#   Commands: syncmgr -q SRC/ DST/ | cp -a SRC DST | rsync -a SRC/ DST/ |
#             rclone sync SRC DST --config /dev/null --transfers 10 --checkers 16
#   Every command runs under /usr/bin/time -f '%e %M %U %S' (the CPU time is
#   logged and kept in the results file, not reported); `sync` runs before each
#   timed command so earlier write-back does not land in its time.  Within a
#   round the tools run one after another and the start position rotates from
#   round to round, so background noise hits all tools alike.  SRC stays in the
#   page cache (the machine has far more RAM than the data): these are
#   warm-read numbers, and the timing does not include writing DST back to disk.
#   After syncmgr's first initial copy of each data set, DST is compared with
#   SRC (file list + sizes, then diff -rq for the contents); a mismatch or a
#   failing tool ends the script with exit status 1.  A missed target does not.
#
# How to read the output
#   Progress goes to stderr; the report (Markdown, for the README) to stdout:
#     tests/bench/local.sh > bench.md
#   Table columns: median seconds; throughput from the median time (initial
#   copies: MB/s (10^6 B) for LARGE, files/s otherwise; no-change passes:
#   files/s checked); the highest peak RSS of all runs in MiB; and on syncmgr
#   rows its time divided by the median time of cp -a / rsync -a for the same
#   data set and phase (< 1 means syncmgr is faster).
#   Then each target with PASS / MISS and the measured value (issue 13's
#   for ONEDIR1M and DIR10K: initial and no-change <= 0.6x rsync -a, initial
#   <= 1.1x cp -a on ONEDIR1M, peak RSS <= 64 MiB on every set, DIRS1M too).  Times come with
#   0.01 s resolution: at tiny --scale the ratios are noise (n/a when a time
#   is 0.00); only full-scale (--scale 1) numbers mean anything.
#
# Usage: tests/bench/local.sh [--scale F] [--runs N] [--workdir DIR] [--syncmgr PATH] [--sets LIST]
#   --scale F     multiply file counts (SMALL, EMPTY*, ONEDIR1M, DIR10K, DIRS1M) and file
#                 sizes (LARGE) by F (default 1)
#   --runs N      rounds; the median is reported (default 3)
#   --workdir DIR parent of the scratch dir (default /var/tmp); the script works in
#                 a fresh mktemp -d below it and removes that dir on exit
#   --syncmgr P   syncmgr binary (default: $SYNCMGR, else build/manager/syncmgr of
#                 this checkout, else `syncmgr` on PATH)
#   --sets LIST   only these data sets, ','-joined (default: all); targets of
#                 sets not run say n/a
# Needs: bash, /usr/bin/python3, /usr/bin/time (Debian package `time`), cp,
# rsync, rclone, diff, find; about 3x the data size free (~8 GB at scale 1)
# and ~7.3M free inodes.

set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
prog=${0##*/}

scale=1
runs=3
workparent=/var/tmp
syncmgr=${SYNCMGR:-}

usage() { sed -n 's/^# \{0,1\}//; /^Usage:/,/^Needs:/p' "$0" | sed '$d'; }
die() { echo "$prog: $*" >&2; exit 2; }
log() { echo "$*" >&2; }

all_sets=(SMALL LARGE EMPTY100K EMPTY1M ONEDIR1M DIR10K DIRS1M)
want_sets=""
args=()
while [ $# -gt 0 ]; do
	case $1 in
	--sets) [ $# -ge 2 ] || die "--sets needs a value"; want_sets=$2; shift 2 ;;
	--sets=*) want_sets=${1#*=}; shift ;;
	*) args+=("$1"); shift ;;
	esac
done
sets=()
for set in "${all_sets[@]}"; do
	[ -z "$want_sets" ] || [[ ,$want_sets, == *",$set,"* ]] && sets+=("$set")
done
for set in ${want_sets//,/ }; do
	[[ " ${all_sets[*]} " == *" $set "* ]] || die "--sets: unknown data set '$set' (${all_sets[*]})"
done
[ ${#sets[@]} -gt 0 ] || die "--sets: no data set"
has_set() { [[ " ${sets[*]} " == *" $1 "* ]]; }

# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
bench_options "${args[@]}"

# ---- tools ------------------------------------------------------------------
[ -x /usr/bin/time ] || die "/usr/bin/time missing (apt-get install time)"
[ -x /usr/bin/python3 ] || die "/usr/bin/python3 missing"
for t in cp rsync rclone diff find sync; do
	command -v "$t" >/dev/null || die "'$t' not found on PATH"
done

# ---- sizes ------------------------------------------------------------------
# scaled COUNT: max(1, round(COUNT * scale))
sc() { awk -v n="$1" -v s="$scale" 'BEGIN { v = int(n * s + 0.5); print (v < 1 ? 1 : v) }'; }
small_files=$(sc 100000) small_dirs=$(sc 1000)
large_files=8
large_size=$(awk -v s="$scale" 'BEGIN { v = int(268435456 * s / 4096 + 0.5) * 4096; print (v < 4096 ? 4096 : v) }')
e1m_files=$(sc 1000000) e1m_dirs=$(sc 1000)
e100k_files=$(sc 100000) e100k_dirs=$(sc 100)
onedir_files=$(sc 1000000)
dir10k_files=$(sc 200000) dir10k_dirs=20
dirs1m_dirs=$(sc 1000000) dirs1m_parents=$(sc 1000)
# sets not run take no room
has_set SMALL || small_files=0 small_dirs=0
has_set LARGE || large_files=0
has_set EMPTY1M || e1m_files=0 e1m_dirs=0
has_set EMPTY100K || e100k_files=0 e100k_dirs=0
has_set ONEDIR1M || onedir_files=0
has_set DIR10K || dir10k_files=0 dir10k_dirs=0
has_set DIRS1M || dirs1m_dirs=0 dirs1m_parents=0

# Disk estimate (bytes): small files average ~1.53 4-KiB blocks, big dirs ~48 KiB,
# ~40 B of directory per name in the huge ones.
data_est=$(awk -v sf="$small_files" -v sd="$small_dirs" -v lf="$large_files" -v ls="$large_size" \
	-v ef="$e1m_files" -v ed="$e1m_dirs" -v hf="$e100k_files" -v hd="$e100k_dirs" \
	-v of="$onedir_files" -v tf="$dir10k_files" -v dd="$dirs1m_dirs" \
	'BEGIN { printf "%.0f", sf * 6656 + sd * 4096 + lf * ls + (ed + hd) * 49152 + (ef + hf) * 0 + (of + tf) * 40 + dd * 4136 }')
inode_est=$((small_files + small_dirs + large_files + e1m_files + e1m_dirs + e100k_files + e100k_dirs +
	onedir_files + dir10k_files + dir10k_dirs + dirs1m_dirs + dirs1m_parents + 6))
human() { awk -v b="$1" 'BEGIN { split("B KiB MiB GiB TiB", u); i = 1; while (b >= 1024 && i < 5) { b /= 1024; i++ } printf (i == 1 ? "%d %s" : "%.1f %s"), b, u[i] }'; }

# ---- scratch dir --------------------------------------------------------------
mkdir -p -- "$workparent" || die "cannot create $workparent"
W=$(mktemp -d "$workparent/syncmgr-bench.XXXXXX") || die "mktemp -d in $workparent failed"
W=$(cd "$W" && pwd)
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP PIPE
	if [ -n "${W:-}" ] && [ -d "$W" ]; then
		log "$prog: removing $W" 2>/dev/null || true
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
need=$(awk -v d="$data_est" 'BEGIN { printf "%.0f", 3 * d }')
if awk -v a="$avail" -v n="$need" 'BEGIN { exit !(a < n) }'; then
	die "not enough free space in $workparent: $(human "$avail") free, need ~$(human "$need") (3x the ~$(human "$data_est") of data; lower --scale or use --workdir)"
fi
ifree=$(df -Pi -- "$W" | awk 'NR == 2 { print $4 }')
if [[ $ifree =~ ^[0-9]+$ ]] && [ "$ifree" -gt 0 ] && [ "$ifree" -lt $((3 * inode_est)) ]; then
	die "not enough free inodes in $workparent: $ifree free, need ~$((3 * inode_est))"
fi

log "$prog: scale $scale, runs $runs, workdir $W, syncmgr $syncmgr"
log "$prog: data ~$(human "$data_est"), $(human "$avail") free"

# ---- data sets ------------------------------------------------------------------
declare -A nfiles nbytes
gen() { # SET KIND ARGS...
	local set=$1 kind=$2 out
	shift 2
	log "$prog: generating $set ..."
	out=$(/usr/bin/python3 "$here/gen.py" "$kind" "$W/src/$set" "$@") || { log "$prog: gen.py failed"; exit 1; }
	read -r "nfiles[$set]" "nbytes[$set]" <<<"$out"
}
has_set SMALL && gen SMALL small --files "$small_files" --dirs "$small_dirs" --min-size 512 --max-size 8192 --seed 1
has_set LARGE && gen LARGE large --files "$large_files" --size "$large_size" --seed 2
has_set EMPTY100K && gen EMPTY100K empty --files "$e100k_files" --dirs "$e100k_dirs"
has_set EMPTY1M && gen EMPTY1M empty --files "$e1m_files" --dirs "$e1m_dirs"
has_set ONEDIR1M && gen ONEDIR1M empty --files "$onedir_files" --dirs 1
has_set DIR10K && gen DIR10K empty --files "$dir10k_files" --dirs "$dir10k_dirs"
has_set DIRS1M && gen DIRS1M dirs --files "$dirs1m_dirs" --dirs "$dirs1m_parents"
mkdir -p "$W/src/EMPTYSRC"
sync

# ---- measuring --------------------------------------------------------------------
tools=(syncmgr cp rsync rclone)
declare -A label=([syncmgr]="syncmgr" [cp]="cp -a" [rsync]="rsync -a" [rclone]="rclone sync")
results=$W/results
: >"$results"
notes=()
note() { notes+=("$*"); log "$prog: NOTE: $*"; }

tool_cmd() { # TOOL SRC DST [SET [PHASE]] -> sets array cmd
	local more=()
	[ "${4:-}" = DIRS1M ] && [ "$1" = syncmgr ] && more=(--dirs)
	[ "${5:-}" = delete ] && { [ "$1" = syncmgr ] && more+=(--delete-dst) || more+=(--delete); }
	case $1 in
	syncmgr) cmd=("$syncmgr" -q "${more[@]}" "$2/" "$3/") ;;
	cp) cmd=(cp -a "$2" "$3") ;;
	rsync) cmd=(rsync -a "${more[@]}" "$2/" "$3/") ;;
	rclone) cmd=(rclone sync "$2" "$3" --config /dev/null --transfers 10 --checkers 16 -q) ;;
	esac
}

# run SET PHASE TOOL ROUND: time one command, append
# "SET PHASE TOOL ROUND SECS RSS_KIB CPU_S -" (lib.sh's bench_exec)
run() {
	local -a cmd src=$W/src/$1
	[ "$2" = delete ] && src=$W/src/EMPTYSRC
	tool_cmd "$3" "$src" "$W/dst" "$1" "$2"
	bench_exec "$1" "$2" "$3" "$4" "${cmd[*]}"
}

# Sanity-check syncmgr's summary line:
#   Found: N, excluded: 0 (0 B), skipped: S (..), copied: C (..), extra: E (..)
check_summary() {
	local set=$1 phase=$2 round=$3 ef=$4 line found skipped copied n=${nfiles[$1]}
	summary_counts "$set" "$phase" "$round" "$ef" || return 0
	if [ "$phase" = delete ]; then
		:
	elif [ "$phase" = initial ]; then
		if [ "$found" != "$n" ] || [ "$copied" != "$n" ]; then
			note "syncmgr $set initial (round $round): expected found=copied=$n, summary: $line"
		fi
	else
		if [ "$found" != "$n" ] || [ "$copied" != 0 ] || [ "$skipped" != "$n" ]; then
			note "syncmgr $set no-change (round $round): expected found=skipped=$n copied=0, summary: $line"
		fi
	fi
}

# verify SET: DST must equal SRC (names, types, sizes, contents)
verify() {
	local set=$1 src=$W/src/$1 dst=$W/dst
	log "$prog: verifying syncmgr's copy of $set ..."
	if ! cmp -s <(listing "$src") <(listing "$dst"); then
		log "$prog: WRONG COPY: syncmgr's $set copy differs from SRC (names/types/sizes):"
		diff <(listing "$src") <(listing "$dst") | head -n 20 | sed 's/^/    /' >&2
		exit 1
	fi
	if [ "${nbytes[$set]}" -gt 0 ] && ! diff -rq -- "$src" "$dst" >"$W/diff.out" 2>&1; then
		log "$prog: WRONG COPY: syncmgr's $set copy differs from SRC (contents):"
		head -n 20 "$W/diff.out" | sed 's/^/    /' >&2
		exit 1
	fi
}

fresh_dst() {
	rm -rf -- "$W/dst"
	sync
}

for ((round = 1; round <= runs; round++)); do
	for set in "${sets[@]}"; do
		case $set in
		SMALL | LARGE) these=("${tools[@]}") ;;
		ONEDIR1M | DIR10K | DIRS1M) these=(syncmgr cp rsync) ;;
		*) these=(syncmgr) ;;
		esac
		order=()
		for ((i = 0; i < ${#these[@]}; i++)); do
			order+=("${these[(i + round - 1) % ${#these[@]}]}")
		done
		for tool in "${order[@]}"; do
			fresh_dst
			run "$set" initial "$tool" "$round"
			if [ "$tool" = syncmgr ] && [ "$round" -eq 1 ]; then
				verify "$set"
			fi
			[ "$tool" = cp ] || run "$set" no-change "$tool" "$round"
			if [ "$set" = DIRS1M ] && [ "$tool" != cp ]; then
				run "$set" delete "$tool" "$round"
				[ -z "$(ls -A "$W/dst")" ] || { log "$prog: ${label[$tool]} left DST not empty in the delete phase"; exit 1; }
			fi
		done
		fresh_dst
	done
done

# ---- report --------------------------------------------------------------------
# median SET PHASE TOOL -> seconds ("" when not measured)
median() {
	awk -v s="$1" -v p="$2" -v t="$3" '$1 == s && $2 == p && $3 == t { print $5 }' "$results" | sort -n |
		awk '{ v[NR] = $1 } END { if (NR) printf "%.2f", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
# peak SET PHASE TOOL -> highest peak RSS in KiB
peak() {
	awk -v s="$1" -v p="$2" -v t="$3" '$1 == s && $2 == p && $3 == t && $6 > m { m = $6 } END { print m + 0 }' "$results"
}
# div A B [FMT] -> A/B, or n/a
div() { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf f, a / b }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

describe() {
	case $1 in
	SMALL) echo "${nfiles[$1]} files of 0.5-8 KiB in $small_dirs dir(s), $(human "${nbytes[$1]}")" ;;
	LARGE) echo "${nfiles[$1]} files of $(human "$large_size"), $(human "${nbytes[$1]}")" ;;
	EMPTY100K) echo "${nfiles[$1]} empty files in $e100k_dirs dir(s) (syncmgr only)" ;;
	EMPTY1M) echo "${nfiles[$1]} empty files in $e1m_dirs dir(s) (syncmgr only)" ;;
	ONEDIR1M) echo "${nfiles[$1]} empty files in one directory (rclone not run)" ;;
	DIR10K) echo "${nfiles[$1]} empty files in $dir10k_dirs directories (rclone not run)" ;;
	DIRS1M) echo "${nfiles[$1]} empty directories in $dirs1m_parents directories; delete: from an empty SRC (rclone not run)" ;;
	esac
}

fstype=$(df -PT -- "$W" | awk 'NR == 2 { print $2 }')
cat <<EOF
## Local benchmark

\`tests/bench/local.sh --scale $scale --runs $runs\` on $(date -u +%Y-%m-%d), $(uname -sr), $(nproc) CPUs, $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, $fstype.
$("$syncmgr" --version 2>&1 | head -n 1), $(cp --version | head -n 1), $(rsync --version | head -n 1 | awk '{ print $1, $2, $3 }'), $(rclone version 2>/dev/null | head -n 1).
Median of $runs run(s); SRC in page cache; DST write-back not included.

EOF
for set in "${sets[@]}"; do echo "- **$set**: $(describe "$set")"; done
cat <<EOF

| data set | phase | tool | median s | throughput | peak RSS MiB | syncmgr ÷ cp -a | syncmgr ÷ rsync -a |
|---|---|---|---:|---:|---:|---:|---:|
EOF
for set in "${sets[@]}"; do
	for phase in initial no-change delete; do
		for tool in "${tools[@]}"; do
			t=$(median "$set" "$phase" "$tool")
			[ -n "$t" ] || continue
			if [ "$set" = LARGE ] && [ "$phase" = initial ]; then
				tput=$(div "$(awk -v b="${nbytes[$set]}" 'BEGIN { printf "%.6f", b / 1e6 }')" "$t" "%.0f MB/s")
			else
				tput=$(div "${nfiles[$set]}" "$t" "%.0f files/s")
			fi
			rcp="" rrs=""
			if [ "$tool" = syncmgr ]; then
				rcp=$(div "$t" "$(median "$set" "$phase" cp)")
				rrs=$(div "$t" "$(median "$set" "$phase" rsync)")
				case $set in SMALL | LARGE | ONEDIR1M | DIR10K | DIRS1M) ;; *) rcp="" rrs="" ;; esac
			fi
			printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$set" "$phase" "${label[$tool]}" "$t" "$tput" \
				"$(mib "$(peak "$set" "$phase" "$tool")")" "${rcp:-–}" "${rrs:-–}"
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
s_init=$(median SMALL initial syncmgr)
s_nc=$(median SMALL no-change syncmgr)
max_rss=$(awk '$3 == "syncmgr" && $6 > m { m = $6; w = $1 " " $2 } END { print m + 0, w }' "$results")
read -r max_rss_kib max_rss_where <<<"$max_rss"
rss_1m=$(awk '$1 == "EMPTY1M" && $3 == "syncmgr" && $6 > m { m = $6 } END { print m + 0 }' "$results")
rss_100k=$(awk '$1 == "EMPTY100K" && $3 == "syncmgr" && $6 > m { m = $6 } END { print m + 0 }' "$results")
# rss SET -> syncmgr's highest peak RSS in MiB for SET, or n/a when not run
rss_of() { awk -v s="$1" '$1 == s && $3 == "syncmgr" && $6 > m { m = $6 } END { if (m) printf "%.1f", m / 1024; else print "n/a" }' "$results"; }

cat <<EOF

### Targets

| target | measured | goal | result |
|---|---:|---:|---|
EOF
target "SMALL initial: syncmgr time ÷ cp -a" "$(div "$s_init" "$(median SMALL initial cp)")" "<=" 1.10
target "SMALL initial: syncmgr time ÷ rsync -a" "$(div "$s_init" "$(median SMALL initial rsync)")" "<=" 0.60
target "SMALL no-change: syncmgr time ÷ rsync -a" "$(div "$s_nc" "$(median SMALL no-change rsync)")" "<=" 0.60
# throughput ratio = (bytes / t_syncmgr) / (bytes / t_cp) = t_cp / t_syncmgr
target "LARGE initial: syncmgr MB/s ÷ cp -a MB/s" "$(div "$(median LARGE initial cp)" "$(median LARGE initial syncmgr)")" ">=" 0.90
target "syncmgr peak RSS MiB, worst run ($max_rss_where)" "$(mib "$max_rss_kib")" "<=" 64
target "syncmgr peak RSS EMPTY1M ÷ EMPTY100K ($(mib "$rss_1m") / $(mib "$rss_100k") MiB)" "$(div "$rss_1m" "$rss_100k" %.3f)" "<=" 1.10
# issue 13: linear cost in a directory's size
for set in ONEDIR1M DIR10K; do
	target "$set initial: syncmgr time ÷ rsync -a" "$(div "$(median $set initial syncmgr)" "$(median $set initial rsync)")" "<=" 0.60
	target "$set no-change: syncmgr time ÷ rsync -a" "$(div "$(median $set no-change syncmgr)" "$(median $set no-change rsync)")" "<=" 0.60
done
target "ONEDIR1M initial: syncmgr time ÷ cp -a" "$(div "$(median ONEDIR1M initial syncmgr)" "$(median ONEDIR1M initial cp)")" "<=" 1.10
target "ONEDIR1M syncmgr peak RSS MiB" "$(rss_of ONEDIR1M)" "<=" 64
target "DIR10K syncmgr peak RSS MiB" "$(rss_of DIR10K)" "<=" 64
target "DIRS1M syncmgr peak RSS MiB" "$(rss_of DIRS1M)" "<=" 64

if [ ${#notes[@]} -gt 0 ]; then
	printf '\n### Notes\n\n'
	printf -- '- %s\n' "${notes[@]}"
fi
awk -v s="$scale" 'BEGIN { exit !(s < 1) }' &&
	printf '\n_Scale %s: times this small are dominated by start-up and the 0.01 s timer resolution; do not quote them._\n' "$scale"
exit 0
