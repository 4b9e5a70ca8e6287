"""Text embedding at scale: glm's resumable, chunked MiniLM path against a plain sentence-transformers ``encode``.

Both embed the same texts (a synthetic TAG's, ~25 words each) with the same model and batch size in one
process; glm's path adds the chunked cache (one ``.npy`` per 8,192 texts, atomic, resumable) and the
progress bar. Prints both throughputs and their ratio (goal >= 0.9), and checks that the vectors agree.

    python bench/embed.py                 # 2,000 texts
    python bench/embed.py --texts 20000   # more
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--texts", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()

    import numpy as np
    import pyarrow.parquet as pq

    from glm.core.data.embed_cache import embed_resumable
    from glm.core.data.synth import SynthSpec, write_synthetic
    from glm.core.text import MiniLMEmbedder

    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic(Path(tmp) / "g", SynthSpec(args.texts, avg_degree=2.0))
        texts = pq.read_table(Path(tmp) / "g" / "nodes.parquet", columns=["text"]).column("text").to_pylist()
        embedder = MiniLMEmbedder()
        model = embedder.model
        model.encode(texts[:64], batch_size=args.batch_size)  # warm-up: load, first-call allocations
        t0 = time.perf_counter()
        plain = model.encode(texts, batch_size=args.batch_size, convert_to_numpy=True, normalize_embeddings=False)
        t_plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        ours = embed_resumable(embedder, texts, Path(tmp) / "parts", batch_size=args.batch_size, progress=False)
        t_glm = time.perf_counter() - t0
    diff = float(np.abs(ours.numpy() - plain).max())
    print(f"sentence-transformers encode: {len(texts) / t_plain:.1f} texts/s ({t_plain:.1f} s, device {embedder.device})")
    print(f"glm chunked, resumable:       {len(texts) / t_glm:.1f} texts/s ({t_glm:.1f} s)")
    print(f"embed {len(texts)} texts: glm / plain throughput {t_plain / t_glm:.2f}x (goal >= 0.9), "
          f"max |difference| {diff:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
