#!/usr/bin/env bash
# tests/bench/s3_order.sh - syncmgr on an S3 store that lists out of byte order
#
# What it measures
#   The cost of listing a store in directory order ("a/x" before "a-b"), which
#   syncmgr lists level by level (SPEC.md §2), against the same keys on a
#   store in byte order, in one run: s3rver (tests/servers/s3rver.sh, node.js,
#   lists in directory order) and a one-machine Ceph radosgw
#   (tests/servers/radosgw.sh), both started by this script on 127.0.0.1 and
#   stopped on exit.  The data set (counts times --scale): 10,000 objects of
#   256 B in 50 top directories of 10 subdirectories ("s00", "s00-b", ...:
#   names whose order differs between the two orders), 20 objects each, plus
#   a "dirfile" object in every directory (s3rver shows a directory in a
#   delimiter listing only when it holds an object itself).
#   Phases, each a syncmgr run, per store and round:
#     download    S3 -> local into an empty dir (listing both, copying all)
#     no-change   S3 -> local again onto the complete copy (listing only)
#     up-nochg    local -> S3 onto the complete prefix (DST listed)
#   Stores alternate their position from round to round.  Round 1 checks
#   that each download equals SRC (file list + sizes, then diff -rq).
#
# How to read the output
#   Progress goes to stderr; the report (Markdown) to stdout.  The table gives
#   the median seconds and peak RSS per store and phase, and the ratio
#   s3rver / radosgw per phase.  The target of the issue "Listing at any
#   scale": a no-change pass from the out-of-order store within 2x of the same
#   pass from radosgw (PASS / MISS with the figure).  s3rver is a single
#   node.js process that does more work per request than radosgw: the ratio
#   holds the server's cost too (server CPU columns).
#
# Usage: tests/bench/s3_order.sh [--scale F] [--runs N] [--workdir DIR] [--syncmgr PATH] [--port P]
#   --scale F     multiply the object count by F (default 1)
#   --runs N      rounds; the median is reported (default 5)
#   --workdir DIR parent of the scratch dir (default /var/tmp)
#   --syncmgr P   syncmgr binary (default: $SYNCMGR, else build/manager/syncmgr of
#                 this checkout, else `syncmgr` on PATH)
#   --port P      radosgw port on 127.0.0.1 (default $RADOSGW_PORT, else 7493);
#                 s3rver listens on P+1
# Needs: bash, /usr/bin/python3, /usr/bin/time, the aws CLI v2, diff, find; the
# server scripts install Ceph, awscli, nodejs and s3rver when run as root.

set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
prog=${0##*/}
rgw_sh=$repo/tests/servers/radosgw.sh
s3rver_sh=$repo/tests/servers/s3rver.sh
AWS=/usr/bin/aws

scale=1
runs=5
workparent=/var/tmp
syncmgr=${SYNCMGR:-}
port=${RADOSGW_PORT:-7493}

usage() { sed -n 's/^# \{0,1\}//; /^Usage:/,/^Needs:/p' "$0" | sed '$d'; }
die() { echo "$prog: $*" >&2; exit 2; }
fail() { echo "$prog: $*" >&2; exit 1; }
log() { echo "$*" >&2; }
note() { notes+=("$*"); log "note: $*"; }
notes=()

# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
bench_options "$@"

[ -x /usr/bin/time ] || die "/usr/bin/time missing (apt-get install time)"
[ -x /usr/bin/python3 ] || die "/usr/bin/python3 missing"
for t in diff find sync; do
	command -v "$t" >/dev/null || die "'$t' not found on PATH"
done

tops=$(awk -v s="$scale" 'BEGIN { v = int(50 * s + 0.5); print (v < 1 ? 1 : v) }')

W=$(mktemp -d "$workparent/syncmgr-bench-order.XXXXXX")
results=$W/results
: >"$results"
cleanup() {
	"$s3rver_sh" stop "$W/s3rver" >/dev/null 2>&1 || true
	"$rgw_sh" stop "$W/rgw" >/dev/null 2>&1 || true
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- servers ----------------------------------------------------------------
log "$prog: starting radosgw on 127.0.0.1:$port and s3rver on 127.0.0.1:$((port + 1))"
RADOSGW_QUIET=1 RADOSGW_PORT=$port "$rgw_sh" start "$W/rgw" >/dev/null 2>"$W/rgw.log" ||
	fail "radosgw did not start: $(tail -5 "$W/rgw.log")"
S3RVER_PORT=$((port + 1)) "$s3rver_sh" start "$W/s3rver" >/dev/null 2>"$W/s3rver.log" ||
	fail "s3rver did not start: $(tail -5 "$W/s3rver.log")"
declare -A url ep
for s in rgw s3rver; do
	# shellcheck disable=SC1090
	(. "$W/$s/env" && echo "$S3_ENDPOINT $AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY") >"$W/$s.ep"
	read -r e cred <"$W/$s.ep"
	ep[$s]=$e
	url[$s]="s3://$cred@${e#http://}/order/bench/"
	(
		# shellcheck disable=SC1090
		. "$W/$s/env"
		AWS_PAGER="" "$AWS" --endpoint-url "$S3_ENDPOINT" s3api create-bucket --bucket order >/dev/null
	) || fail "$s: cannot create the bucket"
done
declare -A label=([rgw]="radosgw" [s3rver]="s3rver")

# ---- data -------------------------------------------------------------------
log "$prog: making $((tops * 200)) objects in $tops x 10 directories"
/usr/bin/python3 - "$W/src" "$tops" <<'EOF'
import os, sys
root, tops = sys.argv[1], int(sys.argv[2])
data = b"x" * 255 + b"\n"
for t in range(tops):
    top = os.path.join(root, "p%03d" % t)
    for s in range(5):
        for sub in ("s%02d" % s, "s%02d-b" % s):
            d = os.path.join(top, sub)
            os.makedirs(d)
            for f in range(20):
                with open(os.path.join(d, "f%02d" % f), "wb") as fh:
                    fh.write(data)
            with open(os.path.join(d, "dirfile"), "wb") as fh:
                fh.write(data)
    with open(os.path.join(top, "dirfile"), "wb") as fh:
        fh.write(data)
    with open(os.path.join(root, "p%03d-x" % t), "wb") as fh:
        fh.write(data)
EOF
nkeys=$(find "$W/src" -type f | wc -l)
for s in rgw s3rver; do
	"$syncmgr" -q --no-https "$W/src/" "${url[$s]}" 2>"$W/up.err" ||
		fail "upload to ${label[$s]} failed: $(tail -3 "$W/up.err")"
done
log "$prog: $nkeys objects on each store"

# ---- runs -------------------------------------------------------------------
run() { # STORE PHASE ROUND
	local s=$1 phase=$2 round=$3 dst=$W/dst-$1
	case $phase in
	download) rm -rf "$dst"; cmd=("$syncmgr" -q --no-https "${url[$s]}" "$dst/") ;;
	no-change) cmd=("$syncmgr" -q --no-https "${url[$s]}" "$dst/") ;;
	up-nochg) cmd=("$syncmgr" -q --no-https "$W/src/" "${url[$s]}") ;;
	esac
	bench_exec ORDER "$phase" "$s" "$round" "syncmgr $phase ${label[$s]}"
	if [ "$phase" = download ] && [ "$round" = 1 ]; then
		[ "$(listing "$W/src")" = "$(listing "$dst")" ] || fail "${label[$s]}: the download differs from SRC (file list)"
		diff -rq "$W/src" "$dst" >/dev/null || fail "${label[$s]}: the download differs from SRC (contents)"
	fi
}
check_summary() { # SET PHASE ROUND EF: the counts of this phase
	local line found skipped copied
	summary_counts "$@" || return 0
	case $2 in
	download) [ "$copied" = "$nkeys" ] || fail "$2 round $3: copied $copied of $nkeys ($line)" ;;
	*) [ "$copied" = 0 ] || fail "$2 round $3: copied $copied, expected none ($line)" ;;
	esac
}

order=(rgw s3rver)
for round in $(seq 1 "$runs"); do
	for s in "${order[@]}"; do
		for phase in download no-change up-nochg; do
			run "$s" "$phase" "$round"
		done
	done
	order=("${order[1]}" "${order[0]}")
done

# ---- report -----------------------------------------------------------------
median() { # PHASE STORE
	awk -v p="$1" -v t="$2" '$2 == p && $3 == t { print $5 }' "$results" | sort -n |
		awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
rss() { awk -v p="$1" -v t="$2" '$2 == p && $3 == t && $6 > m { m = $6 } END { printf "%.1f", m / 1024 }' "$results"; }
echo "### Stores that list out of byte order: $nkeys objects ($(date -u +%Y-%m-%d), median of $runs, \`tests/bench/s3_order.sh\`)"
echo
echo "| phase | radosgw s | s3rver s | s3rver ÷ radosgw | peak RSS MiB (rgw / s3rver) |"
echo "|---|---:|---:|---:|---|"
for phase in download no-change up-nochg; do
	a=$(median "$phase" rgw) b=$(median "$phase" s3rver)
	echo "| $phase | $a | $b | $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }') | $(rss "$phase" rgw) / $(rss "$phase" s3rver) |"
done
echo
r=$(awk -v a="$(median no-change rgw)" -v b="$(median no-change s3rver)" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }')
v=MISS
awk -v r="$r" 'BEGIN { exit !(r <= 2.0) }' && v=PASS
echo "| target | value | goal | |"
echo "|---|---:|---|---|"
echo "| no-change from s3rver ÷ from radosgw | $r | <= 2.00 | $v |"
for n in "${notes[@]}"; do echo; echo "Note: $n"; done
