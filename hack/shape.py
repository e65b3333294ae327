#!/usr/bin/env python3
"""Checks the shape of the tree (docs/architecture.md, "Layout"): no Rust file over 500
lines, no function in src/ over 80 lines, no import cycle between src/'s top-level
modules, and src/reload/ importing nothing from the rest of the crate. Prints the import
graph with --graph. Exits 1, naming each violation, when the shape is broken."""

import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

MAX_FILE_LINES = 500
MAX_FN_LINES = 80
FN = re.compile(r"^(\s*)(pub(\([a-z]+\))? )?(const )?(async )?(unsafe )?fn \w+")
USE = re.compile(r"\bcrate::([a-z_]+)")


def tracked_rust_files(root):
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "*.rs"],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout
    return [root / p for p in out.split() if (root / p).exists()]


def long_functions(path):
    lines = path.read_text().splitlines()
    found = []
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m or line.rstrip().endswith(";"):
            continue
        indent = m.group(1)
        for j in range(i + 1, len(lines)):
            if lines[j] == indent + "}":
                length = j - i + 1
                if length > MAX_FN_LINES:
                    found.append((i + 1, length, line.strip()))
                break
    return found


def top_module(src, path):
    rel = path.relative_to(src)
    name = rel.parts[0]
    return name[:-3] if name.endswith(".rs") else name


def main():
    root = Path(__file__).resolve().parent.parent
    src = root / "src"
    problems = []
    for path in tracked_rust_files(root):
        n = len(path.read_text().splitlines())
        if n > MAX_FILE_LINES:
            problems.append(f"{path.relative_to(root)}: {n} lines (limit {MAX_FILE_LINES})")
        if src in path.parents:
            for line, length, sig in long_functions(path):
                problems.append(
                    f"{path.relative_to(root)}:{line}: {length}-line function (limit {MAX_FN_LINES}): {sig}"
                )
    graph = defaultdict(set)
    for path in src.rglob("*.rs"):
        module = top_module(src, path)
        if module in ("lib", "main"):
            continue
        code = "\n".join(l.split("//", 1)[0] for l in path.read_text().splitlines())
        for target in USE.findall(code):
            if target != module:
                graph[module].add(target)
    for target in sorted(graph.get("reload", ())):
        problems.append(f"src/reload/ imports crate::{target}; the pure core imports nothing else")
    # Cycles: any module reachable from itself.
    def reaches(start):
        seen, stack = set(), [start]
        while stack:
            for nxt in graph.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen
    for module in sorted(graph):
        if module in reaches(module):
            back = sorted(m for m in graph[module] if module in reaches(m) or m == module)
            problems.append(f"import cycle: {module} -> {', '.join(back)} -> ... -> {module}")
    if "--graph" in sys.argv:
        for module in sorted(graph):
            print(f"{module} -> {', '.join(sorted(graph[module]))}")
    for p in problems:
        print(f"shape: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"shape: ok ({len(graph)} modules, no cycles, files <= {MAX_FILE_LINES} lines, "
          f"src/ functions <= {MAX_FN_LINES} lines)")


if __name__ == "__main__":
    main()
