"""Hop encoding speed: vectorised batch hop distances vs per-sample Python BFS.

Workload: 256 subgraphs shaped like GraphLAMA's [10, 10] neighbour sampling (target, up to 10
1-hop, up to 10 2-hop each: at most 111 nodes), symmetric edges plus a few cross edges.
Baselines, run on the same subgraphs in the same process:
  * official-style: per sample, per frontier node, boolean masks over edge_index + Python sets
    (the algorithm of GraphLAMA's concat_position_encoding);
  * set BFS: per sample, adjacency as Python sets (glm.core.hop_distance.reference_hop_distances).
Prints medians over repeats and the speed-up ratios; checks that all codes are identical.

Run: .venv/bin/python bench/hop.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from glm.core.graph import Subgraph, SubgraphBatch
from glm.core.hop_distance import hop_distances, reference_hop_distances
from glm.methods.graphlama.hop import HopEncoding


def sampled_subgraph(gen: torch.Generator, fanout=(10, 10), full: bool = False) -> Subgraph:
    """Target 0, 1..10 neighbours per node per hop (exactly 10 with ``full``: 111 nodes), symmetric edges."""
    edges, n = [], 1
    frontier = [0]
    for f in fanout:
        nxt = []
        for u in frontier:
            k = f if full else int(torch.randint(1, f + 1, (1,), generator=gen))
            for _ in range(k):
                edges.append((u, n))
                nxt.append(n)
                n += 1
        frontier = nxt
    for _ in range(n // 10):  # cross edges between sampled nodes
        a, b = torch.randint(0, n, (2,), generator=gen).tolist()
        edges.append((a, b))
    ei = torch.tensor(edges, dtype=torch.long).t()
    ei = torch.cat([ei, ei.flip(0)], 1)
    return Subgraph(x=torch.zeros(n, 1), edge_index=ei)


def official_style(g: Subgraph) -> torch.Tensor:
    """Per-sample BFS in the official style: boolean masks per frontier node, Python sets, 2-bit codes."""
    ei = g.edge_index
    codes = torch.zeros((g.num_nodes, 2))
    first = set(ei[0, ei[1] == 0].tolist()) | set(ei[1, ei[0] == 0].tolist())
    first.discard(0)
    for v in first:
        codes[v] = torch.tensor([0, 1])
    second = set()
    for v in first:
        second |= set(ei[1, ei[0] == v].tolist()) | set(ei[0, ei[1] == v].tolist())
    second -= first
    second.discard(0)
    for v in second:
        codes[v] = torch.tensor([1, 0])
    return codes


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    graphs = [sampled_subgraph(gen, full=(i == 0)) for i in range(args.graphs)]
    batch = SubgraphBatch.from_subgraphs(graphs)
    sizes = batch.sizes
    print(f"{len(graphs)} subgraphs, nodes min/median/max {min(sizes)}/{int(statistics.median(sizes))}/{max(sizes)},"
          f" {batch.edge_index.shape[1]} directed edges, torch threads 1")

    official = HopEncoding(2, "official")
    t_vec, dist = median_time(lambda: hop_distances(batch, max_hops=2), args.repeats)
    t_vec_code, codes = median_time(lambda: official(hop_distances(batch, max_hops=2)), args.repeats)
    t_off, ref_codes = median_time(lambda: torch.cat([official_style(g) for g in graphs]), max(3, args.repeats // 2))
    t_set, ref_dist = median_time(
        lambda: torch.cat([reference_hop_distances(g.edge_index, g.num_nodes, 2) for g in graphs]), args.repeats)

    same_codes = torch.equal(codes, ref_codes)
    same_dist = torch.equal(dist, ref_dist)
    print(f"vectorised hop_distances (whole batch)      {t_vec * 1e3:9.2f} ms")
    print(f"vectorised distances + 2-bit code            {t_vec_code * 1e3:9.2f} ms")
    print(f"official-style per-sample masks + sets       {t_off * 1e3:9.2f} ms   ratio {t_off / t_vec_code:7.1f}x")
    print(f"per-sample Python-set BFS (distances)        {t_set * 1e3:9.2f} ms   ratio {t_set / t_vec:7.1f}x")
    print(f"identical 2-bit codes vs official-style: {same_codes}; identical distances vs set BFS: {same_dist}")
    goal = t_off / t_vec_code
    met = goal >= 100 and same_codes and same_dist
    print(f"goal >= 100x faster than the official-style BFS, identical codes: {'MET' if met else 'NOT MET'}"
          f" ({goal:.0f}x; vs the leaner set BFS {t_set / t_vec:.0f}x)")


if __name__ == "__main__":
    main()
