"""Every GNN layer in the registry, on every registered backend, against the conformance kit.

Parametrised from the registry: a new backend or layer (built-in or plugin) is tested here
without a new test file; backends that are not installed are skipped with the install command.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from glm.plugins import get_registry
from glm.testing import ALL_CHECKS, GnnLayerConformance, assert_neutral_parity, resolve_layer, run_check

REGISTRY = get_registry()


def _cases() -> list:
    cases = []
    for backend, spec in REGISTRY.backends.items():
        marks = [] if spec.available else [pytest.mark.skip(reason=f"backend {backend!r} not installed"
                                                                  f" ({spec.install_hint()})")]
        cases += [pytest.param(name, backend, id=f"{backend}-{name}", marks=marks)
                  for name in REGISTRY.layers_for(backend)]
    return cases or [pytest.param(None, None, marks=pytest.mark.skip(reason="no GNN layer is registered"))]


def _parity_cases() -> list:
    cases = []
    for name in sorted(REGISTRY.gnn_layers):
        backends = [b for b in REGISTRY.available_backends() if name in REGISTRY.layers_for(b)]
        specs = REGISTRY.gnn_layers[name]
        if len(backends) >= 2 and not any(s.backends is None for s in specs):
            cases.append(pytest.param(name, backends, id=name))
    return cases or [pytest.param(None, None, marks=pytest.mark.skip(
        reason="no layer is implemented by two installed backends"))]


@pytest.mark.parametrize("check", ALL_CHECKS)
@pytest.mark.parametrize("layer, backend", _cases())
def test_registered_layer_conforms(layer: str, backend: str, check: str):
    case = resolve_layer(layer, in_dim=16, out_dim=16, backend=backend)
    result = run_check(case, check)
    if result.startswith("skipped:"):
        pytest.skip(result)


@pytest.mark.parametrize("layer, backend", _cases())
def test_registered_layer_rectangular(layer: str, backend: str):
    """in_dim != out_dim, unless the layer documents that it needs them equal (a residual)."""
    try:
        case = resolve_layer(layer, in_dim=12, out_dim=8, backend=backend)
        case.build()
    except ValueError as exc:
        if "in_dim == out_dim" in str(exc):
            pytest.skip(f"{layer} needs in_dim == out_dim: {exc}")
        raise
    run_check(case, "output_shape")
    run_check(case, "grad_flow")


@pytest.mark.parametrize("layer, backends", _parity_cases())
def test_neutral_parameters_give_the_same_output_on_every_backend(layer: str, backends: list[str]):
    assert_neutral_parity(layer, backends)
    assert_neutral_parity(layer, backends[::-1])


class SumConv(nn.Module):
    """A test-defined pure-torch layer: ``lin(x_i + sum_j w_ji x_j)``."""

    supports_edge_weight = True

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.lin = nn.Linear(in_dim, out_dim)

    def forward(self, x, edge_index, edge_weight=None):
        src, dst = edge_index
        msg = x[src] if edge_weight is None else x[src] * edge_weight.to(x.dtype)[:, None]
        return self.lin(x + torch.zeros_like(x).index_add_(0, dst, msg))

    def neutral_state_dict(self):
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    def load_neutral_state_dict(self, state):
        self.load_state_dict(state, strict=True)


class TestSumConvThroughTheMixin(GnnLayerConformance):
    """The mixin as a plugin author uses it, with a factory instead of a registered name."""

    layer = SumConv
    in_dim = 12
    out_dim = 8
