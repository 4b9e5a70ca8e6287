"""Forward + backward time of every GNN layer on each backend, on Cora, side by side.

    python bench/backends.py [--repeats 20] [--hidden 64] [--threads N]

Cora comes from ../shared/data/planetoid (copied to a temporary folder and processed by PyG);
without it a synthetic graph of the same size is used (and said so). Each layer maps the 1,433
bag-of-words features to ``--hidden`` (``gt`` first projects them with a fixed matrix, as it is
square); both backends hold the same neutral weights. The table shows the median time of
``--repeats`` runs after two warm-up runs, and the GammaGL / PyG ratio (> 1: GammaGL slower).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("TL_BACKEND", "torch")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glm.core.layouts import LAYOUTS  # noqa: E402
from glm.plugins import get_registry  # noqa: E402

LAYERS = tuple(LAYOUTS)
OPTIONS = {name: {"heads": 8} for name, layout in LAYOUTS.items() if "heads" in layout.options}  # a real width
BACKENDS = ("pyg", "gammagl")


def load_cora() -> tuple[torch.Tensor, torch.Tensor, str]:
    raw = ROOT.parent / "shared" / "data" / "planetoid" / "Cora" / "raw"
    if raw.is_dir():
        from torch_geometric.datasets import Planetoid

        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):  # PyG's "Processing... Done!"
            shutil.copytree(raw, Path(tmp) / "Cora" / "raw")
            data = Planetoid(tmp, "Cora")[0]
        return data.x, data.edge_index, "Cora (2,708 nodes, 10,556 edges)"
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(2708, 1433, generator=gen) < 0.013).float()
    ei = torch.randint(0, 2708, (2, 10556), generator=gen)
    return x, ei, "synthetic stand-in for Cora (../shared/data/planetoid not found)"


def make_step(module: torch.nn.Module, x: torch.Tensor, edge_index: torch.Tensor):
    def step() -> float:
        start = time.perf_counter()
        module.zero_grad(set_to_none=True)
        xi = x.detach().requires_grad_(True)
        module(xi, edge_index).square().mean().backward()
        return time.perf_counter() - start

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    registry = get_registry()
    missing = [b for b in BACKENDS if not registry.backends[b].available]
    if missing:
        print(f"cannot compare: backend(s) {missing} not installed ({registry.backends[missing[0]].install_hint()})")
        return 1
    x, edge_index, what = load_cora()
    gen = torch.Generator().manual_seed(1)
    x_square = x @ (torch.randn(x.shape[1], args.hidden, generator=gen) / x.shape[1] ** 0.5)
    print(f"graph: {what}; hidden {args.hidden}; median of {args.repeats} forward+backward runs;"
          f" torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'layer':<6} {'pyg ms':>9} {'gammagl ms':>11} {'gammagl/pyg':>12}")
    for layer in LAYERS:
        inputs = x_square if LAYOUTS[layer].square else x
        torch.manual_seed(0)
        modules = {b: registry.gnn_layer(layer, b).factory(inputs.shape[1], args.hidden, **OPTIONS.get(layer, {}))
                   for b in BACKENDS}
        modules["gammagl"].load_neutral_state_dict(modules["pyg"].neutral_state_dict())
        steps = {b: make_step(m, inputs, edge_index) for b, m in modules.items()}
        for step in steps.values():  # warm-up
            step(), step()
        times: dict[str, list[float]] = {b: [] for b in BACKENDS}
        for _ in range(args.repeats):  # interleaved, so that machine noise hits both alike
            for b, step in steps.items():
                times[b].append(step())
        ms = {b: statistics.median(t) * 1e3 for b, t in times.items()}
        print(f"{layer:<6} {ms['pyg']:>9.2f} {ms['gammagl']:>11.2f} {ms['gammagl'] / ms['pyg']:>11.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
