"""Shared pieces of the backend suite: which backends run, the graphs, the tolerances.

Every backend in ``BACKENDS`` is compared with ``REFERENCE_BACKEND`` by the same tests
(PEFT tester-mixin idea): adding a backend means adding one value to ``BACKENDS``.
Measured differences are collected in ``DIFFS`` and listed in pytest's terminal summary.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import Tensor

from glm.core.graph import Subgraph, SubgraphBatch
from glm.core.layouts import LAYOUTS
from glm.plugins import get_registry

REFERENCE_BACKEND = "pyg"
BACKENDS = ("gammagl",)  # compared against REFERENCE_BACKEND
LAYERS = tuple(LAYOUTS)
LAYER_OPTIONS = {name: layout.options for name, layout in LAYOUTS.items() if layout.options}
SQUARE_LAYERS = {name for name, layout in LAYOUTS.items() if layout.square}  # need in_dim == out_dim
OUT_DIM = 16
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 1e-2}

# tests/conftest.py is also a module named "conftest": load its free_port by path
_root_spec = importlib.util.spec_from_file_location("_glm_tests_root_conftest", Path(__file__).parents[1] / "conftest.py")
_root = importlib.util.module_from_spec(_root_spec)
_root_spec.loader.exec_module(_root)
free_port = _root.free_port

# (test, case) -> max diff; printed at the end of the run
DIFFS: dict[str, float] = defaultdict(float)


def record(key: str, value: float) -> None:
    DIFFS[key] = max(DIFFS[key], value)


def pytest_terminal_summary(terminalreporter) -> None:
    if DIFFS:
        terminalreporter.section("backend parity: max differences (see tests/backends)")
        for key in sorted(DIFFS):
            terminalreporter.write_line(f"{key:<60} {DIFFS[key]:.3e}")


def skip_unless_available(name: str) -> None:
    """Skip (with the reason and the install hint) when a backend's framework is missing."""
    spec = get_registry().backends.get(name)
    if spec is None:
        pytest.skip(f"backend {name!r} is not registered")
    missing = spec.missing()
    if missing:
        pytest.skip(f"backend {name!r} needs {', '.join(missing)}: {spec.install_hint()}")


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """A backend under test (its reference must be available too)."""
    skip_unless_available(REFERENCE_BACKEND)
    skip_unless_available(request.param)
    return request.param


def max_diff(a: Tensor, b: Tensor) -> float:
    return (a.float() - b.float()).abs().max().item() if a.numel() else 0.0


def scaled_diff(a: Tensor, b: Tensor) -> float:
    """``max|a - b| / max(1, max|a|)``: the absolute difference for values up to 1, relative
    above (gradients summed over thousands of nodes are large)."""
    return max_diff(a, b) / max(1.0, a.float().abs().max().item())


# -- graphs ------------------------------------------------------------------------------------
@dataclass
class GraphCase:
    name: str
    batch: SubgraphBatch
    weighted: bool


def _random_subgraph(gen: torch.Generator, n: int, f: int, m: int, *, symmetric: bool, weighted: bool,
                     self_loops: int = 0) -> Subgraph:
    src = torch.randint(0, n, (m,), generator=gen)
    dst = torch.randint(0, n, (m,), generator=gen)
    keep = src != dst
    ei = torch.stack([src[keep], dst[keep]])
    if symmetric:
        ei = torch.unique(torch.cat([ei, ei.flip(0)], 1), dim=1)
    if self_loops:
        loops = torch.randint(0, n, (self_loops,), generator=gen)
        ei = torch.cat([ei, loops.repeat(2, 1)], 1)
    w = torch.rand(ei.shape[1], generator=gen) + 0.5 if weighted else None
    return Subgraph(x=torch.randn(n, f, generator=gen), edge_index=ei, edge_weight=w)


def synthetic_case(kind: str, f: int = 12) -> GraphCase:
    """``undirected``: symmetric, unweighted, no self loops; ``directed``: one-way edges, a few
    self loops and duplicates; ``weighted``: directed with edge weights in [0.5, 1.5)."""
    gen = torch.Generator().manual_seed({"undirected": 1, "directed": 2, "weighted": 3}[kind])
    sym, weighted = kind == "undirected", kind == "weighted"
    graphs = [
        _random_subgraph(gen, n, f, 3 * n, symmetric=sym, weighted=weighted, self_loops=0 if sym else 3)
        for n in (7, 15, 26)
    ]
    graphs.append(Subgraph(x=torch.randn(1, f, generator=gen), edge_index=torch.zeros(2, 0, dtype=torch.long),
                           edge_weight=torch.zeros(0) if weighted else None))  # a lone target
    return GraphCase(kind, SubgraphBatch.from_subgraphs(graphs), weighted)


@pytest.fixture(scope="session")
def cora_batch(data_dir: Path, tmp_path_factory) -> SubgraphBatch:
    """Cora (Planetoid raw files from the data folder, processed by PyG in a temporary copy;
    PyG's "Processing... Done!" lines are swallowed)."""
    raw = data_dir / "planetoid" / "Cora" / "raw"
    if not raw.is_dir():
        pytest.skip("planetoid/Cora/raw is absent from the data folder (real-data test)")
    skip_unless_available("pyg")
    from torch_geometric.datasets import Planetoid

    root = tmp_path_factory.mktemp("planetoid")
    shutil.copytree(raw, root / "Cora" / "raw")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        data = Planetoid(str(root), "Cora")[0]
    n = data.num_nodes
    return SubgraphBatch(x=data.x, edge_index=data.edge_index, batch=torch.zeros(n, dtype=torch.long),
                         ptr=torch.tensor([0, n]), target_index=torch.tensor([0]))


GRAPH_KINDS = ("undirected", "directed", "weighted", "cora")


@pytest.fixture(params=GRAPH_KINDS)
def graph(request) -> GraphCase:
    if request.param == "cora":
        return GraphCase("cora", request.getfixturevalue("cora_batch"), False)
    return synthetic_case(request.param)
