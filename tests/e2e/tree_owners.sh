#!/bin/bash
# Issue 24 item 2: with --perms as root, a change of owner or group alone
# is synced on files, directories and symlinks (rsync -a and juicefs sync
# do), in every mode that compares (default, --update, --check-all); --dry
# lists each pending change as "chmod KEY" and changes nothing; a second
# run has nothing to do.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init tree_owners
need_root

owners() { # every entry's owner:group, the root's too
	(cd "$1" && find . -printf '%p %U:%G\n' | sort)
}
for mode in "" "--update" "--check-all"; do
	E2E_CONTEXT="mode '${mode:-default}'"
	rm -rf "$T/src" "$T/dst"
	mkdir -p "$T/src/d/e"
	echo f >"$T/src/f"
	echo x >"$T/src/d/e/x"
	ln -s f "$T/src/l"
	chmod 04755 "$T/src/f"
	# shellcheck disable=SC2086
	sm $mode --perms --dirs --links "$T/src/" "$T/dst/"
	expect_rc 0 "first run"
	chown -h 65534:0 "$T/src/f" "$T/src/l" "$T/src/d"
	chown -h 0:65534 "$T/src/d/e/x" "$T/src/d/e"
	chmod 04755 "$T/src/f" # chown cleared it
	before=$(tree_snapshot "$T/dst")
	# shellcheck disable=SC2086
	sm $mode --perms --dirs --links --dry "$T/src/" "$T/dst/"
	expect_rc 0 "--dry"
	got=$({ grep '^chmod ' "$T/sm.out" || true; } | sort | tr '\n' ' ')
	[ "$got" = "chmod d/ chmod d/e/ chmod d/e/x chmod f chmod l " ] ||
		fail "--dry: pending owner changes listed as '$got'"
	[ "$(tree_snapshot "$T/dst")" = "$before" ] || fail "--dry changed DST"
	# shellcheck disable=SC2086
	sm $mode --perms --dirs --links "$T/src/" "$T/dst/"
	expect_rc 0 "owners changed"
	[ "$(owners "$T/dst")" = "$(owners "$T/src")" ] ||
		fail "owners differ: $(diff <(owners "$T/src") <(owners "$T/dst") | head -8)"
	expect_same_tree --perms "$T/src" "$T/dst" "owners changed"
	expect_field copied 0 "owners changed"
	snap=$(tree_snapshot "$T/dst")
	# shellcheck disable=SC2086
	sm $mode --perms --dirs --links "$T/src/" "$T/dst/"
	expect_rc 0 "second run"
	[ "$(tree_snapshot "$T/dst")" = "$snap" ] || fail "a second run changed DST"
done
