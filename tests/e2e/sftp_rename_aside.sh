#!/usr/bin/env bash
# SFTP puts over existing files on a server without posix-rename@openssh.com
# (OpenSSH's sftp-server with that request refused, so not advertised either):
# SFTP v3's plain RENAME does not replace a file, so the store renames the old
# file aside, renames the temp file in and removes the aside file
# (sftp_rename_over in common/store/sftp.c), for small files (the pipelined
# job) and large ones (the streaming put) alike.
#  - a tree goes up, then every file but two is overwritten with new contents
#    of another size and synced again: the server's tree equals SRC, no
#    `.~sm*` temp or aside file is left;
#  - the server's request log (sftp-server -l VERBOSE) proves the path was
#    taken: no posix-rename request ever arrived (its only refusals are the
#    ones at session start, where the extension is left unadvertised), and
#    for each overwritten file the old one was renamed aside with a plain
#    RENAME, the temp renamed in, the aside name removed; the two unchanged
#    files were not touched.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init sftp_rename_aside

SSHD_SFTP_DENY=posix-rename SSHD_SFTP_LOG=VERBOSE SSHD_PORT=${SSHD_PORT:-2245} sshd_start
if [ -z "${SSHD_SFTP_LOG_FILE:-}" ] || [ ! -f "$SSHD_SFTP_LOG_FILE" ]; then
	fail "sshd.sh wrote no SSHD_SFTP_LOG_FILE into $SSHD_DIR/env"
fi
export HOME=$SSH_TEST_HOME SSH_AUTH_SOCK=
R=$T/remote # what the server writes, seen directly (the server is on this machine)
mkdir -p "$R"

# write FILE SIZE: SIZE random bytes into FILE
write() {
	mkdir -p "$(dirname "$1")"
	head -c "$2" /dev/urandom >"$1"
}

# Small files take the pipelined put (one job per file), the 3 MiB ones the
# streaming put: both end in the rename over an existing file.
CHANGED=(a.txt "dir one/b.bin" "dir one/deeper/c" d/e/f.dat big1 "d/big 2")
SAME=(keep.txt "dir one/keep2")
write "$T/src/a.txt" 10
write "$T/src/dir one/b.bin" 5000
write "$T/src/dir one/deeper/c" 1
write "$T/src/d/e/f.dat" 70000
write "$T/src/big1" 3145728
write "$T/src/d/big 2" 3000000
write "$T/src/keep.txt" 100
write "$T/src/dir one/keep2" 200

# 1. the first pass creates every file: plain renames onto free names
sm -p 4 "$T/src/" "sm-test:$R/"
expect_rc 0 "first pass local -> SFTP"
expect_field copied 8 "first pass"
expect_same_tree "$T/src" "$R" "first pass"
expect_no_temp_files "$R" "first pass"

# 2. overwrite: same names, new contents, other sizes (so the default
#    size check copies them again)
write "$T/src/a.txt" 17
write "$T/src/dir one/b.bin" 4000
write "$T/src/dir one/deeper/c" 0
write "$T/src/d/e/f.dat" 90001
write "$T/src/big1" 2097152
write "$T/src/d/big 2" 3500000
log_from=$(($(stat -c %s "$SSHD_SFTP_LOG_FILE") + 1))
sm -p 4 "$T/src/" "sm-test:$R/"
expect_rc 0 "second pass over existing files"
expect_field copied ${#CHANGED[@]} "second pass"
expect_field failed 0 "second pass"
expect_same_tree "$T/src" "$R" "second pass, files replaced by renaming the old ones aside"
expect_no_temp_files "$R" "second pass (temp or aside files)"

# 3. the server's log of the second pass: how the files were replaced
tail -c "+$log_from" "$SSHD_SFTP_LOG_FILE" | tr -d '\r' >"$T/sftp2.log"
out=$("$PY" - "$T/sftp2.log" "$R" "${#CHANGED[@]}" "${CHANGED[@]}" "${SAME[@]}" <<'EOF'
import os, re, sys
log, root, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
changed, same = sys.argv[4:4 + n], sys.argv[4 + n:]
lines = open(log, encoding="utf-8", errors="replace").read().splitlines()
bad = []
sessions = sum(1 for l in lines if l.startswith("session opened"))
refused = sum(1 for l in lines if l == "Refusing denylisted posix-rename request")
posix = [l for l in lines if l.startswith("posix-rename ")]
if sessions == 0:
    bad.append("no SFTP session in the server's log of the second pass")
if posix:
    bad.append("posix-rename requests were served: %s" % posix[:3])
if refused < sessions:
    bad.append("posix-rename was refused at the start of only %d of %d sessions: the "
               "server advertised it (sshd.sh ignored SSHD_SFTP_DENY?)" % (refused, sessions))
elif refused > sessions:
    bad.append("%d posix-rename refusals in %d sessions: the client sent posix-rename, "
               "which the server did not advertise" % (refused, sessions))

def find(rx, start):
    for i in range(start, len(lines)):
        m = re.fullmatch(rx, lines[i])
        if m:
            return i, m
    return None, None

for key in changed:
    path = os.path.join(root, key)
    d, base = os.path.split(path)
    tmp = re.escape(d + "/.~sm") + "[0-9a-f]{16}" + re.escape("." + base)
    i, m = find(r'rename old "%s" new "(%s)"' % (re.escape(path), tmp), 0)
    if i is None:
        bad.append("%r: never renamed aside with a plain RENAME" % key)
        continue
    aside = m.group(1)
    j, _ = find(r'rename old "(?!%s")%s" new "%s"' % (re.escape(aside), tmp, re.escape(path)), i + 1)
    if j is None:
        bad.append("%r: renamed aside to %r, but no temp file renamed in after that" % (key, aside))
        continue
    k, _ = find(r'remove name "%s"' % re.escape(aside), j + 1)
    if k is None:
        bad.append("%r: the aside file %r was not removed" % (key, aside))
for key in same:
    path = os.path.join(root, key)
    hit = [l for l in lines if '"%s"' % path in l and not l.startswith(("stat ", "lstat "))]
    if hit:
        bad.append("%r did not change, yet: %s" % (key, hit[:3]))
if bad:
    print("\n    ".join(bad))
    sys.exit(1)
EOF
) || fail "the server's SFTP log ($SSHD_SFTP_LOG_FILE) does not show the rename-aside path:
    $out"
