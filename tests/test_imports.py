"""No matap module imports a module that imports it back, directly or through others.

Every ``import`` and ``from ... import`` statement counts, at module level or inside a function;
a package's ``__init__`` imported implicitly by its submodules does not. Run as a script, it
prints every cycle it finds: ``python tests/test_imports.py``."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def module_names(src: Path = SRC) -> dict[str, Path]:
    """matap's modules: dotted name -> file."""
    names = {}
    for path in sorted((src / "matap").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The matap modules that ``name`` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from matap import bench` imports a module
    return {m for m in found if m in known and m != name}


def cycles(src: Path = SRC) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    known = module_names(src)
    graph = {name: imports(name, path, known) for name, path in known.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
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
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_a_module_that_imports_it_back():
    assert cycles() == []


if __name__ == "__main__":
    found = cycles()
    for component in found:
        print("cycle: " + " <-> ".join(component))
    print(f"{len(found)} import cycle(s) among {len(module_names())} matap modules")
    sys.exit(1 if found else 0)


def test_loading_and_predicting_import_no_lightning(smoke_run):
    """matap.load and the model it returns work where Lightning is not installed."""
    import os
    import subprocess

    code = ("import sys, torch, matap, matap.metrics\n"
            f"model = matap.load({str(smoke_run)!r})\n"
            "future = model.rollout(torch.zeros(1, 4, 64, 64, dtype=torch.uint8), 2)\n"
            "matap.metrics.ssim(future, future)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')))\n")
    env = dict(os.environ, PYTHONPATH=str(SRC))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"
