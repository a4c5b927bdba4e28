"""The package's dependency rule (docs/architecture.md), enforced: imports go one way, down the
pipeline, with no cycle, counting the imports made inside functions too.

A lazy import is still a dependency: it only moves the failure to run time. So the graph is
read from the source (every ``import`` / ``from ... import`` anywhere in a module, inside
functions too, and under ``if TYPE_CHECKING:``: a cycle of annotations is still a tangle), not
from ``sys.modules`` after an import.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ckptlab"

# the stages, lowest first: a module may import its own stage (without a cycle) or a lower one
LAYERS = [
    ("ckptlab.vocab", "ckptlab.errors"),
    ("ckptlab.io",),
    ("ckptlab.recipe",),
    ("ckptlab.align",),
    ("ckptlab.merge",),
    ("ckptlab.values",),
    ("ckptlab.models",),
    ("ckptlab.cli", "ckptlab.ui", "ckptlab", "ckptlab.__main__"),
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every ckptlab module ``name`` imports, anywhere in its body (``from a import b``: ``a.b``
    when ``b`` is a module, else ``a``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {m for m in found if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(module: str) -> int:
    best, rank = -1, None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank is not None, f"{module} belongs to no layer of LAYERS: add it there and to docs/architecture.md"
    return rank


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_no_import_cycle_even_counting_imports_inside_functions():
    assert _cycles(_graph()) == []


def test_every_import_goes_down_the_pipeline():
    upward = sorted(f"{a} -> {b}" for a, deps in _graph().items() for b in deps
                    if _layer(b) > _layer(a) and not (a == "ckptlab" or a == "ckptlab.__main__"))
    assert upward == []


def test_only_the_app_imports_streamlit():
    for name, path in _modules().items():
        if name.startswith("ckptlab.ui"):
            continue
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not any(n == "streamlit" or n.startswith("streamlit.") for n in names), name


def test_the_top_of_the_package_holds_the_stages_not_forty_modules():
    entries = sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__")
    assert entries == ["__init__.py", "__main__.py", "align", "cli", "errors.py", "io", "merge", "models",
                       "recipe", "ui", "values", "vocab.py"]


def test_the_checker_sees_a_cycle_made_by_a_lazy_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


CORE_WITH_ALL = ("ckptlab.vocab", "ckptlab.errors", "ckptlab.io", "ckptlab.recipe", "ckptlab.merge", "ckptlab.values",
                 "ckptlab.models")


def test_every_core_module_says_what_it_exports():
    """``__all__`` in every core module, naming only what it defines (a reader sees the surface at once)."""
    import importlib

    for name, path in _modules().items():
        if not name.startswith(CORE_WITH_ALL) or path.name == "__init__.py" or "templates" in path.parts:
            continue
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"{name} has no __all__"
        assert all(hasattr(module, n) for n in exported), name
