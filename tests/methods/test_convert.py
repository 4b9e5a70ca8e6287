"""``glm convert official-gt``: official graph-transformer weights give the official layer's outputs
in glm's ``gt`` (after the transpose), on symmetric and on directed graphs with ``aggregate_at``."""

import pytest
import torch
from safetensors.torch import save_file

from glm.cli.main import main
from glm.core.convert import ConvertError, official_gt_to_neutral
from glm.core.encoder import EncoderConfig, GraphEncoder
from glm.core.graph import Subgraph, SubgraphBatch
from glm.plugins import get_registry

D, HEADS, LAYERS = 8, 2, 2


def official_state(seed=0):
    g = torch.Generator().manual_seed(seed)
    state = {"gnn.W_P.weight": torch.randn(D, 6, generator=g), "gnn.W_P.bias": torch.randn(D, generator=g),
             "gnn.inverW_P.weight": torch.randn(5, D, generator=g), "gnn.inverW_P.bias": torch.randn(5, generator=g),
             "gnn.W_pos": torch.randn(1, D, generator=g)}
    for i in range(LAYERS):
        for name in ("qTrans", "kTrans", "vTrans"):
            state[f"gnn.gtLayers.{i}.{name}"] = 0.3 * torch.randn(D, D, generator=g)
        state[f"gnn.gtLayers.{i}.norm.weight"] = 1 + 0.1 * torch.randn(D, generator=g)
        state[f"gnn.gtLayers.{i}.norm.bias"] = 0.1 * torch.randn(D, generator=g)
    return state


def official_forward(state, x, edge_index):
    """The official GTLayer stack, written from its description: q at row, k/v at col, normalise and sum at row."""
    h = x @ state["gnn.W_P.weight"].t() + state["gnn.W_P.bias"]
    row, col = edge_index
    for i in range(LAYERS):
        q, k, v = (h @ state[f"gnn.gtLayers.{i}.{n}"] for n in ("qTrans", "kTrans", "vTrans"))
        q, k, v = (t.view(-1, HEADS, D // HEADS) for t in (q, k, v))
        att = torch.exp((q[row] * k[col]).sum(-1).clamp(-10, 10))
        norm = torch.zeros(h.shape[0], HEADS).index_add_(0, row, att)[row]
        out = torch.zeros(h.shape[0], HEADS, D // HEADS).index_add_(0, row, (att / (norm + 1e-8))[..., None] * v[col])
        h = torch.nn.functional.layer_norm(h + out.reshape(h.shape[0], D), (D,), state[f"gnn.gtLayers.{i}.norm.weight"],
                                           state[f"gnn.gtLayers.{i}.norm.bias"], eps=1e-6)
    return h @ state["gnn.inverW_P.weight"].t() + state["gnn.inverW_P.bias"]


def _graph(directed):
    g = torch.Generator().manual_seed(1)
    ei = torch.randint(0, 9, (2, 20), generator=g)
    if not directed:
        ei = torch.cat([ei, ei.flip(0)], 1)
    return Subgraph(x=torch.randn(9, 6, generator=g), edge_index=ei)


@pytest.mark.parametrize("backend", ["pyg", "gammagl"])
@pytest.mark.parametrize("directed", [False, True])
def test_converted_weights_reproduce_the_official_layer(backend, directed):
    if backend not in get_registry().available_backends():
        pytest.skip(f"backend {backend!r} is not installed")
    state = official_state()
    sub = _graph(directed)
    expected = official_forward(state, sub.x, sub.edge_index)
    options = {"aggregate_at": "source"} if directed else {}
    enc = GraphEncoder(EncoderConfig(layer="gt", in_dim=6, hidden_dim=D, out_dim=5, num_layers=LAYERS, heads=HEADS,
                                     dropout=0.0, options=options), backend).eval()
    enc.load_neutral_state_dict(official_gt_to_neutral(state))
    got = enc(SubgraphBatch.from_subgraphs([sub]))
    assert (got - expected).abs().max() < 1e-5
    if directed:  # the default side differs on directed graphs: the switch is needed
        plain = GraphEncoder(EncoderConfig(layer="gt", in_dim=6, hidden_dim=D, out_dim=5, num_layers=LAYERS,
                                           heads=HEADS, dropout=0.0), backend).eval()
        plain.load_neutral_state_dict(official_gt_to_neutral(state))
        assert (plain(SubgraphBatch.from_subgraphs([sub])) - expected).abs().max() > 1e-3
    untransposed = official_gt_to_neutral(state)
    for i in range(LAYERS):
        untransposed[f"layers.{i}.wq"] = state[f"gnn.gtLayers.{i}.qTrans"]  # the forgotten transpose
    enc.load_neutral_state_dict(untransposed)
    assert (enc(SubgraphBatch.from_subgraphs([sub])) - expected).abs().max() > 1e-3


def test_cli_converts_and_refuses_other_files(tmp_path, capsys):
    src = tmp_path / "clip_gt.safetensors"
    save_file(official_state(), str(src))
    out = tmp_path / "gt.safetensors"
    assert main(["convert", "official-gt", str(src), str(out)]) == 0
    assert "wrote 14 tensors" in capsys.readouterr().out
    save_file({"encoder.weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    assert main(["convert", "official-gt", str(tmp_path / "other.safetensors"), str(out)]) == 2
    assert "no official graph-transformer keys" in capsys.readouterr().err
    evil = tmp_path / "evil.pt"
    import pickle

    class Boom:
        def __reduce__(self):
            return (print, ("unpickled!",))

    evil.write_bytes(pickle.dumps({"x": Boom()}))
    assert main(["convert", "official-gt", str(evil), str(out)]) == 2
    captured = capsys.readouterr()
    assert "refused to load" in captured.err and "unpickled!" not in captured.out
    with pytest.raises(ConvertError, match="unexpected keys"):
        official_gt_to_neutral({**official_state(), "gnn.extra": torch.zeros(1)})
