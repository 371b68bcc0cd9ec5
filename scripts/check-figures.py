#!/usr/bin/env python3
"""Docs check that `.ci/test` runs: every table of measured figures says
when and how it was measured.

A figure table is a Markdown table (README.md, docs/*.md) with a data cell
holding a measured quantity: a number with a unit of time, size, rate or
share (`12.5 ms`, `671 MiB`, `598/s`, `99.2 %`). Its provenance is the text
of its section before it (from the nearest heading), the 5 lines after it
and the file's preamble (before its first `## `); that text must hold a date (`2026-12-07`) and a command in backticks
(or a line of an indented code block) that makes figures (`bash bench/run.sh ...`, `darkwatch-bench --only ...`,
`darkwatch-loadgen ...`, `scripts/....sh`, `cargo test|run|bench ...`).
`scripts/figures.sh` reruns those commands.

A table of numbers that are not measurements (defaults, limits, goals)
carries `<!-- figures: not measured -->` in the same place.

Exit status 1 when a table lacks either, one line per table (FILE:LINE).
"""

import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIT = re.compile(
    r"(?<![\w.])\d[\d,]*(\.\d+)?\s?(ms|µs|us|s|min|MiB|KiB|GiB|MB|kB|KB|GB|B|%|/s|obs/s|pps)(?![\w/])"
)
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
MAKERS = r"(bench/run\.sh|darkwatch-bench|darkwatch-loadgen|scripts/[\w-]+\.(sh|py)|cargo (test|run|bench))"
# In backticks, or a line of an indented code block.
COMMAND = re.compile(r"`[^`]*" + MAKERS + r"[^`]*`|^    .*" + MAKERS, re.M)
EXEMPT = "<!-- figures: not measured -->"
AFTER = 5


def tables(lines):
    """(first line index, rows) of each table."""
    i = 0
    while i < len(lines):
        if lines[i].lstrip().startswith("|") and i + 1 < len(lines) and re.match(
            r"^\s*\|[\s:|-]+\|\s*$", lines[i + 1]
        ):
            start = i
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                i += 1
            yield start, lines[start:i]
        else:
            i += 1


def section_start(lines, at):
    """Index just after the nearest heading above `at` (0 if none)."""
    for j in range(at - 1, -1, -1):
        if lines[j].startswith("#"):
            return j + 1
    return 0


def findings(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    rel = os.path.relpath(path, ROOT)
    out = []
    fence = False
    fenced = set()
    for n, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fence = not fence
        elif fence:
            fenced.add(n)
    for start, rows in tables(lines):
        if start in fenced:
            continue
        data = rows[2:]
        if not any(UNIT.search(cell) for r in data for cell in r.split("|")[1:-1]):
            continue
        end = start + len(rows)
        # The file's preamble (before its first `## `) speaks for all of it.
        preamble = next((j for j, l in enumerate(lines) if l.startswith("## ")), 0)
        context = "\n".join(
            lines[:preamble] + lines[section_start(lines, start) : start] + lines[end : end + AFTER]
        )
        if EXEMPT in context:
            continue
        missing = [w for w, ok in (("a date", DATE.search(context)), ("a command", COMMAND.search(context))) if not ok]
        if missing:
            out.append(f"{rel}:{start + 1}: figure table without {' and '.join(missing)} in its section")
    return out


def main():
    files = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    found = [f for p in files for f in findings(p)]
    for f in found:
        print(f)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
