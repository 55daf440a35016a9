#!/usr/bin/python3
"""Seeded random trees for the syncmgr end-to-end tests.

    gentree.py gen    --seed N --out DIR [--files N] [--no-newline]
        A SRC tree: nested dirs (depth <= 4), empty dirs, files of 0-20 KiB of
        random bytes, odd names (spaces, UTF-8, a newline, a-b / a.b/ / a/ / a0 /
        ab/ that stress the byte order), relative symlinks to files and to dirs
        (none dangling, no cycles), random modes, whole-second mtimes.

    gentree.py mutate --seed N --src SRC --out DST [--follow] [--same-size] [--times]
        A pre-existing DST derived from SRC: copy of SRC (symlinks kept, or
        resolved with --follow, which is what a sync following links produces)
        with some files deleted, resized or chmod'ed, dirs deleted or chmod'ed,
        symlinks retargeted, and DST-only files, dirs and symlinks added.
        --same-size also rewrites some files keeping their size (only a content
        or time based check can see those); --times makes some DST files newer
        and some older than SRC (+-1 h).  Changed sizes always change.

    gentree.py order  --out DIR [--many N]
        The byte-order stress tree used by order.sh (deterministic).

Every run with the same arguments produces the same tree.
"""
import argparse
import os
import random
import shutil
import stat
import sys

FILE_MODES = [0o600, 0o640, 0o644, 0o755, 0o700]
DIR_MODES = [0o755, 0o750, 0o700]
BASE_MTIME = 1_600_000_000  # 2020-09-13, whole seconds

PLAIN = ["alpha", "beta", "gamma", "delta", "data", "x", "y", "z", "log", "img",
         "v1", "v2", "README", "notes.txt", "file.bin", "Zed", "_under", "~tilde",
         "UPPER", "mixed.Case"]
ODD = ["with space", "trailing space ", " lead", "é.txt", "日本", "日本語.txt",
       "naïve café", "a+b", "semi;colon", "quote'1", "dash-", "#hash", "%pct",
       "[br]", "emoji😀", "tab\there"]


def rand_bytes(rng, n):
    return rng.randbytes(n)


def rand_size(rng):
    r = rng.random()
    if r < 0.08:
        return 0
    if r < 0.3:
        return rng.randint(1, 200)
    return rng.randint(1, 20 * 1024)


def write_file(path, data, mode, mtime):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    os.utime(path, (mtime, mtime))


class Gen:
    def __init__(self, seed, root, nfiles, newline):
        self.rng = random.Random(seed)
        self.root = root
        self.nfiles = nfiles
        self.newline = newline
        self.dirs = [""]            # relative dir paths, "" = root
        self.files = []             # relative file paths
        self.link_free = set()      # dirs whose subtrees never get symlinks
        self.keep_empty = set()     # dirs that stay empty
        self.used = {"": set()}     # names used per dir

    def p(self, rel):
        return os.path.join(self.root, rel) if rel else self.root

    def depth(self, rel):
        return 0 if rel == "" else rel.count("/") + 1

    def fresh(self, parent, pool=None):
        rng = self.rng
        used = self.used[parent]
        for _ in range(100):
            r = rng.random()
            if pool is not None:
                name = rng.choice(pool)
            elif r < 0.6:
                name = rng.choice(PLAIN)
            elif r < 0.85:
                name = rng.choice(ODD)
            else:
                name = "n%d" % rng.randint(0, 9999)
            if rng.random() < 0.3:
                name = name + rng.choice(["", "-1", ".1", "_2", "0"])
            if name not in used:
                used.add(name)
                return name
        name = "u%d" % len(used)
        while name in used:
            name += "_"
        used.add(name)
        return name

    def mkdir(self, rel):
        os.mkdir(self.p(rel))
        self.used[rel] = set()
        self.dirs.append(rel)

    def mkfile(self, rel, size=None):
        if size is None:
            size = rand_size(self.rng)
        write_file(self.p(rel), rand_bytes(self.rng, size), self.rng.choice(FILE_MODES),
                   BASE_MTIME + self.rng.randint(0, 10_000_000))
        self.files.append(rel)

    def join(self, parent, name):
        return parent + "/" + name if parent else name

    def add_fixed(self):
        # names that stress the byte order: '-' 0x2d < '.' 0x2e < '/' 0x2f < '0' 0x30
        for name in ["a", "a.b", "ab"]:
            self.used[""].add(name)
            self.mkdir(name)
        for name in ["a-b", "a0", "a b", "with space.txt", "é.txt", "z"]:
            self.used[""].add(name)
            self.mkfile(name)
        self.used[""].add("日本")
        self.mkdir("日本")
        self.used["日本"].add("日本語.txt")
        self.mkfile("日本/日本語.txt")
        if self.newline:
            self.used[""].add("new\nline")
            self.mkfile("new\nline")
        # the mirror image inside a/: files a, a.b; dir a-b/
        self.used["a"].update(["a", "a.b", "a-b", "a0"])
        self.mkfile("a/a")
        self.mkfile("a/a.b")
        self.mkdir("a/a-b")
        self.mkfile("a/a0")
        self.used["a/a-b"].add("x")
        self.mkfile("a/a-b/x")
        self.used["a.b"].add("f")
        self.mkfile("a.b/f")
        self.used["ab"].add("g")
        self.mkfile("ab/g")
        # empty dirs, one nested
        for rel in ["empty", "a/empty dir", "ab/e1"]:
            self.used[rel.rsplit("/", 1)[0] if "/" in rel else ""].add(rel.rsplit("/", 1)[-1])
            self.mkdir(rel)
        self.used["ab/e1"].add("e2")
        self.mkdir("ab/e1/e2")
        self.keep_empty.update(["empty", "a/empty dir", "ab/e1/e2"])
        # a subtree that will be the target of dir symlinks (never contains links)
        self.used[""].add("target")
        self.mkdir("target")
        self.used["target"].update(["t1", "sub"])
        self.mkfile("target/t1")
        self.mkdir("target/sub")
        self.used["target/sub"].add("t2")
        self.mkfile("target/sub/t2")
        self.link_free.add("target")

    def add_random(self):
        rng = self.rng
        ndirs = max(4, self.nfiles // 8)
        for _ in range(ndirs):
            parent = rng.choice([d for d in self.dirs
                                 if self.depth(d) < 4 and d not in self.keep_empty])
            self.mkdir(self.join(parent, self.fresh(parent)))
        # a few more link-free dirs (symlink targets)
        for d in rng.sample(self.dirs[1:], min(3, len(self.dirs) - 1)):
            if not self.in_link_free(d) and not self.has_link_free_below(d):
                self.link_free.add(d)
        full = [d for d in self.dirs if d not in self.keep_empty]
        while len(self.files) < self.nfiles:
            parent = rng.choice(full)
            if rng.random() < 0.15:
                continue  # leave some dirs sparse
            self.mkfile(self.join(parent, self.fresh(parent)))

    def in_link_free(self, rel):
        return any(rel == t or rel.startswith(t + "/") for t in self.link_free)

    def has_link_free_below(self, rel):
        return any(t.startswith(rel + "/") for t in self.link_free)

    def add_links(self):
        rng = self.rng
        homes = [d for d in self.dirs
                 if not self.in_link_free(d) and d not in self.keep_empty]
        # links to files
        nlinks = max(3, self.nfiles // 25)
        for _ in range(nlinks):
            home = rng.choice(homes)
            target = rng.choice(self.files)
            rel_target = os.path.relpath(target, home or ".")
            name = self.fresh(home, ["lnk", "link to file", "ln-é", "lf", "ref"])
            os.symlink(rel_target, self.p(self.join(home, name)))
        # links to dirs: target is a link-free dir that is not an ancestor of home
        targets = sorted(d for d in self.dirs if d and self.in_link_free(d))
        for _ in range(max(2, self.nfiles // 60)):
            home = rng.choice(homes)
            target = rng.choice(targets)
            if home == target or home.startswith(target + "/"):
                continue
            rel_target = os.path.relpath(target, home or ".")
            name = self.fresh(home, ["dlink", "dir link", "dl-1", "dl.x"])
            os.symlink(rel_target, self.p(self.join(home, name)))
        os.symlink("a-b", self.p("a.lnk"))
        os.symlink("target", self.p("a.dlnk"))

    def finish(self):
        rng = self.rng
        for d in sorted(self.dirs, key=lambda s: -self.depth(s)):
            if d:
                os.chmod(self.p(d), rng.choice(DIR_MODES))
                t = BASE_MTIME + rng.randint(0, 10_000_000)
                os.utime(self.p(d), (t, t))
        os.chmod(self.root, 0o755)

    def run(self):
        os.makedirs(self.root, exist_ok=False)
        os.chmod(self.root, 0o755)
        self.add_fixed()
        self.add_random()
        self.add_links()
        self.finish()


def walk(root):
    """Yield (rel, lstat) for every entry below root, sorted."""
    out = []

    def rec(rel):
        full = os.path.join(root, rel) if rel else root
        for name in sorted(os.listdir(full)):
            r = rel + "/" + name if rel else name
            st = os.lstat(os.path.join(root, r))
            out.append((r, st))
            if stat.S_ISDIR(st.st_mode):
                rec(r)
    rec("")
    return out


def mutate(args):
    rng = random.Random(args.seed * 7919 + 17)
    src, dst = args.src, args.out
    shutil.copytree(src, dst, symlinks=not args.follow, copy_function=shutil.copy2)
    os.chmod(dst, 0o755)
    gone = set()

    def dead(rel):
        return any(rel == g or rel.startswith(g + "/") for g in gone)

    entries = walk(dst)
    for rel, st in entries:
        if dead(rel):
            continue
        p = os.path.join(dst, rel)
        r = rng.random()
        if stat.S_ISREG(st.st_mode):
            if r < 0.10:
                os.unlink(p)
                gone.add(rel)
                continue
            if r < 0.22:
                n = st.st_size
                if n > 0 and rng.random() < 0.5:
                    new = rng.randint(0, n - 1)
                    with open(p, "r+b") as f:
                        f.truncate(new)
                else:
                    with open(p, "ab") as f:
                        f.write(rand_bytes(rng, rng.randint(1, 500)))
                os.utime(p, (st.st_mtime, st.st_mtime))
            elif args.same_size and r < 0.32 and st.st_size > 0:
                with open(p, "r+b") as f:
                    data = bytearray(f.read())
                    i = rng.randrange(len(data))
                    data[i] ^= 0xFF
                    f.seek(0)
                    f.write(data)
                # older than SRC, so --update copies it too
                os.utime(p, (st.st_mtime - 3600, st.st_mtime - 3600))
            elif r < 0.40:
                os.chmod(p, rng.choice([m for m in FILE_MODES if m != stat.S_IMODE(st.st_mode)]))
            elif not args.follow and r < 0.43:
                # a symlink where SRC has a file (never the same size)
                target = "a-b" if "/" not in rel else "../" * rel.count("/") + "a-b"
                if len(target) != st.st_size:
                    os.unlink(p)
                    os.symlink(target, p)
                    continue
            if args.times:
                q = rng.random()
                cur = os.lstat(p).st_mtime
                if q < 0.2:
                    os.utime(p, (cur + 3600, cur + 3600))
                elif q < 0.4:
                    os.utime(p, (cur - 3600, cur - 3600))
        elif stat.S_ISLNK(st.st_mode):
            tgt = os.readlink(p)
            if r < 0.10:
                os.unlink(p)
                gone.add(rel)
            elif r < 0.30:
                os.unlink(p)
                os.symlink("./" + tgt, p)  # same meaning, different length
            elif r < 0.40:
                os.unlink(p)
                write_file(p, rand_bytes(rng, len(tgt) + 1 + rng.randint(0, 50)), 0o644,
                           BASE_MTIME)
        elif stat.S_ISDIR(st.st_mode):
            if r < 0.05:
                shutil.rmtree(p)
                gone.add(rel)
            elif r < 0.15:
                os.chmod(p, rng.choice([m for m in DIR_MODES if m != stat.S_IMODE(st.st_mode)]))

    # DST-only entries
    dirs = [""] + [rel for rel, st in walk(dst) if stat.S_ISDIR(st.st_mode)]
    files = [rel for rel, st in walk(dst) if stat.S_ISREG(st.st_mode)]

    def j(parent, name):
        return parent + "/" + name if parent else name

    def free_name(parent, base):
        name, i = base, 0
        while os.path.lexists(os.path.join(dst, j(parent, name))):
            i += 1
            name = "%s%d" % (base, i)
        return j(parent, name)

    for i in range(15):
        parent = rng.choice(dirs)
        rel = free_name(parent, rng.choice(["dst only", "dst-only", "dst.only", "extra é", "zz"]))
        write_file(os.path.join(dst, rel), rand_bytes(rng, rand_size(rng)),
                   rng.choice(FILE_MODES), BASE_MTIME + rng.randint(0, 10_000_000))
    for i in range(3):
        parent = rng.choice(dirs)
        rel = free_name(parent, rng.choice(["dst dir", "dstdir", "a.dst"]))
        os.mkdir(os.path.join(dst, rel))
        if i > 0:
            write_file(os.path.join(dst, rel, "inner"), rand_bytes(rng, 100), 0o644, BASE_MTIME)
            os.mkdir(os.path.join(dst, rel, "deeper"))
            write_file(os.path.join(dst, rel, "deeper", "leaf"), rand_bytes(rng, 10), 0o600,
                       BASE_MTIME)
    for i in range(3):
        parent = rng.choice(dirs)
        rel = free_name(parent, rng.choice(["dst link", "dstlnk", "a.lnk2"]))
        target = rng.choice(files)
        os.symlink(os.path.relpath(target, parent or "."), os.path.join(dst, rel))
    if not args.follow:
        # a DST-only symlink to a directory: deleting it must not touch the target
        rel = free_name("", "zz dir link")
        os.symlink("a", os.path.join(dst, rel))


def order(args):
    root = args.out
    os.makedirs(root)

    def f(rel, data=None):
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as fh:
            fh.write(data if data is not None else (rel + "\n").encode())

    def d(rel):
        os.makedirs(os.path.join(root, rel), exist_ok=True)

    # root: file a-b, dirs a.b/ a/ ab/, file a0; the '/'-appended order is
    # "a b" < "a-b" < "a.b/" < "a/" < "a0" < "ab/"
    for name in ["a b", "a-b", "a0", "a\nb", "é", "e", "日本", "z", "~", "A", "-", "0"]:
        f(name)
    for name in ["a.b/x", "a/x", "a/y", "ab/x", "a.b/a.b/x", "a/a/a", "a/a-b/q"]:
        f(name)
    d("a/a.b")          # empty dirs inside the tricky names
    d("ab/empty")
    # the mirror image one level down: dirs a-b/, files a, a.b
    for name in ["x/a", "x/a.b", "x/a0", "x/a-b/inner", "x/ab", "x/a b/inner"]:
        f(name)
    # many entries in one dir, with interleaved dirs so that task / batch
    # boundaries fall between names that only differ in '-', '.', '/', '0'
    for i in range(args.many):
        n = "%04d" % i
        if i % 97 == 0:
            f("big/%s/inside" % n)
            f("big/%s-a" % n)
            f("big/%s.a" % n)
            f("big/%s0" % n)
        elif i % 31 == 0:
            d("big/%s" % n)  # empty dir
            f("big/%s.d" % n)
        else:
            f("big/%s" % n)
    os.symlink("a-b", os.path.join(root, "a.lnk"))
    os.symlink("x", os.path.join(root, "x.dlnk"))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--seed", type=int, required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--files", type=int, default=200)
    g.add_argument("--no-newline", action="store_true")
    m = sub.add_parser("mutate")
    m.add_argument("--seed", type=int, required=True)
    m.add_argument("--src", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--follow", action="store_true")
    m.add_argument("--same-size", action="store_true")
    m.add_argument("--times", action="store_true")
    o = sub.add_parser("order")
    o.add_argument("--out", required=True)
    o.add_argument("--many", type=int, default=3000)
    args = ap.parse_args()
    if args.cmd == "gen":
        Gen(args.seed, args.out, args.files, not args.no_newline).run()
    elif args.cmd == "mutate":
        mutate(args)
    else:
        order(args)


if __name__ == "__main__":
    sys.exit(main())
