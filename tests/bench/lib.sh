# shellcheck shell=bash disable=SC2154,SC2034
# Shared by the benchmark scripts (local.sh, s3.sh). They define, before
# sourcing this: W (scratch dir), results (results file), runs, prog,
# label[TOOL], log and note, and tool_cmd filling the array `cmd`.

# bench_options ARGS...: the options every benchmark takes, into scale,
# runs, workparent, syncmgr and (where the script has a server, marked by
# setting `port` before the call) port; checks them and makes syncmgr an
# absolute path: the given one, else the checkout's build, else PATH's.
bench_options() {
	local has_port=${port+yes}
	while [ $# -gt 0 ]; do
		case $1 in
		--scale) [ $# -ge 2 ] || die "--scale needs a value"; scale=$2; shift 2 ;;
		--scale=*) scale=${1#*=}; shift ;;
		--runs) [ $# -ge 2 ] || die "--runs needs a value"; runs=$2; shift 2 ;;
		--runs=*) runs=${1#*=}; shift ;;
		--workdir) [ $# -ge 2 ] || die "--workdir needs a value"; workparent=$2; shift 2 ;;
		--workdir=*) workparent=${1#*=}; shift ;;
		--syncmgr) [ $# -ge 2 ] || die "--syncmgr needs a value"; syncmgr=$2; shift 2 ;;
		--syncmgr=*) syncmgr=${1#*=}; shift ;;
		--port) [ -n "$has_port" ] || { usage >&2; die "unknown argument: $1"; }
			[ $# -ge 2 ] || die "--port needs a value"; port=$2; shift 2 ;;
		--port=*) [ -n "$has_port" ] || { usage >&2; die "unknown argument: $1"; }
			port=${1#*=}; shift ;;
		-h|--help) usage; exit 0 ;;
		*) usage >&2; die "unknown argument: $1" ;;
		esac
	done
	awk -v s="$scale" 'BEGIN { exit !(s ~ /^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/ && s + 0 > 0) }' ||
		die "--scale must be a positive number, not '$scale'"
	[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer, not '$runs'"
	if [ -n "$has_port" ] && { ! [[ $port =~ ^[0-9]+$ ]] || [ "$port" -lt 1024 ] || [ "$port" -gt 65535 ]; }; then
		die "--port must be a port number in 1024-65535, not '$port'"
	fi
	if [ -z "$syncmgr" ]; then
		syncmgr=syncmgr
		[ -x "$repo/build/manager/syncmgr" ] && syncmgr=$repo/build/manager/syncmgr
	fi
	if [[ $syncmgr != */* ]]; then
		syncmgr=$(command -v -- "$syncmgr") ||
			die "syncmgr not found (use --syncmgr PATH or SYNCMGR=...)"
	fi
	[ -x "$syncmgr" ] || die "syncmgr '$syncmgr' is not executable"
	syncmgr=$(cd "$(dirname "$syncmgr")" && pwd)/$(basename "$syncmgr")
}

# File list of a local tree: "f SIZE PATH" for files, "TYPE PATH" for the rest.
listing() { (cd "$1" && find . \( -type f -printf 'f %s %P\n' \) -o -printf '%y %P\n' | sort); }

# Clock ticks per second of /proc/PID/stat times.
bench_clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100)
[[ $bench_clk_tck =~ ^[1-9][0-9]*$ ]] || bench_clk_tck=100

# bench_exec SET PHASE TOOL ROUND SHOWN: time "${cmd[@]}" (after a sync),
# append "SET PHASE TOOL ROUND SECS RSS_KIB CPU_S SRV_CPU_S" to $results, log
# it, and check syncmgr's summary; a failing command ends the run (SHOWN: the
# command as it may be printed, secrets masked).  CPU_S is the command's user +
# system CPU seconds (with the children it waited for, as /usr/bin/time counts
# them).  SRV_CPU_S is the CPU seconds the server used while the command ran,
# when the calling script defines bench_server_ticks (prints the server
# processes' summed utime + stime in clock ticks, /proc/PID/stat fields 14 +
# 15; fails when it cannot), else "-".  The first 6 columns are the old ones.
bench_exec() {
	local set=$1 phase=$2 tool=$3 round=$4 shown=$5 secs rss usr sys cpu srv_cpu=- t0="" t1="" rc=0
	local tf=$W/time.out ef=$W/stderr.out
	sync
	if declare -F bench_server_ticks >/dev/null; then
		t0=$(bench_server_ticks) || t0=""
	fi
	/usr/bin/time -f '%e %M %U %S' -o "$tf" "${cmd[@]}" >"$W/stdout.out" 2>"$ef" || rc=$?
	if [ -n "$t0" ]; then
		t1=$(bench_server_ticks) || t1=""
	fi
	if [ "$rc" -ne 0 ]; then
		log "$prog: FAILED ($set $phase, round $round, exit $rc): $shown"
		tail -n 20 "$ef" | sed 's/^/    /' >&2
		exit 1
	fi
	read -r secs rss usr sys < <(tail -n 1 "$tf")
	cpu=$(awk -v u="$usr" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
	if [[ $t0 =~ ^[0-9]+$ && $t1 =~ ^[0-9]+$ ]] && [ "$t1" -ge "$t0" ]; then
		srv_cpu=$(awk -v d="$((t1 - t0))" -v hz="$bench_clk_tck" 'BEGIN { printf "%.2f", d / hz }')
	elif declare -F bench_server_ticks >/dev/null; then
		note "server CPU not measured ($set $phase ${label[$tool]}, round $round): bench_server_ticks gave '$t0' then '$t1'"
	fi
	echo "$set $phase $tool $round $secs $rss $cpu $srv_cpu" >>"$results"
	log "$(printf '  round %d/%d  %-9s %-9s %-12s %8.2f s %8.1f MiB  cpu %6.2f s' "$round" "$runs" "$set" "$phase" "${label[$tool]}" "$secs" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "$cpu")${t0:+$(printf '  server cpu %6s s' "$srv_cpu")}"
	[ "$tool" = syncmgr ] && check_summary "$set" "$phase" "$round" "$ef"
	return 0
}

# summary_counts SET PHASE ROUND EF: syncmgr's summary line in EF into
# `line`, `found`, `skipped`, `copied`; notes anything else on stderr.
# Returns 1 (after a note) when there is no summary line.
summary_counts() {
	local set=$1 phase=$2 round=$3 ef=$4
	if grep -qv -e '^Found:' -e '^Elapsed:' "$ef"; then
		note "syncmgr wrote more than the summary to stderr ($set $phase, round $round): $(grep -v -e '^Found:' -e '^Elapsed:' "$ef" | head -n 3 | tr '\n' '|')"
	fi
	line=$(grep '^Found:' "$ef" | tail -n 1 || true)
	if [ -z "$line" ]; then
		note "syncmgr printed no summary line ($set $phase, round $round)"
		return 1
	fi
	found=$(sed -n 's/^Found: \([0-9]*\),.*/\1/p' <<<"$line")
	skipped=$(sed -n 's/.* skipped: \([0-9]*\) .*/\1/p' <<<"$line")
	copied=$(sed -n 's/.* copied: \([0-9]*\) .*/\1/p' <<<"$line")
}
