#!/bin/bash
# Issue 24 item 6: syncmgr against rsync on 200 small random trees that
# change between runs, transitions between file, directory and symlink at
# one path included: after each of three runs DST equals rsync's result
# (contents, modes, owners as root, mtimes of files, directories, symlinks
# and the root), and a further run has nothing to do and changes nothing.
#
#   syncmgr --dirs --links --perms --delete-dst SRC/ DST/
#   rsync   -rlpt --delete [-og as root] SRC/ DST/
#
#   E2E_SEEDS=1-20 ...   to pick the seeds (default 1-200)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init tree_random

command -v rsync >/dev/null || fail "rsync is not installed"
"$PY" "$E2E_DIR/tree_random.py" --syncmgr "$SYNCMGR" --work "$T" --seeds "${E2E_SEEDS:-1-200}" \
	>"$T/out" 2>&1 || fail "$(tail -n 40 "$T/out")"
note "$(tail -n 1 "$T/out")"
