#!/usr/bin/python3
"""Property test: syncmgr's include/exclude rules select exactly what rsync -r
selects for the same rules (SPEC.md section 3, layer-by-layer mode).

For random small trees and random rule lists, on the same tree:

    rsync -r --dry-run --out-format=%n RULES SRC/ EMPTYDST/    -> names
    syncmgr --dirs --dry RULES SRC/ EMPTYDST/                  -> "copy KEY"

must give the same set of keys (directories end in '/').  Any difference is a
failure; up to 5 failing cases are collected and printed (seed, case, rules
shell-quoted, the tree's keys, keys only in rsync / only in syncmgr), then the
test exits 1.

    SYNCMGR=/path/to/syncmgr /usr/bin/python3 tests/e2e/filter_property.py
        [--seed S] [--cases N] [--case K] [--jobs J] [--max-failures M]
        [--via-match] [-v]

A failing case is also shrunk: rules are dropped one at a time while the
selections still differ, and the smallest such rule list is printed too.
--case K reruns case K of seed S alone (same tree, same rules).  --via-match
asks `syncmgr match RULES KEY...` instead of a dry run (a diagnostic: it tells
a filter-engine bug from a run-mode integration bug); the test proper uses
the dry run.

Reproducible: the tree of case K depends only on (seed, K // TREE_EVERY), its
rules only on (seed, K), so thread scheduling never changes what is tested.
"""

import argparse
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

NAME = "filter_property"
DEFAULT_SEED = 20240611
TREE_EVERY = 50  # cases per tree
MAX_FAILURES = 5
TIMEOUT = 30  # seconds per command

# Names: few and short, so patterns hit often.  Glob characters and a
# backslash appear in names too, so escaped patterns have something to match.
# No name starts with '-' or '+ ' (rsync's --exclude honours "+ "/"- " rule
# prefixes, and syncmgr match would take a leading '-' key for an option).
NAMES = [
    "a", "b", "c", "ab", "ba", "abc", "a.c", "b.o", "a.b.c", "foo", "bar",
    "foo1", "2foo", "foo.c", "x", "x1", "x-y", "a-b", "[x]", "a b", ".hidden",
    ".a", "tmp", "dir", "*", "*x", "a?", "a\\b", "c.o", "bar.c",
]
NAME_WEIGHTS = {"a\\b": 0.3, "*": 0.5, "*x": 0.5, "a?": 0.5}

# Pattern atoms (one path component, or part of one)
GLOB_ATOMS = [
    "*", "?", "[ab]", "[!a]", "[^a]", "[a-c]", "*.c", "*.o", "a*", "*a*",
    "**a**", "b?", "?.c", "x[0-9]", "foo*", "*o", ".*", "[.]*", "*[!c]",
    "[^.]*", "a.?", "*-*", "[[]x]", "??", "*b", "a**", "**o",
    # class corner cases: ']' first, '-' last, POSIX class, escaped ']'
    "[a-]", "[]x]", "[!]]*", "x[[:digit:]]", "[\\]]*",
]
ESCAPED_ATOMS = ["\\*", "\\*x", "\\[x]", "a\\?", "\\a*", "\\.*", "a\\*", "\\a\\b",
                 "a\\b", "a\\\\b", "a\\\\b*"]


def weighted_name(rng):
    while True:
        n = rng.choice(NAMES)
        if rng.random() < NAME_WEIGHTS.get(n, 1.0):
            return n


# --------------------------------------------------------------------------
# trees

def gen_tree(rng, root):
    """Create a random tree under root (which exists); return its keys
    (directories with a trailing '/') and the set of names used."""
    target = rng.randint(30, 80)
    dirs = [""]  # "" = the root; others end in '/'
    children = {"": set()}
    keys = []
    tries = 0
    while len(keys) < target and tries < 2000:
        tries += 1
        # favour recent (deeper) directories a little, so trees get nested
        if rng.random() < 0.4:
            parent = dirs[-1 - rng.randrange(min(len(dirs), 4))]
        else:
            parent = rng.choice(dirs)
        depth = parent.count("/")
        name = weighted_name(rng)
        if name in children[parent]:
            continue
        children[parent].add(name)
        path = parent + name
        if depth < 4 and rng.random() < 0.38:
            os.mkdir(os.path.join(root, path))
            key = path + "/"
            dirs.append(key)
            children[key] = set()
        else:
            with open(os.path.join(root, path), "wb") as f:
                f.write(b"x" * rng.randrange(0, 40))
            key = path
        keys.append(key)
    used = sorted({k.rstrip("/").rsplit("/", 1)[-1] for k in keys})
    return sorted(keys), used


# --------------------------------------------------------------------------
# rules

def gen_component(rng, names, last):
    r = rng.random()
    if r < 0.45:
        return rng.choice(names)
    if r < 0.85:
        return rng.choice(GLOB_ATOMS)
    if r < 0.93:
        return "**"
    if r < 0.97 or not last:
        return rng.choice(ESCAPED_ATOMS)
    return rng.choice(names) + rng.choice(["*", "?", "[a-z]"])


def gen_pattern(rng, names):
    r = rng.random()
    # some shapes that are common in real use
    if r < 0.04:
        return "*/"
    if r < 0.07:
        return "*"
    if r < 0.10:
        return "**/" + rng.choice(names)
    if r < 0.13:
        return rng.choice(names) + "/**"
    if r < 0.16:
        return rng.choice(names) + "/***"
    if r < 0.18:
        return "/" + rng.choice(names) + "/*"
    n = rng.choices([1, 2, 3, 4], weights=[55, 28, 13, 4])[0]
    comps = [gen_component(rng, names, i == n - 1) for i in range(n)]
    p = "/".join(comps)
    if rng.random() < 0.22:
        p = "/" + p
    t = rng.random()
    if t < 0.2:
        p += "/"
    elif t < 0.26 and not p.endswith("**"):
        p += "/***"
    return p


def gen_rules(rng, names):
    """A list of (kind, pattern), kind 'include' or 'exclude'."""
    n = rng.choices([1, 2, 3, 4, 5, 6], weights=[20, 25, 20, 15, 10, 10])[0]
    rules = []
    for _ in range(n):
        kind = "include" if rng.random() < 0.4 else "exclude"
        rules.append((kind, gen_pattern(rng, names)))
    # the classic idioms, now and then
    r = rng.random()
    if r < 0.08:
        rules.insert(0, ("include", "*/"))
        rules.append(("exclude", "*"))
    elif r < 0.12:
        rules.append(("exclude", "*"))
    # most cases need an exclude for the includes to matter
    if all(k == "include" for k, _ in rules) and rng.random() < 0.9:
        i = rng.randrange(len(rules))
        rules[i] = ("exclude", rules[i][1])
    return rules


def rules_sm_args(rules):
    out = []
    for kind, p in rules:
        out += ["--" + kind, p]
    return out


def rules_rsync_args(rules):
    # --opt=P so a pattern can never be read as an option
    return ["--%s=%s" % (kind, p) for kind, p in rules]


def rules_shell(rules):
    return " ".join("--%s %s" % (k, shlex.quote(p)) for k, p in rules)


# --------------------------------------------------------------------------
# running the two tools

def sm_unescape(s):
    """Undo syncmgr's key escaping in log/plan lines (\\\\ \\n \\t \\r \\xHH)."""
    if "\\" not in s:
        return s
    out = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            d = s[i + 1]
            if d == "\\":
                out.append("\\"); i += 2; continue
            if d in "ntr":
                out.append({"n": "\n", "t": "\t", "r": "\r"}[d]); i += 2; continue
            if d == "x" and i + 4 <= len(s):
                out.append(chr(int(s[i + 2:i + 4], 16))); i += 4; continue
        out.append(c)
        i += 1
    return "".join(out)


RETRIES = {"rsync timeouts": 0}


def run(cmd, retry_timeout=False):
    """(exit status or None, stdout, stderr).  retry_timeout: run a command
    that timed out once more (for rsync, the oracle: a rare hang of rsync's
    dry run is not a verdict on syncmgr; a syncmgr hang is a failure)."""
    err = None
    for attempt in range(4):
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=TIMEOUT)
            return p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired:
            if retry_timeout and attempt == 0:
                RETRIES["rsync timeouts"] += 1
                continue
            return None, b"", b"timed out after %d s" % TIMEOUT
        except OSError as e:
            # the binary cannot be executed (being rebuilt: EACCES/ETXTBSY):
            # not a verdict on syncmgr, so wait and try again a few times
            err = e
            time.sleep(1 + attempt)
    return None, b"", ("cannot run %s: %s" % (cmd[0], err)).encode()


def rsync_set(rules, src, dst):
    rc, out, err = run(["rsync", "-r", "--dry-run", "--out-format=%n"]
                       + rules_rsync_args(rules) + [src + "/", dst + "/"],
                       retry_timeout=True)
    if rc != 0:
        return None, "rsync exit %s: %s" % (rc, err.decode(errors="replace").strip())
    keys = set()
    for line in out.decode("utf-8", "surrogateescape").split("\n"):
        if line == "" or line == "./":
            continue
        keys.add(line)
    return keys, None


def sm_set_dry(sm, rules, src, dst):
    rc, out, err = run([sm, "--dirs", "--dry"] + rules_sm_args(rules)
                       + [src + "/", dst + "/"])
    if rc != 0:
        return None, "syncmgr exit %s: %s" % (rc, err.decode(errors="replace").strip()[-2000:])
    keys = set()
    odd = []
    for line in out.decode("utf-8", "surrogateescape").split("\n"):
        if line == "":
            continue
        if line.startswith("copy "):
            keys.add(sm_unescape(line[5:]))
        else:
            odd.append(line)
    if odd:
        return None, "syncmgr printed unexpected stdout lines: %r" % odd[:5]
    return keys, None


def sm_set_match(sm, rules, keys):
    rc, out, err = run([sm, "match"] + rules_sm_args(rules) + list(keys))
    if rc != 0:
        return None, "syncmgr match exit %s: %s" % (rc, err.decode(errors="replace").strip()[-2000:])
    got = set()
    seen = 0
    for line in out.decode("utf-8", "surrogateescape").split("\n"):
        if line.startswith("keep "):
            got.add(sm_unescape(line[5:]))
            seen += 1
        elif line.startswith("exclude "):
            seen += 1
    if seen != len(keys):
        return None, "syncmgr match printed %d verdicts for %d keys" % (seen, len(keys))
    return got, None


# --------------------------------------------------------------------------

class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.failures = []
        self.done = 0
        self.nontrivial = 0  # cases where rsync kept some keys and excluded others
        self.empty = 0       # cases where rsync kept nothing
        self.stop = threading.Event()


def check(args, sm, rules, keys, src, dst):
    """Run both tools on one rule list; (ok, want, got, err1, err2)."""
    want, err1 = rsync_set(rules, src, dst)
    if args.via_match:
        got, err2 = sm_set_match(sm, rules, keys)
    else:
        got, err2 = sm_set_dry(sm, rules, src, dst)
        # a dry run must not touch DST
        left = os.listdir(dst)
        if left:
            err2 = (err2 or "") + " (syncmgr --dry wrote into DST: %r)" % left
            shutil.rmtree(dst)
            os.makedirs(dst)
    return err1 is None and err2 is None and want == got, want, got, err1, err2


def shrink(args, sm, rules, keys, src, dst):
    """Drop rules one at a time while the case still fails the same way
    (a selection difference stays a difference); return the smallest list."""
    cur = list(rules)
    changed = True
    while changed and len(cur) > 1:
        changed = False
        for i in range(len(cur)):
            trial = cur[:i] + cur[i + 1:]
            ok, want, got, e1, e2 = check(args, sm, trial, keys, src, dst)
            if not ok and e1 is None and e2 is None:
                cur = trial
                changed = True
                break
    if len(cur) == len(rules):
        return None
    ok, want, got, e1, e2 = check(args, sm, cur, keys, src, dst)
    return cur, want, got


def run_batch(args, sm, tmp, batch, cases, st):
    """One tree, the given case numbers on it."""
    tdir = os.path.join(tmp, "t%d" % batch)
    src = os.path.join(tdir, "src")
    dst = os.path.join(tdir, "dst")
    os.makedirs(src)
    os.makedirs(dst)
    try:
        keys, names = gen_tree(random.Random("%s/tree/%d" % (args.seed, batch)), src)
        for case in cases:
            if st.stop.is_set():
                return
            rules = gen_rules(random.Random("%s/case/%d" % (args.seed, case)), names)
            ok, want, got, err1, err2 = check(args, sm, rules, keys, src, dst)
            small = None
            if not ok and err1 is None and err2 is None and len(st.failures) < args.max_failures:
                small = shrink(args, sm, rules, keys, src, dst)
            with st.lock:
                st.done += 1
                if want is not None:
                    if not want:
                        st.empty += 1
                    elif len(want) < len(keys):
                        st.nontrivial += 1
                if args.verbose:
                    print("case %d: %s -> rsync %s keys, syncmgr %s" % (
                        case, rules_shell(rules), len(want) if want is not None else "?",
                        len(got) if got is not None else "?"), flush=True)
                if not ok and len(st.failures) < args.max_failures:
                    st.failures.append((case, rules, keys, want, got, err1, err2, small))
                    report_failure(args, st.failures[-1])
                    if len(st.failures) >= args.max_failures:
                        st.stop.set()
    finally:
        shutil.rmtree(tdir, ignore_errors=True)


def report_failure(args, f):
    case, rules, keys, want, got, err1, err2, small = f
    w = sys.stdout
    w.write("FAIL [%s]: seed %s case %d: %s\n" % (NAME, args.seed, case,
                                                  "tool error" if (err1 or err2) else "selections differ"))
    w.write("  rules: %s\n" % rules_shell(rules))
    w.write("  rerun: SYNCMGR=... %s %s --seed %s --case %d%s\n" % (
        sys.executable, shlex.quote(os.path.abspath(__file__)), args.seed, case,
        " --via-match" if args.via_match else ""))
    if err1:
        w.write("  rsync error: %s\n" % err1)
    if err2:
        w.write("  syncmgr error: %s\n" % err2)
    if want is not None and got is not None:
        w.write("  only in rsync:   %s\n" % " ".join(shlex.quote(k) for k in sorted(want - got)))
        w.write("  only in syncmgr: %s\n" % " ".join(shlex.quote(k) for k in sorted(got - want)))
    if small:
        r2, w2, g2 = small
        w.write("  fewest rules that still differ: %s\n" % rules_shell(r2))
        w.write("    only in rsync:   %s\n" % " ".join(shlex.quote(k) for k in sorted(w2 - g2)))
        w.write("    only in syncmgr: %s\n" % " ".join(shlex.quote(k) for k in sorted(g2 - w2)))
    w.write("  tree (%d keys): %s\n" % (len(keys), " ".join(shlex.quote(k) for k in keys)))
    w.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", default=str(DEFAULT_SEED))
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--case", type=int, default=None, help="run only this case number")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--max-failures", type=int, default=MAX_FAILURES,
                    help="stop after this many failing cases (default %d)" % MAX_FAILURES)
    ap.add_argument("--via-match", action="store_true",
                    help="ask `syncmgr match` instead of a --dirs --dry run (diagnostic)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    sm = os.environ.get("SYNCMGR", "")
    if not sm or not os.access(sm, os.X_OK):
        print("FAIL [%s]: set SYNCMGR to the syncmgr binary (got %r)" % (NAME, sm), file=sys.stderr)
        return 1
    sm = os.path.abspath(sm)
    if shutil.which("rsync") is None:
        print("FAIL [%s]: rsync is not installed" % NAME, file=sys.stderr)
        return 1

    t0 = time.monotonic()
    if args.case is not None:
        cases = [args.case]
    else:
        cases = list(range(args.cases))
    batches = {}
    for c in cases:
        batches.setdefault(c // TREE_EVERY, []).append(c)

    st = State()
    tmp = tempfile.mkdtemp(prefix="sm-e2e-%s." % NAME)
    try:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
            futs = [ex.submit(run_batch, args, sm, tmp, b, cs, st) for b, cs in sorted(batches.items())]
            for f in futs:
                f.result()
    except KeyboardInterrupt:
        st.stop.set()
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    dt = time.monotonic() - t0
    if RETRIES["rsync timeouts"]:
        print("  note: %d rsync run(s) timed out after %d s and were run again" % (
            RETRIES["rsync timeouts"], TIMEOUT))
    mode = "syncmgr match" if args.via_match else "syncmgr --dirs --dry"
    if st.failures:
        try:
            v = subprocess.run(["rsync", "--version"], stdout=subprocess.PIPE,
                               timeout=TIMEOUT).stdout.decode(errors="replace").split("\n")[0]
        except (OSError, subprocess.TimeoutExpired):
            v = "rsync version unknown"
        print("  (%s; syncmgr %s)" % (v.strip(), sm))
        print("FAIL [%s]: %d failing case(s) (stopping at %d) of %d run, seed %s, %s vs rsync -r (%.0f s)" % (
            NAME, len(st.failures), args.max_failures, st.done, args.seed, mode, dt))
        return 1
    print("PASS [%s] %d cases on %d trees, seed %s, %s vs rsync -r; %d partial selections, "
          "%d empty (%.0f s)" % (NAME, st.done, len(batches), args.seed, mode,
                                 st.nontrivial, st.empty, dt))
    return 0


if __name__ == "__main__":
    sys.exit(main())
