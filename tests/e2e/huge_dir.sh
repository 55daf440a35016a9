#!/usr/bin/env bash
# Huge directories sorted on disk (issue 13, item 2). The threshold past
# which a directory's names are sorted in runs spilled to TMPDIR is lowered
# (SYNCMGR_TEST_DIR_SPILL=1000 names a run) so that one directory of ~30k
# names (files, names that sort around a directory's '/', subdirectories
# with trees below them) spills in ~40 runs:
#  - local -> local with --list-threads 4 --list-depth 2 (the planner lists subtrees in
#    parallel, each lister cursor reading its own spilled table, while the
#    range tasks share DST's through the listing cache): DST equals SRC
#    (tree compare, and `rsync -rcn --delete` finds nothing to do); -v names
#    each spilled directory once per side with its size in TMPDIR;
#  - after changes across the whole directory (deleted, new, changed
#    names): --delete-dst brings DST back to SRC, a second pass copies
#    nothing;
#  - the same through SFTP both ways (local -> SFTP -> local);
#  - TMPDIR never shows a name: after every run; while a run holds its sort
#    files open (seen in /proc/PID/fd as "TMPDIR/#INODE (deleted)": O_TMPFILE
#    files have no name); after a run stopped by SIGINT (exit 1, DST still a
#    subset of SRC) and after one killed by SIGKILL.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init huge_dir

export SYNCMGR_TEST_DIR_SPILL=1000
TMPD=$T/tmp # syncmgr's TMPDIR, nobody else's
mkdir -p "$TMPD"
smd() { TMPDIR=$TMPD sm "$@"; }

# expect_tmp_empty WHAT: no name in syncmgr's TMPDIR
expect_tmp_empty() {
	local left
	left=$(ls -A "$TMPD")
	[ -z "$left" ] || fail "$1: TMPDIR holds $(echo "$left" | wc -l) names: $(echo "$left" | head -3 | tr '\n' ' ')"
}

# expect_spilled DIR WHAT: -v said DIR was sorted on disk
expect_spilled() {
	grep -q "'$1': [0-9]* names sorted on disk ([0-9.]* [KMG]*i*B in '$TMPD')" "$T/sm.err" ||
		fail "$2: no 'sorted on disk' line for '$1': $(grep 'sorted on disk' "$T/sm.err" | head -3)"
}

# expect_rsync_same SRC DST WHAT: rsync finds nothing to copy or delete
expect_rsync_same() {
	local out
	out=$(rsync -rcn --delete --itemize-changes "$1/" "$2/") || fail "$3: rsync failed"
	[ -z "$out" ] || fail "$3: rsync would still change DST: $(echo "$out" | head -5 | tr '\n' ' ')"
}

command -v rsync >/dev/null || fail "rsync is not installed"

# SRC: big/ of ~30k names (hard links to a few files: quick to make),
# trees beside it
"$PY" - "$T/src" <<'EOF'
import os, sys
root = sys.argv[1]
big = os.path.join(root, "big")
os.makedirs(big)
base = None
def mk(path, data=None):
    global base
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if data is not None:
        with open(path, "w") as f:
            f.write(data)
    elif base is None or mk.n % 30000 == 0:
        open(path, "w").close()
        base = path
    else:
        os.link(base, path)
    mk.n += 1
mk.n = 0
for i in range(24000):
    mk(os.path.join(big, "f%05d" % i))
    if i % 7 == 3:
        mk(os.path.join(big, "f%05d-x" % i))
    if i % 11 == 5:
        mk(os.path.join(big, "f%05d.x" % i), "x%d\n" % i)
    if i % 1500 == 700:  # a directory among them, around its '/'
        for n in ("g%05d/in", "g%05d/sub/in", "g%05d-", "g%05d.", "g%05d0"):
            mk(os.path.join(big, n % i), "%s\n" % n)
        for j in range(1500 if i == 700 else 50):  # one spills too
            mk(os.path.join(big, "g%05d" % i, "sub", "h%04d" % j))
for n in ("big-", "big.", "big0", "a/x", "a/y/z", "zz/last"):
    mk(os.path.join(root, n), n + "\n")
EOF
nsrc=$(cd "$T/src" && find . -type f | wc -l)

# 1. local -> local, parallel listing
smd -v --list-threads 4 --list-depth 2 "$T/src/" "$T/dst/"
expect_rc 0 "local -> local, --list-threads 4 --list-depth 2"
expect_same_tree "$T/src" "$T/dst" "local -> local, --list-threads 4 --list-depth 2"
expect_rsync_same "$T/src" "$T/dst" "local -> local, --list-threads 4 --list-depth 2"
expect_spilled "$T/src/big/" "local -> local"
[ "$(grep -c "'$T/src/big/': .* sorted on disk" "$T/sm.err")" -eq 1 ] ||
	fail "SRC's big/ sorted on disk more than once: $(grep -c "'$T/src/big/'" "$T/sm.err")"
expect_tmp_empty "after local -> local"

# 2. changes across the whole directory; DST's listing spills too
"$PY" - "$T/src/big" <<'EOF'
import os, sys
big = sys.argv[1]
names = sorted(os.listdir(big))
for k, n in enumerate(names):
    p = os.path.join(big, n)
    if os.path.isdir(p):
        continue
    if k % 97 == 0:
        os.unlink(p)
    elif k % 89 == 0:
        os.unlink(p)  # a link: replace, do not write through
        with open(p, "w") as f:
            f.write("changed %d\n" % k)
for i in range(0, 24000, 501):
    with open(os.path.join(big, "f%05d~new" % i), "w") as f:
        f.write("new\n")
EOF
smd -v --list-threads 4 --list-depth 2 --delete-dst "$T/src/" "$T/dst/"
expect_rc 0 "after changes, --delete-dst"
expect_same_tree "$T/src" "$T/dst" "after changes, --delete-dst"
expect_rsync_same "$T/src" "$T/dst" "after changes, --delete-dst"
expect_spilled "$T/src/big/" "after changes"
expect_spilled "$T/dst/big/" "after changes"
[ "$(field deleted)" -gt 0 ] || fail "after changes: nothing deleted"
expect_tmp_empty "after --delete-dst"
smd --list-threads 4 --list-depth 2 "$T/src/" "$T/dst/"
expect_rc 0 "no-change pass"
expect_field copied 0 "no-change pass"
expect_tmp_empty "after the no-change pass"

# 3. through SFTP, both ways (the SFTP store's own tables and its cached ones)
SSHD_PORT=${SSHD_PORT:-2242} sshd_start
R=$T/remote
mkdir -p "$R"
(
	export HOME=$SSH_TEST_HOME SSH_AUTH_SOCK=
	smd -v --list-threads 4 --list-depth 2 "$T/src/" "sm-test:$R/tree/"
	expect_rc 0 "local -> SFTP"
	expect_same_tree "$T/src" "$R/tree" "local -> SFTP"
	rm -f "$R/tree/big/f00010" "$R/tree/big/f00020-x"
	echo extra >"$R/tree/big/f00030~extra"
	smd -v --list-threads 4 --list-depth 2 --delete-dst "$T/src/" "sm-test:$R/tree/"
	expect_rc 0 "local -> SFTP again"
	expect_same_tree "$T/src" "$R/tree" "local -> SFTP again"
	expect_spilled "$R/tree/big/" "local -> SFTP again (DST over SFTP)"
	smd -v --list-threads 4 --list-depth 2 "sm-test:$R/tree/" "$T/back/"
	expect_rc 0 "SFTP -> local"
	expect_same_tree "$T/src" "$T/back" "SFTP -> local"
	expect_rsync_same "$T/src" "$T/back" "SFTP -> local"
	expect_spilled "$R/tree/big/" "SFTP -> local (SRC over SFTP)"
	expect_tmp_empty "after the SFTP runs"
)
e2e_stop_if_failed

# 4. stopped mid-run. A DST missing half of big/ (its listing, sorted on
#    disk, stays in the listing cache to the end of the run): wait until
#    the run holds a sort file open, look at TMPDIR, then signal it.
# start_half: syncmgr in the background onto a DST missing half of big/
start_half() {
	rm -rf "$T/half"
	cp -a "$T/dst" "$T/half"
	find "$T/half/big" -maxdepth 1 -type f -name 'f*[02468]' -delete
	TMPDIR=$TMPD "$SYNCMGR" -p 2 "$T/src/" "$T/half/" >/dev/null 2>"$T/bg.err" </dev/null &
	BG=$!
}
# wait_sort_file: until /proc/$BG/fd shows a sort file; fails if the run ends first
wait_sort_file() {
	local fd t
	while kill -0 "$BG" 2>/dev/null; do
		for fd in /proc/"$BG"/fd/*; do
			t=$(readlink "$fd" 2>/dev/null) || continue
			case $t in "$TMPD"/*"(deleted)") return 0 ;; esac
		done
		sleep 0.02
	done
	fail "$1: the run ended before a sort file was seen open ($(tail -2 "$T/bg.err" | tr '\n' ' '))"
}

start_half
wait_sort_file "SIGINT"
expect_tmp_empty "while a run holds its sort files open"
kill -INT "$BG"
rc=0
wait "$BG" || rc=$?
[ "$rc" -eq 1 ] || fail "SIGINT: expected exit 1, got $rc ($(tail -2 "$T/bg.err" | tr '\n' ' '))"
grep -q interrupted "$T/bg.err" || fail "SIGINT: no 'interrupted' in: $(tail -3 "$T/bg.err")"
expect_tmp_empty "after SIGINT"
expect_no_temp_files "$T/half" "after SIGINT"

start_half
wait_sort_file "SIGKILL"
kill -KILL "$BG"
wait "$BG" 2>/dev/null || true
expect_tmp_empty "after SIGKILL"

# the run after them completes the DST (and removes the killed run's debris)
smd --delete-dst "$T/src/" "$T/half/"
expect_rc 0 "the run after SIGKILL"
expect_same_tree "$T/src" "$T/half" "the run after SIGKILL"
expect_tmp_empty "after the last run"
note "$nsrc files; SRC's big/ was sorted on disk in every run"
