#!/usr/bin/env python3
"""bench/results-section.py: writes one bench script's section of a results file, leaving the
rest of the file (other scripts' sections, hand-written notes) as it is.

Usage: results-section.py FILE NAME [--top] < section.md

The section lives between "<!-- begin NAME -->" and "<!-- end NAME -->" lines (each alone on its line). A re-run
replaces what is between them; without them the section is added at the end of the file
(at the top with --top) with its markers. Text outside the markers is never touched, so notes
written under a section (after its end marker) survive a re-run."""
import os
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    path, name, top = sys.argv[1], sys.argv[2], "--top" in sys.argv[3:]
    begin, end = "<!-- begin %s -->" % name, "<!-- end %s -->" % name
    body = sys.stdin.read().strip("\n")
    block = "%s\n%s\n%s" % (begin, body, end)
    prev = open(path).read() if os.path.exists(path) else ""
    # markers count only on lines of their own: prose may quote them
    lines = prev.split("\n")
    b = next((i for i, l in enumerate(lines) if l.strip() == begin), None)
    e = next((i for i, l in enumerate(lines) if b is not None and i > b and l.strip() == end), None)
    if b is not None and e is not None:
        out = "\n".join(lines[:b] + [block] + lines[e + 1:])
    elif not prev.strip():
        out = block + "\n"
    elif top:
        out = block + "\n\n" + prev.lstrip("\n")
    else:
        out = prev.rstrip("\n") + "\n\n" + block + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(out)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
