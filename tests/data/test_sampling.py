"""Fan-out sampler: determinism, target first, fan-out bounds, real edges, hops, exclusion, cache, validation."""

import pytest
import torch

from glm.core.data.sampling import NeighborSampler, check_subgraph, precompute_subgraphs
from glm.core.data.tag import synthetic_tag
from glm.core.graph import GraphValidationError, Subgraph
from glm.core.hop_distance import reference_hop_distances


@pytest.fixture(scope="module")
def tag():
    return synthetic_tag(num_nodes=120, num_classes=4, seed=3, p_in=0.2, p_out=0.02)


def _edges(tag):
    return set(map(tuple, tag.edge_index.t().tolist()))


def test_deterministic_and_batch_independent(tag):
    s = NeighborSampler(tag.edge_index, tag.num_nodes, (10, 10), seed=7)
    targets = torch.arange(tag.num_nodes)
    a = s.sample(targets)
    b = NeighborSampler(tag.edge_index, tag.num_nodes, (10, 10), seed=7).sample(targets.flip(0)[:50])
    for j in range(50):
        i = tag.num_nodes - 1 - j
        x, y = a.subgraph(i), b.subgraph(j)
        assert torch.equal(x.node_ids, y.node_ids) and torch.equal(x.edge_index, y.edge_index)
        assert torch.equal(x.hop, y.hop)
    c = NeighborSampler(tag.edge_index, tag.num_nodes, (3, 3), seed=8).sample(targets)
    d = NeighborSampler(tag.edge_index, tag.num_nodes, (3, 3), seed=7).sample(targets)
    assert not torch.equal(c.node_ids, d.node_ids), "a different seed must give different subgraphs"
    assert not torch.equal(s.sample(targets, salt=1).node_ids, a.node_ids)


def test_target_first_fanout_real_edges_and_hops(tag):
    fanouts = (4, 3)
    out = NeighborSampler(tag.edge_index, tag.num_nodes, fanouts, seed=0).sample(torch.arange(tag.num_nodes))
    edges, deg = _edges(tag), tag.degrees()
    for i in range(tag.num_nodes):
        sg = check_subgraph(out.subgraph(i, torch.randn(tag.num_nodes, 5)), max_nodes=1 + 4 + 4 * 3)
        ids = sg.node_ids
        assert int(ids[0]) == i and sg.target == 0
        assert int((sg.hop == 1).sum()) == min(int(deg[i]), fanouts[0])
        for u, v in sg.edge_index.t().tolist():
            assert (int(ids[u]), int(ids[v])) in edges  # only real edges
        local = set(map(tuple, sg.edge_index.t().tolist()))
        assert all((v, u) in local for u, v in local)  # symmetric
        assert torch.equal(sg.hop, reference_hop_distances(sg.edge_index, sg.num_nodes, max_hops=2))
        assert (sg.hop[1:] >= sg.hop[:-1]).all(), "node order must be by hop (target, hop 1, hop 2)"
        # nodes drawn from hop-1 nodes only: every hop-2 node has a hop-1 neighbour
        assert set(sg.hop.tolist()) <= {0, 1, 2}


def test_within_pyg_k_hop_subgraph(tag):
    utils = pytest.importorskip("torch_geometric.utils", reason="PyG not installed: k_hop_subgraph cross-check skipped")
    out = NeighborSampler(tag.edge_index, tag.num_nodes, (10, 10), seed=1).sample(torch.arange(tag.num_nodes))
    for i in range(0, tag.num_nodes, 7):
        subset, _, _, _ = utils.k_hop_subgraph(i, 2, tag.edge_index, num_nodes=tag.num_nodes)
        ids = out.subgraph(i).node_ids
        assert set(ids.tolist()) <= set(subset.tolist())
        if subset.numel() <= 11:  # a small neighbourhood with fan-out 10 is taken whole at hop 1
            one_hop, _, _, _ = utils.k_hop_subgraph(i, 1, tag.edge_index, num_nodes=tag.num_nodes)
            assert set(one_hop.tolist()) <= set(ids.tolist())


def test_full_neighbourhood_when_fanout_large(tag):
    utils = pytest.importorskip("torch_geometric.utils", reason="PyG not installed: k_hop_subgraph cross-check skipped")
    out = NeighborSampler(tag.edge_index, tag.num_nodes, (1000, 1000), seed=0).sample(torch.arange(tag.num_nodes))
    for i in range(0, tag.num_nodes, 11):
        subset, _, _, _ = utils.k_hop_subgraph(i, 2, tag.edge_index, num_nodes=tag.num_nodes)
        assert sorted(out.subgraph(i).node_ids.tolist()) == sorted(subset.tolist())


def test_exclude_pair_removes_edge(tag):
    a, b = tag.edge_index[:, 0].tolist()
    s = NeighborSampler(tag.edge_index, tag.num_nodes, (1000, 1000), seed=0)
    plain = s.sample([a]).subgraph(0)
    assert b in plain.node_ids.tolist() and int(plain.hop[plain.node_ids.tolist().index(b)]) == 1
    cut = s.sample([a, b], exclude=torch.tensor([[a, b], [a, b]]))
    for k, (t, other) in enumerate(((a, b), (b, a))):
        sg = cut.subgraph(k)
        ids = sg.node_ids.tolist()
        local = set(map(tuple, sg.edge_index.t().tolist()))
        if other in ids:
            j = ids.index(other)
            assert (0, j) not in local and (j, 0) not in local
            assert int(sg.hop[j]) == 2


def test_precompute_cache_round_trip(tag, tmp_path):
    kw = dict(fanouts=(5, 5), seed=2, dataset_hash=tag.content_hash(), cache_dir=tmp_path, batch_size=17)
    first = precompute_subgraphs(tag.edge_index, tag.num_nodes, **kw)
    files = list((tmp_path / "subgraphs").glob("*.pt"))
    assert len(files) == 1 and not list((tmp_path / "subgraphs").glob("*.tmp"))
    again = precompute_subgraphs(tag.edge_index, tag.num_nodes, **kw)
    direct = NeighborSampler(tag.edge_index, tag.num_nodes, (5, 5), seed=2).sample(torch.arange(tag.num_nodes))
    for k, v in direct.as_dict().items():
        assert torch.equal(first.as_dict()[k], v) and torch.equal(again.as_dict()[k], v), k


def test_isolated_target_and_empty_batch():
    iso = synthetic_tag(num_nodes=8, p_in=0.0, p_out=0.0)
    out = NeighborSampler(iso.edge_index, iso.num_nodes).sample([3])
    sg = out.subgraph(0)
    assert sg.node_ids.tolist() == [3] and sg.num_edges == 0 and sg.hop.tolist() == [0]


def test_bad_graphs_raise_named_errors(tag):
    with pytest.raises(GraphValidationError, match="out of range"):
        NeighborSampler(torch.tensor([[0, 5]]).t(), 3)
    with pytest.raises(GraphValidationError, match="targets out of range"):
        NeighborSampler(tag.edge_index, tag.num_nodes).sample([tag.num_nodes])
    good = Subgraph(x=torch.zeros(3, 2), edge_index=torch.tensor([[0, 1], [1, 2]]), node_ids=torch.tensor([4, 5, 6]),
                    hop=torch.tensor([0, 1, 2]))
    check_subgraph(good)
    bad_index = Subgraph(x=torch.zeros(3, 2), edge_index=torch.tensor([[0], [3]]))
    with pytest.raises(GraphValidationError, match="out of range"):
        check_subgraph(bad_index)
    with pytest.raises(GraphValidationError, match="target must be local node 0"):
        check_subgraph(Subgraph(x=torch.zeros(3, 2), edge_index=torch.zeros(2, 0, dtype=torch.long), target=1))
    nan = torch.zeros(3, 2)
    nan[1, 0] = float("nan")
    with pytest.raises(GraphValidationError, match="NaN"):
        check_subgraph(Subgraph(x=nan, edge_index=torch.zeros(2, 0, dtype=torch.long)))
    with pytest.raises(GraphValidationError, match="unique"):
        check_subgraph(Subgraph(x=torch.zeros(2, 1), edge_index=torch.zeros(2, 0, dtype=torch.long),
                                node_ids=torch.tensor([1, 1])))
    with pytest.raises(GraphValidationError, match="at most 2 nodes"):
        check_subgraph(good, max_nodes=2)


def test_citeseer_all_nodes_fast_and_bounded(data_dir):
    from glm.core.data.tag import load_citeseer_tag

    g = load_citeseer_tag(data_dir)
    out = NeighborSampler(g.edge_index, g.num_nodes).sample(torch.arange(g.num_nodes))
    sizes = out.sizes()
    assert len(out) == 3186 and int(sizes.max()) <= 111 and int(sizes.min()) == 1
    assert torch.equal(out.node_ids[out.node_ptr[:-1]], torch.arange(g.num_nodes))


def test_on_the_fly_subgraphs_equal_the_cached_store(tag, tmp_path):
    """GraphSource samples only the nodes asked for; each equals its row of the all-node store (same seed)."""
    from glm.core.data.tasks import GraphSource

    x = torch.randn(tag.num_nodes, 4)
    fresh = GraphSource(tag, x, (3, 2), seed=5, cache_dir=tmp_path)
    nodes = torch.tensor([7, 0, 7, tag.num_nodes - 1, 3])
    on_the_fly = fresh.subgraphs(nodes)
    assert fresh._store is None, "no all-node store was built"
    cached = GraphSource(tag, x, (3, 2), seed=5, cache_dir=tmp_path)
    _ = cached.store  # the all-node precompute (glm data prepare --subgraphs)
    for a, b in zip(on_the_fly, cached.subgraphs(nodes)):
        for field in ("x", "edge_index", "node_ids", "hop"):
            assert torch.equal(getattr(a, field), getattr(b, field)), field
    other = GraphSource(tag, x, (3, 2), seed=6).subgraphs(nodes)
    assert any(not torch.equal(a.node_ids, b.node_ids) for a, b in zip(on_the_fly, other)), "the seed matters"
