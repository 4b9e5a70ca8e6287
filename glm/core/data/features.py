"""Node features of a TAG: text -> embedder -> reduction to the encoder input dimension, cached.

Two cache levels under ``<cache_dir>/features/``:

* raw embeddings, key = (dataset content hash, embedder id): re-used when only ``dim`` or the
  reduction changes;
* reduced features, key = (content hash, embedder id, dim, method, seed).

A second call with the same inputs loads the reduced tensor and never touches the embedder.
Graphs without text (Planetoid) reduce their native features instead.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from glm.core.data.cache import cache_key, default_cache_dir, load_cached
from glm.core.data.embed_cache import embed_resumable, remove_parts
from glm.core.data.tag import TextAttributedGraph
from glm.core.graph import GraphValidationError
from glm.core.io import atomic_torch_save
from glm.core.text import TextEmbedder, get_embedder, reduce_dim

logger = logging.getLogger(__name__)


def node_features(
    tag: TextAttributedGraph,
    embedder: TextEmbedder | str | None = "auto",
    dim: int = 128,
    method: str = "random_projection",
    seed: int = 42,
    cache_dir: Optional[Path | str] = None,
    use_cache: bool = True,
    batch_size: int = 64,
    progress: bool = True,
) -> Tensor:
    """``tag`` -> ``[N, dim]`` float32 node features.

    Args:
        embedder: a :class:`~glm.core.text.TextEmbedder` or a name for :func:`~glm.core.text.get_embedder`
            (ignored for graphs without text).
        dim: encoder input dimension (GraphLAMA: 128).
        method: ``random_projection`` (official), ``pca`` or ``none``.
        seed: random-projection seed (official: 42).
        cache_dir: default ``$GLM_CACHE_DIR`` or ``~/.cache/glm``.
        use_cache: read and write the cache.
        progress: show a progress bar while embedding.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root / "features"
    if not tag.has_text:
        if tag.x is None:
            raise GraphValidationError(f"{tag.name}: has neither texts nor native features x")
        source_id, raw = "native", None
    else:
        if embedder is None or isinstance(embedder, str):
            embedder = get_embedder(embedder or "auto")
        source_id = embedder.id
    key = cache_key(tag.content_hash(), source_id, dim, method, seed)
    path = folder / f"{tag.name}-{key}.pt"
    if use_cache:
        cached = load_cached(path)
        if isinstance(cached, Tensor) and tuple(cached.shape) == (tag.num_nodes, dim):
            logger.debug("features cache hit: %s", path)
            return cached
    if not tag.has_text:
        raw = tag.x
    else:
        raw_path = folder / f"{tag.name}-raw-{cache_key(tag.content_hash(), source_id)}.pt"
        raw = load_cached(raw_path) if use_cache else None
        if not (isinstance(raw, Tensor) and raw.shape[0] == tag.num_nodes):
            logger.info("embedding %d texts of %s with %s", tag.num_nodes, tag.name, source_id)
            if use_cache:  # chunk by chunk: a killed run resumes from its last finished chunk
                parts = raw_path.with_suffix(".parts")
                raw = embed_resumable(embedder, tag.texts, parts, batch_size=batch_size, progress=progress)
                atomic_torch_save(raw, raw_path)
                remove_parts(parts)
            else:
                raw = embedder.embed(tag.texts, batch_size=batch_size, progress=progress)
    feats = reduce_dim(raw, dim, method, seed).contiguous()
    if not torch.isfinite(feats).all():
        raise GraphValidationError(f"{tag.name}: node features contain NaN/inf after {source_id} + {method}")
    if use_cache:
        atomic_torch_save(feats, path)
    return feats
