"""GraphEncoder wiring, without any graph framework: a toy backend and a toy layer are
registered for the test (backend-specific parity lives in tests/backends)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from glm.core.encoder import EncoderConfig, GraphEncoder, NeutralStateError, build_encoder, check_neutral_state
from glm.core.graph import Subgraph, SubgraphBatch
from glm.plugins import BackendSpec, get_registry
from glm.plugins.registry import GnnLayerSpec


class ToyBackend:
    name = "toy"

    def __init__(self) -> None:
        self.prepared: list[torch.device] = []

    def to_native(self, batch):
        return {"x": batch.x, "edge_index": batch.edge_index, "edge_weight": batch.edge_weight}

    def from_native(self, obj):  # pragma: no cover - not used by the encoder
        raise NotImplementedError

    def unpack(self, obj):
        return obj["x"], obj["edge_index"], obj["edge_weight"]

    def prepare_device(self, device):
        self.prepared.append(device)


class MeanLayer(nn.Module):
    """``lin(x_i + mean_j x_j)``; records ``heads`` when given."""

    def __init__(self, in_dim: int, out_dim: int, heads: int = 0, scale: float = 1.0) -> None:
        super().__init__()
        self.lin, self.heads, self.scale = nn.Linear(in_dim, out_dim), heads, scale

    def forward(self, x, edge_index, edge_weight=None):
        agg = torch.zeros_like(x).index_add(0, edge_index[1], x[edge_index[0]])
        deg = torch.bincount(edge_index[1], minlength=x.shape[0]).clamp(min=1).unsqueeze(1)
        return self.scale * self.lin(x + agg / deg)

    def neutral_state_dict(self):
        return {k: v.detach().clone() for k, v in self.lin.state_dict().items()}

    def load_neutral_state_dict(self, state):
        check_neutral_state(state, {k: tuple(v.shape) for k, v in self.lin.state_dict().items()}, "mean (toy)")
        self.lin.load_state_dict(state)


class NoHeads(MeanLayer):
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__(in_dim, out_dim)


@pytest.fixture
def toy(monkeypatch) -> ToyBackend:
    registry = get_registry()
    backend = ToyBackend()
    monkeypatch.setitem(registry.backends, "toy", BackendSpec(name="toy", load=lambda: backend))
    for name, factory in (("gt", MeanLayer), ("toymean", MeanLayer), ("noheads", NoHeads)):
        specs = list(registry.gnn_layers.get(name, [])) + [GnnLayerSpec(name, factory, ("toy",))]
        monkeypatch.setitem(registry.gnn_layers, name, specs)
    return backend


def batch(f: int = 6) -> SubgraphBatch:
    gen = torch.Generator().manual_seed(0)
    graphs = [Subgraph(torch.randn(n, f, generator=gen), torch.randint(0, n, (2, 2 * n), generator=gen))
              for n in (3, 5)]
    return SubgraphBatch.from_subgraphs(graphs)


def test_gt_defaults_to_projections_and_no_activation(toy):
    enc = GraphEncoder(EncoderConfig(layer="gt", in_dim=6, hidden_dim=8, out_dim=4, num_layers=3, heads=2), "toy")
    assert isinstance(enc.input_proj, nn.Linear) and isinstance(enc.output_proj, nn.Linear)
    assert [(l.lin.in_features, l.lin.out_features) for l in enc.layers] == [(8, 8)] * 3
    assert all(l.heads == 2 for l in enc.layers)
    assert isinstance(enc.activation, nn.Identity) and enc.dropout is None and enc.input_dropout is not None
    out = enc.eval()(batch())
    assert out.shape == (8, 4)
    assert toy.prepared == [torch.device("cpu")]
    enc(batch())
    assert len(toy.prepared) == 1  # prepared once per device


def test_other_layers_default_to_no_projection_with_activation(toy):
    cfg = EncoderConfig(layer="noheads", in_dim=6, hidden_dim=8, out_dim=5, num_layers=3, activation="gelu",
                        dropout=0.3)
    enc = GraphEncoder(cfg, "toy")
    assert enc.input_proj is None and enc.output_proj is None
    assert [(l.lin.in_features, l.lin.out_features) for l in enc.layers] == [(6, 8), (8, 8), (8, 5)]
    assert isinstance(enc.activation, nn.GELU) and enc.dropout.p == 0.3
    assert enc(batch()).shape == (8, 5)


def test_options_reach_the_factory_and_projections_can_be_forced(toy):
    cfg = EncoderConfig(layer="toymean", in_dim=6, hidden_dim=8, out_dim=5, num_layers=1, input_proj=True,
                        output_proj=True, options={"scale": 0.0})
    enc = GraphEncoder(cfg, "toy").eval()
    assert enc.layers[0].scale == 0.0
    out = enc(batch())  # layer output is zero: only the output projection's bias remains
    assert torch.allclose(out, enc.output_proj.bias.expand_as(out))


def test_activation_applied_between_layers_only(toy):
    cfg = EncoderConfig(layer="toymean", in_dim=6, hidden_dim=6, out_dim=6, num_layers=2, activation="relu",
                        dropout=0.0)
    enc = GraphEncoder(cfg, "toy").eval()
    b = batch()
    h = torch.relu(enc.layers[0](b.x, b.edge_index))
    torch.testing.assert_close(enc(b), enc.layers[1](h, b.edge_index))


def test_neutral_state_round_trip_and_errors(toy):
    cfg = EncoderConfig(layer="gt", in_dim=6, hidden_dim=8, out_dim=4, num_layers=2)
    a, b = GraphEncoder(cfg, "toy").eval(), GraphEncoder(cfg, "toy").eval()
    state = a.neutral_state_dict()
    assert sorted(state) == sorted(["input_proj.weight", "input_proj.bias", "output_proj.weight", "output_proj.bias",
                                    "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"])
    b.load_neutral_state_dict(state)
    torch.testing.assert_close(a(batch()), b(batch()), rtol=0, atol=0)
    with pytest.raises(NeutralStateError, match=r"missing \['layers.1.bias'\]"):
        b.load_neutral_state_dict({k: v for k, v in state.items() if k != "layers.1.bias"})
    with pytest.raises(NeutralStateError, match=r"'input_proj.weight' must have shape \(8, 6\), found \(6, 8\)"):
        b.load_neutral_state_dict({**state, "input_proj.weight": torch.zeros(6, 8)})


@pytest.mark.parametrize("bad,match", [
    (dict(num_layers=0), "num_layers must be >= 1"),
    (dict(activation="tanh"), "activation must be one of"),
])
def test_bad_config_is_named(toy, bad, match):
    with pytest.raises(ValueError, match=match):
        GraphEncoder(EncoderConfig(layer="toymean", in_dim=6, hidden_dim=6, out_dim=6, **bad), "toy")


def test_build_encoder_from_dict(toy):
    enc = build_encoder({"layer": "toymean", "in_dim": 6, "hidden_dim": 6, "out_dim": 3, "num_layers": 1}, "toy")
    assert enc(batch()).shape == (8, 3)
    with pytest.raises(ValueError, match=r"unknown fields \['hiden_dim'\]"):
        build_encoder({"layer": "toymean", "hiden_dim": 6}, "toy")


def test_unknown_layer_or_backend_is_named(toy):
    from glm.plugins import UnknownBackendError, UnknownLayerError

    with pytest.raises(UnknownLayerError, match="nope"):
        GraphEncoder(EncoderConfig(layer="nope"), "toy")
    with pytest.raises(UnknownBackendError, match="nowhere"):
        GraphEncoder(EncoderConfig(layer="gt"), "nowhere")
