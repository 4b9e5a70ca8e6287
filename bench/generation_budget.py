"""The title-generation bench against the demo's CPU budget, measured on this machine in one run.

Runs ``glm demo`` and then ``glm bench generation`` (every row, a fresh pre-training cache and output
folder, so nothing is reused), each as its own process, and prints for each: wall seconds, CPU seconds
(every thread of the process), peak RSS; for the generation bench also where its time went (each method's
pre-training, each row's adaptation + generation, read from its ``bench.json``); then the ratio
generation / demo (goal <= 1: the table in the demo's budget).

    python bench/generation_budget.py                        # the README's commands, both in full
    python bench/generation_budget.py --demo-seconds 900     # reuse a demo time measured on this machine
    python bench/generation_budget.py --config examples/title_generation.yaml data.generation.test=60
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measured(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Wall, CPU (user + system of the child) and peak RSS of one command run to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited with {done.returncode}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "peak_rss_gib": after.ru_maxrss / 2**20}  # ru_maxrss: KiB on Linux


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="examples/title_generation.yaml")
    p.add_argument("--pretrain-config", default="examples/demo_pretrain.yaml")
    p.add_argument("--draws", type=int, default=1)
    p.add_argument("--demo-seconds", type=float, default=None,
                   help="skip the demo and compare with this wall time (measured on the same machine)")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the generation bench")
    args = p.parse_args()

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TL_BACKEND": "torch",
           "TOKENIZERS_PARALLELISM": "false"}
    glm = [sys.executable, "-m", "glm.cli.main"]
    results = {}
    with tempfile.TemporaryDirectory(prefix="glm-budget-") as tmp:
        if args.demo_seconds is None:
            print("== glm demo", flush=True)
            results["demo"] = measured([*glm, "demo", "--output-dir", f"{tmp}/demo"], env)
        out = Path(tmp) / "generation"
        print("== glm bench generation (fresh pre-training cache)", flush=True)
        results["generation"] = measured(
            [*glm, "bench", "generation", args.config, "--pretrain-config", args.pretrain_config, "--draws",
             str(args.draws), "--output-dir", str(out), "--no-progress", *args.overrides],
            {**env, "GLM_BENCH_CACHE": f"{tmp}/cache"})
        spent = json.loads((out / "bench.json").read_text(encoding="utf-8"))["time"]
    demo_wall = args.demo_seconds if args.demo_seconds is not None else results["demo"]["wall"]
    print()
    for name, r in results.items():
        print(f"{name:<11} wall {r['wall']:7.0f} s   CPU {r['cpu']:7.0f} s   peak RSS {r['peak_rss_gib']:.2f} GiB")
    if args.demo_seconds is not None:
        print(f"{'demo':<11} wall {demo_wall:7.0f} s   (given)")
    pre, rows = spent["pretrain_seconds"], spent["row_seconds"]
    rest = spent["total_seconds"] - sum(pre.values()) - sum(rows.values())
    print(f"generation: pre-training {sum(pre.values()):.0f} s ({', '.join(f'{m} {s:.0f}' for m, s in pre.items())}); "
          f"rows {sum(rows.values()):.0f} s ({', '.join(f'{r} {s:.0f}' for r, s in rows.items())}); "
          f"the rest (data, LLM loads) {rest:.0f} s")
    ratio = results["generation"]["wall"] / demo_wall
    print(f"generation bench / demo wall time: {ratio:.2f} (goal <= 1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
