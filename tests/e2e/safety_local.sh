#!/usr/bin/env bash
# Data safety between local trees (issue "No key lost, nothing written
# outside DST"):
#  3. --delete-src never takes "same size" for "same": SRC 'f' = BBBB (newer),
#     DST 'f' = AAAA: f is copied and SRC 'f' kept; an identical 'g' goes;
#  2. --delete-src-after keeps a SRC file appended to while it was moved:
#     every byte ever written to it is on DST or still in SRC;
# 11. a DST directory that cannot be listed (permission denied, run as
#     nobody): nothing at all is deleted, one line says why, failed counted,
#     exit 1; --dry --debug claims no delete either;
#  6. thousands of DST-only directories with --dirs --delete-dst: deleted in
#     bounded batches, the run ends;
# 13. control characters of a key are escaped in every message;
#  7. durability: --delete-src-after syncs DST (syncfs) before the first SRC
#     unlink; --fsync fsyncs each file before its rename and the directory
#     after; every run syncs DST once before exit 0 (strace).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init safety_local
need_root

# 3. --delete-src: same size, other contents and a newer mtime on SRC.
mkdir -p "$T/s3/src" "$T/s3/dst"
printf 'AAAA' >"$T/s3/dst/f"
touch -d '@1000000000' "$T/s3/dst/f"
printf 'BBBB' >"$T/s3/src/f"
touch -d '@1100000000' "$T/s3/src/f"
printf 'same' >"$T/s3/src/g"
cp -p "$T/s3/src/g" "$T/s3/dst/g"
sm --delete-src "$T/s3/src/" "$T/s3/dst/"
expect_rc 0 "--delete-src, same size other mtime"
[ "$(cat "$T/s3/dst/f")" = BBBB ] || fail "--delete-src: DST 'f' is '$(cat "$T/s3/dst/f")', not SRC's BBBB"
# SPEC: --delete-src deletes keys that already existed identically on DST
[ "$(cat "$T/s3/src/f" 2>/dev/null)" = BBBB ] || fail "--delete-src deleted SRC 'f', which DST did not hold"
[ ! -e "$T/s3/src/g" ] || fail "--delete-src kept SRC 'g', identical on DST"
expect_field copied 1 "--delete-src copies the changed key"

# 2. --delete-src-after while SRC grows: no byte may be lost.
mkdir -p "$T/s2/src"
head -c $((64 * 1024 * 1024)) /dev/zero >"$T/s2/src/log"
cat >"$T/append.py" <<'EOF'
import os, sys, time
path, started, stop, total = sys.argv[1:5]
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
n = os.fstat(fd).st_size
t0 = time.time()
open(started, "w").close()
while not os.path.exists(stop) and time.time() - t0 < 20:
    n += os.write(fd, b"x" * 65536)
    time.sleep(0.001)
os.close(fd)
open(total, "w").write("%d\n" % n)
EOF
"$PY" "$T/append.py" "$T/s2/src/log" "$T/s2.started" "$T/s2.stop" "$T/s2.total" &
apid=$!
on_exit "kill $apid 2>/dev/null"
while [ ! -e "$T/s2.started" ]; do sleep 0.01; done
sm --delete-src-after --threads 1 "$T/s2/src/" "$T/s2/dst/"
touch "$T/s2.stop"
wait "$apid" || fail "the appender failed"
total=$(cat "$T/s2.total")
dsize=$(stat -c %s "$T/s2/dst/log" 2>/dev/null || echo 0)
if [ -e "$T/s2/src/log" ]; then
	ssize=$(stat -c %s "$T/s2/src/log")
	[ "$ssize" -eq "$total" ] || fail "--delete-src-after: SRC 'log' holds $ssize of $total bytes written"
	[ "$SM_RC" -eq 1 ] || fail "--delete-src-after kept a changed SRC key but exited $SM_RC"
else
	[ "$dsize" -eq "$total" ] ||
		fail "--delete-src-after deleted SRC 'log' although it grew: DST has $dsize of the $total bytes written"
fi

# 11. A DST directory nobody can list: nothing is deleted anywhere.
mkdir -p "$T/s11/src/a" "$T/s11/dst/a" "$T/s11/dst/locked/inner"
echo 1 >"$T/s11/src/a/one"
echo 1 >"$T/s11/dst/a/one"
echo old >"$T/s11/dst/a-extra"   # DST-only, listed before the locked directory
echo old >"$T/s11/dst/zz-extra"  # and after it
echo x >"$T/s11/dst/locked/inner/x"
chown -R nobody:nogroup "$T/s11"
chown root:root "$T/s11/dst/locked"
chmod 0700 "$T/s11/dst/locked"
chmod 0755 "$T/s11" "$T"
snap=$(tree_snapshot "$T/s11/dst")
SM_AS=nobody sm --delete-dst "$T/s11/src/" "$T/s11/dst/"
expect_rc 1 "--delete-dst with an unreadable DST directory"
grep -q "deletes skipped: a listing failed" "$T/sm.err" ||
	fail "unreadable DST directory: no line saying that deletes were skipped"
[ "$(field failed)" -ge 1 ] || fail "unreadable DST directory: nothing counted failed"
[ "$(tree_snapshot "$T/s11/dst")" = "$snap" ] || fail "unreadable DST directory: DST changed:
$(diff <(echo "$snap") <(tree_snapshot "$T/s11/dst") | head)"
SM_AS=nobody sm --dry --debug --delete-dst "$T/s11/src/" "$T/s11/dst/"
grep -q '^delete ' "$T/sm.out" &&
	fail "--dry claims deletes the real run skips: $(grep '^delete ' "$T/sm.out" | head -3)"
# --delete-src obeys the same gate
SM_AS=nobody sm --delete-src --delete-dst "$T/s11/src/" "$T/s11/dst/"
expect_rc 1 "--delete-src with an unreadable DST directory"
[ -e "$T/s11/src/a/one" ] || fail "--delete-src deleted SRC although a DST listing failed"

# 6. Thousands of DST-only directories go in bounded batches.
mkdir -p "$T/s6/src" "$T/s6/dst"
echo 1 >"$T/s6/src/keep"
(cd "$T/s6/dst" && seq -f 'd%05g' 1 3000 | xargs mkdir && mkdir d00001/sub && echo 1 >d00001/sub/f)
sm --dirs --delete-dst "$T/s6/src/" "$T/s6/dst/"
expect_rc 0 "--dirs --delete-dst of 3000 DST-only directories"
expect_same_tree "$T/s6/src" "$T/s6/dst" "after deleting 3000 directories"
expect_field deleted 3002 "3000 directories, a subdirectory and a file"

# 7. The order of syncs, renames and unlinks.
command -v strace >/dev/null || fail "strace is not installed (install.sh installs it)"
mkdir -p "$T/s7/src/d"
for i in 1 2 3 4 5; do echo "$i" >"$T/s7/src/d/f$i"; done
SYNCMGR_REAL=$SYNCMGR
trace() { # FILE ARGS...: run syncmgr under strace
	local out=$1
	shift
	SM_CMD="strace syncmgr $*"
	# LeakSanitizer cannot run under ptrace (the ASan build)
	ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" \
		strace -f -qq -e trace=fsync,fdatasync,syncfs,rename,renameat,renameat2,unlink,unlinkat \
		-o "$out" "$SYNCMGR_REAL" "$@" >"$T/sm.out" 2>"$T/sm.err" </dev/null
}
trace "$T/t1" --delete-src-after "$T/s7/src/" "$T/s7/dst/" || fail "traced --delete-src-after failed"
"$PY" - "$T/t1" <<'EOF' || fail "--delete-src-after: SRC unlinked before DST was synced (see above)"
import re, sys
lines = [l for l in open(sys.argv[1]) if "= -1" not in l and "resumed" not in l or "syncfs" in l]
first_sync = next((i for i, l in enumerate(lines) if "syncfs(" in l), None)
src_unlinks = [i for i, l in enumerate(lines) if re.search(r"unlinkat\(.*\"f[0-9]\"", l)]
if first_sync is None or not src_unlinks or src_unlinks[0] < first_sync:
    print("  syncfs at %s, first SRC unlink at %s" % (first_sync, src_unlinks[:1]), file=sys.stderr)
    sys.exit(1)
EOF
rm -rf "$T/s7/dst"
for i in 1 2 3 4 5; do echo "$i" >"$T/s7/src/d/f$i"; done
trace "$T/t2" --fsync "$T/s7/src/" "$T/s7/dst/" || fail "traced --fsync failed"
"$PY" - "$T/t2" <<'EOF' || fail "--fsync: a file renamed before it was synced, or its directory not synced after"
import sys
lines = open(sys.argv[1]).read().splitlines()
renames = [i for i, l in enumerate(lines) if "rename" in l and "= 0" in l]
if len(renames) != 5:
    print("  %d renames, expected 5" % len(renames), file=sys.stderr)
    sys.exit(1)
for r in renames:
    pid = lines[r].split()[0]
    mine = [i for i, l in enumerate(lines) if l.split()[0] == pid]
    before = [i for i in mine if i < r and "fsync(" in lines[i]]
    after = [i for i in mine if i > r and "fsync(" in lines[i]]
    if not before or not after:
        print("  rename at line %d: fsync before %s, after %s" % (r, before[-1:], after[:1]),
              file=sys.stderr)
        sys.exit(1)
EOF
grep -q 'syncfs(' "$T/t2" || fail "no syncfs of DST before exit 0"

# 13. A key's control characters never reach the terminal raw, in any message.
mkdir -p "$T/s13/src"
esc=$'\e[31mred\a'
echo x >"$T/s13/src/$esc"
chmod 000 "$T/s13/src/$esc" # root's: nobody cannot read it
chown nobody:nogroup "$T/s13" "$T/s13/src"
SM_AS=nobody sm "$T/s13/src/" "$T/s13/dst/"
expect_rc 1 "an unreadable file with escapes in its name"
grep -qF '\x1b[31mred\x07' "$T/sm.err" || fail "the key is not in the error message, escaped: $(cat -v "$T/sm.err")"
! grep -q $'\e' "$T/sm.err" || fail "a raw escape character reached stderr: $(cat -v "$T/sm.err")"
