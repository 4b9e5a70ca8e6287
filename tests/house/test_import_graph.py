"""The house's arrows, read from the source (every import, the lazy ones inside functions too):
no module imports itself back through others, and the arrows of docs/architecture hold."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "glm"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _owner(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> set[str]:
    """The glm modules that ``module`` imports anywhere in its body (``from pkg import sub`` is ``pkg.sub``)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                head = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(head + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        targets |= {t for t in map(_owner, names) if t and t != module and t.startswith("glm")}
    return targets


GRAPH = {module: _imports(module) for module in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
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


def _room(module: str) -> str:
    """The folder-level room: glm.core.eval.bench -> glm.core.eval; glm.core.config -> glm.core.config."""
    parts = module.split(".")
    return ".".join(parts[:3]) if parts[:2] == ["glm", "core"] else ".".join(parts[:2])


def test_the_walker_sees_lazy_imports():
    assert "glm.core.train.loop" in GRAPH["glm.core.plan.probe"]  # imported inside a function only
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_cycle():
    assert _cycles(GRAPH) == []


def test_no_room_cycle():
    rooms: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        rooms.setdefault(_room(module), set()).update(_room(t) for t in targets if _room(t) != _room(module))
    rooms.pop("glm", None)  # the package's face re-exports the public surface
    assert _cycles(rooms) == []


FORBIDDEN = [  # (importer prefix, imported prefix, why)
    ("glm.core", "glm.backends", "core is backend-neutral"),
    ("glm.core", "glm.methods", "core never names a method"),
    ("glm.core", "glm.bench", "the bench orchestrates core, not the reverse"),
    ("glm.core", "glm.run", "core is below the run layer"),
    ("glm.core.eval", "glm.core.train", "eval scores; it never trains"),
    ("glm.run", "glm.bench", "the run layer is below the bench"),
    ("glm.plugins", "glm.core", "the seam is below core"),
]


@pytest.mark.parametrize("importer,imported,why", FORBIDDEN, ids=[f"{a}->{b}" for a, b, _ in FORBIDDEN])
def test_forbidden_arrows(importer, imported, why):
    def under(module: str, prefix: str) -> bool:
        return module == prefix or module.startswith(prefix + ".")

    bad = sorted(f"{m} -> {t}" for m, ts in GRAPH.items() if under(m, importer) for t in ts if under(t, imported))
    assert not bad, f"{why}: {bad}"


def test_nothing_imports_the_cli():
    bad = sorted(f"{m} -> {t}" for m, ts in GRAPH.items() if not m.startswith("glm.cli") and m != "glm.__main__"
                 for t in ts if t.startswith("glm.cli"))
    assert not bad


def test_no_module_over_500_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}
    assert not long
