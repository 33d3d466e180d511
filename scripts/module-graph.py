#!/usr/bin/env python3
"""Print the `use crate::` module graph of a crate's src/ and report cycles.

Usage: scripts/module-graph.py server/src
An edge a -> b means a file of module a names crate::b (directly or via
`crate::{b, ..}`); `crate::Item` for an item defined in lib.rs counts as an
edge to `lib`. Submodules are shown by path (document::owner).
"""
import pathlib, re, sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "src")
mods = {}
for f in sorted(root.rglob("*.rs")):
    rel = f.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts = parts[:-1]
    if parts in (["lib"], ["main"]):
        name = parts[0]
    else:
        name = "::".join(parts)
    mods[name] = f.read_text()
names = set(mods)

def resolve(path):
    """Longest module prefix of a crate:: path."""
    segs = path.split("::")
    for n in range(len(segs), 0, -1):
        cand = "::".join(segs[:n])
        if cand in names:
            return cand
    return "lib"

edges = {m: set() for m in mods}
for m, text in mods.items():
    # Drop comments so doc links do not count.
    code = "\n".join(l.split("//")[0] for l in text.splitlines())
    for hit in re.finditer(r"crate::((?:[A-Za-z_][A-Za-z_0-9]*::)*)(\{[^}]*\}|[A-Za-z_][A-Za-z_0-9]*)", code):
        prefix, last = hit.group(1), hit.group(2)
        if last.startswith("{"):
            for item in last[1:-1].split(","):
                item = item.strip().split(" as ")[0].split("::{")[0]
                if item:
                    edges[m].add(resolve(prefix + item))
        else:
            edges[m].add(resolve(prefix + last))
    # super:: inside a directory module
    for hit in re.finditer(r"\bsuper::([A-Za-z_][A-Za-z_0-9]*)", code):
        parent = m.rsplit("::", 1)[0] if "::" in m else "lib"
        target = f"{parent}::{hit.group(1)}" if parent != "lib" else hit.group(1)
        edges[m].add(target if target in names else parent)
    # A module naming its own children (`use owner::X`, `hub::Hub`).
    for child in names:
        base = "" if m == "lib" else m + "::"
        if m != "main" and child.startswith(base) and "::" not in child[len(base):] and child != m:
            local = child[len(base):]
            if re.search(rf"(?<![:\w]){local}::", code):
                edges[m].add(child)
    edges[m].discard(m)
for m in sorted(edges):
    print(f"{m:28} -> {', '.join(sorted(edges[m])) or '(leaf)'}")
# Cycle search (Tarjan).
index, low, stack, on, sccs, i = {}, {}, [], set(), [], [0]
def strong(v):
    index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
    for w in edges.get(v, ()):
        if w not in index:
            strong(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(sorted(comp))
for v in sorted(edges):
    if v not in index: strong(v)
# lib declares every module, so edges back to it (lib items) close cycles too.
if sccs:
    print("CYCLES:"); [print("  " + " <-> ".join(c)) for c in sccs]; sys.exit(1)
print("no cycles")
