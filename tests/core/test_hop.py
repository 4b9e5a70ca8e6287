"""Hop distances (vectorised, whole batch) against a per-graph BFS, and the three hop codes."""

import pytest
import torch

from glm.core.graph import Subgraph, SubgraphBatch
from glm.core.hop_distance import hop_distances, reference_hop_distances
from glm.methods.graphlama.hop import HopEncoding


def random_graphs(count, max_nodes, seed, symmetric=False):
    gen = torch.Generator().manual_seed(seed)
    graphs = []
    for _ in range(count):
        n = int(torch.randint(1, max_nodes + 1, (1,), generator=gen))
        e = int(torch.randint(0, 3 * n, (1,), generator=gen))  # sparse: many far / unreachable nodes
        ei = torch.randint(0, n, (2, e), generator=gen)  # directed, duplicates and self loops allowed
        if symmetric:
            ei = torch.cat([ei, ei.flip(0)], 1)
        graphs.append(Subgraph(x=torch.zeros(n, 1), edge_index=ei))
    return graphs


@pytest.mark.parametrize("max_hops", [1, 2, 3, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_bfs_on_random_graphs(max_hops, seed):
    graphs = random_graphs(60, 40, seed)
    batch = SubgraphBatch.from_subgraphs(graphs)
    got = hop_distances(batch, max_hops=max_hops)
    ref = torch.cat([reference_hop_distances(g.edge_index, g.num_nodes, max_hops) for g in graphs])
    assert torch.equal(got, ref)
    assert int(got.min()) >= 0 and int(got.max()) <= max_hops + 1
    # every distance class actually occurs across the seeds' graphs (the test is not vacuous)
    if max_hops == 2:
        assert set(got.unique().tolist()) == {0, 1, 2, 3}


def test_bare_edge_index_and_ptr_api():
    graphs = random_graphs(10, 20, 7)
    batch = SubgraphBatch.from_subgraphs(graphs)
    assert torch.equal(hop_distances(batch.edge_index, batch.ptr, max_hops=2), hop_distances(batch, max_hops=2))
    with pytest.raises(ValueError, match="ptr"):
        hop_distances(batch.edge_index)


def test_edges_are_undirected_and_far_nodes_coded_k_plus_1():
    # path 3 -> 2 -> 1 -> 0 (edges point towards the target), node 4 isolated
    ei = torch.tensor([[3, 2, 1], [2, 1, 0]])
    g = Subgraph(x=torch.zeros(5, 1), edge_index=ei)
    batch = SubgraphBatch.from_subgraphs([g, Subgraph(x=torch.zeros(1, 1), edge_index=torch.zeros(2, 0, dtype=torch.long))])
    assert hop_distances(batch, max_hops=2).tolist() == [0, 1, 2, 3, 3, 0]
    assert hop_distances(batch, max_hops=3).tolist() == [0, 1, 2, 3, 4, 0]


def test_official_two_bit_code():
    enc = HopEncoding(max_hops=2, mode="official")
    assert enc.out_dim == 2
    codes = enc(torch.tensor([0, 1, 2, 3, 7, -1]))
    assert codes.tolist() == [[0, 0], [0, 1], [1, 0], [0, 0], [0, 0], [0, 0]]  # far shares the target's code


def test_official_code_generalises_to_more_hops():
    enc = HopEncoding(max_hops=3, mode="official")
    assert enc(torch.tensor([0, 1, 2, 3, 4])).tolist() == [[0, 0], [0, 1], [1, 0], [1, 1], [0, 0]]


def test_onehot_code_has_a_far_class():
    enc = HopEncoding(max_hops=2, mode="onehot")
    assert enc.out_dim == 4
    assert enc(torch.tensor([0, 1, 2, 3, 9])).argmax(-1).tolist() == [0, 1, 2, 3, 3]


def test_learned_code_is_a_trainable_table():
    enc = HopEncoding(max_hops=2, mode="learned", dim=5)
    out = enc(torch.tensor([0, 1, 2, 3, 10]))
    assert out.shape == (5, 5)
    assert torch.equal(out[3], out[4])  # both far
    out.sum().backward()
    assert enc.table.weight.grad is not None and enc.table.weight.grad.abs().sum() > 0


def test_bad_mode_is_rejected():
    with pytest.raises(ValueError, match="mode must be one of"):
        HopEncoding(2, mode="binary")
