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
from typing import Any, Callable

from glm.errors import GlmError

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
