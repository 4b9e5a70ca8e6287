"""GNN layer and encoder parity: every backend against the reference backend (PyG).

Identical neutral weights and graphs must give the same node embeddings and the same
gradients with respect to inputs and weights: fp32 within 1e-5 and bf16 within 1e-2, flat
bounds for every layer, forward and gradients alike. Graphs: undirected, directed (with self
loops and duplicate edges), weighted, and Cora. Only ``gcn`` uses edge weights; the others
must ignore them (checked).

The measure is ``max|a - b| / max(1, max|a|)`` (``conftest.scaled_diff``): the absolute
difference wherever the reference values are at most 1, relative above. It is relative for large
values because the compared tensors are not small: forward outputs reach about 4 and weight
gradients summed over Cora's nodes about 100, where fp32 rounding alone is of order 1e-5 and one
bf16 ulp is 0.5, so an absolute bound there would test the number format, not the backends.
Absolute differences are recorded beside the scaled ones in the summary table.
"""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import (
    LAYER_OPTIONS,
    LAYERS,
    OUT_DIM,
    REFERENCE_BACKEND,
    SQUARE_LAYERS,
    TOLERANCE,
    max_diff,
    record,
    scaled_diff,
    synthetic_case,
)

from glm.core.encoder import EncoderConfig, GraphEncoder
from glm.plugins import get_registry

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def make_pair(layer: str, backend: str, in_dim: int, out_dim: int = OUT_DIM):
    """Reference and tested layer holding the same (reference-initialised) neutral weights."""
    registry = get_registry()
    options = LAYER_OPTIONS.get(layer, {})
    torch.manual_seed(0)
    ref = registry.gnn_layer(layer, REFERENCE_BACKEND).factory(in_dim, out_dim, **options)
    other = registry.gnn_layer(layer, backend).factory(in_dim, out_dim, **options)
    state = ref.neutral_state_dict()
    gen = torch.Generator().manual_seed(1)
    # random biases / norm parameters too, so that no parameter is trivially zero or one
    state = {k: v + 0.1 * torch.randn(v.shape, generator=gen) for k, v in state.items()}
    ref.load_neutral_state_dict(state)
    other.load_neutral_state_dict(state)
    return ref.eval(), other.eval()


def layer_inputs(layer: str, case):
    """x, edge_index, edge_weight for a layer; square layers get a fixed projection to OUT_DIM."""
    b = case.batch
    x = b.x
    if layer in SQUARE_LAYERS:
        gen = torch.Generator().manual_seed(2)
        x = x @ (torch.randn(x.shape[1], OUT_DIM, generator=gen) / x.shape[1] ** 0.5)
    return x, b.edge_index, b.edge_weight


def run_layer(module, x, edge_index, edge_weight, dtype):
    """Forward + backward of ``(out * probe).sum()`` in ``dtype``; returns (out, {name: grad})."""
    module = copy.deepcopy(module).to(dtype)
    xi = x.detach().to(dtype).clone().requires_grad_(True)
    ew = None if edge_weight is None else edge_weight.to(dtype)
    out = module(xi, edge_index, ew)
    probe = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
    (out.float() * probe).sum().backward()
    return out.detach(), {"x": xi.grad, **module.neutral_grads()}


@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("layer", LAYERS)
def test_layer_forward_and_gradients_agree(backend, layer, graph, dtype_name):
    """Forward output and every gradient agree within ``TOLERANCE[dtype]`` (scaled). For bf16
    the reference's own bf16-vs-fp32 error is recorded too, to show the scale of bf16 rounding
    that a different order of operations would expose (it is not part of the bound)."""
    dtype = DTYPES[dtype_name]
    tolerance = TOLERANCE[dtype]
    x, edge_index, edge_weight = layer_inputs(layer, graph)
    ref, other = make_pair(layer, backend, x.shape[1])
    out_ref, grads_ref = run_layer(ref, x, edge_index, edge_weight, dtype)
    out_other, grads_other = run_layer(other, x, edge_index, edge_weight, dtype)

    assert out_ref.shape == out_other.shape == (x.shape[0], OUT_DIM)
    assert out_ref.dtype == out_other.dtype == dtype
    assert set(grads_ref) == set(grads_other)
    key = f"{layer}/{graph.name}/{dtype_name}"
    pairs = {"forward": (out_ref, out_other)}
    pairs.update({f"grad {n}": (g, grads_other[n]) for n, g in grads_ref.items()})
    if dtype != torch.float32:
        out_exact, grads_exact = run_layer(ref, x, edge_index, edge_weight, torch.float32)
        exact = {"forward": out_exact, **{f"grad {n}": g for n, g in grads_exact.items()}}
    failures = []
    for what, (a, b) in pairs.items():
        assert a is not None and b is not None, f"{key}: no {what}"
        diff = scaled_diff(a, b)
        kind = "forward" if what == "forward" else "grad   "
        record(f"layer {kind} {key}", diff)
        record(f"layer {kind} {key} (abs)", max_diff(a, b))
        if dtype != torch.float32:
            record(f"layer {kind} {key} ({REFERENCE_BACKEND} bf16 vs fp32)", scaled_diff(exact[what], a))
        if diff > tolerance:
            failures.append(f"{what} {diff:.3e}")
    assert not failures, f"{key}: scaled differences above {tolerance}: {', '.join(failures)}"


@pytest.mark.parametrize("layer", LAYERS)
def test_edge_weights_used_only_where_supported(backend, layer):
    case = synthetic_case("weighted")
    x, edge_index, edge_weight = layer_inputs(layer, case)
    for module in make_pair(layer, backend, x.shape[1]):
        weighted = module(x, edge_index, edge_weight)
        unweighted = module(x, edge_index, None)
        if module.supports_edge_weight:
            assert max_diff(weighted, unweighted) > 1e-3, f"{layer} ({module.backend}) ignores edge weights"
        else:
            assert torch.equal(weighted, unweighted), f"{layer} ({module.backend}) changed with edge weights"
        assert module.supports_edge_weight == (layer == "gcn")


def test_layers_registered_for_every_backend(backend):
    registry = get_registry()
    for layer in LAYERS:
        for name in (REFERENCE_BACKEND, backend):
            spec = registry.gnn_layer(layer, name)
            assert spec.backends == (name,), f"{layer} must be tagged with backend {name!r}"
    assert set(LAYERS) <= set(registry.layers_for(backend))


ENCODER_CASES = {
    "gt": dict(layer="gt", in_dim=12, hidden_dim=16, out_dim=10, num_layers=2, heads=4),
    "gcn": dict(layer="gcn", in_dim=12, hidden_dim=16, out_dim=10, num_layers=3, activation="relu"),
    "gat": dict(layer="gat", in_dim=12, hidden_dim=16, out_dim=8, num_layers=2, heads=2, activation="gelu"),
    "sage": dict(layer="sage", in_dim=12, hidden_dim=16, out_dim=10, num_layers=2, input_proj=True,
                 output_proj=True),
}


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("kind", ["undirected", "weighted"])
def test_encoder_parity_after_neutral_load(backend, layer, kind):
    case = ENCODER_CASES.get(layer, dict(layer=layer, in_dim=12, hidden_dim=16, out_dim=16, num_layers=2,
                                         **LAYER_OPTIONS.get(layer, {})))  # a new layer: the plain case
    config = EncoderConfig(dropout=0.0, **case)
    torch.manual_seed(0)
    ref = GraphEncoder(config, REFERENCE_BACKEND).eval()
    other = GraphEncoder(config, backend).eval()
    state = ref.neutral_state_dict()
    other.load_neutral_state_dict(state)
    assert other.neutral_state_dict().keys() == state.keys()
    for key, value in other.neutral_state_dict().items():
        assert torch.equal(value, state[key]), key
    assert sum(p.numel() for p in ref.parameters()) == sum(p.numel() for p in other.parameters())

    batch = synthetic_case(kind, f=12).batch
    outs, xgrads = [], []
    for enc in (ref, other):
        b = copy.copy(batch)
        b.x = batch.x.clone().requires_grad_(True)
        out = enc(b)
        out.square().sum().backward()
        outs.append(out.detach())
        xgrads.append(b.x.grad)
    assert outs[0].shape == (batch.num_nodes, config.out_dim)
    fwd, grad = scaled_diff(*outs), scaled_diff(*xgrads)
    record(f"encoder forward {layer}/{kind}/fp32", fwd)
    record(f"encoder grad(x) {layer}/{kind}/fp32", grad)
    assert fwd <= 1e-5 and grad <= 1e-5, (fwd, grad)
