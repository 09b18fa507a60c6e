"""The package layout: the import graph of ``equss`` is acyclic, and every module imports
in a fresh interpreter in dependency order (leaves first), so each module's imports are
complete on their own."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "equss"


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the equss modules it imports anywhere in its body (lazy imports included).

    ``from equss.x import y`` counts as an edge to ``equss.x.y`` when that is a module,
    else to ``equss.x``.  The implicit import of a parent package is not an edge (Python
    imports a package's ``__init__`` before its submodules by construction)."""
    modules = {module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            for t in targets:
                if t in modules and t != mod:
                    graph[mod].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (c := visit(n)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)):
            return c
    return None


def topological_order(graph: dict[str, set[str]]) -> list[str]:
    order, done = [], set()

    def visit(m):
        if m in done:
            return
        done.add(m)
        for n in sorted(graph[m]):
            visit(n)
        order.append(m)

    for m in sorted(graph):
        visit(m)
    return order


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_import_graph_is_acyclic():
    graph = import_graph()
    assert len(graph) > 30
    assert "equss.model.quantize" in graph["equss.model.equss"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_every_module_imports_in_dependency_order_in_a_fresh_interpreter():
    order = [m for m in topological_order(import_graph()) if m != "equss.__main__"]
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\nprint(len(sys.argv) - 1)"
    res = subprocess.run([sys.executable, "-c", code, *order], capture_output=True, text=True,
                         cwd=PKG.parent, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == str(len(order))


def test_code_fingerprint_sees_code_not_prose(tmp_path):
    """The run-cache key's code fingerprint changes with code and presets, not with
    docstrings, comments or the notebook helpers in equss/paper."""
    import shutil

    from equss.provenance import code_fingerprint

    pkg = tmp_path / "equss"
    shutil.copytree(PKG, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    base = code_fingerprint(pkg)
    assert base == code_fingerprint(PKG) and len(base) == 12
    q = pkg / "model" / "quantize.py"
    text = q.read_text()
    q.write_text(text.replace('"""Product quantisation', '"""Edited prose. Product quantisation', 1) + "\n# a comment\n")
    assert code_fingerprint(pkg) == base
    (pkg / "paper" / "tables.py").write_text((pkg / "paper" / "tables.py").read_text() + "\nX = 1\n")
    assert code_fingerprint(pkg) == base
    q.write_text(text.replace("commitment_loss = F.mse_loss(z, z_q.detach())", "commitment_loss = F.mse_loss(z_q.detach(), z)"))
    assert code_fingerprint(pkg) != base
    q.write_text(text)
    preset = pkg / "presets" / "paper.yaml"
    preset.write_text(preset.read_text().replace("pos_intra_shift: 0.18", "pos_intra_shift: 0.19", 1))
    assert code_fingerprint(pkg) != base


def test_provenance_fingerprint_once_per_process(monkeypatch):
    """provenance() (written with every checkpoint) records the fingerprint of the running code,
    hashed once per process, not again at each save."""
    from equss import provenance as prov

    prov.running_code_fingerprint.cache_clear()
    calls = []
    monkeypatch.setattr(prov, "code_fingerprint", lambda root=None: calls.append(root) or "abc123abc123")
    try:
        assert prov.provenance()["code_fingerprint"] == prov.provenance()["code_fingerprint"] == "abc123abc123"
        assert calls == [None]
    finally:
        prov.running_code_fingerprint.cache_clear()
