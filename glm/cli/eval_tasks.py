"""``glm eval`` for the tasks beyond node classification: title generation and link prediction."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from glm.cli.common import CliError, write_jsonl


def eval_titles(args: argparse.Namespace, config, model, data, chain, out) -> int:
    """``data.task=title_generation``: BLEU, ROUGE and GraphLAMA's BLEU of generated titles (docs/bench.md)."""
    from glm.core.eval.generation import evaluate_generation
    from glm.core.train.pipeline import eval_samples, make_collator

    samples = eval_samples(config, data, args.split)
    if not samples:
        raise CliError(f"--split {args.split}: no {args.split} nodes (set data.generation.{args.split} > 0)")
    ev = config.eval
    result = evaluate_generation(model, samples, make_collator(config, model, data, inference=True),
                                 batch_size=ev.batch_size, max_new_tokens=ev.max_new_tokens, do_sample=ev.do_sample,
                                 temperature=ev.temperature, seed=config.data.seed, progress=True)
    if out:
        write_jsonl([o.as_dict() for o in result.outputs], out)
    s = result.scores
    print(f"{args.split}: {result.num_samples} titles generated in {result.seconds:.1f} s "
          f"({'sampled, T=' + format(ev.temperature, 'g') if ev.do_sample else 'greedy'}); adapters: "
          f"{', '.join(str(c) for c in chain)}")
    print(f"BLEU {s['bleu']:.2f}, ROUGE-1 {s['rouge1']:.2f}, ROUGE-2 {s['rouge2']:.2f}, ROUGE-L {s['rougeL']:.2f}; "
          f"GraphLAMA's BLEU-1..4 (swapped, not standard BLEU): "
          + "/".join(f"{s[f'graphlama_bleu{i}']:.3f}" for i in range(1, 5)))
    for o in result.outputs[:3]:
        print(f"  node {o.node}: {o.output!r}  (reference {o.reference!r})")
    return 0


def eval_links(args: argparse.Namespace, config, model, data, chain, out) -> int:
    """``glm eval --task link_prediction``: AUC, accuracy and accuracy by hop distance (glm/core/eval/link.py)."""
    from glm.core.data.errors import DataError
    from glm.core.eval.link import format_link_report, link_eval_samples, link_report, pair_distances
    from glm.core.eval.predict import evaluate
    from glm.core.train.pipeline import make_collator

    if args.pairs < 2:
        raise CliError(f"--pairs must be >= 2 (half linked, half not), found {args.pairs}")
    try:
        samples = link_eval_samples(config, data, args.pairs, args.split)
    except DataError as exc:
        raise CliError(f"--task link_prediction: {exc}") from None
    result = evaluate(model, samples, make_collator(config, model, data), make_collator(config, model, data, inference=True),
                      mode="choice", batch_size=config.eval.batch_size, progress=True)
    dist = pair_distances(data.tag.edge_index, data.tag.num_nodes, [tuple(s.meta["pair"]) for s in samples])
    report = link_report(result, dist)
    if out:
        write_jsonl([{**p.as_dict(), "pair": list(s.meta["pair"]), "hop_distance": d}
                      for p, s, d in zip(result.predictions, samples, dist)], out)
    print(f"{args.split}: pairs among the nodes of {', '.join(data.split.heldout_classes)}; "
          f"adapters: {', '.join(str(c) for c in chain)}")
    print(format_link_report(report))
    if getattr(args, "report_dir", None):
        path = Path(args.report_dir) / "link_report.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1), encoding="utf-8")
        print(f"link report: {path}")
    return 0
