#!/usr/bin/env bash
# --perms over SFTP as on a local DST (issue 23 item 3), against OpenSSH on
# loopback (tests/servers/sshd.sh): one server whose SFTP runs as root, one
# whose SFTP runs as nobody (a non-root account). SRC (local, root) holds
# files of other owners, setuid / setgid files (small ones and one past the
# one-job size), a setgid directory, a symlink with its own mtime, and files
# dated 1960 and 2200 (SFTP version 3 has unsigned 32-bit times).
#  - to root: modes, owners and groups as on SRC, setuid/setgid kept (the
#    owner is set before the mode, as OpenSSH's chown clears them), the
#    symlink's mtime kept (lsetstat@openssh.com); the out-of-range times are
#    a warning naming each key; a second run with -u changes nothing (the
#    DST tree's inodes, modes, times and ctimes stay as they are);
#  - to nobody: every key copied with its mode (the refused owners are one
#    warning, not failed keys); a second run changes nothing either.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init sftp_perms
need_root

SSHD_PORT=${SSHD_PORT:-2364} sshd_start
export HOME=$SSH_TEST_HOME SSH_AUTH_SOCK=
SSHD_SFTP_AS=nobody SSHD_PORT=${SSHD_PORT2:-$((SSHD_PORT + 1))} "$E2E_DIR/../servers/sshd.sh" start "$T/sshd2" \
	>/dev/null 2>"$T/sshd2.log" || fail "the second sshd did not start: $(tail -5 "$T/sshd2.log")"
on_exit "'$E2E_DIR/../servers/sshd.sh' stop '$T/sshd2' >/dev/null 2>&1"
PORT2=$(sed -n 's/.*SSHD_PORT=\([0-9]*\).*/\1/p' "$T/sshd2/env")
cat "$T/sshd2/home/.ssh/known_hosts" >>"$SSH_TEST_KNOWN_HOSTS"
cp "$SSHD_DIR/authorized_keys" "$T/sshd2/authorized_keys"
printf '\nHost sm-nobody\n    HostName 127.0.0.1\n    Port %s\n    User %s\n    IdentityFile %s\n    IdentitiesOnly yes\n    UserKnownHostsFile %s\n' \
	"$PORT2" "$SSH_TEST_USER" "$SSH_TEST_KEY" "$SSH_TEST_KNOWN_HOSTS" >>"$SSH_TEST_CONFIG"

S=$T/src
mkdir -p "$S/d" "$S/sgdir"
echo a >"$S/a"
echo b >"$S/b" && chown 1234:5678 "$S/b" && chmod 0600 "$S/b"
echo suid >"$S/suid" && chmod 04755 "$S/suid"
echo sgid >"$S/sgid" && chmod 02755 "$S/sgid"
echo both >"$S/both" && chown 1234:5678 "$S/both" && chmod 06755 "$S/both"
head -c 300000 /dev/urandom >"$S/big" && chown 1234:5678 "$S/big" && chmod 04750 "$S/big"
echo in >"$S/d/in" && chmod 0750 "$S/d"
echo g >"$S/sgdir/g" && chown 1234:5678 "$S/sgdir" && chmod 02775 "$S/sgdir"
ln -s a "$S/ln" && touch -h -d '2001-02-03 04:05:06 UTC' "$S/ln"
echo old >"$S/old" && touch -d '1960-01-01 00:00:00 UTC' "$S/old"
echo future >"$S/future" && touch -d '2200-01-01 00:00:00 UTC' "$S/future"
touch -d '2020-01-01 00:00:00 UTC' "$S/d" "$S/sgdir"

# modes_equal A B: the mode bits of every entry (symlinks: none) are equal
modes_equal() {
	"$PY" - "$1" "$2" <<'EOF'
import os, stat, sys
a, b = sys.argv[1:]
bad = []
for d, dirs, files in os.walk(a):
    for n in dirs + files:
        p = os.path.join(d, n)
        q = os.path.join(b, os.path.relpath(p, a))
        sa, sb = os.lstat(p), os.lstat(q) if os.path.lexists(q) else None
        if sb is None:
            bad.append("%s: missing" % q)
        elif not stat.S_ISLNK(sa.st_mode) and stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
            bad.append("%s: mode %o, want %o" % (q, stat.S_IMODE(sb.st_mode), stat.S_IMODE(sa.st_mode)))
if bad:
    sys.exit("\n".join(bad))
EOF
}

# snap DIR: tree_snapshot without the root itself (the run's writable
# probe, a temp file made and removed, changes its mtime on every run)
snap() { tree_snapshot "$1" | sed 1d; }

# mtime_of PATH: seconds (lstat)
mtime_of() { "$PY" -c 'import os, sys; print(int(os.lstat(sys.argv[1]).st_mtime))' "$1"; }

# 1. to root
R=$T/remote
mkdir -p "$R"
sm --perms --links --dirs "$S/" "sm-test:$R/a/"
expect_rc 0 "--perms to root"
expect_same_tree --perms "$S" "$R/a" "--perms to root"
[ "$(mtime_of "$R/a/ln")" = "$(mtime_of "$S/ln")" ] ||
	fail "--perms to root: the symlink's mtime is $(mtime_of "$R/a/ln"), SRC's $(mtime_of "$S/ln")"
for k in old future; do
	grep -q "warning: .*'$k'.*1970.*2106" "$T/sm.err" ||
		fail "--perms to root: no warning about the mtime of '$k': $(err_lines)"
done
if [ "$(mtime_of "$R/a/old")" != 0 ] || [ "$(mtime_of "$R/a/future")" != 4294967295 ]; then
	fail "--perms to root: DST mtimes $(mtime_of "$R/a/old") and $(mtime_of "$R/a/future"), want 0 and 4294967295"
fi
note "to root: $(err_lines | head -n 4)"
snap "$R/a" >"$T/snap1"
sm --perms --links --dirs -u "$S/" "sm-test:$R/a/"
expect_rc 0 "second run with -u, to root"
snap "$R/a" >"$T/snap2"
diff "$T/snap1" "$T/snap2" >"$T/snap.diff" || fail "second run with -u, to root, changed DST: $(head -n 6 "$T/snap.diff")"
expect_field copied 0 "second run with -u, to root"
[ "$(err_lines | wc -l)" -eq 0 ] || fail "second run with -u, to root: messages: $(err_lines)"

# 2. to a non-root account
chmod 0711 "$T" "$R" # nobody walks to its DST
mkdir -p "$R/b"
chown nobody:nogroup "$R/b"
sm --perms --links --dirs "$S/" "sm-nobody:$R/b/"
expect_rc 0 "--perms to nobody"
expect_same_tree "$S" "$R/b" "--perms to nobody"
modes_equal "$S" "$R/b" || fail "--perms to nobody: modes differ"
n=$(err_lines | grep -c 'owner' || true)
[ "$n" -eq 1 ] || fail "--perms to nobody: $n lines about owners (want one warning): $(err_lines)"
grep -q "warning: .*owner" "$T/sm.err" || fail "--perms to nobody: the refused owners are no warning: $(err_lines)"
note "to nobody: $(err_lines | head -n 4)"
snap "$R/b" >"$T/snap1"
sm --perms --links --dirs -u "$S/" "sm-nobody:$R/b/"
expect_rc 0 "second run with -u, to nobody"
snap "$R/b" >"$T/snap2"
diff "$T/snap1" "$T/snap2" >"$T/snap.diff" || fail "second run with -u, to nobody, changed DST: $(head -n 6 "$T/snap.diff")"
expect_field copied 0 "second run with -u, to nobody"
