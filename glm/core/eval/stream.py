"""Streaming inference: predictions for millions of nodes, batch by batch, with bounded memory and resumable output.

:func:`stream_predictions` hands :data:`CHUNK_NODES` nodes at a time to ``predict`` (``glm.run.predict``: the
samples are built and their subgraphs sampled on the fly, for those nodes only) and appends one JSON line per node to the output file, flushed and
synced after every chunk. A run that was stopped continues after the last complete line: the output is
checked to hold the predictions of the same node sequence (the node of its last line), a torn last line
is dropped, and the nodes already written are skipped. Memory holds one chunk of samples, whatever the
graph's size.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from glm.errors import GlmError

CHUNK_NODES = 256


class StreamOutputError(GlmError, ValueError):
    """The output file holds predictions of another node sequence; it is left untouched."""


@dataclass
class StreamStats:
    nodes: int  # predicted in this run
    skipped: int  # already in the output (resumed)
    seconds: float

    @property
    def nodes_per_second(self) -> float:
        return self.nodes / self.seconds if self.seconds > 0 else float("nan")


def resume_point(path: Path, nodes: Tensor) -> int:
    """How many of ``nodes`` the output already holds (a torn last line is cut off first)."""
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    with path.open("rb+") as f:
        data = f.read()
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            f.truncate(keep)
    lines = data[:keep].count(b"\n")
    if lines == 0:
        return 0
    last = json.loads(data[:keep].splitlines()[-1])
    if lines > nodes.numel() or last.get("node") != int(nodes[lines - 1]):
        raise StreamOutputError(f"{path}: holds {lines} predictions ending at node {last.get('node')}, which is not "
                                f"where this node list is after {lines} nodes; remove it or choose another --output")
    return lines


def stream_predictions(nodes: Tensor, predict: Callable[[list[int]], list[dict[str, Any]]], output: Optional[Path],
                       chunk: Optional[int] = None, progress: bool = True, resume: bool = False) -> StreamStats:
    """Predict ``nodes`` chunk by chunk; JSON lines to ``output`` or to stdout (``None``). ``resume``: continue an
    output that holds the first predictions of the same node list; otherwise an existing output is replaced."""
    import sys

    from tqdm.auto import tqdm

    if output is not None and not resume:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(b"")
    done = resume_point(output, nodes) if output is not None else 0
    todo, chunk = nodes[done:], chunk or CHUNK_NODES
    t0 = time.perf_counter()
    stream = output.open("a", encoding="utf-8") if output is not None else sys.stdout
    bar = tqdm(total=todo.numel(), desc="predicting", unit="node", disable=not progress or None)
    try:
        for start in range(0, todo.numel(), chunk):
            ids = todo[start:start + chunk].tolist()
            rows = predict(ids)
            stream.write("".join(json.dumps(r, default=str) + "\n" for r in rows))
            stream.flush()
            if output is not None:
                os.fsync(stream.fileno())
            bar.update(len(ids))
    finally:
        bar.close()
        if output is not None:
            stream.close()
    return StreamStats(todo.numel(), done, time.perf_counter() - t0)


class NodeListError(GlmError, ValueError):
    """``--nodes`` names no node, or nodes outside the graph."""


def read_node_list(spec: str, num_nodes: int, graph: str = "the graph") -> Tensor:
    """``all``, a file (``.npy`` int array, or text: one index per line) or ``0,5,9``; range-checked."""
    import numpy as np

    if spec == "all":
        return torch.arange(num_nodes)
    path = Path(spec)
    if path.is_file():
        try:
            raw = (np.load(path, allow_pickle=False) if path.suffix == ".npy"
                   else np.loadtxt(path, dtype=np.int64, ndmin=1))
            nodes = torch.from_numpy(np.asarray(raw).astype(np.int64).reshape(-1))
        except ValueError as exc:
            raise NodeListError(f"--nodes {path}: expected node indices (one per line, or an integer .npy array), "
                                f"found {str(exc).splitlines()[0]}") from None
    else:
        try:
            nodes = torch.tensor([int(n) for n in spec.split(",") if n.strip()], dtype=torch.long)
        except ValueError:
            raise NodeListError(f"--nodes must be all, a file, or comma-separated integers, found {spec!r}") from None
    if nodes.numel() == 0:
        raise NodeListError(f"--nodes {spec!r} names no node (e.g. --nodes 0,5,9 or --nodes all)")
    bad = nodes[(nodes < 0) | (nodes >= num_nodes)]
    if bad.numel():
        raise NodeListError(f"--nodes: {bad[:5].tolist()} outside {graph}'s nodes 0..{num_nodes - 1}")
    return nodes
