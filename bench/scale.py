"""How glm's cost grows with the graph: synthetic TAGs from 10k to 2.45M nodes, per stage time and peak RSS.

Per size (one fresh process each, so that peak RSS belongs to that size), in order:

1. ``synth``     ``glm data synth``: nodes / edges Parquet + a precomputed ``features.npy`` (not counted in
                 the end-to-end time; reused when the folder already holds that size)
2. ``load``      the user-TAG loader (columnar: pyarrow), ids mapped, edges symmetrised
3. ``features``  the precomputed matrix (``data.features``: memory-mapped, checked)
4. ``index``     the sampler's CSR index
5. ``sample``    fan-out [10, 10] subgraphs of 100k seed nodes, on the fly (subgraphs/s)
6. ``pretrain``  20 pre-training steps of GraphLAMA with SmolLM2-135M (bf16) through the trainer
7. ``infer``     streaming inference on 500 nodes (choice scoring, nodes/s)

    python bench/scale.py --nodes 169343                  # one size
    python bench/scale.py --sizes 10000,169343,2449029    # three sizes and the growth exponents
    python bench/scale.py --sizes 10000,169343 --density products
    python bench/scale.py --nodes 10000 --compare-dtypes    # the LLM in bf16 against fp32, same process

The last line for one size reads ``scale N nodes: end-to-end S s, peak RSS G GiB``. The growth exponent of a
stage between two sizes is ``log(t2 / t1) / log(w2 / w1)`` with ``w`` = nodes + edges (1 = linear). Stages 6
and 7 do a fixed amount of work (20 steps, 500 nodes): their time should not grow with the graph at all.
Goals on a 2-core box: 169k nodes end to end <= 3 minutes; 2.45M nodes <= 15 minutes and <= 12 GB.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TL_BACKEND", "torch")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

STAGES = ("load", "features", "index", "sample", "pretrain", "infer")


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GiB


class Stages:
    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}

    def run(self, name: str, fn, **extra):
        t0 = time.perf_counter()
        out = fn()
        self.rows[name] = {"seconds": time.perf_counter() - t0, "peak_rss_gib": _peak_gib(), **extra}
        print(f"  {name:<9} {self.rows[name]['seconds']:8.1f} s   peak RSS {_peak_gib():5.2f} GiB", flush=True)
        return out


def _config(folder: Path, steps: int, llm: str, dtype: str):
    from glm.core.config import config_from_dict

    return config_from_dict({
        "model": {"llm": {"name": llm, "dtype": dtype, "max_length": 4096 if llm.startswith("tiny") else 1024},
                  "encoder": {"layer": "gt", "in_dim": 128, "hidden_dim": 128, "out_dim": 128, "num_layers": 2}},
        "data": {"dataset": "tag_files", "options": {"nodes": str(folder / "nodes.parquet"),
                                                     "edges": str(folder / "edges.parquet")},
                 "features": str(folder / "features.npy"), "embedder": "hashing", "fanout": [10, 10],
                 "tasks": ["node_classification"], "samples_per_task": steps, "n_way": 5, "k_shot": 5,
                 "test_per_class": 100, "max_text_words": 40},
        "training": {"max_steps": steps, "save_steps": 0, "logging_steps": 5, "learning_rate": 1e-3,
                     "output_dir": str(folder / "run"), "overwrite_output_dir": True},
        "recipe": "cpu", "backend": "pyg"})


def run_size(num_nodes: int, work: Path, density: str, steps: int, seeds: int, infer_nodes: int, llm: str) -> dict:
    import torch

    from glm.core.data.loaders import load_tag_files
    from glm.core.data.matrix import matrix_features
    from glm.core.data.sampling import NeighborSampler
    from glm.core.data.synth import CLASS_WORDS, DENSITIES, SynthSpec, write_synthetic

    folder = work / f"synth-{density}-{num_nodes}"
    spec = SynthSpec(num_nodes, DENSITIES[density])
    stages = Stages()
    print(f"scale {num_nodes:,} nodes ({density} density) in {folder}", flush=True)
    marker = folder / "synth.json"
    from dataclasses import asdict

    if not (marker.is_file() and {k: v for k, v in json.loads(marker.read_text()).items() if k in asdict(spec)}
            == asdict(spec) and json.loads(marker.read_text()).get("class_words") == list(CLASS_WORDS)):
        stages.run("synth", lambda: write_synthetic(folder, spec))
    tag = stages.run("load", lambda: load_tag_files(folder / "nodes.parquet", folder / "edges.parquet"))
    x = stages.run("features", lambda: matrix_features(str(folder / "features.npy"), tag.num_nodes, 128))
    sampler = stages.run("index", lambda: NeighborSampler(tag.edge_index, tag.num_nodes, (10, 10), seed=0))
    targets = torch.randint(0, tag.num_nodes, (seeds,), generator=torch.Generator().manual_seed(0))

    def sample() -> int:
        total = 0
        for i in range(0, seeds, 4096):
            total += int(sampler.sample(targets[i:i + 4096]).node_ids.numel())
        return total

    nodes_sampled = stages.run("sample", sample)
    stages.rows["sample"]["per_second"] = seeds / stages.rows["sample"]["seconds"]
    stages.rows["sample"]["mean_nodes"] = nodes_sampled / seeds

    from glm.core.train.pipeline import prepare_data, run_stage

    config = _config(folder, steps, llm, "auto")  # bf16 where it runs natively, else fp32
    result, model, data = stages.run("pretrain", lambda: run_stage(config, progress=False,
                                                                    data=prepare_data(config, tag=tag, x=x)))
    stages.rows["pretrain"]["step_seconds"] = result.train_seconds / max(result.global_step, 1)
    stages.rows["pretrain"]["train_seconds"] = result.train_seconds
    infer = stages.run("infer", lambda: _infer(config, model, data, infer_nodes))
    stages.rows["infer"]["per_second"] = infer_nodes / infer
    total = sum(r["seconds"] for k, r in stages.rows.items() if k != "synth")
    return {"nodes": tag.num_nodes, "edges": tag.num_edges, "density": density, "stages": stages.rows,
            "end_to_end_seconds": total, "peak_rss_gib": _peak_gib()}


def _infer(config, model, data, count: int) -> float:
    """Seconds of streaming inference (choice scoring) over ``count`` nodes, predictions to a scratch file."""
    import torch

    from glm.core.eval.stream import stream_predictions
    from glm.run import predict

    nodes = torch.randperm(data.tag.num_nodes, generator=torch.Generator().manual_seed(1))[:count]
    with tempfile.TemporaryDirectory() as tmp:
        return stream_predictions(nodes, lambda ids: predict(model, config, data, ids, "choice"),
                                  Path(tmp) / "p.jsonl", progress=False).seconds


def compare_dtypes(num_nodes: int, work: Path, density: str, steps: int, nodes: int, llm: str) -> dict:
    """Training step and inference speed of the LLM in bfloat16 (dense, dequantised once at load) and in
    float32, same graph, same process: ``{dtype: {"step_seconds", "nodes_per_second"}}``."""
    import torch

    from glm.core.data.loaders import load_tag_files
    from glm.core.data.matrix import matrix_features
    from glm.core.train.pipeline import prepare_data, run_stage

    folder = work / f"synth-{density}-{num_nodes}"
    tag = load_tag_files(folder / "nodes.parquet", folder / "edges.parquet")
    x = matrix_features(str(folder / "features.npy"), tag.num_nodes, 128)
    out = {}
    for dtype in ("bfloat16", "float32"):
        config = _config(folder, steps, llm, dtype)
        result, model, data = run_stage(config, progress=False, data=prepare_data(config, tag=tag, x=x))
        seconds = _infer(config, model, data, nodes)
        out[dtype] = {"step_seconds": result.train_seconds / max(result.global_step, 1),
                      "nodes_per_second": nodes / seconds}
        print(f"  {dtype}: {out[dtype]['step_seconds']:.2f} s/step, {out[dtype]['nodes_per_second']:.2f} nodes/s",
              flush=True)
        del model
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    b, f = out["bfloat16"], out["float32"]
    print(f"LLM dtype: bf16 / fp32 training step speed {f['step_seconds'] / b['step_seconds']:.2f}x, inference "
          f"{b['nodes_per_second'] / f['nodes_per_second']:.2f}x ({llm}, {steps} steps, {nodes} nodes)")
    return out


def _table(results: list[dict]) -> str:
    head = "| stage | " + " | ".join(f"{r['nodes']:,} nodes" for r in results) + " |"
    lines = [head, "|" + "---|" * (len(results) + 1)]
    for stage in ("synth", *STAGES):
        cells = []
        for r in results:
            row = r["stages"].get(stage)
            if row is None:
                cells.append("(reused)" if stage == "synth" else "")
                continue
            rate = f", {row['per_second']:,.1f}/s" if "per_second" in row else ""
            cells.append(f"{row['seconds']:.1f} s{rate} ({row['peak_rss_gib']:.2f} GiB)")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append("| **end to end** | " + " | ".join(f"**{r['end_to_end_seconds']:.0f} s**, {r['peak_rss_gib']:.2f} GiB"
                                               for r in results) + " |")
    return "\n".join(lines)


def _exponents(results: list[dict]) -> list[str]:
    out = []
    for a, b in zip(results, results[1:]):
        w = math.log((b["nodes"] + b["edges"]) / (a["nodes"] + a["edges"]))
        parts = []
        for stage in ("load", "features", "index", "sample", "pretrain", "infer"):
            ta, tb = a["stages"][stage]["seconds"], b["stages"][stage]["seconds"]
            parts.append(f"{stage} {math.log(max(tb, 1e-3) / max(ta, 1e-3)) / w:+.2f}")
        out.append(f"growth exponent {a['nodes']:,} -> {b['nodes']:,} nodes (1 = linear in nodes + edges): "
                   + ", ".join(parts))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, help="one size, in this process")
    p.add_argument("--sizes", default="10000,169343", help="comma-separated sizes, one process each (default "
                                                          "10000,169343; the goal adds 2449029)")
    p.add_argument("--density", choices=("arxiv", "products"), default="arxiv")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seeds", type=int, default=100_000, help="seed nodes sampled in stage 5")
    p.add_argument("--infer-nodes", type=int, default=500)
    p.add_argument("--llm", default="smollm2-135m", help="smollm2-135m (default) or tiny-random (a smoke run)")
    p.add_argument("--work", type=Path, default=Path("runs") / "bench-scale", help="graphs and runs go here")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--compare-dtypes", action="store_true",
                   help="also time 5 training steps and 50 scored nodes with the LLM in bf16 and in fp32 (smallest size)")
    args = p.parse_args()
    if args.nodes:
        r = run_size(args.nodes, args.work, args.density, args.steps, args.seeds, args.infer_nodes, args.llm)
        if args.json:
            args.json.write_text(json.dumps(r, indent=1), encoding="utf-8")
        print(_table([r]))
        if args.compare_dtypes:
            compare_dtypes(args.nodes, args.work, args.density, 5, 50, args.llm)
        print(f"scale {r['nodes']} nodes: end-to-end {r['end_to_end_seconds']:.0f} s, peak RSS {r['peak_rss_gib']:.2f} GiB")
        return 0
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            out = Path(tmp) / f"{n}.json"
            cmd = [sys.executable, __file__, "--nodes", str(n), "--density", args.density, "--steps", str(args.steps),
                   "--seeds", str(args.seeds), "--infer-nodes", str(args.infer_nodes), "--llm", args.llm,
                   "--work", str(args.work), "--json", str(out)]
            if subprocess.run(cmd).returncode != 0:
                print(f"scale: the {n:,}-node run failed", file=sys.stderr)
                return 1
            results.append(json.loads(out.read_text()))
    print()
    print(_table(results))
    for line in _exponents(results):
        print(line)
    small = results[0]["stages"]["infer"]["per_second"]
    for r in results:
        print(f"inference {r['nodes']:,} nodes: {r['stages']['infer']['per_second']:.1f} nodes/s "
              f"({r['stages']['infer']['per_second'] / small:.2f}x the smallest graph's)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    for r in results:
        print(f"scale {r['nodes']} nodes: end-to-end {r['end_to_end_seconds']:.0f} s, peak RSS {r['peak_rss_gib']:.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
