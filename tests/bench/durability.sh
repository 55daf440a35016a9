#!/usr/bin/env bash
# tests/bench/durability.sh - what durability costs: syncmgr's default (one
# syncfs of DST before exit 0) and --fsync (each file before its rename, its
# directory after) against rsync -a, rsync -a followed by `sync -f` (the same
# guarantee as syncmgr's default) and rsync -a --fsync, on the same data in
# one run.
#
#   tests/bench/durability.sh [--scale F] [--runs N] [--workdir DIR] [--syncmgr PATH]
#
# Data: 20000 files of 0.5-8 KiB in 200 dirs (times --scale). Each timed
# command copies into a new, empty DST (after a `sync`); the median
# of --runs rounds is reported, tools interleaved within each round. On tmpfs
# (/dev/shm) syncs cost nothing; on a disk they are the write-back itself.
# Prints a Markdown table on stdout: median seconds and each time divided by
# rsync -a's and by rsync -a + sync's.
set -euo pipefail
export LC_ALL=C
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
prog=${0##*/}
scale=1
runs=3
workparent=/var/tmp
syncmgr=${SYNCMGR:-}
die() {
	echo "$prog: $*" >&2
	exit 1
}
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
bench_options "$@"
command -v rsync >/dev/null || die "rsync is not installed"

W=$(mktemp -d "$workparent/sm-durability.XXXXXX")
trap 'rm -rf "$W"' EXIT
files=$(awk -v s="$scale" 'BEGIN { n = int(20000 * s); print (n < 1 ? 1 : n) }')
/usr/bin/python3 "$here/gen.py" small "$W/src" --files "$files" --dirs 200 \
	--min-size 512 --max-size 8192 --seed 3 >/dev/null
echo "$prog: $files files in $W ($(df -T "$W" | awk 'NR == 2 { print $2 }'))" >&2

tools=("syncmgr" "syncmgr --fsync" "rsync -a" "rsync -a + sync" "rsync -a --fsync")
run_tool() { # TOOL DST
	case $1 in
	"syncmgr") "$syncmgr" -q "$W/src/" "$2/" ;;
	"syncmgr --fsync") "$syncmgr" -q --fsync "$W/src/" "$2/" ;;
	"rsync -a") rsync -a "$W/src/" "$2/" ;;
	"rsync -a + sync") rsync -a "$W/src/" "$2/" && sync -f "$2" ;;
	"rsync -a --fsync") rsync -a --fsync "$W/src/" "$2/" ;;
	esac
}
declare -A times
for ((r = 0; r < runs; r++)); do
	for ((k = 0; k < ${#tools[@]}; k++)); do
		t=${tools[$(((k + r) % ${#tools[@]}))]}
		# a fresh DST each time, the old ones kept until the end: removing
		# one would leave its disk work (journal, discards) to the next tool
		dst=$W/dst.$r.$k
		sync
		t0=$(date +%s%N)
		run_tool "$t" "$dst" || die "$t failed"
		t1=$(date +%s%N)
		s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
		times[$t]="${times[$t]:-} $s"
		echo "$prog: round $((r + 1)): $t: $s s" >&2
	done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
base=$(echo "${times[rsync -a]}" | median)
based=$(echo "${times[rsync -a + sync]}" | median)
echo "| tool | median s | ÷ rsync -a | ÷ rsync -a + sync |"
echo "|---|---:|---:|---:|"
for t in "${tools[@]}"; do
	m=$(echo "${times[$t]}" | median)
	awk -v t="$t" -v m="$m" -v b="$base" -v d="$based" \
		'BEGIN { printf "| %s | %.2f | %.2f | %.2f |\n", t, m, (b > 0 ? m / b : 0), (d > 0 ? m / d : 0) }'
done
