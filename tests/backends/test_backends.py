"""Backend objects (conversion round trips, protocol), registration, lazy imports and the
GammaGL compat shim. Parametrised over every backend: adding one is one value in BACKENDS."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import BACKENDS, REFERENCE_BACKEND, skip_unless_available, synthetic_case

from glm.core.backend import Backend
from glm.core.encoder import EncoderConfig, GraphEncoder, NeutralStateError
from glm.core.graph import SubgraphBatch
from glm.plugins import BackendUnavailableError, get_registry

ALL_BACKENDS = (REFERENCE_BACKEND, *BACKENDS)
NATIVE_TYPES = {"pyg": "torch_geometric.data.data.Data", "gammagl": "gammagl.data.graph.Graph"}


@pytest.fixture(params=ALL_BACKENDS)
def any_backend(request) -> str:
    skip_unless_available(request.param)
    return request.param


def full_batch() -> SubgraphBatch:
    batch = synthetic_case("weighted").batch
    n = batch.num_nodes
    batch.hop = torch.randint(0, 3, (n,))
    batch.node_ids = torch.arange(100, 100 + n)
    return batch


@pytest.mark.parametrize("with_optional", [True, False])
def test_round_trip_keeps_tensors_without_copying(any_backend, with_optional):
    backend = get_registry().backend(any_backend).load()
    assert isinstance(backend, Backend) and backend.name == any_backend
    batch = full_batch() if with_optional else synthetic_case("undirected").batch
    native = backend.to_native(batch)
    cls = type(native)
    assert f"{cls.__module__}.{cls.__qualname__}" == NATIVE_TYPES[any_backend]
    back = backend.from_native(native)
    for key, value in batch.__dict__.items():
        got = getattr(back, key)
        if value is None:
            assert got is None, key
        else:
            assert torch.equal(got, value) and got.data_ptr() == value.data_ptr(), f"{key} was copied or changed"
    x, edge_index, edge_weight = backend.unpack(native)
    assert x is batch.x and edge_index is batch.edge_index and edge_weight is batch.edge_weight
    assert [s.num_nodes for s in back.subgraphs()] == batch.sizes


def test_from_native_single_graph_defaults(any_backend):
    """A framework graph built by hand (no batch fields) reads as one subgraph, target 0."""
    backend = get_registry().backend(any_backend).load()
    batch = synthetic_case("directed").batch
    native = backend.to_native(SubgraphBatch(
        x=batch.x, edge_index=batch.edge_index, batch=torch.zeros(batch.num_nodes, dtype=torch.long),
        ptr=torch.tensor([0, batch.num_nodes]), target_index=torch.tensor([0])))
    for key in ("batch", "ptr", "target_index"):
        del native[key]
    back = backend.from_native(native)
    assert back.num_graphs == 1 and back.target_index.tolist() == [0] and back.ptr.tolist() == [0, batch.num_nodes]
    assert back.edge_weight is None and back.hop is None


def test_backend_registered_with_extra():
    registry = get_registry()
    for name in ALL_BACKENDS:
        spec = registry.backends[name]
        assert spec.extra == name and spec.requires, name


@pytest.mark.parametrize("name,module", [("pyg", "torch_geometric"), ("gammagl", "gammagl")])
def test_missing_framework_raises_named_error(monkeypatch, name, module):
    monkeypatch.setitem(sys.modules, module, None)  # find_spec() -> None: "not installed"
    registry = get_registry()
    assert name in registry.backends  # still registered
    with pytest.raises(BackendUnavailableError, match=rf'\[{name}\]'):
        registry.backend(name)
    with pytest.raises(BackendUnavailableError, match=module):
        GraphEncoder(EncoderConfig(layer="gcn", in_dim=4, hidden_dim=4, out_dim=4), name)


def test_backend_modules_import_no_framework():
    code = (
        "import sys, glm.backends.pyg, glm.backends.gammagl, glm.core.encoder\n"
        "from glm.plugins import get_registry; get_registry()\n"
        "bad = [m for m in ('torch_geometric', 'gammagl', 'tensorlayerx') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)  # a cold venv on a busy box is slow


@pytest.mark.parametrize("layer", ["gcn", "gat", "sage", "gt"])
def test_neutral_state_errors_name_the_key(any_backend, layer):
    config = EncoderConfig(layer=layer, in_dim=8, hidden_dim=8, out_dim=8, num_layers=1, heads=2)
    enc = GraphEncoder(config, any_backend)
    state = enc.neutral_state_dict()
    key = sorted(k for k in state if k.startswith("layers.0."))[0]
    missing = {k: v for k, v in state.items() if k != key}
    with pytest.raises(NeutralStateError, match="missing.*" + key.replace(".", r"\.")):
        enc.load_neutral_state_dict(missing)
    with pytest.raises(NeutralStateError, match="unexpected.*extra"):
        enc.load_neutral_state_dict({**state, "extra": torch.zeros(1)})
    bad = dict(state, **{key: torch.zeros(3, 3, 3)})
    with pytest.raises(NeutralStateError, match=r"must have shape .* found \(3, 3, 3\)"):
        enc.load_neutral_state_dict(bad)
    with pytest.raises(NeutralStateError):
        enc.layers[0].load_neutral_state_dict({})


def test_gammagl_layers_follow_train_eval_and_deepcopy():
    skip_unless_available("gammagl")
    import copy

    layer = get_registry().gnn_layer("gat", "gammagl").factory(8, 8, heads=2, attn_dropout=0.5)
    x, ei = torch.randn(10, 8), torch.randint(0, 10, (2, 30))
    layer.eval()
    assert torch.equal(layer(x, ei), layer(x, ei))  # no attention dropout in eval
    layer.train()
    torch.manual_seed(0)
    assert not torch.equal(layer(x, ei), layer(x, ei))
    clone = copy.deepcopy(layer).eval()
    assert torch.equal(clone(x, ei), layer.eval()(x, ei))
    assert all(p.grad is None for p in layer.parameters())
    layer(x, ei).sum().backward()
    assert all(p.grad is not None for p in layer.parameters()), "a parameter without gradient"


def test_gammagl_layers_run_on_gammagl_classes():
    """The GammaGL layers subclass gammagl's own convolutions (PyG's order of operations is an
    override, not a re-implementation beside gammagl), and the softmax used by ``gat`` has the
    forward of ``gammagl.utils.segment_softmax``."""
    skip_unless_available("gammagl")
    from glm.backends import gammagl as backend_module

    gammagl = backend_module.compat.load_gammagl()
    from gammagl.utils import segment_softmax

    conv = gammagl.layers.conv
    registry = get_registry()
    expected = {"gcn": conv.GCNConv, "gat": conv.GATConv, "sage": conv.SAGEConv}
    for name, cls in expected.items():
        layer = registry.gnn_layer(name, "gammagl").factory(8, 8)
        assert isinstance(layer.conv, cls) and isinstance(layer.conv, conv.MessagePassing), name
    gt = registry.gnn_layer("gt", "gammagl").factory(8, 8, heads=2)
    assert isinstance(gt.attention, conv.MessagePassing)

    gen = torch.Generator().manual_seed(0)
    logits, index = torch.randn(40, 3, generator=gen), torch.randint(0, 7, (40,), generator=gen)
    assert torch.allclose(backend_module.segment_softmax(logits, index, 9), segment_softmax(logits, index, 9),
                          rtol=0, atol=1e-7)
