"""Text embedding at scale: chunk by chunk into a cache that a killed run resumes from its last chunk.

:func:`embed_resumable` embeds ``texts`` :data:`CHUNK_TEXTS` at a time; each finished chunk is written
atomically as ``<parts>/chunk-<i>.npy`` (``[rows, D]`` float32), so a run killed after ``k`` chunks
embeds only the rest when started again. Progress counts texts, with an ETA. The embedder sorts each
chunk by length itself (sentence-transformers does; that keeps padding small), runs on CUDA when the
embedder was made for it (``MiniLMEmbedder(device="cuda")``, the default when a GPU is present). When every
chunk is there they are joined and the parts folder is removed by the caller once the whole matrix
is saved.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from glm.core.io import atomic_path

CHUNK_TEXTS = 8192


def _chunk_path(parts: Path, i: int) -> Path:
    return parts / f"chunk-{i:06d}.npy"


def embed_resumable(embedder: Any, texts: Sequence[str], parts: Path, batch_size: int = 64,
                    progress: bool = True, chunk: int = 0) -> Tensor:
    """``[len(texts), D]`` float32; finished chunks in ``parts`` are reused, the others embedded and saved."""
    from tqdm.auto import tqdm

    chunk = chunk or CHUNK_TEXTS
    parts.mkdir(parents=True, exist_ok=True)
    starts = list(range(0, len(texts), chunk))
    done = [i for i in range(len(starts)) if _chunk_path(parts, i).is_file()]
    bar = tqdm(total=len(texts), initial=sum(min(chunk, len(texts) - starts[i]) for i in done), unit="text",
               desc="embedding", disable=not progress or None)
    blocks: list[np.ndarray] = []
    try:
        for i, start in enumerate(starts):
            path = _chunk_path(parts, i)
            if path.is_file():
                block = np.load(path, allow_pickle=False)
                if block.shape[0] == min(chunk, len(texts) - start):
                    blocks.append(block)
                    continue
            block = embedder.embed(list(texts[start:start + chunk]), batch_size=batch_size).numpy().astype(np.float32)
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, block)
            blocks.append(block)
            bar.update(block.shape[0])
    finally:
        bar.close()
    return torch.from_numpy(np.concatenate(blocks) if blocks else np.zeros((0, getattr(embedder, "dim", 0)),
                                                                           np.float32))


def remove_parts(parts: Path) -> None:
    shutil.rmtree(parts, ignore_errors=True)
