#!/bin/bash
# syncmgr against stock rsync as the oracle: for several seeded random trees
# (SRC) and differing pre-existing DST trees, each mode of syncmgr must leave
# DST exactly as the matching rsync command does, and a second syncmgr pass
# must copy nothing.
#
#   SYNCMGR=/path/to/syncmgr bash tests/e2e/rsync_compat.sh
#   E2E_SEEDS="7 8" ...   to pick the seeds (default 1 2 3 4 5)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init rsync_compat

command -v rsync >/dev/null || fail "rsync is not installed"
SEEDS=${E2E_SEEDS:-1 2 3 4 5}

# run_pair NAME CMP_OPTS SM_OPTS -- RSYNC_OPTS: copy $DST_BASE twice, run both
# tools, compare the results, then check a second syncmgr pass copies 0.
run_pair() {
	local name=$1 cmpopts=$2 smopts=() rsopts=()
	shift 2
	while [ "$1" != -- ]; do smopts+=("$1"); shift; done
	shift
	rsopts=("$@")
	rm -rf "$T/d1" "$T/d2"
	cp -a "$DST_BASE" "$T/d1"
	cp -a "$DST_BASE" "$T/d2"
	E2E_CONTEXT="seed $SEED, mode '$name' (reproduce: gentree.py gen --seed $SEED --files $NFILES; mutate --seed $SEED $MUTATE_OPTS)"
	sm "${smopts[@]}" "$T/src/" "$T/d1/"
	expect_rc 0 "$name: first pass"
	rsync "${rsopts[@]}" "$T/src/" "$T/d2/" ||
		fail "$name: rsync ${rsopts[*]} failed"
	# shellcheck disable=SC2086
	expect_same_tree $cmpopts "$T/d1" "$T/d2" \
		"$name: syncmgr ${smopts[*]} (d1) differs from rsync ${rsopts[*]} (d2)"
	expect_no_temp_files "$T/d1" "$name"
	sm "${smopts[@]}" "$T/src/" "$T/d1/"
	expect_rc 0 "$name: second pass"
	summary >/dev/null # one summary line, or fail here (not inside a substitution)
	expect_field copied 0 "$name: second pass"
	expect_field failed 0 "$name: second pass"
	expect_field deleted 0 "$name: second pass"
	# shellcheck disable=SC2086
	expect_same_tree $cmpopts "$T/d1" "$T/d2" "$name: after the second pass"
}

owner_opts="" # rsync keeps owners with -o -g (root only), as syncmgr --perms does
[ "$(id -u)" -ne 0 ] || owner_opts="-o -g"
for SEED in $SEEDS; do
	NFILES=$((150 + 20 * (SEED % 5)))
	rm -rf "$T/src" "$T/dst-links" "$T/dst-follow"
	gentree gen --seed "$SEED" --files "$NFILES" --out "$T/src"
	# other owners (as root): --perms keeps them, and tree_cmp --perms checks
	# owner and group then; every 3rd entry, files, dirs and symlinks alike
	if [ "$(id -u)" -eq 0 ]; then
		"$PY" - "$T/src" <<'EOF'
import os, sys
n = 0
for root, dirs, files in os.walk(sys.argv[1]):
    for name in sorted(dirs + files):
        n += 1
        if n % 3 == 0:
            os.lchown(os.path.join(root, name), 65534, 65534)
EOF
	fi
	snap_src=$(tree_snapshot "$T/src")

	# DST shaped like a --links copy (symlinks kept) with changes
	MUTATE_OPTS=""
	gentree mutate --seed "$SEED" --src "$T/src" --out "$T/dst-links"
	DST_BASE=$T/dst-links
	run_pair "mirror" "--perms" --dirs --perms --links --delete-dst \
		-- -r --perms --links --delete $owner_opts
	# the mirror must equal SRC itself too (symlink targets, perms, empty dirs)
	expect_same_tree --perms "$T/src" "$T/d1" "mirror: DST differs from SRC"

	# DST shaped like a copy that followed symlinks, with same-size changes
	# and DST files newer / older than SRC
	MUTATE_OPTS="--follow --same-size --times"
	gentree mutate --seed "$SEED" --src "$T/src" --out "$T/dst-follow" --follow --same-size --times
	DST_BASE=$T/dst-follow
	# without --dirs syncmgr creates no empty dirs: compare files + symlinks only
	run_pair "default" "--no-dirs" -- -r --size-only -L
	run_pair "update" "--no-dirs" --update -- -r -u -L
	# syncmgr's default check is size-only; rsync's quick check is size+mtime,
	# so give rsync --size-only to compare like with like
	run_pair "existing" "--no-dirs" --existing -- -r -L --size-only --existing
	run_pair "ignore-existing" "--no-dirs" --ignore-existing -- -r -L --ignore-existing
	run_pair "threads-1" "--no-dirs" -p 1 -- -r --size-only -L

	[ "$(tree_snapshot "$T/src")" = "$snap_src" ] || fail "SRC was modified (seed $SEED)"
done
