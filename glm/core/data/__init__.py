"""Text-attributed graph data: loaders -> features -> sampling -> tasks -> collate.

Typical use::

    from glm.core.data import load_dataset
    from glm.core.data.features import node_features
    from glm.core.data.tasks import GraphSource, node_classification
    from glm.core.data.collate import GraphCollator

    tag = load_dataset("citeseer_tag")            # any registered dataset (plugins included)
    x = node_features(tag, "minilm", dim=128)     # cached on disk
    source = GraphSource(tag, x)                  # fan-out [10, 10], target first
    samples = node_classification(source, [0, 1, 2])
    batch = GraphCollator(tokenizer)(samples)     # -> GraphBatch
"""

from __future__ import annotations

from typing import Any

from glm.core.data.errors import (
    ContextOverflowError,
    DataError,
    DataNotFoundError,
    DataValidationError,
    DuplicateNodeIdError,
    EmptyTextError,
    InsufficientNodesError,
    MalformedRecordError,
    SplitMismatchError,
    UnknownLabelError,
    UnknownNodeError,
)
from glm.core.data.tag import TextAttributedGraph


def load_dataset(name: str, /, **options: Any) -> TextAttributedGraph:
    """Load a dataset registered through the ``register_datasets`` hook (built-ins and plugins).

    ``options`` go to the loader (``data_dir=`` for file-backed datasets; ``name=`` names a ``tag_files``
    dataset)."""
    from glm.plugins.manager import get_registry

    tag = get_registry().dataset(name).loader(**options)
    if not isinstance(tag, TextAttributedGraph):
        raise TypeError(f"dataset {name!r}: loader returned {type(tag).__name__}, expected TextAttributedGraph")
    return tag


def dataset_names() -> list[str]:
    from glm.plugins.manager import get_registry

    return sorted(get_registry().datasets)


__all__ = [
    "TextAttributedGraph",
    "load_dataset",
    "dataset_names",
    "DataError",
    "DataNotFoundError",
    "DataValidationError",
    "DuplicateNodeIdError",
    "UnknownNodeError",
    "EmptyTextError",
    "UnknownLabelError",
    "MalformedRecordError",
    "ContextOverflowError",
    "SplitMismatchError",
    "InsufficientNodesError",
]
