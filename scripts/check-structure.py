#!/usr/bin/env python3
"""Structure checks that `.ci/test` runs: file size and import cycles.

1. No source file outside tests is over 700 lines (`--max-lines`). Test code
   is a `tests/` directory, a `tests.rs` file, or the workspace's `tests`
   crate; an inline `#[cfg(test)] mod tests { ... }` at the end of a file
   counts, so that a long test module moves to a file of its own.

2. No import cycle between the modules of a crate. The graph is read from
   the source: every `crate::a::b` path (in `use` lines and in code) and
   every `super::`/`self::` path, resolved to the deepest module file that
   exists, gives an edge from the module that names it. Edges between a
   module and its own ancestors or descendants are left out (a parent that
   declares and re-exports its children, a child that uses its parent's
   types: that is hierarchy, not a loop); test modules are left out. A cycle
   is a strongly connected component of two or more modules.

Exit status 1 when a check fails, with one line per finding.
"""

import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP_DIRS = {"target", ".git", "node_modules", "fuzz"}


def is_test_path(rel):
    parts = rel.split(os.sep)
    return parts[0] == "tests" or "tests" in parts[:-1] or parts[-1] == "tests.rs"


def rust_files():
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")]
        for f in filenames:
            if f.endswith(".rs"):
                yield os.path.relpath(os.path.join(dirpath, f), ROOT)


def crate_roots():
    """Each crate's `src` directory (a directory holding Cargo.toml and src/)."""
    roots = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")]
        if "Cargo.toml" in filenames and os.path.isdir(os.path.join(dirpath, "src")):
            roots.append(os.path.join(dirpath, "src"))
    return roots


def module_path(src, path):
    """The module path of a file under a crate's src: ('store', 'sql')."""
    rel = os.path.relpath(path, src)
    parts = rel[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


CFG_TEST = re.compile(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", re.S)
COMMENT = re.compile(r"//[^\n]*")
PATH = re.compile(r"\b(crate|super|self)((?:\s*::\s*[A-Za-z_][A-Za-z0-9_]*)*)(\s*::\s*\{)?")


def strip_tests(text):
    m = CFG_TEST.search(text)
    return text[: m.start()] if m else text


def size_findings(limit):
    out = []
    for rel in sorted(rust_files()):
        if is_test_path(rel):
            continue
        with open(os.path.join(ROOT, rel), encoding="utf-8", errors="replace") as fh:
            n = sum(1 for _ in fh)
        if n > limit:
            out.append(f"{rel}: {n} lines (limit {limit}: split it by job)")
    return out


def group_paths(text, open_at):
    """The paths inside the brace group that opens at `text[open_at]`, as
    segment lists (nested groups flattened: `a::{b, c::d}` gives [a, b],
    [a, c, d])."""
    depth, i = 0, open_at
    while i < len(text):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                break
        i += 1
    body = text[open_at + 1: i]
    out, depth, item = [], 0, ""
    for ch in body + ",":
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            item = item.strip()
            if item:
                if "{" in item:
                    pre = [x.strip() for x in item[: item.index("{")].split("::") if x.strip()]
                    out += [pre + sub for sub in group_paths(item, item.index("{"))]
                else:
                    segs = [x.strip() for x in item.split(" as ")[0].split("::") if x.strip()]
                    if segs and segs != ["self"]:
                        out.append(segs)
                    elif segs == ["self"]:
                        out.append([])
            item = ""
        else:
            item += ch
    return out


def crate_graph(src):
    files = {}
    for dirpath, _, filenames in os.walk(src):
        for f in filenames:
            if f.endswith(".rs"):
                p = os.path.join(dirpath, f)
                rel = os.path.relpath(p, ROOT)
                if is_test_path(os.path.relpath(p, os.path.dirname(src))) or is_test_path(rel):
                    continue
                files[module_path(src, p)] = p
    modules = set(files)
    # Binary roots (main.rs beside lib.rs, src/bin/*) are separate crates.
    modules.discard(("bin",))

    def resolve(base, segs):
        path = list(base)
        for s in segs:
            if s == "super":
                if path:
                    path.pop()
            elif s == "self":
                continue
            else:
                path.append(s)
        # deepest existing module
        while tuple(path) not in modules and path:
            path.pop()
        return tuple(path)

    edges = {m: set() for m in modules}
    for mod, p in files.items():
        with open(p, encoding="utf-8", errors="replace") as fh:
            text = COMMENT.sub("", strip_tests(fh.read()))
        # `use super::{a::X, b::{c, d}}`: every path in the braces counts.
        for m in PATH.finditer(text):
            head = m.group(1)
            tail = [x.strip() for x in m.group(2).split("::") if x.strip()]
            base, segs = ((), tail) if head == "crate" else (mod, [head] + tail)
            targets = [resolve(base, segs)]
            if m.group(3):
                targets += [resolve(base, segs + sub) for sub in group_paths(text, m.end() - 1)]
            for t in targets:
                if t == mod or t[: len(mod)] == mod or mod[: len(t)] == t:
                    continue
                edges[mod].add(t)
    return edges


def cycles(edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


def cycle_findings():
    out = []
    for src in sorted(crate_roots()):
        crate = os.path.relpath(os.path.dirname(src), ROOT)
        edges = crate_graph(src)
        for comp in cycles(edges):
            names = sorted("::".join(m) or "<root>" for m in comp)
            out.append(f"{crate}: import cycle between {', '.join(names)}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-lines", type=int, default=700)
    ap.add_argument("--only", choices=["size", "cycles"], help="run one check")
    args = ap.parse_args()
    findings = []
    if args.only in (None, "size"):
        findings += size_findings(args.max_lines)
    if args.only in (None, "cycles"):
        findings += cycle_findings()
    for f in findings:
        print(f)
    if findings:
        print(f"check-structure: {len(findings)} finding(s)", file=sys.stderr)
        return 1
    print("check-structure: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
