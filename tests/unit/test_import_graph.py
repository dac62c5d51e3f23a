"""fpt's modules import each other without cycles, counting the imports inside functions too (a lazy import is
still a dependency): every module's place in the layering is what its imports say (docs/layout.md)."""
from __future__ import annotations

import ast

from helpers import ROOT

PACKAGE = ROOT / "fpt"


def module_names() -> dict[str, bool]:
    """Dotted module name -> whether it is a package (__init__.py)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = is_package
    return out


def imports_of(name: str, is_package: bool, modules: dict[str, bool]) -> set[str]:
    """The fpt modules `name` imports anywhere in its file (`from . import x` counts as x when x is a module)."""
    path = PACKAGE.parent.joinpath(*name.split("."))
    tree = ast.parse((path / "__init__.py" if is_package else path.with_suffix(".py")).read_text())
    here = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    return {m for m in found if m in modules and m != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_fpt_has_no_import_cycles():
    modules = module_names()
    graph = {name: imports_of(name, is_package, modules) for name, is_package in modules.items()}
    assert graph["fpt.trainer"] >= {"fpt.build", "fpt.evaluation"}  # the graph is read, not empty
    assert cycles(graph) == []


def test_a_cycle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
