#!/usr/bin/env bash
# SFTP locations as users type them (issue 23 item 5), against OpenSSH on
# loopback (tests/servers/sshd.sh) whose SFTP sessions start in a login
# directory of this test's own (SSHD_SFTP_DIR):
#  - sftp:// paths are percent-decoded like the user part: %20 is a space,
#    %25 a '%';
#  - host:~/dir, host:~ and sftp://host/~/dir name the login directory, as
#    scp and rsync read them (not a directory named '~'); host:dir too;
#  - a key whose remote path is a few bytes short of PATH_MAX (4096 with
#    its NUL), with a short name and a long one, is copied: the temporary
#    name beside it would not fit, so a shorter one is used, or one in a
#    directory above (a path only as long as the key's own), and DST holds
#    no temp file afterwards.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init sftp_locations

LOGIN=$T/login
mkdir -p "$LOGIN"
SSHD_SFTP_DIR=$LOGIN SSHD_PORT=${SSHD_PORT:-2366} sshd_start
export HOME=$SSH_TEST_HOME SSH_AUTH_SOCK=
HP="$SSH_TEST_USER@127.0.0.1:$SSHD_PORT"
mkdir -p "$T/src/sub"
echo one >"$T/src/one"
echo two >"$T/src/sub/two"

# 1. sftp:// paths are percent-decoded
sm "$T/src/" "sftp://$HP$T/a%20b%25c/"
expect_rc 0 "a percent-encoded sftp:// path"
[ -d "$T/a b%c" ] || fail "a percent-encoded sftp:// path: no directory '$T/a b%c' ($(ls "$T"))"
expect_same_tree "$T/src" "$T/a b%c" "a percent-encoded sftp:// path"
sm "sftp://$HP$T/a%20b%25c/" "$T/back1/"
expect_rc 0 "a percent-encoded sftp:// SRC"
expect_same_tree "$T/src" "$T/back1" "a percent-encoded sftp:// SRC"

# 2. ~ is the login directory; a relative path is below it
for loc in "sm-test:~/t1/" "sm-test:t2/" "sftp://$HP/~/t3/" "$HP:~/t4/"; do
	sm "$T/src/" "$loc"
	expect_rc 0 "$loc"
	d=${loc%/}
	d=$LOGIN/${d##*[:/]}
	expect_same_tree "$T/src" "$d" "$loc (into $d)"
done
[ ! -e "$LOGIN/~" ] || fail "a directory named '~' was made in the login directory"
sm "sm-test:~/t1/sub/" "$T/back2/"
expect_rc 0 "sm-test:~/t1/sub/ as SRC"
expect_same_tree "$T/src/sub" "$T/back2" "sm-test:~/t1/sub/ as SRC"
mkdir -p "$T/one-only"
echo x >"$T/one-only/x"
sm "$T/one-only/" "sm-test:~/"
expect_rc 0 "sm-test:~/ (the login directory itself)"
[ "$(cat "$LOGIN/x")" = x ] || fail "sm-test:~/ did not write into the login directory"

# 3. keys a few bytes short of PATH_MAX on the server
R=$T/deep
mkdir -p "$R"
"$PY" - "$T/srcdeep" "$R" <<'EOF'
import os, sys
src, remote = sys.argv[1:]
# a directory chain of 200-byte names, then names that bring the remote
# path (remote root + "/" + key) to 4093 bytes: one short name, one of 40
def chain(total, name):
    left = total - len(remote) - 1 - len(name)  # bytes of "c1/c2/.../ck/"
    comps = []
    while left > 0:
        n = min(200, left - 1)
        if left - (n + 1) == 1:  # a 1-byte rest cannot hold "x/"
            n -= 1
        comps.append(("d%d" % len(comps) + "x" * n)[:n])
        left -= n + 1
    return "/".join(comps), name
for name in ("f", "n" * 40):
    dirs, nm = chain(4093, name)
    key = dirs + "/" + nm
    assert len(remote) + 1 + len(key) == 4093, (len(remote) + 1 + len(key))
    os.makedirs(src, exist_ok=True)
    # build the chain with openat-style steps (the full path is longer than
    # some calls take)
    here = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    for c in dirs.split("/"):
        try:
            os.mkdir(c, dir_fd=here)
        except FileExistsError:
            pass
        nxt = os.open(c, os.O_RDONLY | os.O_DIRECTORY, dir_fd=here)
        os.close(here)
        here = nxt
    f = os.open(nm, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=here)
    os.write(f, b"deep\n")
    os.close(f)
    os.close(here)
    with open(os.path.join(os.path.dirname(src), "deepkeys"), "a") as k:
        k.write(key + "\n")
EOF
sm "$T/srcdeep/" "sm-test:$R/"
expect_rc 0 "keys a few bytes short of PATH_MAX"
expect_field copied 2 "keys a few bytes short of PATH_MAX"
while IFS= read -r key; do
	(cd "$R" && "$PY" -c '
import os, sys
key = sys.argv[1]
here = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
parts = key.split("/")
for c in parts[:-1]:
    nxt = os.open(c, os.O_RDONLY | os.O_DIRECTORY, dir_fd=here)
    os.close(here)
    here = nxt
with os.fdopen(os.open(parts[-1], os.O_RDONLY, dir_fd=here)) as f:
    assert f.read() == "deep\n"
' "$key") || fail "keys a few bytes short of PATH_MAX: ${#key}-byte key missing or wrong on DST"
done <"$T/deepkeys"
[ -z "$(cd "$R" && find . -name '.~sm*' 2>/dev/null)" ] || fail "keys a few bytes short of PATH_MAX: temp files left"
