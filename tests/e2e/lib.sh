# Shared helpers for the syncmgr end-to-end tests.  Source it from a test:
#
#   . "$(dirname "$0")/lib.sh"
#   e2e_init NAME        # checks $SYNCMGR, makes $T (temp dir), installs the EXIT trap
#
# Conventions: every helper that finds a problem calls `fail MSG`, which prints
# "FAIL [NAME]: MSG" (plus $E2E_CONTEXT, e.g. the seed), leaves a failure
# marker in $T and exits 1.  A `fail` inside `$(...)` or a pipeline exits only
# that subshell: the marker still fails the test, at the next `sm` or check
# and at exit at the latest, so no helper can swallow a failure.

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
E2E_CONTEXT=""
E2E_CLEANUPS=()
T=""
E2E_FAILED="" # the failure marker file, set by e2e_init
# set -e also inside $(...), so a failing step there ends that subshell
shopt -s inherit_errexit

e2e_init() {
	E2E_NAME=$1
	if [ -z "${SYNCMGR:-}" ] || [ ! -x "$SYNCMGR" ]; then
		echo "FAIL [$E2E_NAME]: set SYNCMGR to the syncmgr binary (got '${SYNCMGR:-}')" >&2
		exit 1
	fi
	case $SYNCMGR in /*) ;; *) SYNCMGR=$(cd "$(dirname "$SYNCMGR")" && pwd)/$(basename "$SYNCMGR") ;; esac
	T=$(mktemp -d "${TMPDIR:-/tmp}/sm-e2e-$E2E_NAME.XXXXXX")
	E2E_FAILED=$T/.e2e-failed
	trap e2e_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM HUP
	E2E_T0=$SECONDS
}

# need_root: the test switches to nobody (setpriv), chowns or mounts
need_root() {
	[ "$(id -u)" -eq 0 ] || fail "this test must run as root (it uses setpriv to nobody, chown, mount)"
}

# Run "$@" (a command string) when the test exits, before the temp dir goes.
on_exit() { E2E_CLEANUPS+=("$1"); }

e2e_cleanup() {
	local rc=$? i
	set +e
	if [ "$rc" -eq 0 ] && e2e_failed_earlier; then
		echo "FAIL [$E2E_NAME]: a check failed earlier (deferred, or in a subshell: its message is above)" >&2
		rc=1
	fi
	for ((i = ${#E2E_CLEANUPS[@]} - 1; i >= 0; i--)); do
		eval "${E2E_CLEANUPS[$i]}"
	done
	if [ -n "$T" ] && [ -d "$T" ]; then
		chmod -R u+rwx "$T" 2>/dev/null
		rm -rf "$T"
	fi
	if [ "$rc" -eq 0 ]; then
		echo "PASS [$E2E_NAME] ($((SECONDS - E2E_T0)) s)"
	fi
	exit "$rc"
}

# Did a `fail` run anywhere in this test, a subshell included?
e2e_failed_earlier() { [ -n "$E2E_FAILED" ] && [ -e "$E2E_FAILED" ]; }

# Stop now if a subshell failed a check (called by sm and the expect_* helpers;
# deferred failures let the test go on: see defer_fail).
e2e_stop_if_failed() {
	if e2e_failed_earlier && [ ! -s "$E2E_FAILED" ]; then
		echo "FAIL [$E2E_NAME]: stopping: a check failed in a subshell (its message is above)" >&2
		exit 1
	fi
}

# defer_fail MSG: a failure that lets the test go on with its other cases;
# the test fails at exit (the failure marker holds the message).
defer_fail() {
	echo "  FAIL (deferred) [$E2E_NAME]: $*" >&2
	if [ -s "$T/sm.err" ]; then { grep -v progress "$T/sm.err" || true; } | tail -n 6 | sed 's/^/    /' >&2; fi
	if [ -n "$E2E_FAILED" ] && [ -d "$T" ]; then echo "$*" >>"$E2E_FAILED"; fi
}

# smt SECONDS ARGS...: sm with its own timeout; a run killed by it sets
# SM_RC 124 without failing the test (the caller checks).
smt() {
	local secs=$1
	shift
	SM_CMD="syncmgr $(printf '%q ' "$@")"
	set +e
	timeout -k 5 "$secs" "$SYNCMGR" "$@" >"$T/sm.out" 2>"$T/sm.err" </dev/null
	SM_RC=$?
	set -e
}

fail() {
	if [ -n "$E2E_FAILED" ] && [ -d "$T" ]; then : >>"$E2E_FAILED"; fi
	echo "FAIL [$E2E_NAME]: $*" >&2
	if [ -n "$E2E_CONTEXT" ]; then echo "  context: $E2E_CONTEXT" >&2; fi
	if [ -n "${SM_CMD:-}" ]; then
		echo "  last syncmgr command: $SM_CMD (exit $SM_RC)" >&2
		if [ -s "$T/sm.err" ]; then
			echo "  its stderr (last 15 lines):" >&2
			tail -n 15 "$T/sm.err" | sed 's/^/    /' >&2
		fi
	fi
	exit 1
}

note() { echo "  $*" >&2; }

# sm ARGS...: run syncmgr; never fails.  Sets SM_RC; stdout in $T/sm.out,
# stderr in $T/sm.err.  SM_AS=nobody runs it as nobody:nogroup.
sm() {
	e2e_stop_if_failed
	local pre=()
	if [ "${SM_AS:-}" = nobody ]; then
		pre=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
	fi
	SM_CMD="${pre[*]:+${pre[*]} }syncmgr $(printf '%q ' "$@")"
	set +e
	timeout -k 5 60 "${pre[@]}" "$SYNCMGR" "$@" >"$T/sm.out" 2>"$T/sm.err" </dev/null
	SM_RC=$?
	set -e
	if [ -n "${E2E_VERBOSE:-}" ]; then
		echo "  + $SM_CMD -> exit $SM_RC" >&2
		sed 's/^/      /' "$T/sm.err" | tail -n 5 >&2
	fi
	if [ "$SM_RC" -ge 124 ]; then
		fail "syncmgr crashed or timed out (exit $SM_RC)"
	fi
}

# expect_rc N WHAT
expect_rc() {
	e2e_stop_if_failed
	[ "$SM_RC" -eq "$1" ] || fail "$2: expected exit $1, got $SM_RC"
}

# The summary line: the last stderr line starting with "Found: ".  Exactly one
# such line must exist.
summary() {
	local n
	n=$(grep -c '^Found: ' "$T/sm.err" || true)
	[ "$n" -eq 1 ] || fail "expected exactly one summary line on stderr, found $n"
	grep '^Found: ' "$T/sm.err"
}

# The last stderr line of the summary (of file $1, default sm.err): the
# "Found: " line, or the "Elapsed: " line that may follow it (not under -q).
summary_last() {
	local f=${1:-$T/sm.err} last
	last=$(tail -n 1 "$f")
	case $last in "Elapsed: "*) last=$(tail -n 2 "$f" | head -n 1) ;; esac
	printf '%s\n' "$last"
}

# expect_summary LINE WHAT: the summary line must equal LINE exactly and be the
# last line of stderr (but for the "Elapsed: " line after it).
expect_summary() {
	local got last
	got=$(summary) || fail "$2: no usable summary line"
	last=$(summary_last)
	[ "$got" = "$1" ] || fail "$2: summary line differs
    expected: $1
    got:      $got"
	[ "$last" = "$got" ] || fail "$2: summary is not the last stderr line (last: '$last')"
}

# field NAME: the count of one summary field (0 when absent).  Without exactly
# one summary line it fails the test (from inside `$(field X)` too: see fail)
# and prints nothing, so no comparison with a number can pass.
field() {
	local s v
	s=$(summary) || fail "summary field '$1': no usable summary line"
	v=$(printf '%s\n' "$s" | grep -oiE "(^|, )$1: [0-9]+" | grep -oE '[0-9]+$' || true)
	echo "${v:-0}"
}

expect_field() {
	local got
	got=$(field "$1") || fail "$3: no summary field '$1'"
	[ "$got" = "$2" ] || fail "$3: summary field '$1' expected $2, got $got  (summary: $(summary))"
}

# tree_cmp [--perms] [--no-dirs] [--mtime] A B: compare two trees by relative
# path, type, content (sha256), symlink target, optionally permission bits
# (and, when run as root, owner and group: root may chown, so --perms must
# keep them), optionally mtimes.  --no-dirs ignores directory entries (only files and
# symlinks are compared; their paths still include the dirs).
tree_cmp() {
	"$PY" - "$@" <<'EOF'
import hashlib, os, stat, sys
args = sys.argv[1:]
perms = "--perms" in args
nodirs = "--no-dirs" in args
mtime = "--mtime" in args
a, b = [x for x in args if not x.startswith("--")]
owners = perms and os.geteuid() == 0

def meta(st):
    """What --perms compares: the mode bits, and as root the owner too."""
    if not perms:
        return None
    m = stat.S_IMODE(st.st_mode)
    return (m, st.st_uid, st.st_gid) if owners else (m,)

def scan(root):
    out = {}
    def rec(rel):
        full = os.path.join(root, rel) if rel else root
        for name in os.listdir(full):
            r = os.path.join(rel, name) if rel else name
            p = os.path.join(root, r)
            st = os.lstat(p)
            m = st.st_mode
            if stat.S_ISDIR(m):
                if not nodirs:
                    out[r] = ("dir", meta(st), None, None)
                rec(r)
            elif stat.S_ISLNK(m):
                out[r] = ("symlink", meta(st)[1:] if owners else None,
                          os.readlink(p), None)
            elif stat.S_ISREG(m):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                out[r] = ("file", meta(st),
                          "%d bytes sha256 %s" % (st.st_size, h.hexdigest()[:16]),
                          st.st_mtime_ns if mtime else None)
            else:
                out[r] = ("other", None, None, None)
    rec("")
    return out

A, B = scan(a), scan(b)
diffs = []
for k in sorted(set(A) | set(B)):
    x, y = A.get(k), B.get(k)
    if x == y:
        continue
    if x is None:
        diffs.append("%r: only in %s (%s)" % (k, b, y[0]))
    elif y is None:
        diffs.append("%r: only in %s (%s)" % (k, a, x[0]))
    elif x[0] != y[0]:
        diffs.append("%r: type %s vs %s" % (k, x[0], y[0]))
    else:
        what = []
        if x[1] != y[1]:
            def show(v):  # (mode[, uid, gid]) or a symlink's (uid, gid)
                parts = []
                if len(v) != 2:
                    parts.append("mode %o" % v[0])
                    v = v[1:]
                if v:
                    parts.append("uid %d gid %d" % v)
                return " ".join(parts)
            what.append("%s vs %s" % (show(x[1]), show(y[1])))
        if x[2] != y[2]:
            what.append("%s: %r vs %r" % ("target" if x[0] == "symlink" else "content", x[2], y[2]))
        if x[3] != y[3]:
            what.append("mtime_ns %s vs %s" % (x[3], y[3]))
        diffs.append("%r: %s" % (k, ", ".join(what)))
if diffs:
    print("trees differ (%d entries; first is %s, second is %s):" % (len(diffs), a, b))
    for d in diffs[:15]:
        print("    " + d)
    if len(diffs) > 15:
        print("    ...")
    sys.exit(1)
EOF
}

# expect_same_tree [opts] A B WHAT
expect_same_tree() {
	local what=${*: -1} out
	case $what in --no-dirs | --mtime | --perms)
		fail "expect_same_tree: the last argument must be the message, not '$what'" ;;
	esac
	set -- "${@:1:$#-1}"
	if ! out=$(tree_cmp "$@"); then
		fail "$what: $out"
	fi
}

# tree_snapshot DIR: every entry (root included) with type, mode, size,
# inode, mtime_ns, ctime_ns, uid, gid, content hash or symlink target.  Two
# equal snapshots mean nothing was written, renamed, chmod'ed or touched.
tree_snapshot() {
	"$PY" - "$1" <<'EOF'
import hashlib, os, stat, sys
root = sys.argv[1]
def line(rel):
    p = os.path.join(root, rel) if rel else root
    st = os.lstat(p)
    extra = ""
    if stat.S_ISREG(st.st_mode):
        with open(p, "rb") as f:
            extra = hashlib.sha256(f.read()).hexdigest()
    elif stat.S_ISLNK(st.st_mode):
        extra = "-> %r" % os.readlink(p)
    print("%r %o size=%d ino=%d mtime=%d ctime=%d uid=%d gid=%d nlink=%d %s" % (
        rel, st.st_mode, st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns,
        st.st_uid, st.st_gid, st.st_nlink, extra))
    if stat.S_ISDIR(st.st_mode):
        for name in sorted(os.listdir(p)):
            line(os.path.join(rel, name) if rel else name)
line("")
EOF
}

# temp_files DIR: print any syncmgr temp file (.~sm<8 hex>.<name>) below DIR
temp_files() {
	find "$1" -name '.~sm*' -print 2>/dev/null || true
}

expect_no_temp_files() {
	local t
	t=$(temp_files "$1")
	[ -z "$t" ] || fail "$2: temp files left behind: $t"
}

gentree() { "$PY" "$E2E_DIR/gentree.py" "$@"; }

# stderr lines that are not the summary (its "Found: " and "Elapsed: " lines)
err_lines() { grep -v -e '^Found: ' -e '^Elapsed: ' "$T/sm.err" || true; }

# rgw_start: a radosgw of this test's own in $T/rgw, stopped at exit. Sets
# S3_ENDPOINT and AWS_* (tests/servers/radosgw.sh), HP (host:port) and CRED
# (AK:SK); aws() runs the aws CLI v2 against it. With RGW_SSL_PORT set (before
# the call) it also serves HTTPS on 127.0.0.1:$RGW_SSL_PORT (RADOSGW_SSL_PORT):
# then S3_HTTPS_ENDPOINT, S3_CA_BUNDLE (the server's self-signed certificate)
# and HPS (its host:port) are set too.
rgw_start() {
	RGW=$T/rgw
	on_exit "'$E2E_DIR/../servers/radosgw.sh' stop '$RGW' >/dev/null 2>&1"
	RADOSGW_SSL_PORT=${RGW_SSL_PORT:-} "$E2E_DIR/../servers/radosgw.sh" start "$RGW" >/dev/null 2>"$T/rgw.log" ||
		fail "radosgw did not start: $(tail -20 "$T/rgw.log")"
	# shellcheck disable=SC1091
	. "$RGW/env"
	export AWS_PAGER=""
	HP=${S3_ENDPOINT#http://}
	if [ -n "${RGW_SSL_PORT:-}" ]; then
		[ -n "${S3_HTTPS_ENDPOINT:-}" ] && [ -r "${S3_CA_BUNDLE:-}" ] ||
			fail "radosgw started without its HTTPS endpoint ($RGW/env)"
		HPS=${S3_HTTPS_ENDPOINT#https://}
	fi
	CRED="$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"
}
aws() { /usr/bin/aws --endpoint-url "$S3_ENDPOINT" "$@"; }

# s3rver_start: an s3rver of this test's own (tests/servers/s3rver.sh: an S3
# server that lists in directory order) in $T/s3rver on
# 127.0.0.1:${S3RVER_PORT:-4568}, stopped at exit. Sets S3_ENDPOINT and AWS_*
# as rgw_start does, and S3RVER_HP (host:port) and S3RVER_CRED (AK:SK); aws()
# then talks to it. Its quirks (keys with ' & < > " are listed wrongly, ones
# with a tab or a trailing space are not deleted by DeleteObjects; a
# directory shows in a delimiter listing only when it holds an object
# itself) are in the script's header; s3rver_tree fits a tree to them.
s3rver_start() {
	S3RVER_DIR=$T/s3rver
	on_exit "'$E2E_DIR/../servers/s3rver.sh' stop '$S3RVER_DIR' >/dev/null 2>&1"
	"$E2E_DIR/../servers/s3rver.sh" start "$S3RVER_DIR" >/dev/null 2>"$T/s3rver-start.log" ||
		fail "s3rver did not start: $(tail -20 "$T/s3rver-start.log")"
	# shellcheck disable=SC1091
	. "$S3RVER_DIR/env"
	export AWS_PAGER=""
	S3RVER_HP=${S3_ENDPOINT#http://}
	S3RVER_CRED="$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"
}

# s3rver_tree DIR: make a local tree fit for s3rver: no symlinks (S3 has
# none), no names with ' & < > " (it lists them escaped twice), none with a
# tab or a trailing space (its DeleteObjects deletes another key, and says
# it deleted that one), and a file
# in every directory that has files below it (it shows a directory in a
# delimiter listing only then): a file named "dirfile" in each (a test that
# removes files keeps those).
s3rver_tree() {
	find "$1" -type l -delete
	find "$1" -mindepth 1 \( -name "*'*" -o -name '*&*' -o -name '*<*' -o -name '*>*' -o -name '*"*' \
		-o -name "*$(printf '\t')*" -o -name '* ' \) -prune -exec rm -rf {} +
	"$PY" - "$1" <<'EOF'
import os, sys
for d, dirs, files in os.walk(sys.argv[1], topdown=False):
    below = any(fs for _, _, fs in os.walk(d))
    if below and d != sys.argv[1]:
        with open(os.path.join(d, "dirfile"), "w") as f:
            f.write(d + "\n")
EOF
}

# sshd_start: an OpenSSH server of this test's own in $T/sshd on
# 127.0.0.1:${SSHD_PORT:-2222} (tests/servers/sshd.sh), stopped at exit. Sets
# SSHD_DIR and sources its env: SSHD_ADDR, SSHD_PORT, SSHD_PID, SSHD_HOST_FP
# (ed25519 host key, SHA256:...), SSHD_LOG, SSH_TEST_HOME (a home with
# .ssh/{id_ed25519,id_wrong,known_hosts,config}: use HOME=$SSH_TEST_HOME),
# SSH_TEST_USER, SSH_TEST_CONFIG, SSH_TEST_KEY, SSH_TEST_WRONG_KEY,
# SSH_TEST_KNOWN_HOSTS. The config's `Host sm-test` logs in with the authorized
# key, `Host sm-test-wrong` with the refused one. For a changed host key run
# "$E2E_DIR/../servers/sshd.sh" rekey "$SSHD_DIR" and source "$SSHD_DIR/env"
# again (new SSHD_PID and SSHD_HOST_FP; known_hosts keeps the old keys).
sshd_start() { # [ADDR:PORT...]: more addresses to listen on
	SSHD_DIR=$T/sshd
	on_exit "'$E2E_DIR/../servers/sshd.sh' stop '$SSHD_DIR' >/dev/null 2>&1"
	SSHD_PORT=${SSHD_PORT:-2222} "$E2E_DIR/../servers/sshd.sh" start "$SSHD_DIR" "$@" >/dev/null 2>"$T/sshd-start.log" ||
		fail "sshd did not start: $(tail -20 "$T/sshd-start.log")"
	# shellcheck disable=SC1091
	. "$SSHD_DIR/env"
	[ -n "${SSHD_PID:-}" ] && [ -n "${SSHD_HOST_FP:-}" ] && [ -d "${SSH_TEST_HOME:-}" ] ||
		fail "sshd started without a complete $SSHD_DIR/env"
}

# Fault proxies in front of an S3 server (tests/servers/fault_proxy.py): the
# first on ${PROXY_PORT:-7600}, each next one on the port after.
# start_proxy NAME ARGS...: a fault proxy in front of radosgw on the next
# port; sets PROXY (host:port). Its log is $T/proxy.log.NAME.
start_proxy() {
	local name=$1 port=${PROXY_PORT:-7600}
	PROXY_PORT=$((port + 1))
	mkfifo "$T/proxy.in.$name"
	"$PY" "$E2E_DIR/../servers/fault_proxy.py" "$HP" --port "$port" "${@:2}" \
		<"$T/proxy.in.$name" >"$T/proxy.port.$name" 2>"$T/proxy.log.$name" &
	local pid=$!
	PROXY_PID=$pid
	exec {PFD}>"$T/proxy.in.$name"
	on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
	for _ in $(seq 100); do
		[ -s "$T/proxy.port.$name" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	[ -s "$T/proxy.port.$name" ] ||
		fail "fault proxy $name did not start on 127.0.0.1:$port: $(cat "$T/proxy.log.$name")"
	PROXY=127.0.0.1:$(cat "$T/proxy.port.$name")
}

# stop_proxy NAME: close its stdin, wait until it has written its totals
stop_proxy() {
	exec {PFD}>&-
	wait "$PROXY_PID" 2>/dev/null || true
	grep -q '^fault_proxy: totals ' "$T/proxy.log.$1" ||
		fail "fault proxy $1 wrote no totals: $(tail -5 "$T/proxy.log.$1")"
}

# pstat NAME COUNTER: one counter of a stopped proxy's totals (0 if absent)
pstat() {
	local v
	v=$(sed -n 's/^fault_proxy: totals //p' "$T/proxy.log.$1" | tr ' ' '\n' |
		sed -n "s/^$2=\([0-9]*\)\$/\1/p")
	echo "${v:-0}"
}

