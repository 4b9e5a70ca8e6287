"""Embedding time vs cache-hit time for a dataset's node features, and sampler throughput, in one run.

    python bench/data_features.py [--dataset citeseer_tag] [--embedder minilm] [--threads 2]

Prints wall and CPU seconds for: a first ``node_features`` call into an empty cache (embeds every
text), a second call (cache hit), a call with another ``dim`` (raw-embedding cache reuse), and
sampling the [10, 10] subgraphs of every node. CPU seconds matter on a shared machine, where wall
time also counts waiting for the cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from glm.core.data import load_dataset  # noqa: E402
from glm.core.data.features import node_features  # noqa: E402
from glm.core.data.sampling import NeighborSampler  # noqa: E402
from glm.core.text import MiniLMEmbedder, get_embedder  # noqa: E402


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="citeseer_tag")
    p.add_argument("--embedder", default="minilm")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tag = load_dataset(args.dataset)
    embedder = get_embedder(args.embedder)
    if isinstance(embedder, MiniLMEmbedder):
        _, w, _ = timed(lambda: embedder.model)
        print(f"model load: {w:.2f} s")
    with tempfile.TemporaryDirectory() as cache:
        run = lambda dim: node_features(tag, embedder, dim=dim, cache_dir=cache, batch_size=args.batch_size,  # noqa: E731
                                        progress=False)
        x, w1, c1 = timed(lambda: run(128))
        _, w2, c2 = timed(lambda: run(128))
        _, w3, c3 = timed(lambda: run(64))
    print(f"{tag.name}: {tag.num_nodes} texts, {embedder.id}, threads {args.threads}, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"  embed + project to 128: {w1:8.2f} s wall {c1:8.2f} s cpu ({tag.num_nodes / w1:.1f} texts/s wall)")
    print(f"  cache hit:              {w2 * 1e3:8.2f} ms wall {c2 * 1e3:8.2f} ms cpu (x{w1 / max(w2, 1e-9):.0f} faster)")
    print(f"  other dim, raw cached:  {w3 * 1e3:8.2f} ms wall {c3 * 1e3:8.2f} ms cpu")
    sampler = NeighborSampler(tag.edge_index, tag.num_nodes, (10, 10), seed=0)
    s, w4, c4 = timed(lambda: sampler.sample(torch.arange(tag.num_nodes)))
    print(f"  sample all {len(s)} subgraphs [10, 10]: {w4:.2f} s wall {c4:.2f} s cpu, "
          f"mean {s.sizes().float().mean():.1f} nodes")


if __name__ == "__main__":
    main()
