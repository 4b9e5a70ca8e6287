"""Precomputed node features (``data.features``): a user's SBERT / SimTeG / BERT matrix, never unpickled.

Formats:

* ``features.npy``: memory-mapped (``allow_pickle=False``: an object array is refused);
* ``features.safetensors`` (one tensor) or ``features.safetensors:KEY``;
* ``nodes.parquet:COLUMN``: a column of fixed-size (or equal-length) float lists.

Shapes: ``[N, F]`` with ``N`` the graph's node count, in node order. A float32 ``.npy`` whose width is the
encoder's ``in_dim`` is used in place (no copy: the pages are read when a subgraph needs its rows);
another width is reduced by the fixed random projection in chunks of :data:`CHUNK_ROWS` rows. Shape,
dtype and NaN / inf are checked with named errors (file, field, expected vs found).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from glm.core.data.errors import DataNotFoundError, DataValidationError

CHUNK_ROWS = 1 << 16
FLOAT_DTYPES = (np.float16, np.float32, np.float64)


def _split(spec: str) -> tuple[Path, Optional[str]]:
    """``path[:key]`` (a Windows drive letter is not a key)."""
    head, sep, key = spec.rpartition(":")
    if sep and head and not (len(head) == 1 and head.isalpha()) and not Path(spec).exists():
        return Path(head), key
    return Path(spec), None


def feature_source_id(spec: str) -> str:
    """How adapters record these features (``matrix:<file name>[:key]``)."""
    path, key = _split(spec)
    return f"matrix:{path.name}" + (f":{key}" if key else "")


def feature_source(data: Any) -> str:
    """What a ``data`` config section's node features come from, as adapters record it: the embedder's name,
    or ``matrix:<file>`` for ``data.features``, with ``+propagate<K>`` for ``data.propagate`` and ``+standardize``
    for ``data.standardize``."""
    base = feature_source_id(data.features) if getattr(data, "features", None) else data.embedder
    hops = int(getattr(data, "propagate", 0) or 0)
    return base + (f"+propagate{hops}" if hops else "") + ("+standardize" if getattr(data, "standardize", False) else "")


def read_matrix(spec: str) -> np.ndarray:
    """The ``[N, F]`` array of ``spec`` (memory-mapped for ``.npy``)."""
    path, key = _split(spec)
    if not path.is_file():
        raise DataNotFoundError(str(path), [path.parent], hint="data.features names a .npy, .safetensors or "
                                                               ".parquet:COLUMN file")
    name = path.name.lower()
    if name.endswith(".npy"):
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:  # object arrays need pickle: refused
            raise DataValidationError(path, None, "data.features", "a numeric .npy array (never unpickled)",
                                      str(exc).splitlines()[0]) from None
    if name.endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as f:
            keys = list(f.keys())
            if key is None and len(keys) != 1:
                raise DataValidationError(path, None, "data.features", "one tensor, or PATH:KEY naming one",
                                          f"tensors {keys[:5]}")
            if (key or keys[0]) not in keys:
                raise DataValidationError(path, None, "data.features", f"a tensor named {key!r}", f"tensors {keys[:5]}")
            return f.get_tensor(key or keys[0])
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        if key is None:
            raise DataValidationError(path, None, "data.features", "PATH.parquet:COLUMN", str(path))
        schema = pq.read_schema(path)
        if key not in schema.names:
            raise DataValidationError(path, None, "data.features", f"a column {key!r}", f"columns {schema.names[:8]}")
        col = pq.read_table(path, columns=[key]).column(key).combine_chunks()
        if col.null_count:
            raise DataValidationError(path, None, key, "a vector on every row", f"{col.null_count} empty rows")
        flat = col.flatten().to_numpy(zero_copy_only=False)
        if len(col) and flat.size % len(col):
            raise DataValidationError(path, None, key, "vectors of one length", "rows of different lengths")
        return flat.reshape(len(col), -1)
    raise DataValidationError(path, None, "data.features", "a .npy, .safetensors or .parquet:COLUMN file",
                              repr(path.suffix or path.name))


def check_matrix(array: np.ndarray, num_nodes: int, where: str) -> None:
    """Shape ``[num_nodes, F]``, a float dtype and finite values (scanned in chunks)."""
    if array.ndim != 2:
        raise DataValidationError(where, None, "data.features", "a 2-D matrix [nodes, features]",
                                  f"shape {tuple(array.shape)}")
    if array.shape[0] != num_nodes:
        raise DataValidationError(where, None, "data.features", f"{num_nodes} rows (one per node, in node order)",
                                  f"{array.shape[0]} rows")
    if array.dtype.type not in FLOAT_DTYPES:
        raise DataValidationError(where, None, "data.features", "float16, float32 or float64", str(array.dtype))
    for start in range(0, num_nodes, CHUNK_ROWS):
        block = np.asarray(array[start:start + CHUNK_ROWS])
        if not np.isfinite(block).all():
            row = start + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
            raise DataValidationError(where, None, "data.features", "finite values", f"NaN/inf in row {row}")


def matrix_features(spec: str, num_nodes: int, dim: int, seed: int = 42) -> Tensor:
    """``[num_nodes, dim]`` float32 features from ``spec``; in place when already float32 of width ``dim``."""
    from glm.core.text import gaussian_random_matrix

    array = read_matrix(spec)
    check_matrix(array, num_nodes, spec)
    if array.shape[1] == dim:
        if array.dtype != np.float32:
            return torch.from_numpy(np.asarray(array, dtype=np.float32))
        with warnings.catch_warnings():  # a read-only memory map: glm never writes node features
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(array)
    proj = torch.from_numpy(gaussian_random_matrix(array.shape[1], dim, seed)).to(torch.float64).T
    out = torch.empty(num_nodes, dim, dtype=torch.float32)
    for start in range(0, num_nodes, CHUNK_ROWS):
        block = torch.from_numpy(np.asarray(array[start:start + CHUNK_ROWS], dtype=np.float64))
        out[start:start + block.shape[0]] = (block @ proj).to(torch.float32)
    return out
