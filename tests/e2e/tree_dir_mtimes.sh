#!/bin/bash
# Issue 24 item 4: with --dirs, directory mtimes are SRC's once the run is
# over, set after the children are written (new trees, files added deep
# inside, DST-only keys deleted, the root too), on a local DST and over
# SFTP (OpenSSH on loopback); a second run changes nothing at all.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init tree_dir_mtimes
need_root

# dir_times_equal A B UNIT: every directory's mtime (the root's too) is
# equal, to the nanosecond (ns) or the second (s: SFTP keeps seconds)
dir_times_equal() {
	"$PY" - "$1" "$2" "$3" <<'EOF'
import os, sys
a, b, unit = sys.argv[1:]
bad = []
for d, dirs, _ in os.walk(a):
    for p in [d] + [os.path.join(d, n) for n in dirs]:
        q = os.path.join(b, os.path.relpath(p, a))
        ta, tb = os.lstat(p).st_mtime_ns, os.lstat(q).st_mtime_ns
        if unit == "s":
            ta, tb = ta // 10**9, tb // 10**9
        if ta != tb:
            bad.append("%s: mtime %d, SRC's %d" % (q, tb, ta))
if bad:
    sys.exit("\n".join(bad[:10]))
EOF
}
settle() { # old mtimes on every directory of SRC
	find "$1" -depth -type d -exec touch -d '2003-04-05 06:07:08.123456789' {} +
}

S=$T/src
mkdir -p "$S/a/b/c" "$S/a/e" "$S/f"
for d in a a/b a/b/c a/e f; do echo "$d" >"$S/$d/file"; done
settle "$S"

run_case() { # DST LABEL UNIT LOCAL-PATH-OF-DST
	local dst=$1 label=$2 unit=$3 local_dst=$4 snap now
	E2E_CONTEXT=$label
	sm --dirs --delete-dst "$S/" "$dst"
	expect_rc 0 "first run"
	dir_times_equal "$S" "$local_dst" "$unit" || fail "first run: directory mtimes differ"
	# (over SFTP the run's writable probe, a temp file made and removed in
	# the root, changes the root's ctime: its mtime is set back, and checked)
	snap=$(tree_snapshot "$local_dst" | if [ "$unit" = s ]; then sed 1d; else cat; fi)
	sm --dirs --delete-dst "$S/" "$dst"
	expect_rc 0 "second run"
	now=$(tree_snapshot "$local_dst" | if [ "$unit" = s ]; then sed 1d; else cat; fi)
	[ "$now" = "$snap" ] || fail "a second run changed DST: $(diff <(echo "$snap") <(echo "$now") | head -5)"
	dir_times_equal "$S" "$local_dst" "$unit" || fail "second run: directory mtimes differ"
	# a file deep inside, one removed, a DST-only key: the parents are SRC's again
	echo new >"$S/a/b/c/new"
	rm "$S/a/e/file"
	echo extra >"$local_dst/f/extra"
	settle "$S"
	sm --dirs --delete-dst "$S/" "$dst"
	expect_rc 0 "after changes"
	expect_field copied 1 "after changes"
	expect_field deleted 2 "after changes"
	dir_times_equal "$S" "$local_dst" "$unit" || fail "after changes: directory mtimes differ"
	expect_same_tree "$S" "$local_dst" "after changes"
	rm "$S/a/b/c/new"
	echo file >"$S/a/e/file"
	settle "$S"
}

run_case "$T/dst/" "local DST" ns "$T/dst"

SSHD_PORT=${SSHD_PORT:-2380} sshd_start
export HOME=$SSH_TEST_HOME SSH_AUTH_SOCK=
mkdir -p "$T/remote"
run_case "sm-test:$T/remote/r/" "SFTP DST" s "$T/remote/r"
