"""Seed-first fan-out neighbour sampling (GraphGPT / GraphLAMA style), pure torch and vectorised.

For each target ``t`` and hop ``h = 1..K`` every node added at hop ``h-1`` draws up to
``fanouts[h-1]`` of its neighbours without replacement; drawn nodes not yet in the subgraph are
added. Node order: target first (local index 0), then the new nodes of hop 1, then of hop 2, ...
The local ``edge_index`` holds the *sampled* edges (not the induced subgraph, as PyG's
NeighborLoader), made symmetric and de-duplicated. ``hop`` is the BFS distance from the target
on that local graph (:func:`glm.core.hop_distance.hop_distances`; every node is reachable within ``K``
hops; for ``K <= 2`` it equals the hop at which the node was drawn, for ``K >= 3`` it can be
smaller, because a node drawn at hop 2 may draw an edge back to the target).

Randomness is a counter-based hash of ``(seed, salt, target, hop, node, neighbour)``: a target's
subgraph depends only on the seed, never on the batch it was sampled in or on the device, so the
same subgraph feeds both backends and a cached sample equals a fresh one.

Why not PyG's ``NeighborLoader``/``NeighborSampler``: they need ``pyg-lib`` or ``torch-sparse``
(compiled extensions, not installable here) and the core must not import PyG; GammaGL's samplers
need its C++ extension. ``torch_geometric.utils.k_hop_subgraph`` (pure torch) takes the full k-hop
neighbourhood without a fan-out cap, so it serves only as a cross-check in the tests.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor

from glm.core.data.cache import cache_key, default_cache_dir, load_cached
from glm.core.graph import GraphValidationError, Subgraph
from glm.core.io import atomic_torch_save
from glm.core.hop_distance import hop_distances

logger = logging.getLogger(__name__)

DEFAULT_FANOUTS: tuple[int, ...] = (10, 10)
SAMPLER_VERSION = 1  # part of the cache key: bump when the draw changes

_M1 = 0xBF58476D1CE4E5B9 - (1 << 64)
_M2 = 0x94D049BB133111EB - (1 << 64)
_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)


def _mix64(x: Tensor) -> Tensor:
    """splitmix64 finaliser on int64 (wrapping multiply, logical shifts emulated by masks)."""
    x = x ^ ((x >> 30) & ((1 << 34) - 1))
    x = x * _M1
    x = x ^ ((x >> 27) & ((1 << 37) - 1))
    x = x * _M2
    return x ^ ((x >> 31) & ((1 << 33) - 1))


def _hash(*parts: Tensor | int) -> Tensor:
    h = torch.tensor(0, dtype=torch.long)
    for p in parts:
        h = _mix64(h * _GOLDEN + torch.as_tensor(p, dtype=torch.long) + 1)
    return h


@dataclass
class SampledSubgraphs:
    """Many sampled subgraphs in flat storage (cheap to cache; features are looked up later).

    Attributes:
        targets: ``[B]`` global id of each subgraph's target.
        node_ids: ``[sum N_i]`` global ids; subgraph ``i`` owns ``node_ptr[i]:node_ptr[i+1]``, target first.
        node_ptr: ``[B + 1]``.
        hop: ``[sum N_i]`` hop distance from the target.
        edge_index: ``[2, sum E_i]`` local (per-subgraph) indices, symmetric.
        edge_ptr: ``[B + 1]``.
    """

    targets: Tensor
    node_ids: Tensor
    node_ptr: Tensor
    hop: Tensor
    edge_index: Tensor
    edge_ptr: Tensor

    def __len__(self) -> int:
        return int(self.targets.numel())

    def sizes(self) -> Tensor:
        return self.node_ptr[1:] - self.node_ptr[:-1]

    def subgraph(self, i: int, x: Optional[Tensor] = None) -> Subgraph:
        """The ``i``-th subgraph; ``x`` = global feature matrix ``[N_total, F]`` (``None``: empty features)."""
        lo, hi = int(self.node_ptr[i]), int(self.node_ptr[i + 1])
        elo, ehi = int(self.edge_ptr[i]), int(self.edge_ptr[i + 1])
        ids = self.node_ids[lo:hi]
        feats = x[ids] if x is not None else torch.zeros(hi - lo, 0)
        return Subgraph(x=feats, edge_index=self.edge_index[:, elo:ehi].clone(), target=0,
                        node_ids=ids.clone(), hop=self.hop[lo:hi].clone())

    def index(self) -> dict[int, int]:
        """Global target id -> row (first occurrence)."""
        out: dict[int, int] = {}
        for i, t in enumerate(self.targets.tolist()):
            out.setdefault(t, i)
        return out

    def as_dict(self) -> dict[str, Tensor]:
        return {k: getattr(self, k) for k in ("targets", "node_ids", "node_ptr", "hop", "edge_index", "edge_ptr")}


class NeighborSampler:
    """Seed-first fan-out sampler over a CSR adjacency.

    Args:
        edge_index: ``[2, E]`` int64 global edges (both directions for an undirected graph).
        num_nodes: ``N``.
        fanouts: neighbours drawn per node at each hop (default ``[10, 10]``: at most 1+10+100 nodes).
        seed: base seed; ``salt`` in :meth:`sample` gives a fresh draw (e.g. per epoch).
    """

    def __init__(self, edge_index: Tensor, num_nodes: int, fanouts: Sequence[int] = DEFAULT_FANOUTS, seed: int = 0):
        if any(int(f) < 0 for f in fanouts):
            raise ValueError(f"fanouts must be >= 0, got {list(fanouts)}")
        ei = edge_index.to(torch.long)
        if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= num_nodes):
            raise GraphValidationError(
                f"edge_index out of range: expected values in [0, {num_nodes - 1}], "
                f"found min {int(ei.min())} max {int(ei.max())}"
            )
        key = ei[0] * num_nodes + ei[1]
        if key.numel() > 1 and bool((key[1:] < key[:-1]).any()):  # a TAG's edge_index is already sorted
            ei = ei[:, torch.argsort(key)]
        del key
        self.col = ei[1].contiguous()
        self.rowptr = torch.zeros(num_nodes + 1, dtype=torch.long)
        self.rowptr[1:] = torch.cumsum(torch.bincount(ei[0], minlength=num_nodes), 0)
        self.num_nodes = num_nodes
        self.fanouts = tuple(int(f) for f in fanouts)
        self.seed = int(seed)

    def sample(self, targets: Tensor | Sequence[int], exclude: Optional[Tensor] = None, salt: int = 0) -> SampledSubgraphs:
        """Sample one subgraph per target.

        Args:
            targets: ``[B]`` global node ids (repeats allowed).
            exclude: optional ``[B, 2]`` global node pairs; the edge between the pair (both
                directions) is never drawn for that subgraph (link prediction: no leakage).
                ``-1`` entries mean no exclusion.
            salt: extra seed component.
        """
        t = torch.as_tensor(targets, dtype=torch.long).flatten()
        b, n = t.numel(), self.num_nodes
        if b and (int(t.min()) < 0 or int(t.max()) >= n):
            raise GraphValidationError(f"targets out of range: expected [0, {n - 1}], found {t.min()}..{t.max()}")
        ex = None if exclude is None else torch.as_tensor(exclude, dtype=torch.long).reshape(b, 2)
        sid_all, gid_all = [torch.arange(b)], [t]
        e_sid, e_u, e_v = [], [], []
        f_sid, f_gid = torch.arange(b), t
        seen = torch.arange(b) * n + t  # keys sid * N + gid of nodes already in each subgraph
        base = _hash(self.seed, salt)
        for h, k in enumerate(self.fanouts, start=1):
            if f_gid.numel() == 0 or k == 0:
                break
            start, deg = self.rowptr[f_gid], self.rowptr[f_gid + 1] - self.rowptr[f_gid]
            total = int(deg.sum())
            if total == 0:
                break
            cf = torch.repeat_interleave(torch.arange(f_gid.numel()), deg)
            offs = torch.cumsum(deg, 0) - deg
            cv = self.col[start[cf] + torch.arange(total) - offs[cf]]
            cu, cs = f_gid[cf], f_sid[cf]
            if ex is not None:
                a, c = ex[cs, 0], ex[cs, 1]
                keep = ~(((cu == a) & (cv == c)) | ((cu == c) & (cv == a)))
                cf, cv, cu, cs = cf[keep], cv[keep], cu[keep], cs[keep]
            key = _mix64(base + _mix64(t[cs] * _GOLDEN + h) + _mix64(cu * _GOLDEN + cv))
            order = torch.argsort(key, stable=True)
            order = order[torch.argsort(cf[order], stable=True)]  # grouped by frontier entry, random within
            cf, cv, cu, cs = cf[order], cv[order], cu[order], cs[order]
            counts = torch.bincount(cf, minlength=f_gid.numel())
            rank = torch.arange(cf.numel()) - (torch.cumsum(counts, 0) - counts)[cf]
            pick = rank < k
            cv, cu, cs = cv[pick], cu[pick], cs[pick]
            e_sid.append(cs), e_u.append(cu), e_v.append(cv)
            ckey = cs * n + cv
            new = ~torch.isin(ckey, seen)
            nkey = ckey[new]
            uniq, inv = torch.unique(nkey, return_inverse=True)
            first = torch.full((uniq.numel(),), nkey.numel(), dtype=torch.long)
            first = first.scatter_reduce(0, inv, torch.arange(nkey.numel()), reduce="amin")
            first = first.sort().values
            f_sid, f_gid = cs[new][first], cv[new][first]
            sid_all.append(f_sid), gid_all.append(f_gid)
            seen = torch.cat([seen, f_sid * n + f_gid])
        return self._assemble(t, torch.cat(sid_all), torch.cat(gid_all), e_sid, e_u, e_v)

    def _assemble(self, t: Tensor, sid: Tensor, gid: Tensor, e_sid, e_u, e_v) -> SampledSubgraphs:
        b, n = t.numel(), self.num_nodes
        order = torch.argsort(sid, stable=True)  # per subgraph: target, hop-1 nodes, hop-2 nodes, ...
        sid, gid = sid[order], gid[order]
        sizes = torch.bincount(sid, minlength=b)
        node_ptr = torch.zeros(b + 1, dtype=torch.long)
        node_ptr[1:] = torch.cumsum(sizes, 0)
        local = torch.arange(sid.numel()) - node_ptr[sid]
        keys = sid * n + gid
        sorted_keys, perm = torch.sort(keys)
        if e_sid:
            es, eu, ev = torch.cat(e_sid), torch.cat(e_u), torch.cat(e_v)
        else:
            es = eu = ev = torch.zeros(0, dtype=torch.long)
        lu = local[perm[torch.searchsorted(sorted_keys, es * n + eu)]]
        lv = local[perm[torch.searchsorted(sorted_keys, es * n + ev)]]
        m = int(sizes.max()) if b else 1
        ekey = torch.unique(torch.cat([es * m * m + lu * m + lv, es * m * m + lv * m + lu]))
        e_s, rem = ekey // (m * m), ekey % (m * m)
        edge_index = torch.stack([rem // m, rem % m])
        edge_ptr = torch.zeros(b + 1, dtype=torch.long)
        edge_ptr[1:] = torch.cumsum(torch.bincount(e_s, minlength=b), 0)
        hop = hop_distances(edge_index + node_ptr[e_s], node_ptr, max_hops=len(self.fanouts))
        return SampledSubgraphs(t, gid, node_ptr, hop, edge_index, edge_ptr)


def precompute_subgraphs(
    edge_index: Tensor,
    num_nodes: int,
    targets: Optional[Tensor] = None,
    fanouts: Sequence[int] = DEFAULT_FANOUTS,
    seed: int = 0,
    salt: int = 0,
    dataset_hash: Optional[str] = None,
    cache_dir: Optional[Path | str] = None,
    batch_size: int = 2048,
) -> SampledSubgraphs:
    """Sample every target (default: all nodes) once and cache the result on disk.

    The cache key is ``(dataset_hash, fanouts, seed, salt, targets)``; without ``dataset_hash`` nothing
    is cached. Returns the same :class:`SampledSubgraphs` a direct :meth:`NeighborSampler.sample` gives.
    """
    tg = torch.arange(num_nodes) if targets is None else torch.as_tensor(targets, dtype=torch.long)
    path = None
    if dataset_hash is not None:
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        tkey = cache_key(tg.numpy().tobytes().hex()) if targets is not None else "all"
        path = root / "subgraphs" / f"{cache_key(SAMPLER_VERSION, dataset_hash, list(fanouts), seed, salt, tkey)}.pt"
        cached = load_cached(path)
        if isinstance(cached, dict) and torch.equal(cached.get("targets", torch.empty(0)), tg):
            return SampledSubgraphs(**cached)
    from tqdm.auto import tqdm

    sampler = NeighborSampler(edge_index, num_nodes, fanouts, seed)
    starts = range(0, tg.numel(), batch_size)
    bar = tqdm(starts, desc="sampling subgraphs", unit="batch", leave=False, disable=None if len(starts) > 4 else True)
    parts = [sampler.sample(tg[i:i + batch_size], salt=salt) for i in bar]
    out = concat_sampled(parts) if parts else sampler.sample(tg, salt=salt)
    if path is not None:
        atomic_torch_save(out.as_dict(), path)
    return out


def concat_sampled(parts: Sequence[SampledSubgraphs]) -> SampledSubgraphs:
    def cat_ptr(ptrs: list[Tensor]) -> Tensor:
        out, off = [torch.zeros(1, dtype=torch.long)], 0
        for p in ptrs:
            out.append(p[1:] + off)
            off += int(p[-1])
        return torch.cat(out)

    return SampledSubgraphs(
        targets=torch.cat([p.targets for p in parts]),
        node_ids=torch.cat([p.node_ids for p in parts]),
        node_ptr=cat_ptr([p.node_ptr for p in parts]),
        hop=torch.cat([p.hop for p in parts]),
        edge_index=torch.cat([p.edge_index for p in parts], dim=1),
        edge_ptr=cat_ptr([p.edge_ptr for p in parts]),
    )


def check_subgraph(sg: Subgraph, where: str = "subgraph", max_nodes: Optional[int] = None) -> Subgraph:
    """:meth:`Subgraph.validate` plus glm's sampler invariants: unique node ids, ``hop[0] == 0`` and
    an optional node cap (each node is one LLM token). Raises :class:`GraphValidationError`."""
    sg.validate(where)
    if sg.node_ids is not None and torch.unique(sg.node_ids).numel() != sg.num_nodes:
        raise GraphValidationError(f"{where}: node_ids must be unique, found {sg.num_nodes - torch.unique(sg.node_ids).numel()} repeats")
    if sg.hop is not None and int(sg.hop[0]) != 0:
        raise GraphValidationError(f"{where}: hop[0] must be 0 (target), found {int(sg.hop[0])}")
    if max_nodes is not None and sg.num_nodes > max_nodes:
        raise GraphValidationError(f"{where}: at most {max_nodes} nodes expected, found {sg.num_nodes}")
    return sg
