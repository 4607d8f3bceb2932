"""The package's import graph, read from the source (AST), string imports included.

An edge ``a -> b`` is any ``import`` / ``from ... import`` of ``b`` in ``a`` (at module level or inside a
function: a lazy import is still a dependency) and any string constant that names a module of the package,
``"tomoconsensus.x.y"`` or ``"tomoconsensus.x.y:attr"``, except in the late-binding modules of
:data:`LATE_BINDING`.
The checks: PET and spectral CT stand on the tomography layer (``tomoconsensus.tomo``), not on CT; the
tomography layer imports no modality; and the graph has no cycle.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tomoconsensus"
STRING_IMPORT = re.compile(r"^(tomoconsensus(?:\.[A-Za-z_]\w*)+)(?::[\w.]+)?$")
MODALITIES = ("tomoconsensus.ct", "tomoconsensus.mr", "tomoconsensus.pet", "tomoconsensus.spectral")


#: Modules whose strings name things resolved on use, never while a module is imported (late binding, like
#: entry points): the package's public API table, the registry's built-in plugins and each plugin's parts
#: (a plugin contributes parts at several layers: its presentation, its demo, its iq). Their real imports count.
LATE_BINDING = ("tomoconsensus", "tomoconsensus.registry", *(f"{m}.plugin" for m in MODALITIES))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The module of the package that ``name`` (a module, or a module's attribute) lies in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> set[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(_resolve(a.name) for a in node.names if a.name.startswith("tomoconsensus"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            if base.startswith("tomoconsensus"):
                found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else _resolve(base)
                             for a in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and module not in LATE_BINDING:
            match = STRING_IMPORT.match(node.value)
            if match:
                found.add(_resolve(match.group(1)))
    return {m for m in found if m and m != module}


GRAPH = {module: _imports(module) for module in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_graph_reader_sees_every_kind_of_import():
    """Module-level and lazy (in-function) imports, ``from package import module`` and string imports."""
    assert "tomoconsensus.tomo.fbp" in GRAPH["tomoconsensus.tomo.curved"]  # module level
    assert "tomoconsensus.tomo.joseph" in GRAPH["tomoconsensus.tomo.curved"]  # inside a method
    assert _resolve(STRING_IMPORT.match("tomoconsensus.ct.plugin:PLUGIN").group(1)) == "tomoconsensus.ct.plugin"
    assert "tomoconsensus.ct.plugin" not in GRAPH["tomoconsensus.registry"]  # late binding (LATE_BINDING)
    assert "tomoconsensus.plugin" in GRAPH["tomoconsensus.ct.plugin"]  # its real import counts
    assert "tomoconsensus.tomo.backproject" in GRAPH["tomoconsensus.tomo.joseph"]  # from tomoconsensus.tomo import x
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("modality", ["tomoconsensus.pet", "tomoconsensus.spectral"])
def test_pet_and_spectral_import_nothing_from_ct(modality):
    """PET and spectral CT are CT's siblings over the tomography layer."""
    uses = {(m, d) for m, deps in GRAPH.items() if m == modality or m.startswith(modality + ".")
            for d in deps if d == "tomoconsensus.ct" or d.startswith("tomoconsensus.ct.")}
    assert not uses, sorted(uses)
    assert any(d.startswith("tomoconsensus.tomo.") for m, deps in GRAPH.items() if m.startswith(modality + ".")
               for d in deps)


def test_the_tomography_layer_imports_no_modality():
    uses = {(m, d) for m, deps in GRAPH.items() if m.startswith("tomoconsensus.tomo")
            for d in deps if d.startswith(MODALITIES) or d == "tomoconsensus.registry"}
    assert not uses, sorted(uses)


def test_the_import_graph_has_no_cycle():
    assert _cycles(GRAPH) == []
