"""The conformance kit can fail: each deliberately broken layer trips exactly the right check."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from glm.testing import ALL_CHECKS, ConformanceError, assert_gnn_layer, empty_graph, random_graph, resolve_layer, run_check


class MeanConv(nn.Module):
    """A correct test layer: ``lin_root(x_i) + lin_neigh(weighted mean_j x_j)``."""

    supports_edge_weight = True

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.lin_root = nn.Linear(in_dim, out_dim)
        self.lin_neigh = nn.Linear(in_dim, out_dim, bias=False)

    def aggregate(self, x, edge_index, edge_weight):
        src, dst = edge_index
        w = torch.ones(src.numel(), dtype=x.dtype, device=x.device) if edge_weight is None else edge_weight.to(x.dtype)
        total = torch.zeros_like(x).index_add_(0, dst, x[src] * w[:, None])
        count = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device).index_add_(0, dst, torch.ones_like(w))
        return total / count.clamp(min=1)[:, None]

    def forward(self, x, edge_index, edge_weight=None):
        return self.lin_root(x) + self.lin_neigh(self.aggregate(x, edge_index, edge_weight))

    def neutral_state_dict(self):
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    def load_neutral_state_dict(self, state):
        self.load_state_dict(state, strict=True)


class WrongShape(MeanConv):
    def forward(self, x, edge_index, edge_weight=None):
        return super().forward(x, edge_index, edge_weight)[:, :-1]


class PositionDependent(MeanConv):
    def forward(self, x, edge_index, edge_weight=None):
        position = torch.arange(x.shape[0], dtype=x.dtype, device=x.device)[:, None]
        return super().forward(x, edge_index, edge_weight) + 0.1 * position


class LastEdgeWins(MeanConv):
    def aggregate(self, x, edge_index, edge_weight):
        out = torch.zeros_like(x)
        for s, d in edge_index.t().tolist():  # keeps only the last edge into each node: order matters
            out[d] = x[s]
        return out


class DeadParameter(MeanConv):
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__(in_dim, out_dim)
        self.unused = nn.Parameter(torch.zeros(out_dim))


class CastsToFloat32(MeanConv):
    def forward(self, x, edge_index, edge_weight=None):
        return nn.functional.linear(x.float(), self.lin_root.weight.float(), self.lin_root.bias.float())


class ClaimsWeightsButIgnoresThem(MeanConv):
    def forward(self, x, edge_index, edge_weight=None):
        return super().forward(x, edge_index, None)


class NoneIsNotOnes(MeanConv):
    supports_edge_weight = None

    def forward(self, x, edge_index, edge_weight=None):
        if edge_weight is None:
            edge_weight = torch.full((edge_index.shape[1],), 2.0)
        return self.lin_root(x) + self.lin_neigh(self.aggregate(x, edge_index, edge_weight) * 2)


class CrashesWithoutEdges(MeanConv):
    def forward(self, x, edge_index, edge_weight=None):
        int(edge_index.max())
        return super().forward(x, edge_index, edge_weight)


class LenientLoad(MeanConv):
    def load_neutral_state_dict(self, state):
        self.load_state_dict(state, strict=False)  # silently ignores missing keys


class NoNeutralState(MeanConv):
    neutral_state_dict = None


def case(factory):
    return resolve_layer(factory, in_dim=10, out_dim=6)


def test_a_correct_layer_passes_every_check():
    report = assert_gnn_layer(MeanConv, in_dim=10, out_dim=6)
    assert list(report) == list(ALL_CHECKS)
    assert all(v.startswith("passed") for v in report.values()), report


@pytest.mark.parametrize("factory, check, needle", [
    (WrongShape, "output_shape", "output shape (12, 5), expected (12, 6)"),
    (PositionDependent, "node_permutation", "out(P x) vs P out(x)"),
    (LastEdgeWins, "edge_permutation", "shuffled edges vs original"),
    (DeadParameter, "grad_flow", "parameters get no gradient: ['unused']"),
    (CastsToFloat32, "dtype", "torch.bfloat16 give output in torch.float32"),
    (ClaimsWeightsButIgnoresThem, "edge_weight", "supports_edge_weight is True but random weights leave"),
    (NoneIsNotOnes, "edge_weight", "edge_weight=ones vs edge_weight=None"),
    (CrashesWithoutEdges, "empty_edges", "forward raised RuntimeError"),
    (LenientLoad, "neutral_state_dict", "accepted a state with a missing key"),
    (NoNeutralState, "neutral_state_dict", "has no neutral_state_dict()"),
])
def test_a_broken_layer_fails_the_right_check(factory, check, needle):
    with pytest.raises(ConformanceError) as info:
        run_check(case(factory), check)
    message = str(info.value)
    assert f"gnn layer {factory.__name__!r} (pure torch) fails {check}" in message
    assert needle in message, message
    with pytest.raises(ConformanceError, match=check):  # and the one-call API reports it too
        assert_gnn_layer(factory, in_dim=10, out_dim=6)


def test_allow_no_grad_accepts_named_parameters():
    with pytest.raises(ConformanceError):
        run_check(case(DeadParameter), "grad_flow")
    assert run_check(case(DeadParameter), "grad_flow", allow_no_grad=["unus*"]) == "passed"


class TwoDefects(PositionDependent, DeadParameter):
    """Position-dependent output and an unused parameter."""


def test_failures_are_collected_into_one_error():
    with pytest.raises(ConformanceError, match=r"^2 conformance check\(s\) failed") as info:
        assert_gnn_layer(TwoDefects, in_dim=10, out_dim=6, checks=("output_shape", "node_permutation", "grad_flow"))
    assert "fails node_permutation" in str(info.value) and "fails grad_flow" in str(info.value)


def test_skip_and_unknown_checks():
    report = assert_gnn_layer(CastsToFloat32, in_dim=10, out_dim=6, skip=("dtype", "node_permutation",
                                                                        "edge_permutation", "grad_flow",
                                                                        "edge_weight", "neutral_state_dict"))
    assert report["dtype"] == "skipped: asked"
    with pytest.raises(ValueError, match="unknown checks"):
        assert_gnn_layer(MeanConv, checks=("no_such_check",))


def test_device_check_reports_when_cuda_is_missing():
    result = run_check(case(MeanConv), "device")
    if torch.cuda.is_available():
        assert result == "passed"
    else:
        assert result == "passed (cpu only: no CUDA device here)"


def test_random_graph_is_deterministic_and_valid():
    a, b = random_graph(8, 20, 4, seed=3), random_graph(8, 20, 4, seed=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index)
    assert a.edge_index.shape == (2, 20) and (a.edge_index[0] != a.edge_index[1]).all()
    assert set(a.edge_index[1].tolist()) == set(range(8))  # every node has an in-edge
    assert len({tuple(e) for e in a.edge_index.t().tolist()}) == 20
    assert empty_graph(3, 4).edge_index.shape == (2, 0)
    with pytest.raises(ValueError, match="num_edges"):
        random_graph(3, 50)


def test_unknown_layer_and_backend_specific_layer_errors():
    from glm.plugins.registry import UnknownLayerError

    with pytest.raises(UnknownLayerError, match="no_such_layer"):
        assert_gnn_layer("no_such_layer")
    from glm.plugins import get_registry

    specific = [n for n, specs in get_registry().gnn_layers.items() if all(s.backends for s in specs)]
    if not specific:
        pytest.skip("no backend-specific layer is registered")
    with pytest.raises(ValueError, match="pass backend="):
        assert_gnn_layer(specific[0])
