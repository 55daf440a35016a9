#!/usr/bin/python3
"""syncmgr against rsync on small random trees that change between runs.

    tree_random.py --syncmgr BIN --work DIR [--seeds 1-200] [--runs 3]

For each seed: a small random SRC tree (files, directories, symlinks, odd
modes, nanosecond mtimes; as root, other owners too), then `--runs` rounds:
syncmgr syncs SRC into one DST, rsync into another, and the two must be equal
(type, contents, symlink targets, modes, owners as root, mtimes of files,
directories and symlinks, the root included); then SRC changes at random,
with transitions between file, directory and symlink at the same path. After
the last round a further syncmgr run must report nothing to do and change
nothing at all (not even a ctime).

    syncmgr --dirs --links --perms --delete-dst SRC/ DST/
    rsync   -rlpt --delete [-og as root] SRC/ DST/

Prints one line per failing seed and exits 1 if any failed.
"""
import argparse
import os
import random
import shutil
import stat
import subprocess
import sys

NAMES = ["a", "b", "c", "a.b", "a-b", "a b", "é", "d"]
FILE_MODES = [0o644, 0o600, 0o755, 0o640, 0o444, 0o700, 0o4755, 0o2750, 0o1777]
DIR_MODES = [0o755, 0o700, 0o750, 0o555, 0o2775, 0o1777]
ROOT = os.geteuid() == 0
OWNERS = [(0, 0), (65534, 65534), (0, 65534), (65534, 0)]


def rand_time(rng):
    return rng.randint(1_000_000_000, 1_700_000_000) * 10**9 + rng.randint(0, 10**9 - 1)


def set_attrs(rng, path, mode=None, link=False):
    if ROOT and rng.random() < 0.3:
        uid, gid = rng.choice(OWNERS)
        os.lchown(path, uid, gid)
    if not link:
        os.chmod(path, mode)
    t = rand_time(rng)
    os.utime(path, ns=(t, t), follow_symlinks=not link)


# the sizes of the files before a round of changes (see make_file)
OLD_SIZES = {}


def make_file(rng, path):
    # (a file replaced by one of the same size is not copied: syncmgr
    # compares sizes, as juicefs sync does)
    not_size = OLD_SIZES.get(path, -1)
    size = rng.choice([n for n in (0, 1, 7, 100, 300) if n != not_size])
    with open(path, "wb") as f:
        f.write(rng.randbytes(size))
    set_attrs(rng, path, rng.choice(FILE_MODES))


def make_link(rng, path):
    target = rng.choice(NAMES + ["../" + rng.choice(NAMES), "nowhere", "a/b"])
    os.symlink(target, path)
    set_attrs(rng, path, link=True)


def make_dir(rng, path, depth):
    os.mkdir(path)
    for name in rng.sample(NAMES, rng.randint(0, 4 if depth < 3 else 0)):
        make_entry(rng, os.path.join(path, name), depth + 1)
    # modes and times once the children are in (a 0555 directory, too)
    set_attrs(rng, path, rng.choice(DIR_MODES))


def make_entry(rng, path, depth):
    r = rng.random()
    if r < 0.5 or depth >= 3:
        make_file(rng, path) if rng.random() < 0.8 else make_link(rng, path)
    else:
        make_dir(rng, path, depth)


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        for root, dirs, _ in os.walk(path):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o700)
        os.chmod(path, 0o700)
        shutil.rmtree(path)
    else:
        os.unlink(path)


def entries(root):
    out = []
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            out.append(os.path.join(d, n))
    return sorted(out)


def mutate(rng, root):
    """A few random changes, many of them changes of type at one path."""
    OLD_SIZES.clear()
    for e in entries(root):
        st = os.lstat(e)
        if stat.S_ISREG(st.st_mode):
            OLD_SIZES[e] = st.st_size
    for _ in range(rng.randint(1, 6)):
        ents = entries(root)
        # a writable parent for the change: directories are 0555 at times
        if not ents or rng.random() < 0.15:
            parent = rng.choice([root] + [e for e in ents if os.path.isdir(e) and not os.path.islink(e)])
            path = os.path.join(parent, rng.choice(NAMES))
            pmode = stat.S_IMODE(os.stat(parent).st_mode)
            os.chmod(parent, pmode | 0o700)
            if not os.path.lexists(path):
                make_entry(rng, path, path[len(root):].count("/"))
            os.chmod(parent, pmode)
            continue
        path = rng.choice(ents)
        parent = os.path.dirname(path)
        pmode = stat.S_IMODE(os.stat(parent).st_mode)
        os.chmod(parent, pmode | 0o700)
        st = os.lstat(path)
        depth = path[len(root):].count("/")
        op = rng.choice(["delete", "retype", "retype", "retype", "content", "mode", "time", "owner"])
        if op == "delete":
            remove(path)
        elif op == "retype":
            remove(path)
            kind = rng.choice(["file", "dir", "link"])
            if kind == "dir" and depth < 3:
                make_dir(rng, path, depth)
            elif kind == "link":
                make_link(rng, path)
            else:
                make_file(rng, path)
        elif op == "content" and stat.S_ISREG(st.st_mode):
            mode = stat.S_IMODE(st.st_mode)
            os.chmod(path, 0o600)
            with open(path, "ab") as f:
                f.write(b"more")
            os.chmod(path, mode)
            os.utime(path, ns=(st.st_atime_ns, rand_time(rng)))
        elif op == "mode" and not stat.S_ISLNK(st.st_mode):
            os.chmod(path, rng.choice(DIR_MODES if stat.S_ISDIR(st.st_mode) else FILE_MODES))
        elif op == "time" and stat.S_ISDIR(st.st_mode):
            # (a file's or symlink's mtime alone changes nothing: syncmgr
            # compares sizes, as juicefs sync does)
            t = rand_time(rng)
            os.utime(path, ns=(t, t))
        elif op == "owner" and ROOT:
            uid, gid = rng.choice(OWNERS)
            os.lchown(path, uid, gid)
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(path, stat.S_IMODE(st.st_mode))  # chown drops setuid
        if os.path.lexists(parent):
            os.chmod(parent, pmode)
    # Directories written to now get an older mtime: rsync compares a
    # directory's mtime in whole seconds when it sets it again after
    # writing into it, so one in the second of its own run stays as it was.
    for e in [root] + entries(root):
        st = os.lstat(e)
        if stat.S_ISDIR(st.st_mode) and st.st_mtime_ns > 1_700_000_000 * 10**9:
            t = rand_time(rng)
            os.utime(e, ns=(t, t))


def scan(root, ctime=False):
    """Every entry below root and root itself: what both tools must agree on."""
    out = {}
    if not os.path.lexists(root):
        return {"": ("missing",)}

    def one(rel):
        p = os.path.join(root, rel) if rel else root
        st = os.lstat(p)
        m = st.st_mode
        own = (st.st_uid, st.st_gid) if ROOT else None
        extra = (st.st_ctime_ns, st.st_ino) if ctime else None
        if stat.S_ISDIR(m):
            out[rel] = ("dir", stat.S_IMODE(m), own, st.st_mtime_ns, None, extra)
            for n in sorted(os.listdir(p)):
                one(os.path.join(rel, n) if rel else n)
        elif stat.S_ISLNK(m):
            out[rel] = ("symlink", None, own, st.st_mtime_ns, os.readlink(p), extra)
        elif stat.S_ISREG(m):
            with open(p, "rb") as f:
                data = f.read()
            out[rel] = ("file", stat.S_IMODE(m), own, st.st_mtime_ns, data, extra)
        else:
            out[rel] = ("other", None, None, None, None, extra)

    one("")
    return out


def diff(a, b):
    lines = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        if x != y:
            lines.append("%r: %s  vs  %s" % (k or ".", x and x[:4], y and y[:4]))
    return lines


def summary_field(err, name):
    for line in err.splitlines():
        if line.startswith("Found: "):
            for part in line.split(", "):
                if part.startswith(name + ": "):
                    return int(part.split(": ")[1].split()[0])
            return 0
    return None


def one_seed(args, seed):
    rng = random.Random(seed)
    w = os.path.join(args.work, "s%d" % seed)
    src, d1, d2 = w + "/src", w + "/sm", w + "/rsync"
    os.makedirs(w)
    make_dir(rng, src, 0)
    smcmd = [args.syncmgr, "--dirs", "--links", "--perms", "--delete-dst", "-q"]
    rscmd = ["rsync", "-rlpt", "--delete"] + (["-og"] if ROOT else [])
    for run in range(1, args.runs + 1):
        p = subprocess.run(smcmd + [src + "/", d1 + "/"], capture_output=True, text=True)
        if p.returncode != 0:
            return "run %d: syncmgr exit %d: %s" % (run, p.returncode, p.stderr.strip()[-600:])
        r = subprocess.run(rscmd + [src + "/", d2 + "/"], capture_output=True, text=True)
        if r.returncode != 0:
            return "run %d: rsync exit %d: %s" % (run, r.returncode, r.stderr.strip()[-300:])
        dl = diff(scan(d1), scan(d2))
        if dl:
            return "run %d: syncmgr (first) and rsync (second) differ:\n    %s" % (
                run, "\n    ".join(dl[:12]))
        if run < args.runs:
            mutate(rng, src)
    before = scan(d1, ctime=True)
    p = subprocess.run(smcmd[:-1] + [src + "/", d1 + "/"], capture_output=True, text=True)
    if p.returncode != 0:
        return "last run: syncmgr exit %d: %s" % (p.returncode, p.stderr.strip()[-600:])
    for f in ("copied", "deleted", "failed"):
        n = summary_field(p.stderr, f)
        if n != 0:
            return "last run: %s %s, want 0: %s" % (f, n, p.stderr.strip()[-400:])
    dl = diff(before, scan(d1, ctime=True))
    if dl:
        return "last run changed DST:\n    %s" % "\n    ".join(dl[:12])
    remove(w)
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--syncmgr", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--seeds", default="1-200")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    lo, _, hi = args.seeds.partition("-")
    seeds = range(int(lo), int(hi or lo) + 1)
    bad = 0
    for seed in seeds:
        why = one_seed(args, seed)
        if why:
            bad += 1
            print("seed %d: %s" % (seed, why))
    print("%d of %d seeds differ" % (bad, len(seeds)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
