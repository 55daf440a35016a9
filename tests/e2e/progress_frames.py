#!/usr/bin/python3
"""Check the progress display syncmgr wrote, as captured from a pseudo-terminal
(script(1)) or, with --log, from its log lines off a terminal.

On a terminal each frame is one line that the next one overwrites: the frame
text, then "\\r\\033[K" (back to the line's start, clear it). A log line is
written after such a clear and ends in "\\r\\n" (the terminal's newline); the
frame is redrawn after it. So the capture splits at every clear into pieces,
each of which is zero or more whole lines and then one frame.

Checked:
  - every frame is one of: a listing frame (no percentage, no ETA), a
    frame with a percentage and an ETA, a phase frame ("deleting...",
    "syncing DST..."); anything else is garbled output;
  - frames fit the terminal (--width columns);
  - no listing frame after a frame with a percentage (a complete listing
    stays complete);
  - the bytes done, the keys done and the percentage never go down;
  - --between N: at least N distinct byte counts strictly between 0 and
    --total (bytes moving during one large file);
  - --want-listing / --want-percent: at least one frame of that kind;
    --min-frames N: at least N frames.

The other lines (log lines, stdout lines on the same terminal, the summary)
are written to --lines OUT, one a line, for the caller to check. With
--show N, N frames spread over the run are printed, for the README.
"""

import argparse
import re
import sys

UNIT = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
SIZE = r"[0-9.]+ (?:B|KiB|MiB|GiB|TiB)"
LISTING = re.compile(r"^listing\.\.\. found (\d+) \((%s)\), done (\d+) keys, (%s)," % (SIZE, SIZE))
PERCENT = re.compile(
    r"^(\d+)%%, (\d+)/(\d+) keys, (%s)/(%s), (--|%s)/s, ETA (--|\d+s|\d+m\d+s|\d+h\d+m\d+s)"
    % (SIZE, SIZE, SIZE)
)
PHASE = re.compile(r"^(deleting|syncing DST)\.\.\. elapsed ")


def size(text):
    num, unit = text.split(" ")
    return float(num) * UNIT[unit]


def split_tty(data):
    frames, lines = [], []
    pieces = data.split("\r\033[K")
    for i, piece in enumerate(pieces):
        parts = piece.split("\r\n")
        lines.extend(parts[:-1])
        last = parts[-1]
        if i == len(pieces) - 1:
            if last:
                lines.append(last)  # text after the last clear: not a frame
        elif last:
            frames.append(last)
    return frames, lines


def split_log(data):
    frames, lines = [], []
    if "\r" in data or "\033" in data:
        sys.exit("FAIL: a carriage return or an escape sequence off a terminal")
    for line in data.split("\n"):
        if line.startswith("syncmgr: progress: "):
            frames.append(line[len("syncmgr: progress: "):])
        elif line:
            lines.append(line)
    return frames, lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("capture")
    ap.add_argument("--log", action="store_true", help="log lines, not a terminal capture")
    ap.add_argument("--width", type=int, default=79)
    ap.add_argument("--total", type=int, default=0, help="bytes of the run")
    ap.add_argument("--between", type=int, default=0)
    ap.add_argument("--want-listing", action="store_true")
    ap.add_argument("--want-percent", action="store_true")
    ap.add_argument("--min-frames", type=int, default=0)
    ap.add_argument("--lines", help="write the other lines here")
    ap.add_argument("--show", type=int, default=0)
    a = ap.parse_args()

    with open(a.capture, "rb") as f:
        data = f.read().decode("utf-8")
    frames, lines = split_log(data) if a.log else split_tty(data)
    if a.lines:
        with open(a.lines, "w") as f:
            for line in lines:
                f.write(line + "\n")

    errors = []
    n_listing = n_percent = 0
    prev_bytes = prev_keys = prev_pct = -1
    between = set()
    for i, fr in enumerate(frames):
        if not a.log and len(fr) > a.width:
            errors.append("frame %d is %d columns wide (> %d): %r" % (i, len(fr), a.width, fr))
        m = LISTING.match(fr)
        if m:
            if "%" in fr or "ETA" in fr:
                errors.append("listing frame %d has a percentage or an ETA: %r" % (i, fr))
            if n_percent:
                errors.append("listing frame %d after a frame with a percentage: %r" % (i, fr))
            n_listing += 1
            keys, done = int(m.group(3)), size(m.group(4))
        else:
            m = PERCENT.match(fr)
            if m:
                n_percent += 1
                pct, keys, done = int(m.group(1)), int(m.group(2)), size(m.group(4))
                if pct < prev_pct:
                    errors.append("the percentage went down at frame %d: %r" % (i, fr))
                if pct > 100:
                    errors.append("frame %d: over 100%%: %r" % (i, fr))
                prev_pct = pct
            elif PHASE.match(fr):
                continue
            else:
                errors.append("frame %d is not a progress frame: %r" % (i, fr))
                continue
        if done < prev_bytes:
            errors.append("the bytes went down at frame %d: %r" % (i, fr))
        if keys < prev_keys:
            errors.append("the keys done went down at frame %d: %r" % (i, fr))
        prev_bytes, prev_keys = done, keys
        if a.total and 0 < done < a.total:
            between.add(done)

    if len(frames) < a.min_frames:
        errors.append("%d frames, want %d or more" % (len(frames), a.min_frames))
    if a.want_listing and not n_listing:
        errors.append("no listing frame")
    if a.want_percent and not n_percent:
        errors.append("no frame with a percentage")
    if len(between) < a.between:
        errors.append(
            "%d distinct byte counts between 0 and %d (want %d or more): %s"
            % (len(between), a.total, a.between, sorted(between))
        )
    print(
        "%d frames: %d listing, %d with a percentage, %d intermediate byte counts"
        % (len(frames), n_listing, n_percent, len(between)),
        file=sys.stderr,
    )
    if a.show and frames:
        step = max(1, len(frames) // a.show)
        for fr in frames[::step]:
            print(fr)
    if errors:
        for e in errors[:10]:
            print("FAIL: " + e, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
