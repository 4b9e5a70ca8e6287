"""Accuracy against the graph's size: the few-shot bench on synthetic TAGs of several sizes, one kind.

For each N in ``--nodes``: a synthetic TAG of N nodes (``glm data synth`` with ``--synth``; default the
structure-heavy graph of docs/bench.md, "Bringing a new graph"), then one ``glm bench fewshot`` on it with
the same rows, draws and options (the methods pre-trained on the graph itself, without its labels, through
``--pretrain-config``), into ``OUT/n<N>/``; then every row's accuracy against N in ``OUT/size-curve.md``
(``.json``, ``.png``) and, per N, each method row's probes (encoder / token) and its accuracy on its own
shots (:func:`glm.bench.curve.probes_table`), so that the curve says where a method's loss is as the graph
grows. Label-free pre-training draws a fixed number of samples per task, so a larger graph gives it more
varied subgraphs, not more steps.

Run (arguments after ``--`` go to every bench: options, ``--adapt-set``, key=value overrides):
  .venv/bin/python bench/new_graph_size.py --nodes 500,2000,8000 --seeds 3 \\
      --rows linear_probe,sgc,gnn_gcn,graphlama -- --adapt-set graphlama:training.num_epochs=20 data.propagate=2
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

STRUCTURE_HEAVY = "--density 8 --classes 4 --homophily 0.6 --text-signal 0.04 --feature-noise 5"


def bench_on(n: int, args: argparse.Namespace, extra: list[str]) -> dict:
    """Make the N-node graph (once) and run the bench on it; its ``bench.json``."""
    graph, out = args.output_dir / f"n{n}" / "graph", args.output_dir / f"n{n}"
    glm = [sys.executable, "-m", "glm"]
    if not (graph / "synth.json").is_file():
        subprocess.run([*glm, "data", "synth", str(graph), "--nodes", str(n), *shlex.split(args.synth)], check=True)
    options = f"data.options={{nodes: {graph / 'nodes.parquet'}, edges: {graph / 'edges.parquet'}, name: {args.name}}}"
    subprocess.run([*glm, "bench", "fewshot", args.config, "--pretrain-config", args.pretrain_config,
                    "--seeds", str(args.seeds), "--rows", args.rows, "--output-dir", str(out), "--no-progress",
                    *extra, options, f"data.features={graph / 'features.npy'}"], check=True)
    return json.loads((out / "bench.json").read_text(encoding="utf-8"))


def main() -> int:
    from glm.bench.curve import write_curve

    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", default="500,2000,8000", help="graph sizes, comma-separated")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--rows", default="linear_probe,sgc,gnn_gcn,graphlama")
    p.add_argument("--synth", default=STRUCTURE_HEAVY, help="glm data synth options (besides --nodes)")
    p.add_argument("--config", default="examples/new_graph_adapt.yaml")
    p.add_argument("--pretrain-config", default="examples/new_graph_pretrain.yaml")
    p.add_argument("--name", default="new-graph", help="the graph's name (in every size's data.options)")
    p.add_argument("--output-dir", type=Path, default=Path("runs/bench/new-graph-size"))
    args = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    sizes = sorted({int(n) for n in args.nodes.split(",") if n.strip()})
    t0, reports = time.perf_counter(), {}
    for n in sizes:
        started = time.perf_counter()
        reports[n] = bench_on(n, args, extra)
        print(f"n={n}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    title = f"{reports[sizes[-1]]['title']} (graph sizes {', '.join(map(str, sizes))}; {args.synth})"
    paths = write_curve(args.output_dir, {n: r["summary"] for n, r in reports.items()}, title, axis="nodes")
    print(paths["markdown"].read_text(encoding="utf-8"))
    print(f"{len(sizes)} graph sizes in {time.perf_counter() - t0:.0f} s -> "
          + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
