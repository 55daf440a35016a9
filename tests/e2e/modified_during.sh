#!/bin/bash
# SRC changing under syncmgr (--threads 1):
#  A. a 200 MiB file rewritten in place, over and over, by a background writer.
#     With --check-change the key fails (exit 1, DST keeps the old version) or
#     is copied as one consistent version; without it the run completes.
#  B. a 200 MiB file being appended to: DST gets a prefix of SRC (never bytes
#     SRC never had); with --check-change the key fails and nothing is left at
#     DST, or it is copied consistently.
#  C. files deleted from SRC during the run are counted as lost (exit 1) or not
#     found at all; the rest is copied; nothing crashes.
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
elif cmd == "race":          # race DST TEMPWAIT_S DEL... : delete DEL once a temp file appears in DST
    dst, wait = sys.argv[2], float(sys.argv[3])
    t0 = time.time()
    while time.time() - t0 < wait:
        try:
            if any(n.startswith(".~sm") for n in os.listdir(dst)):
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
stop_writer() {
	if [ -n "$WPID" ]; then
		touch "$T/stop"
		wait "$WPID" 2>/dev/null || true
		WPID=""
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
sm --threads 1 "$S/" "$D/"
stop_writer
expect_rc 0 "rewrite without --check-change: the run completes"
expect_no_temp_files "$D" "rewrite without --check-change"
dsize=$(stat -c %s "$D/big")
if [ $(((dsize - BASE) % 65536)) -ne 0 ] || [ "$dsize" -le "$BASE" ]; then
	fail "rewrite without --check-change: DST 'big' has size $dsize, which no version of SRC ever had"
fi
rm -rf "$T/a"

# ----------------------------------------------------------------- B. append
S=$T/b/src D=$T/b/dst
mkdir -p "$S"
h make "$S/log" 7
truncate -s "$BASE" "$S/log" # version-7 blocks, exactly 200 MiB
for cc in "" --check-change; do
	E2E_CONTEXT="append, ${cc:-no --check-change}"
	rm -rf "$D"
	mkdir -p "$D"
	start_writer append "$S/log"
	sm $cc --threads 1 "$S/" "$D/"
	stop_writer
	expect_no_temp_files "$D" "append ${cc}"
	if [ -z "$cc" ]; then
		expect_rc 0 "append without --check-change: the run completes"
	elif [ "$SM_RC" -eq 1 ]; then
		expect_field failed 1 "append + --check-change (exit 1)"
		[ ! -e "$D/log" ] || fail "append + --check-change: the key failed but DST 'log' exists ($(stat -c %s "$D/log") bytes)"
		continue
	else
		expect_rc 0 "append + --check-change"
		note "append + --check-change: copied (the writer was between appends)"
	fi
	[ -f "$D/log" ] || fail "append ${cc}: DST 'log' missing after exit 0"
	dsize=$(stat -c %s "$D/log")
	[ "$dsize" -ge "$BASE" ] || fail "append ${cc}: DST 'log' is $dsize bytes, shorter than SRC ever was ($BASE)"
	cmp -s -n "$dsize" "$D/log" "$S/log" ||
		fail "append ${cc}: DST 'log' ($dsize bytes) is not a prefix of SRC 'log' ($(cmp -n "$dsize" "$D/log" "$S/log" 2>&1 | head -1))"
done
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
sm --threads 1 "$S/" "$D/"
wait "$RPID" || fail "deleting files during the run: $(cat "$T/race.out") (syncmgr finished before the race)"
expect_no_temp_files "$D" "files deleted during the run"
copied=$(field copied) lost=$(field lost) failed=$(field failed) Found=$(field found)
[ "$failed" -eq 0 ] || fail "files deleted during the run: $failed keys failed; a vanished SRC key is 'lost', not failed"
[ "$lost" -le 100 ] || fail "files deleted during the run: lost $lost > 100 deleted"
[ $((copied + lost)) -eq "$Found" ] || fail "files deleted during the run: found $Found != copied $copied + lost $lost"
if [ "$lost" -gt 0 ]; then expect_rc 1 "lost keys"; else expect_rc 0 "no lost keys"; fi
[ "$lost" -eq 0 ] || grep -q "^syncmgr: " "$T/sm.err" || fail "lost keys: no message on stderr"
# every key still on SRC is on DST, identical; deleted ones are absent or whole
for i in $(seq -w 0 199); do
	k=s$i
	if [ -e "$S/$k" ]; then
		cmp -s "$S/$k" "$D/$k" || fail "key '$k' still on SRC but not copied correctly"
	elif [ -e "$D/$k" ]; then
		cmp -s "$T/c/orig/$k" "$D/$k" || fail "deleted key '$k' is on DST with wrong content"
	fi
done
cmp -s "$S/000big" "$D/000big" || fail "000big not copied"
