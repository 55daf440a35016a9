#!/bin/bash
# Option parsing as users type it (SPEC.md §1): long options only by their
# full name (getopt_long's unique-prefix matching refused, with the full name
# suggested), "--flag=value" for a flag refused, "-p=10" refused as getopt
# reads it (value "=10"), other tools' spellings answered with a hint,
# --help/--version alone, `syncmgr match` refusing options it cannot apply and
# reading keys from stdin given '-'.  Each usage error: exit 2, exactly one
# stderr line (compared in full), nothing on stdout, DST not created.  The
# valid spellings (-p10, --threads=4, options after SRC DST, '--') still run.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init options

S=$T/src
mkdir -p "$S/sub"
for f in a.c b.h "c d" sub/e.c sub/f; do head -c 1500 /dev/urandom >"$S/$f"; done
D=$T/dst # never created by a usage error

MATCH_TAKES="match takes --include, --exclude, --match-full-path, -v, --debug, -q"

# expect_usage MSG ARGS...: syncmgr ARGS exits 2, prints exactly MSG (one
# line) on stderr and nothing on stdout, and creates no DST.
expect_usage() {
	local msg=$1
	shift
	sm "$@"
	expect_rc 2 "$SM_CMD"
	[ "$(cat "$T/sm.err")" = "$msg" ] || fail "$SM_CMD: expected stderr
    $msg
got
$(sed 's/^/    /' "$T/sm.err")"
	[ ! -s "$T/sm.out" ] || fail "$SM_CMD: printed on stdout: $(head -c 200 "$T/sm.out")"
	[ ! -e "$D" ] || fail "$SM_CMD: a usage error created DST"
}

# sm_stdin FILE ARGS...: sm with stdin from FILE
sm_stdin() {
	local in=$1
	shift
	SM_CMD="syncmgr $(printf '%q ' "$@")<$in"
	set +e
	timeout -k 5 60 "$SYNCMGR" "$@" <"$in" >"$T/sm.out" 2>"$T/sm.err"
	SM_RC=$?
	set -e
	[ "$SM_RC" -lt 124 ] || fail "syncmgr crashed or timed out (exit $SM_RC)"
}

# --- no abbreviations: the full name suggested, never silently taken
expect_usage "syncmgr: --thr: unknown option (did you mean --threads?)" --thr 4 "$S/" "$D/"
expect_usage "syncmgr: --thr: unknown option (did you mean --threads?)" "$S/" "$D/" --thr=4
expect_usage "syncmgr: --manager: unknown option (did you mean --manager-addr?)" \
	--manager 127.0.0.1:1 "$S/" "$D/"
expect_usage "syncmgr: --list: unknown option (did you mean --list-threads or --list-depth?)" \
	--list 2 "$S/" "$D/"
expect_usage "syncmgr: --dele: unknown option (did you mean --delete-dst, --delete-src or --delete-src-after?)" \
	--dele "$S/" "$D/"
expect_usage "syncmgr: --incl: unknown option (did you mean --include?)" --incl '*' "$S/" "$D/"
expect_usage "syncmgr: --dr: unknown option (did you mean --dry?)" --dr "$S/" "$D/"
# misspelt: the nearest option; too many or none: see --help
expect_usage "syncmgr: --exlude: unknown option (did you mean --exclude?)" --exlude x "$S/" "$D/"
expect_usage "syncmgr: --d: unknown option (see --help)" --d "$S/" "$D/"
expect_usage "syncmgr: --frobnicate: unknown option (see --help)" "$S/" "$D/" --frobnicate
expect_usage "syncmgr: -Z: unknown option (see --help)" -Z "$S/" "$D/"

# --- a flag given a value; -p=10 as getopt reads it; missing values
expect_usage "syncmgr: --dirs: takes no value" --dirs=yes "$S/" "$D/"
expect_usage "syncmgr: --delete-dst: takes no value" "$S/" "$D/" --delete-dst=1
expect_usage "syncmgr: --verbose: takes no value (--debug logs more)" --verbose=2 "$S/" "$D/"
expect_usage "syncmgr: -p: invalid value '=10' (expected an integer from 1 to 1024; write -p10, -p 10 or --threads=10)" \
	-p=10 "$S/" "$D/"
expect_usage "syncmgr: -p: invalid value '$S/' (expected an integer from 1 to 1024; -p is --threads, not rsync's --perms)" \
	-p "$S/" "$S/" "$D/"
expect_usage "syncmgr: --threads: invalid value '0' (expected an integer from 1 to 1024)" \
	--threads=0 "$S/" "$D/"
expect_usage "syncmgr: --threads: missing value" "$S/" "$D/" --threads
expect_usage "syncmgr: -p: missing value" "$S/" "$D/" -p

# --- other tools' spellings get syncmgr's
hint() { expect_usage "syncmgr: $1: unknown option ($2)" "$1" "$S/" "$D/"; }
for o in --delete --delete-after --delete-before --delete-during; do hint "$o" "did you mean --delete-dst?"; done
for o in --dry-run --dryrun -n; do hint "$o" "did you mean --dry?"; done
for o in --checksum -c; do hint "$o" "did you mean --check-all?"; done
for o in --recursive -r; do hint "$o" "syncmgr always recurses"; done
for o in --archive -a; do hint "$o" "syncmgr always recurses and keeps mtimes; add --perms, --links, --dirs"; done
for o in --progress -P; do hint "$o" "progress is shown by default on a terminal"; done
for o in --bandwidth --bw-limit; do hint "$o" "syncmgr's --bwlimit is not supported yet"; done
hint --log-level "use -v, --debug or -q"
hint --transfers "did you mean --threads?"
hint --checkers "did you mean --list-threads?"
hint --exclude-from "give each pattern with --exclude"
hint --include-from "give each pattern with --include"
hint --remove-source-files "did you mean --delete-src-after?"
hint --ignore-times "did you mean --force-update?"
# with a value, and inside a cluster of short options
expect_usage "syncmgr: --log-level: unknown option (use -v, --debug or -q)" --log-level=debug "$S/" "$D/"
expect_usage "syncmgr: --transfers: unknown option (did you mean --threads?)" "$S/" "$D/" --transfers=8
expect_usage "syncmgr: -n: unknown option (did you mean --dry?)" -vn "$S/" "$D/"
expect_usage "syncmgr: -a: unknown option (syncmgr always recurses and keeps mtimes; add --perms, --links, --dirs)" \
	-av "$S/" "$D/"
# a spelling of ours that is a later feature says so
expect_usage "syncmgr: --bwlimit: not supported yet" --bwlimit=10 "$S/" "$D/"

# --- --help and --version stand alone
expect_usage "syncmgr: --version: takes no other arguments (got 'extra')" --version extra
expect_usage "syncmgr: --help: takes no other arguments (got 'extra')" --help extra
expect_usage "syncmgr: --help: takes no other arguments (got 'x')" x --help
expect_usage "syncmgr: --version: takes no other arguments (got '--dirs')" --version --dirs
expect_usage "syncmgr: -h: takes no other arguments (got '-vh')" -vh
expect_usage "syncmgr: --version: takes no value" --version=1
sm --version
expect_rc 0 "--version"
grep -q '^syncmgr ' "$T/sm.out" || fail "--version: no 'syncmgr VERSION' line on stdout"
sm -h
expect_rc 0 "-h"
grep -q -- "--delete-dst" "$T/sm.out" || fail "-h does not list --delete-dst"
grep -q -- "no abbreviations" "$T/sm.out" || fail "-h does not say long options have no abbreviations"

# --- match: options it cannot apply are refused, before or after "match"
for args in "--files-from $T/nope" "--min-size 1" "--max-size 1M" "--min-age 1d" "--max-age 2h" \
	"--start-time 2020-01-01" "--end-time 2020-01-01" "--limit 3" "--start a" "--end b"; do
	opt=${args%% *}
	# shellcheck disable=SC2086
	expect_usage "syncmgr: match: $opt cannot be applied to keys alone ($MATCH_TAKES)" match $args a.c
	# shellcheck disable=SC2086
	expect_usage "syncmgr: match: $opt cannot be applied to keys alone ($MATCH_TAKES)" $args match a.c
done
for args in "--dirs" "--threads=4" "-p 4" "--delete-dst" "--check-all" "--dry"; do
	opt=${args%% *}
	opt=${opt%%=*}
	# shellcheck disable=SC2086
	expect_usage "syncmgr: match: $opt does not apply to keys ($MATCH_TAKES)" match a.c $args
done
expect_usage "syncmgr: match: '-' reads the keys from stdin: give no other keys with it" match a.c -
expect_usage "syncmgr: match: give the keys to test (directories end in '/'), or '-' to read them from stdin" \
	match --exclude '*'

# what match accepts: filter options anywhere, -v/--debug/-q, '--' before keys
# starting with '-'
sm match a.h --include '-*' --exclude '*.h' -q -- -b.h c.c
expect_rc 0 "match with options after the keys"
printf 'exclude a.h\nkeep -b.h\nkeep c.c\n' | cmp -s - "$T/sm.out" ||
	fail "match with options after the keys: stdout
$(cat "$T/sm.out")"
sm match --include='*/' --include='*.c' --exclude='*' --match-full-path -v --debug a/ a/x.c a/x.h
expect_rc 0 "match with --opt=value filter options"
[ "$(cut -d' ' -f1-2 "$T/sm.out")" = "$(printf 'keep a/\nkeep a/x.c\nexclude a/x.h')" ] ||
	fail "match with --opt=value filter options: stdout
$(cat "$T/sm.out")"

# --- match -: keys from stdin, one a line; the newline stripped, other bytes
# kept (a CR, a tab, spaces, an empty line, a last line without newline)
printf 'a.c\nb.h\nsub/x y.h\n\ntab\there.h\ncr.c\r\nlast.h' >"$T/keys"
sm_stdin "$T/keys" match --exclude '*.h' -
expect_rc 0 "match - (stdin)"
printf 'keep a.c\nexclude b.h\nexclude sub/x y.h\nkeep \nexclude tab\\there.h\nkeep cr.c\\r\nexclude last.h\n' |
	cmp -s - "$T/sm.out" || fail "match - (stdin): stdout
$(cat "$T/sm.out")"
[ ! -s "$T/sm.err" ] || fail "match - (stdin): stderr: $(cat "$T/sm.err")"
# the same keys as arguments give the same verdicts (apart from the empty one)
sm match --exclude '*.h' a.c b.h "sub/x y.h" "$(printf 'tab\there.h')"
head -n 3 "$T/sm.out" >"$T/args.out"
sm_stdin "$T/keys" match --exclude '*.h' -
head -n 3 "$T/sm.out" | cmp -s - "$T/args.out" || fail "match -: stdin and argument verdicts differ"
# a NUL byte, an over-long line: exit 2 naming the line; the lines before it answered
printf 'a.c\nb\0c.h\nd.c\n' >"$T/keys-nul"
sm_stdin "$T/keys-nul" match --exclude '*.h' -
expect_rc 2 "match - with a NUL byte"
[ "$(cat "$T/sm.err")" = "syncmgr: match: stdin line 2 holds a NUL byte" ] ||
	fail "match - with a NUL byte: stderr: $(cat "$T/sm.err")"
[ "$(cat "$T/sm.out")" = "keep a.c" ] || fail "match - with a NUL byte: stdout: $(cat "$T/sm.out")"
{
	printf 'a.c\nb.c\n'
	head -c 5000 /dev/zero | tr '\0' x
	printf '\nd.c\n'
} >"$T/keys-long"
sm_stdin "$T/keys-long" match -
expect_rc 2 "match - with an over-long line"
[ "$(cat "$T/sm.err")" = "syncmgr: match: stdin line 3 is over 4096 bytes" ] ||
	fail "match - with an over-long line: stderr: $(cat "$T/sm.err")"
[ "$(wc -l <"$T/sm.out")" -eq 2 ] || fail "match - with an over-long line: stdout: $(cat "$T/sm.out")"
: >"$T/keys-empty"
sm_stdin "$T/keys-empty" match -
expect_rc 0 "match - with empty stdin"
[ ! -s "$T/sm.out" ] || fail "match - with empty stdin printed: $(cat "$T/sm.out")"

# --- the valid spellings run, options before, between and after SRC DST
n=0
for args in "-p10" "-p 10" "--threads=4" "--threads 4" "-up4 -l" "-vp3" "--list-threads=2 --list-depth 2"; do
	n=$((n + 1))
	# shellcheck disable=SC2086
	sm $args "$S/" "$T/ok$n/"
	expect_rc 0 "valid '$args' before SRC DST"
	expect_same_tree --no-dirs "$S" "$T/ok$n" "valid '$args' before SRC DST"
	n=$((n + 1))
	# shellcheck disable=SC2086
	sm "$S/" "$T/ok$n/" $args
	expect_rc 0 "valid '$args' after SRC DST"
	expect_same_tree --no-dirs "$S" "$T/ok$n" "valid '$args' after SRC DST"
done
sm "$S/" --dirs "$T/mid/" --threads=2
expect_rc 0 "options between SRC and DST"
expect_same_tree "$S" "$T/mid" "options between SRC and DST"
sm --include='*/' --include='*.c' --exclude='*' "$S/" "$T/onlyc/"
expect_rc 0 "--include=P --exclude=P"
[ "$(cd "$T/onlyc" && find . -type f | sort | tr '\n' ' ')" = "./a.c ./sub/e.c " ] ||
	fail "--include=P --exclude=P copied: $(cd "$T/onlyc" && find . -type f | sort | tr '\n' ' ')"
sm --dry "$S/" "$T/dry/"
expect_rc 0 "--dry"
[ ! -e "$T/dry" ] || fail "--dry created DST"

# '--' ends the options: a SRC and DST starting with '-' (relative paths)
cp -r "$S" "$T/-src"
cd "$T"
sm -p 2 -- -src/ -dst/
cd - >/dev/null
expect_rc 0 "'--' then -src/ -dst/"
expect_same_tree --no-dirs "$S" "$T/-dst" "'--' then -src/ -dst/"
