#!/bin/bash
# SRC changing under syncmgr (--threads 1):
#  A. a 200 MiB file rewritten in place, over and over, by a background writer.
#     With --check-change the key fails (exit 1, DST keeps the old version) or
#     is copied as one consistent version; without it the key is read again
#     (the end-of-read check runs on every copy) and then copied whole or
#     failed, never committed torn.
#  B. a 200 MiB file being appended to: DST gets a prefix of SRC (never bytes
#     SRC never had).  With --check-change, 1 MiB appended while the copy is
#     provably under way (syncmgr stopped with SIGSTOP once its temp file
#     shows, the temp file still shorter than SRC, so SRC was opened and not
#     yet re-stat'ed): the key fails (exit 1, failed: 1, an error naming it)
#     and nothing is left at DST.  Run again unchanged, it is copied.
#  C. files deleted from SRC while another file is copied: each one the
#     listing found is counted as lost (not copied, not failed) with a
#     warning that it disappeared, exit 1; the rest is copied; DST holds
#     exactly the copied keys; nothing crashes.
# In no case is a temp file (.~sm<hex>.<name>) left at DST.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init modified_during

MIB=$((1024 * 1024))
BASE=$((200 * MIB))

# The helper: versioned content.  Version V of 'big' is BASE + V*64 KiB long and
# made of 64 KiB blocks "V<ver>B<idx>\n" + filler byte (ver % 251).  Any mix of
# two versions (a torn copy) is detected by `check`.
cat >"$T/h.py" <<'EOF'
import os, sys, time
BLOCK = 64 * 1024
BASE = 200 * 1024 * 1024

def block(v, i):
    h = b"V%010dB%010d\n" % (v, i)
    return h + bytes([v % 251]) * (BLOCK - len(h))

def size_of(v):
    return BASE + v * BLOCK

def write_version(fd, v, stop=None):
    n = size_of(v) // BLOCK
    os.ftruncate(fd, size_of(v))
    fill = bytes([v % 251]) * BLOCK
    for i in range(n):
        h = b"V%010dB%010d\n" % (v, i)
        os.pwrite(fd, h + fill[len(h):], i * BLOCK)
        if stop and i % 64 == 0 and os.path.exists(stop):
            return False
    return True

cmd = sys.argv[1]
if cmd == "make":            # make PATH VERSION
    fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    write_version(fd, int(sys.argv[3]))
    os.close(fd)
elif cmd == "rewrite":       # rewrite PATH STARTED STOP: versions 1, 2, ... in place
    path, started, stop = sys.argv[2:5]
    fd = os.open(path, os.O_WRONLY)
    v, t0 = 1, time.time()
    while not os.path.exists(stop) and time.time() - t0 < 40:
        os.ftruncate(fd, size_of(v))
        if v == 1:
            open(started, "w").close()
        if not write_version(fd, v, stop):
            break
        v += 1
    os.close(fd)
elif cmd == "append":        # append PATH STARTED STOP: 1 MiB at a time, <= 300 MiB
    path, started, stop = sys.argv[2:5]
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    i, t0 = BASE // BLOCK, time.time()
    while not os.path.exists(stop) and time.time() - t0 < 40 and i < (BASE + 300 * 2**20) // BLOCK:
        os.write(fd, b"".join(block(7, j) for j in range(i, i + 16)))
        i += 16
        if i == BASE // BLOCK + 16:
            open(started, "w").close()
        time.sleep(0.002)
    os.close(fd)
elif cmd == "check":         # check PATH: print the version, or why it is torn
    path = sys.argv[2]
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        first = f.read(BLOCK)
        try:
            v = int(first[1:11])
        except ValueError:
            print("TORN: first block header unreadable: %r" % first[:23]); sys.exit(1)
        if size != size_of(v):
            print("TORN: version %d but size %d (expected %d)" % (v, size, size_of(v))); sys.exit(1)
        f.seek(0)
        for i in range(size // BLOCK):
            b = f.read(BLOCK)
            if b != block(v, i):
                print("TORN: block %d is not version %d's (header %r)" % (i, v, b[:23])); sys.exit(1)
    print(v)
elif cmd == "pausecopy":     # pausecopy DST SRCFILE RESULT OUT ERR CMD...: see below
    # Run CMD (stdout OUT, stderr ERR) in a process group of its own.  Once
    # a temp file shows in DST, SIGSTOP the group and wait until every thread
    # in it has stopped; if the temp file is then shorter than SRCFILE, the
    # copy has opened SRCFILE and not finished reading it: append 1 MiB of
    # version-7 blocks to SRCFILE.  SIGCONT; RESULT gets "appended TEMPSIZE
    # SRCSIZE" or "missed WHY".  Exit status: CMD's (124 when it was killed
    # after 60 s).
    import signal, subprocess
    dst, src, result, out, err = sys.argv[2:7]
    with open(out, "wb") as o, open(err, "wb") as e:
        p = subprocess.Popen(sys.argv[7:], stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                             start_new_session=True)
    def state(path):  # (state, process group) from a /proc stat file
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[2])
    def stopped():  # every thread of every process of the group is stopped
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if state("/proc/%s/stat" % pid)[1] != p.pid:
                    continue
                for t in os.listdir("/proc/%s/task" % pid):
                    if state("/proc/%s/task/%s/stat" % (pid, t))[0] not in "tTZX":
                        return False
            except (FileNotFoundError, ProcessLookupError):
                continue
        return True
    what, t0 = "missed: no temp file seen before syncmgr ended", time.time()
    while p.poll() is None and time.time() - t0 < 60:
        try:
            tmp = [n for n in os.listdir(dst) if n.startswith(".~sm")]
        except FileNotFoundError:
            tmp = []
        if not tmp:
            time.sleep(0.0002)
            continue
        os.killpg(p.pid, signal.SIGSTOP)
        while not stopped():
            time.sleep(0.001)
        ssize = os.path.getsize(src)
        try:
            tsize = os.path.getsize(os.path.join(dst, tmp[0]))
        except FileNotFoundError:
            tsize = None
        if tsize is None:
            what = "missed: the temp file was gone once syncmgr stopped"
        elif tsize >= ssize:
            what = "missed: the temp file had all %d bytes once syncmgr stopped" % tsize
        else:
            fd = os.open(src, os.O_WRONLY | os.O_APPEND)
            i = ssize // BLOCK
            os.write(fd, b"".join(block(7, j) for j in range(i, i + 16)))
            os.close(fd)
            what = "appended %d %d" % (tsize, ssize)
        os.killpg(p.pid, signal.SIGCONT)
        break
    try:
        rc = p.wait(timeout=max(1, 60 - (time.time() - t0)))
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        rc = 124
    with open(result, "w") as f:
        f.write(what + "\n")
    sys.exit(rc if rc >= 0 else 128 - rc)
elif cmd == "race":          # race DST TEMPWAIT_S DEL... : delete DEL once a temp file in DST
    dst, wait = sys.argv[2], float(sys.argv[3])  # holds 16 MiB: the copy is well under way,
    t0 = time.time()                             # the listing (ms) long done, even under ASan
    def grown():
        for n in os.listdir(dst):
            if n.startswith(".~sm"):
                try:
                    if os.stat(os.path.join(dst, n)).st_size >= 16 << 20:
                        return True
                except FileNotFoundError:
                    pass
        return False
    while time.time() - t0 < wait:
        try:
            if grown():
                break
        except FileNotFoundError:
            pass
        time.sleep(0.0005)
    else:
        print("no temp file seen"); sys.exit(1)
    for p in sys.argv[4:]:
        os.unlink(p)
    print("deleted %d" % (len(sys.argv) - 4))
EOF
h() { "$PY" "$T/h.py" "$@"; }

WPID=""
stop_writer() { # the writer must have run until told to stop, without error
	local rc=0
	if [ -n "$WPID" ]; then
		touch "$T/stop"
		wait "$WPID" || rc=$?
		WPID=""
		[ "$rc" -eq 0 ] || fail "the background writer failed (exit $rc)"
	fi
}
# shellcheck disable=SC2016 # expanded at exit
on_exit 'if [ -n "$WPID" ]; then touch "$T/stop"; sleep 0.2; kill "$WPID" 2>/dev/null; wait "$WPID" 2>/dev/null; fi'

start_writer() { # MODE PATH
	rm -f "$T/started" "$T/stop"
	h "$1" "$2" "$T/started" "$T/stop" &
	WPID=$!
	local i
	for i in $(seq 1 500); do
		[ -e "$T/started" ] && return 0
		kill -0 "$WPID" 2>/dev/null || fail "the $1 writer died"
		sleep 0.01
	done
	fail "the $1 writer did not start"
}

# ---------------------------------------------------------------- A. rewrite
S=$T/a/src D=$T/a/dst
mkdir -p "$S" "$D"
h make "$S/big" 0
cp -p "$S/big" "$D/big"
head -c 1000 /dev/urandom >"$S/small"
E2E_CONTEXT="rewrite in place, --check-change"
start_writer rewrite "$S/big"
sm --check-change --threads 1 "$S/" "$D/"
stop_writer
expect_no_temp_files "$D" "rewrite + --check-change"
cmp -s "$S/small" "$D/small" || fail "rewrite + --check-change: the unchanged file 'small' was not copied"
ver=$(h check "$D/big") || fail "rewrite + --check-change: DST 'big' is neither the old nor a full new version: $ver"
case $SM_RC in
1)
	expect_field failed 1 "rewrite + --check-change (exit 1)"
	grep -q "^syncmgr: .*big" "$T/sm.err" || fail "rewrite + --check-change: no error line naming 'big'"
	[ "$ver" -eq 0 ] || fail "rewrite + --check-change: the key failed but DST 'big' was replaced (version $ver)"
	;;
0)
	expect_field copied 2 "rewrite + --check-change (exit 0)"
	[ "$ver" -ge 1 ] || fail "rewrite + --check-change: exit 0 but DST 'big' is still the old version"
	note "rewrite + --check-change: copied a consistent version $ver (the writer was between writes)"
	;;
*) fail "rewrite + --check-change: exit $SM_RC, expected 0 or 1" ;;
esac

E2E_CONTEXT="rewrite in place, no --check-change"
start_writer rewrite "$S/big"
sm -v --threads 1 "$S/" "$D/"
stop_writer
# Every copy checks SRC at the end of its read: a file that keeps changing is
# read again (4 tries) and then fails; a copy that got through is whole.
# Never is a torn copy committed with SRC's mtime.
expect_no_temp_files "$D" "rewrite without --check-change"
case $SM_RC in
0)
	ver=$(h check "$D/big") ||
		fail "rewrite without --check-change: DST 'big' is neither the old nor a full new version: $ver"
	[ "$ver" -ge 1 ] || fail "rewrite without --check-change: exit 0 but DST 'big' is the old version"
	;;
1)
	expect_field failed 1 "rewrite without --check-change (exit 1)"
	grep -q "'big' changed while it was copied" "$T/sm.err" ||
		fail "rewrite without --check-change: no error naming 'big' as changed"
	[ "$(grep -c "'big' changed while it was copied: copying it again" "$T/sm.err")" -ge 1 ] ||
		fail "rewrite without --check-change: the key failed without being read again"
	ver=$(h check "$D/big") || fail "rewrite without --check-change: DST 'big' is torn: $ver"
	[ "$ver" -eq 0 ] || fail "rewrite without --check-change: the key failed but DST 'big' was replaced"
	;;
*) fail "rewrite without --check-change: exit $SM_RC, expected 0 or 1" ;;
esac
rm -rf "$T/a"

# ----------------------------------------------------------------- B. append
S=$T/b/src D=$T/b/dst
mkdir -p "$S"
h make "$S/log" 7
truncate -s "$BASE" "$S/log" # version-7 blocks, exactly 200 MiB
E2E_CONTEXT="append, no --check-change"
mkdir -p "$D"
start_writer append "$S/log"
sm -v --threads 1 "$S/" "$D/"
stop_writer
expect_no_temp_files "$D" "append"
# read again while it grows (4 tries), then copied whole or failed: a copy
# of SRC as it was during a write is never committed
case $SM_RC in
1)
	expect_field failed 1 "append without --check-change (exit 1)"
	grep -q "'log' changed while it was copied: copying it again" "$T/sm.err" ||
		fail "append without --check-change: the key failed without being read again"
	[ ! -e "$D/log" ] || fail "append without --check-change: the key failed, yet DST 'log' exists"
	;;
0)
	[ -f "$D/log" ] || fail "append: DST 'log' missing after exit 0"
	dsize=$(stat -c %s "$D/log")
	[ "$dsize" -ge "$BASE" ] || fail "append: DST 'log' is $dsize bytes, shorter than SRC ever was ($BASE)"
	cmp -s -n "$dsize" "$D/log" "$S/log" ||
		fail "append: DST 'log' ($dsize bytes) is not a prefix of SRC 'log' ($(cmp -n "$dsize" "$D/log" "$S/log" 2>&1 | head -1))"
	;;
*) fail "append without --check-change: exit $SM_RC, expected 0 or 1" ;;
esac

# --check-change: SRC grows while it is copied, which must fail the key.
# pausecopy appends only while the copy is provably under way; a run where it
# came too late (the copy was done) is not a verdict: it is run again.
E2E_CONTEXT="append during the copy, --check-change"
truncate -s "$BASE" "$S/log"
caught=""
for attempt in 1 2 3 4 5 6 7 8; do
	rm -rf "$D"
	mkdir -p "$D"
	SM_CMD="syncmgr --check-change --threads 1 $S/ $D/ (SIGSTOPped mid-copy, SRC appended to)"
	set +e
	h pausecopy "$D" "$S/log" "$T/pause.out" "$T/sm.out" "$T/sm.err" \
		"$SYNCMGR" --check-change --threads 1 "$S/" "$D/"
	SM_RC=$?
	set -e
	[ "$SM_RC" -lt 124 ] || fail "syncmgr crashed or timed out (exit $SM_RC)"
	case $(cat "$T/pause.out") in
	appended*)
		caught=$(cat "$T/pause.out")
		break
		;;
	missed*) note "append + --check-change, attempt $attempt: $(cat "$T/pause.out"); again" ;;
	*) fail "pausecopy said: $(cat "$T/pause.out")" ;;
	esac
done
[ -n "$caught" ] || fail "append + --check-change: could not stop syncmgr during the copy in 8 attempts"
read -r _ tsize ssize <<<"$caught"
note "append + --check-change: 1 MiB appended with $tsize of $ssize bytes copied"
expect_no_temp_files "$D" "append + --check-change"
expect_rc 1 "append + --check-change: SRC grew during the copy, the key must fail"
expect_summary "Found: 1, excluded: 0 (0 B), skipped: 0 (0 B), copied: 0 (0 B), extra: 0 (0 B), failed: 1" \
	"append + --check-change"
grep -q "^syncmgr: .*'log' changed" "$T/sm.err" || fail "append + --check-change: no error line saying 'log' changed"
[ ! -e "$D/log" ] || fail "append + --check-change: the key failed but DST 'log' exists ($(stat -c %s "$D/log") bytes)"
[ "$(stat -c %s "$S/log")" -eq $((BASE + MIB)) ] || fail "append + --check-change: SRC 'log' is not BASE + 1 MiB"
# unchanged now: --check-change copies it
sm --check-change --threads 1 "$S/" "$D/"
expect_rc 0 "append + --check-change, run again with SRC unchanged"
expect_summary "Found: 1, excluded: 0 (0 B), skipped: 0 (0 B), copied: 1 (201 MiB), extra: 0 (0 B)" \
	"append + --check-change, run again with SRC unchanged"
cmp -s "$S/log" "$D/log" || fail "append + --check-change, run again: DST 'log' differs from SRC"
rm -rf "$T/b"

# -------------------------------------------------------- C. deleted during run
S=$T/c/src D=$T/c/dst
mkdir -p "$S" "$D"
h make "$S/000big" 0
for i in $(seq -w 0 199); do printf 'small %s\n' "$i" >"$S/s$i"; done
cp -a "$S" "$T/c/orig"
victims=()
for i in $(seq -w 100 199); do victims+=("$S/s$i"); done
E2E_CONTEXT="files deleted during the run"
h race "$D" 20 "${victims[@]}" >"$T/race.out" 2>&1 &
RPID=$!
# puts slowed (the test-only fault: 512 MiB/s): the big copy lasts long
# enough for the watcher to see it on a busy machine too
sm --threads 1 --test-fault dst=put:1:slow "$S/" "$D/"
wait "$RPID" || fail "deleting files during the run: $(cat "$T/race.out") (syncmgr finished before the race)"
expect_no_temp_files "$D" "files deleted during the run"
summary >/dev/null # one summary line, or fail here (not inside a substitution)
copied=$(field copied) lost=$(field lost) failed=$(field failed) Found=$(field found)
# 000big and s000..s099 stay; of the 100 deleted keys, those the listing had
# already found (all, unless it was slower than the start of 000big's copy)
# are lost: never copied, never failed
[ "$failed" -eq 0 ] || fail "files deleted during the run: $failed keys failed; a vanished SRC key is 'lost', not failed"
[ "$Found" -ge 101 ] && [ "$Found" -le 201 ] || fail "files deleted during the run: found $Found keys, expected 101 to 201"
[ "$copied" -eq 101 ] || fail "files deleted during the run: copied $copied keys, but only 101 (000big, s000..s099) were still on SRC when their turn came"
[ "$lost" -eq $((Found - 101)) ] || fail "files deleted during the run: found $Found, so $((Found - 101)) deleted keys were listed, but lost is $lost"
[ "$lost" -ge 1 ] || fail "files deleted during the run: no key was lost, so the listing never saw a deleted key and the test proved nothing"
expect_rc 1 "lost keys"
n=$(grep -cE "^syncmgr: .*'s1[0-9][0-9]' disappeared" "$T/sm.err" || true)
[ "$n" -eq "$lost" ] || fail "files deleted during the run: $n lines say a deleted key disappeared, expected one per lost key ($lost)"
# DST holds exactly 000big and s000..s099, each identical to the original
(cd "$D" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort) >"$T/c.got"
{
	echo 000big
	for i in $(seq 0 99); do printf 's%03d\n' "$i"; done
} | LC_ALL=C sort >"$T/c.want"
diff "$T/c.want" "$T/c.got" >"$T/c.diff" ||
	fail "files deleted during the run: DST is not exactly 000big + s000..s099 (< missing, > extra): $(grep '^[<>]' "$T/c.diff" | head -5 | tr '\n' ' ')"
for i in $(seq 0 99); do
	k=$(printf 's%03d' "$i")
	cmp -s "$T/c/orig/$k" "$D/$k" || fail "key '$k' (never deleted) not copied correctly"
done
cmp -s "$S/000big" "$D/000big" || fail "000big not copied"
