"""``glm data``: list datasets, print statistics, make few-shot splits, precompute features and subgraphs."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from glm.cli.common import CliError, print_json

logger = logging.getLogger(__name__)

PERCENTILES = (50, 90, 95, 99)


def add_commands(subparsers: Any) -> None:
    data = subparsers.add_parser("data", help="datasets: list, stats, split, prepare, export")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    data.set_defaults(func=lambda args: (data.print_help(), 0)[1])

    p = sub.add_parser("list", help="registered datasets (built-in and plugins)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("stats", help="node/edge/class counts and prompt token-length percentiles")
    _dataset_args(p)
    p.add_argument("--task", default="node_classification",
                   help="task whose prompts are measured (node_classification, graph_matching, link_prediction, "
                        "title_generation)")
    p.add_argument("--limit", type=int, default=300, help="number of prompts measured (default 300; 0 = none)")
    p.add_argument("--tokenizer", default="smollm2", help="smollm2 (packaged GGUF), tiny, or a local folder")
    p.add_argument("--fanouts", type=int, nargs="+", default=[10, 10], help="neighbours per hop (default 10 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-text-words", type=int,
                   help="node text budget of the prompts, as data.max_text_words (default: the config's, or 60)")
    p.add_argument("--config", help="measure with this run config's text budget and fan-out")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("split", help="write an N-way k-shot few-shot split manifest (JSON)")
    _dataset_args(p)
    p.add_argument("--config", help="take n_way, k_shot, seed, held-out classes and split sizes from this run config "
                                    "(the split a training run would make); options below override it")
    p.add_argument("--n-way", type=int, help="default: the config's data.n_way")
    p.add_argument("--k-shot", type=int, help="training nodes per class (paper: 1, 5, 20, 50; default: data.k_shot)")
    p.add_argument("--seed", type=int, help="default: data.seed")
    p.add_argument("--heldout", help="comma-separated held-out class names (default: data.heldout_classes or drawn)")
    p.add_argument("--val-per-class", type=int, help="default: data.val_per_class")
    p.add_argument("--test-per-class", type=int, help="default: data.test_per_class; 0 = all remaining nodes")
    p.add_argument("-o", "--output", required=True, type=Path, help="manifest path (written atomically)")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("prepare", help="compute and cache node features and subgraphs; print timings")
    _dataset_args(p)
    p.add_argument("--embedder", default="auto", help="minilm, minilm@N (truncate texts to N word pieces), hashing or auto (default)")
    p.add_argument("--dim", type=int, default=128, help="encoder input dimension (default 128)")
    p.add_argument("--method", default="random_projection", help="random_projection (default), pca or none")
    p.add_argument("--fanouts", type=int, nargs="+", default=[10, 10])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", type=Path, help="default $GLM_CACHE_DIR or ~/.cache/glm")
    p.add_argument("--features", help="a precomputed feature matrix instead of the embedder (data.features: .npy, "
                                      ".safetensors[:KEY], .parquet:COLUMN)")
    p.add_argument("--subgraphs", action="store_true",
                   help="also sample and cache every node's subgraph (training samples on the fly without it)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("synth", help="write a synthetic TAG of any size (nodes, edges, features.npy): the scale "
                                     "bench's graphs")
    p.add_argument("output", type=Path, help="folder for nodes.<fmt>, edges.<fmt>, features.npy, synth.json")
    p.add_argument("--nodes", type=int, required=True, help="number of nodes (e.g. 169343, 2449029)")
    p.add_argument("--density", default="arxiv",
                   help="average degree: arxiv (13.8), products (50.5) or a number (default arxiv)")
    p.add_argument("--classes", type=int, default=40)
    p.add_argument("--feature-dim", type=int, default=128)
    p.add_argument("--homophily", type=float, default=0.8, help="share of edges inside a class (default 0.8)")
    p.add_argument("--text-signal", type=float, default=0.3,
                   help="chance that a text word is one of its class's topic words (default 0.3; 0 = texts carry no class)")
    p.add_argument("--feature-noise", type=float, default=2.0,
                   help="standard deviation of the features' noise around the class centroid (default 2.0)")
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("export", help="write a dataset (or the induced subgraph of some classes) as user TAG files "
                                      "nodes.csv + edges.csv")
    _dataset_args(p)
    p.add_argument("--classes", help="comma-separated class names to keep (default: all)")
    p.add_argument("--exclude-classes", help="comma-separated class names to drop")
    p.add_argument("-o", "--output", required=True, type=Path, help="folder for nodes.csv and edges.csv")
    p.add_argument("--overwrite", action="store_true", help="replace the files of an earlier export")
    p.set_defaults(func=cmd_export)


def _dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="dataset name (see `glm data list`)")
    p.add_argument("--data-dir", type=Path, help="data folder (default $GLM_DATA_DIR, then ../shared/data)")
    p.add_argument("--nodes", type=Path, help="nodes file for the tag_files dataset")
    p.add_argument("--edges", type=Path, help="edges file for the tag_files dataset")
    p.add_argument("--dataset-name", help="name of a tag_files dataset in listings and cache keys "
                                          "(default: the nodes file's folder, e.g. webkb for webkb/nodes.csv)")


def _load(args: argparse.Namespace):
    from glm.core.data import DataError, load_dataset
    from glm.plugins.registry import RegistryError

    options: dict[str, Any] = {}
    if args.data_dir is not None:
        options["data_dir"] = args.data_dir
    if args.nodes is not None or args.edges is not None:
        options.update(nodes=args.nodes, edges=args.edges, name=args.dataset_name)
    try:
        return load_dataset(args.name, **options)
    except (DataError, RegistryError, ValueError) as exc:
        raise CliError(str(exc)) from None


def cmd_list(args: argparse.Namespace) -> int:
    from glm.plugins.manager import get_registry

    for name, spec in sorted(get_registry().datasets.items()):
        print(f"{name:14s} {spec.description}  [{spec.plugin or '?'}]")
    return 0


def _tokenizer(name: str):
    if name == "tiny":
        from glm.core.llm import tiny_tokenizer

        return tiny_tokenizer()
    from transformers import AutoTokenizer

    from glm.core.llm import LLMLoadError, smollm2_gguf_path

    try:
        if name == "smollm2":
            path = smollm2_gguf_path()
            return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)
        return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except (LLMLoadError, OSError, ValueError) as exc:
        raise CliError(f"tokenizer {name!r} could not be loaded: {exc}") from None


def prompt_length_stats(tag, task: str, limit: int, tokenizer, fanouts, seed: int,
                        max_text_words: int = 60) -> dict[str, Any]:
    """Token-length percentiles of ``limit`` prompts of ``task`` (answers included), seeded node choice."""
    import torch

    from glm.core.data.collate import prompt_token_lengths
    from glm.core.data.tasks import TASKS, GraphSource

    # Token counts do not depend on feature values: a 1-column placeholder avoids embedding here.
    source = GraphSource(tag, torch.zeros(tag.num_nodes, 1), fanouts=fanouts, seed=seed, cache_dir=False)
    g = torch.Generator().manual_seed(seed)
    nodes = torch.randperm(tag.num_nodes, generator=g)[:limit]
    nodes = nodes[tag.labels[nodes] >= 0]
    if task not in TASKS:
        raise CliError(f"unknown task {task!r}; known: {', '.join(sorted(TASKS))}")
    samples = TASKS[task](source, nodes, seed=seed, max_text_words=max_text_words)
    if not samples:
        raise CliError(f"no {task} samples could be built for {tag.name}")
    lengths = prompt_token_lengths(samples, tokenizer).float()
    nodes_per = torch.tensor([sum(g.num_nodes for g in s.graphs) for s in samples], dtype=torch.float)
    return {
        "task": task,
        "prompts": len(samples),
        "tokens": {f"p{q}": int(torch.quantile(lengths, q / 100).round()) for q in PERCENTILES}
        | {"mean": round(float(lengths.mean()), 1), "max": int(lengths.max())},
        "graph_nodes": {"mean": round(float(nodes_per.mean()), 1), "max": int(nodes_per.max())},
    }


def cmd_stats(args: argparse.Namespace) -> int:
    from glm.core.config import load_config

    d = load_config(args.config).data
    words = d.max_text_words if args.max_text_words is None else args.max_text_words
    fanouts = list(d.fanout) if args.config else args.fanouts
    tag = _load(args)
    out = tag.summary()
    if args.limit > 0:
        out["prompt_lengths"] = prompt_length_stats(tag, args.task, args.limit, _tokenizer(args.tokenizer),
                                                    fanouts, args.seed, words)
        out["prompt_lengths"].update(tokenizer=args.tokenizer, max_text_words=words)
    if args.json:
        print_json(out)
        return 0
    print(f"{out['name']}: {out['nodes']} nodes, {out['edges']} undirected edges ({out['isolated']} isolated nodes), "
          f"{out['classes']} classes, text: {'yes' if out['has_text'] else 'no'}, content hash {out['content_hash']}")
    for name, count in out["class_counts"].items():
        print(f"  {name:28s} {count}")
    if out["unlabelled"]:
        print(f"  {'(unlabelled)':28s} {out['unlabelled']}")
    if "prompt_lengths" in out:
        pl = out["prompt_lengths"]
        toks = ", ".join(f"{k} {v}" for k, v in pl["tokens"].items())
        print(f"{pl['task']} prompts ({pl['prompts']}, {args.tokenizer} tokens, answer included, node text clipped "
              f"to {words} words): {toks}")
        print(f"  graph nodes per prompt: mean {pl['graph_nodes']['mean']}, max {pl['graph_nodes']['max']}")
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    from glm.core.data import DataError
    from glm.core.data.splits import make_few_shot_split

    from glm.core.config import load_config

    d = load_config(args.config).data  # one source of defaults: the run config (or its defaults)
    tag = _load(args)
    held = [c.strip() for c in args.heldout.split(",")] if args.heldout else d.heldout_classes
    test = d.test_per_class if args.test_per_class is None else (args.test_per_class or None)
    pick = lambda given, default: default if given is None else given  # noqa: E731
    try:
        split = make_few_shot_split(tag, pick(args.n_way, d.n_way), pick(args.k_shot, d.k_shot), pick(args.seed, d.seed),
                                    heldout_classes=held, val_per_class=pick(args.val_per_class, d.val_per_class),
                                    test_per_class=test)
    except DataError as exc:
        raise CliError(str(exc)) from None
    split.save(args.output)
    print(f"{args.output}: {tag.name} {split.n_way}-way {split.k_shot}-shot (seed {split.seed}); held out "
          f"{', '.join(split.heldout_classes)}; train {len(split.train)}, val {len(split.val)}, test {len(split.test)}, "
          f"pre-train nodes {len(split.pretrain)}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from glm.core.data.features import node_features
    from glm.core.data.sampling import precompute_subgraphs
    from glm.core.text import EmbedderUnavailableError, get_embedder

    from glm.core.data.matrix import matrix_features

    t0 = time.perf_counter()
    tag = _load(args)
    t_load = time.perf_counter()
    if args.features:
        x, via = matrix_features(args.features, tag.num_nodes, args.dim), args.features
    else:
        try:
            embedder = get_embedder(args.embedder) if tag.has_text else None
        except (EmbedderUnavailableError, ValueError) as exc:
            raise CliError(str(exc)) from None
        x = node_features(tag, embedder, dim=args.dim, method=args.method, cache_dir=args.cache_dir)
        via = f"{getattr(embedder, 'id', 'native features')} + {args.method}"
    t1 = time.perf_counter()
    line = (f"{tag.name}: {tag.num_nodes:,} nodes, {tag.num_edges:,} edges loaded in {t_load - t0:.2f}s; features "
            f"{tuple(x.shape)} via {via} in {t1 - t_load:.2f}s")
    if args.subgraphs:
        subgraphs = precompute_subgraphs(tag.edge_index, tag.num_nodes, None, args.fanouts, args.seed,
                                         dataset_hash=tag.content_hash(), cache_dir=args.cache_dir)
        sizes = subgraphs.sizes().float()
        line += (f"; {len(subgraphs)} subgraphs (fan-out {args.fanouts}, mean {sizes.mean():.1f} nodes, "
                 f"max {int(sizes.max())}) in {time.perf_counter() - t1:.2f}s")
    print(line)
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from glm.core.data.synth import DENSITIES, SynthSpec, write_synthetic

    try:
        degree = DENSITIES[args.density] if args.density in DENSITIES else float(args.density)
    except ValueError:
        raise CliError(f"--density: arxiv, products or a number, found {args.density!r}") from None
    if (args.nodes < 2 or args.classes < 1 or degree <= 0 or not 0 <= args.homophily <= 1
            or not 0 <= args.text_signal <= 1 or not args.feature_noise >= 0):
        raise CliError(f"glm data synth: need --nodes >= 2, --classes >= 1, a density > 0, --homophily and --text-signal "
                       f"in [0, 1] and --feature-noise >= 0 (found {args.nodes}, {args.classes}, {degree}, "
                       f"{args.homophily}, {args.text_signal}, {args.feature_noise})")
    t0 = time.perf_counter()
    spec = SynthSpec(args.nodes, degree, args.classes, args.feature_dim, homophily=args.homophily,
                     text_signal=args.text_signal, feature_noise=args.feature_noise, seed=args.seed)
    paths = write_synthetic(args.output, spec, args.format)
    print(f"synthetic TAG: {args.nodes:,} nodes, ~{int(args.nodes * degree / 2):,} edges, {args.classes} classes in "
          f"{time.perf_counter() - t0:.1f}s -> " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from glm.core.data.export import ExportError, export_tag_files

    names = lambda text: [c.strip() for c in text.split(",") if c.strip()] if text else None  # noqa: E731
    tag = _load(args)
    try:
        counts = export_tag_files(tag, args.output, names(args.classes), names(args.exclude_classes), args.overwrite)
    except ExportError as exc:
        raise CliError(str(exc)) from None
    print(f"{tag.name}: {counts['nodes']} nodes, {counts['edges']} edges, {counts['classes']} classes "
          f"-> {args.output / 'nodes.csv'}, {args.output / 'edges.csv'}")
    return 0
