# shellcheck shell=bash disable=SC2154,SC2034
# Shared by the benchmark scripts (local.sh, s3.sh). They define, before
# sourcing this: W (scratch dir), results (results file), runs, prog,
# label[TOOL], log and note, and tool_cmd filling the array `cmd`.

# File list of a local tree: "f SIZE PATH" for files, "TYPE PATH" for the rest.
listing() { (cd "$1" && find . \( -type f -printf 'f %s %P\n' \) -o -printf '%y %P\n' | sort); }

# bench_exec SET PHASE TOOL ROUND SHOWN: time "${cmd[@]}" (after a sync),
# append "SET PHASE TOOL ROUND SECS RSS_KIB" to $results, log it, and check
# syncmgr's summary; a failing command ends the run (SHOWN: the command as
# it may be printed, secrets masked).
bench_exec() {
	local set=$1 phase=$2 tool=$3 round=$4 shown=$5 secs rss rc=0
	local tf=$W/time.out ef=$W/stderr.out
	sync
	/usr/bin/time -f '%e %M' -o "$tf" "${cmd[@]}" >"$W/stdout.out" 2>"$ef" || rc=$?
	if [ "$rc" -ne 0 ]; then
		log "$prog: FAILED ($set $phase, round $round, exit $rc): $shown"
		tail -n 20 "$ef" | sed 's/^/    /' >&2
		exit 1
	fi
	read -r secs rss < <(tail -n 1 "$tf")
	echo "$set $phase $tool $round $secs $rss" >>"$results"
	log "$(printf '  round %d/%d  %-9s %-9s %-12s %8.2f s %8.1f MiB' "$round" "$runs" "$set" "$phase" "${label[$tool]}" "$secs" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')")"
	[ "$tool" = syncmgr ] && check_summary "$set" "$phase" "$round" "$ef"
	return 0
}

# summary_counts SET PHASE ROUND EF: syncmgr's summary line in EF into
# `line`, `found`, `skipped`, `copied`; notes anything else on stderr.
# Returns 1 (after a note) when there is no summary line.
summary_counts() {
	local set=$1 phase=$2 round=$3 ef=$4
	if grep -qv '^Found:' "$ef"; then
		note "syncmgr wrote more than the summary to stderr ($set $phase, round $round): $(grep -v '^Found:' "$ef" | head -n 3 | tr '\n' '|')"
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
