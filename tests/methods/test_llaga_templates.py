"""LLaGA's templates read off glm's sampled subgraphs: tree slots, Laplacian PE, hop field."""

import torch

from glm.core.graph import Subgraph, SubgraphBatch
from glm.methods.llaga.templates import EMPTY, hop_field, neighbourhood_slots, tree_laplacian_pe, tree_size


def _tree_graph():
    """Target 0 with children 1, 2; node 1 has children 3, 4, 5; node 2 has child 5 (shared); 6 is 3 hops away."""
    edges = [(0, 1), (0, 2), (1, 3), (1, 4), (1, 5), (2, 5), (3, 6)]
    ei = torch.tensor(edges).t()
    x = torch.arange(7, dtype=torch.float32)[:, None].repeat(1, 2)
    return Subgraph(x=x, edge_index=torch.cat([ei, ei.flip(0)], 1))


def test_tree_size_and_slots_follow_the_sampler_tree():
    assert tree_size([10, 10]) == 111 and tree_size([3, 2]) == 10
    batch = SubgraphBatch.from_subgraphs([_tree_graph(), _tree_graph()])
    slots = neighbourhood_slots(batch, [3, 2])
    e = EMPTY
    first = [0, 1, 2, e, 3, 4, 5, e, e, e]  # node 1 keeps 2 of its 3 children; node 2 keeps the shared 5
    assert slots[0].tolist() == first
    assert slots[1].tolist() == [s + 7 if s != e else e for s in first]  # second graph: its own rows


def test_laplacian_pe_is_an_orthonormal_eigenbasis_of_the_tree():
    pe = tree_laplacian_pe([3, 2]).double()
    assert pe.shape == (10, 10)
    assert torch.allclose(pe.t() @ pe, torch.eye(10, dtype=torch.float64), atol=1e-5)
    assert tree_laplacian_pe([3, 2], dim=4).shape == (10, 4)
    assert torch.equal(tree_laplacian_pe([3, 2]), tree_laplacian_pe([3, 2]))  # deterministic signs


def test_hop_field_means_and_empty_hops():
    batch = SubgraphBatch.from_subgraphs([_tree_graph()])
    means, empty = hop_field(batch, hops=4)
    assert means.shape == (1, 5, 2)
    assert means[0, :, 0].tolist()[:4] == [0.0, 1.5, 4.0, 6.0]  # hop 2 = mean(3, 4, 5)
    assert empty[0].tolist() == [False, False, False, False, True]
