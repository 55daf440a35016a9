#!/usr/bin/python3
"""Seeded, cheap test-tree generator for tests/bench/local.sh.

  gen.py small DIR --files N --dirs D [--min-size B] [--max-size B] [--seed S]
      N files with sizes uniform in [min, max] bytes, spread evenly over D
      directories (DIR/d0000/f000000 ...).
  gen.py large DIR --files N --size B [--seed S]
      N files of B bytes each directly in DIR (DIR/f00 ...).
  gen.py empty DIR --files N --dirs D
      N empty files spread evenly over D directories.
  gen.py dirs DIR --files N --dirs D
      N empty directories spread evenly over D directories (DIR/d0000/e000000
      ...; "FILES" counts all N + D of them).

Contents come from random.Random(seed).randbytes(): reproducible and
incompressible, without the CPU cost of os.urandom / crypto.  Prints
"FILES BYTES" (what was written) on stdout.
"""
import argparse
import os
import random
import sys

CHUNK = 4 << 20


def spread(root, files, dirs):
    """Yield (path, index) with files spread evenly over dirs."""
    dirs = max(1, min(dirs, files)) if files else 1
    made = set()
    for i in range(files):
        d = i * dirs // files
        dpath = os.path.join(root, "d%04d" % d)
        if d not in made:
            os.makedirs(dpath, exist_ok=True)
            made.add(d)
        yield os.path.join(dpath, "f%06d" % i), i


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=["small", "large", "empty", "dirs"])
    p.add_argument("dir")
    p.add_argument("--files", type=int, required=True)
    p.add_argument("--dirs", type=int, default=1)
    p.add_argument("--min-size", type=int, default=512)
    p.add_argument("--max-size", type=int, default=8192)
    p.add_argument("--size", type=int, default=0)
    p.add_argument("--seed", type=int, default=20240601)
    a = p.parse_args()

    rng = random.Random(a.seed)
    os.makedirs(a.dir, exist_ok=True)
    total = 0
    if a.kind == "small":
        for path, _ in spread(a.dir, a.files, a.dirs):
            n = rng.randint(a.min_size, a.max_size)
            with open(path, "wb") as f:
                f.write(rng.randbytes(n))
            total += n
    elif a.kind == "empty":
        for path, _ in spread(a.dir, a.files, a.dirs):
            open(path, "wb").close()
    elif a.kind == "dirs":
        parents = set()
        for path, _ in spread(a.dir, a.files, a.dirs):
            os.mkdir(os.path.join(os.path.dirname(path), "e" + os.path.basename(path)[1:]))
            parents.add(os.path.dirname(path))
        print(a.files + len(parents), 0)
        return 0
    else:
        for i in range(a.files):
            left = a.size
            with open(os.path.join(a.dir, "f%02d" % i), "wb") as f:
                while left > 0:
                    n = min(left, CHUNK)
                    f.write(rng.randbytes(n))
                    left -= n
            total += a.size
    print(a.files, total)


if __name__ == "__main__":
    sys.exit(main())
