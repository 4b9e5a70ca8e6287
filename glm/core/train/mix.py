"""Pre-training on several graphs (``data.datasets``): GraphLAMA and LLaGA pre-train on more than one.

``data.dataset`` stays the run's graph: its split gives the pre-training classes, the held-out classes,
validation and test. Each entry of ``data.datasets`` adds a graph whose every class pre-trains
(``split: pretrain_graph``), with its own prompt words (``prompt``, over its registration's) and a
mixing weight: the entry contributes ``round(weight * samples_per_task)`` samples per pre-training task
(``weight`` default 1; the run's own graph has weight 1). All graphs must be read by one encoder, so their
node features come from the same embedder, or all from precomputed matrices of the same width; the
check runs when the config is read (names) and when the graphs are loaded (widths).
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Iterator

from glm.errors import GlmError

ENTRY_KEYS = ("dataset", "options", "data_dir", "features", "prompt", "weight", "embedder")


def check_datasets(data: Any) -> Iterator[str]:
    """Problems of ``data.datasets`` that need no file: keys, weights, one feature source."""
    for i, entry in enumerate(data.datasets):
        where = f"data.datasets[{i}]"
        if not isinstance(entry, dict) or "dataset" not in entry:
            yield f"{where} must be a mapping with at least 'dataset', found {entry!r}"
            continue
        unknown = sorted(set(entry) - set(ENTRY_KEYS))
        if unknown:
            yield f"{where}: unknown keys {unknown}; valid keys: {', '.join(ENTRY_KEYS)}"
        weight = entry.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < float("inf"):
            yield f"{where}.weight must be a number > 0, found {weight!r}"
        if bool(entry.get("features")) != bool(data.features):
            yield (f"{where}: node features from {'a matrix' if entry.get('features') else 'the embedder'}, but "
                   f"data.dataset's from {'a matrix' if data.features else 'the embedder'}; one encoder reads both")
        if entry.get("embedder", data.embedder) != data.embedder:
            yield f"{where}.embedder {entry['embedder']!r} differs from data.embedder {data.embedder!r}"


def graph_config(config: Any, entry: dict[str, Any]) -> Any:
    """``config`` with ``data`` replaced by one ``data.datasets`` entry (every class pre-trains there)."""
    other = copy.deepcopy(config)
    d = other.data
    d.dataset, d.options = entry["dataset"], dict(entry.get("options") or {})
    d.data_dir, d.features = entry.get("data_dir"), entry.get("features")
    d.prompt, d.split, d.datasets, d.heldout_classes = dict(entry.get("prompt") or {}), "pretrain_graph", [], None
    if d.samples_per_task is not None:
        d.samples_per_task = max(1, round(float(entry.get("weight", 1)) * d.samples_per_task))
    return other


class MixError(GlmError, ValueError):
    """An extra pre-training graph cannot be mixed in (feature width, weights without a sample budget)."""


def mixed_pretrain_samples(config: Any, data: Any, stage: str, own: list[Any],
                           prepare_data: Callable[[Any], Any], stage_samples: Callable[..., list[Any]]) -> list[Any]:
    """``own`` (the run's graph's samples) followed by each extra graph's, loaded by ``prepare_data`` and
    built by ``stage_samples`` (the pipeline's, passed in: this module does not import the pipeline)."""
    samples = list(own)
    width = data.source.x.shape[1]
    for i, entry in enumerate(config.data.datasets):
        sub = graph_config(config, entry)
        bundle = prepare_data(sub)
        if bundle.source.x.shape[1] != width:
            raise MixError(f"data.datasets[{i}] ({entry['dataset']}): node features of width "
                                f"{bundle.source.x.shape[1]}, data.dataset's {width}")
        if config.data.samples_per_task is None and "weight" in entry:
            raise MixError(f"data.datasets[{i}].weight scales data.samples_per_task, which is unset (every node)")
        samples += stage_samples(sub, bundle, stage)
    return samples
