"""The title-generation bench against the demo's CPU budget, measured on this machine in one run.

Runs ``glm demo`` (the README's first command; it keeps GraphLAMA's pre-trained graph side in the bench's
pre-training cache), then ``glm bench generation`` twice, each as its own process: after the demo (the same
cache: GraphLAMA's pre-training is the demo's) and from nothing (an empty cache: every method pre-trains).
Prints for each: wall seconds, CPU seconds (every thread of the process), peak RSS; for the generation runs
where their time went (each method's pre-training, each row's adaptation + generation, from ``bench.json``),
whether both printed the same table, and the ratios generation / demo (goal <= 1: the table in the demo's
budget).

    python bench/generation_budget.py                        # the README's commands, in full
    python bench/generation_budget.py --no-fresh             # only the run after the demo
    python bench/generation_budget.py --demo-seconds 900     # reuse a demo time measured on this machine
                                                             # (then only the run from nothing)
    python bench/generation_budget.py data.generation.test=60
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
ADAPT_SETS = ("graphgpt:training.max_steps=10",)  # README's command: chosen on validation papers


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
    p.add_argument("--no-fresh", action="store_true", help="skip the generation run from an empty cache")
    p.add_argument("--adapt-config", action="append", default=[], metavar="[METHOD=]PATH",
                   help="the generation bench's (default: none)")
    p.add_argument("--adapt-set", action="append", default=None, metavar="[METHOD:]KEY=VALUE",
                   help=f"the generation bench's (default: {' '.join(ADAPT_SETS)})")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the generation bench")
    args = p.parse_args()

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TL_BACKEND": "torch",
           "TOKENIZERS_PARALLELISM": "false"}
    glm = [sys.executable, "-m", "glm.cli.main"]
    results, spent, tables = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="glm-budget-") as tmp:
        runs = []
        if args.demo_seconds is None:
            print("== glm demo", flush=True)
            results["demo"] = measured([*glm, "demo", "--output-dir", f"{tmp}/demo"],
                                       {**env, "GLM_BENCH_CACHE": f"{tmp}/cache"})
            runs.append(("after demo", f"{tmp}/cache"))
        if not args.no_fresh or args.demo_seconds is not None:
            runs.append(("from nothing", f"{tmp}/empty-cache"))
        for name, cache in runs:
            out = Path(tmp) / name.replace(" ", "-")
            print(f"== glm bench generation ({name})", flush=True)
            results[name] = measured(
                [*glm, "bench", "generation", args.config, "--pretrain-config", args.pretrain_config, "--draws",
                 str(args.draws), "--output-dir", str(out), "--no-progress", *args.overrides,
                 *(f"--adapt-config={a}" for a in args.adapt_config),
                 *(f"--adapt-set={a}" for a in (ADAPT_SETS if args.adapt_set is None else args.adapt_set))],
                {**env, "GLM_BENCH_CACHE": cache})
            report = json.loads((out / "bench.json").read_text(encoding="utf-8"))
            spent[name] = report["time"]
            tables[name] = [{k: v for k, v in row.items() if "seconds" not in k}  # (times differ run to run)
                            for row in report["summary"]]
    demo_wall = args.demo_seconds if args.demo_seconds is not None else results["demo"]["wall"]
    print()
    for name, r in results.items():
        print(f"{name:<13} wall {r['wall']:7.0f} s   CPU {r['cpu']:7.0f} s   peak RSS {r['peak_rss_gib']:.2f} GiB")
    if args.demo_seconds is not None:
        print(f"{'demo':<13} wall {demo_wall:7.0f} s   (given)")
    for name, t in spent.items():
        pre, rows = t["pretrain_seconds"], t["row_seconds"]
        rest = t["total_seconds"] - sum(pre.values()) - sum(rows.values())
        print(f"{name}: pre-training {sum(pre.values()):.0f} s ({', '.join(f'{m} {s:.0f}' for m, s in pre.items())}"
              f"{'; reused: ' + ', '.join(t['pretrain_reused']) if t['pretrain_reused'] else ''}); "
              f"rows {sum(rows.values()):.0f} s ({', '.join(f'{r} {s:.0f}' for r, s in rows.items())}); "
              f"the rest (data, LLM loads) {rest:.0f} s")
    if len(tables) == 2:
        same = tables["after demo"] == tables["from nothing"]
        print(f"the same table after the demo and from nothing: {'yes, to the last digit' if same else 'NO'}")
    for name in spent:
        ratio = results[name]["wall"] / demo_wall
        cpu = (f", CPU {results[name]['cpu'] / results['demo']['cpu']:.2f}" if "demo" in results else "")
        print(f"generation bench ({name}) / demo: wall {ratio:.2f}{cpu} (goal <= 1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
