"""``BackendConformance``: the backend contract as a pytest class to subclass (for backend plugin authors).

::

    from glm.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        backend = "mygraph"           # a registered backend name
        # optional: reference = "pyg", layers = ("gcn", "gt"), atol = 1e-5

Checks (a backend that is not installed is skipped with the install command):

* ``test_protocol``: the loaded object implements :class:`glm.core.backend.Backend`;
  ``from_native(to_native(batch))`` gives the batch back; ``unpack`` returns torch tensors;
* ``test_layer_contract[layer]``: every layer it registers passes :func:`glm.testing.assert_gnn_layer`;
* ``test_layer_parity[layer]``: the same neutral weights give the reference backend's outputs
  (fp32, with and without edge weights) for every layer both backends register;
* ``test_encoder_parity``: a whole :class:`~glm.core.encoder.GraphEncoder` (``gt`` stack) matches
  the reference after ``load_neutral_state_dict``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional, Sequence

import pytest
import torch


def _registry():
    from glm.plugins.manager import get_registry

    return get_registry()


class BackendConformance:
    """Subclass as ``Test...`` and set :attr:`backend`."""

    backend: ClassVar[Optional[str]] = None
    reference: ClassVar[str] = "pyg"
    #: layers to check (default: every layer the backend registers)
    layers: ClassVar[Optional[Sequence[str]]] = None
    atol: ClassVar[float] = 1e-5

    @classmethod
    def layer_params(cls) -> list[Any]:
        if cls.backend is None:
            return [pytest.param(None, marks=pytest.mark.skip(reason=f"{cls.__name__}.backend is not set"))]
        names = cls.layers or _registry().layers_for(cls.backend)
        return [pytest.param(n, id=n) for n in names] or [pytest.param(None, marks=pytest.mark.skip(reason="no layers"))]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        import types

        for name in ("test_layer_contract", "test_layer_parity"):
            base = getattr(cls, name)
            own = types.FunctionType(base.__code__, base.__globals__, name, base.__defaults__, base.__closure__)
            setattr(cls, name, pytest.mark.parametrize("layer", cls.layer_params())(own))

    @pytest.fixture(autouse=True)
    def _installed(self):
        if self.backend is None:
            pytest.skip(f"{type(self).__name__}.backend is not set")
        spec = _registry().backends.get(self.backend)
        if spec is None:
            pytest.skip(f"backend {self.backend!r} is not registered")
        if not spec.available:
            pytest.skip(f"backend {self.backend!r} is not installed: {spec.install_hint()}")

    def _reference_ready(self) -> None:
        spec = _registry().backends.get(self.reference)
        if spec is None or not spec.available or self.reference == self.backend:
            pytest.skip(f"reference backend {self.reference!r} is not installed (or is the backend itself)")

    def test_protocol(self):
        from glm.core.backend import Backend
        from glm.core.graph import Subgraph, SubgraphBatch

        obj = _registry().backend(self.backend).load()
        assert isinstance(obj, Backend), f"{type(obj).__name__} lacks the Backend protocol"
        gen = torch.Generator().manual_seed(0)
        batch = SubgraphBatch.from_subgraphs([
            Subgraph(x=torch.randn(n, 4, generator=gen), edge_index=torch.randint(0, n, (2, 2 * n), generator=gen))
            for n in (3, 5)])
        back = obj.from_native(obj.to_native(batch))
        assert torch.equal(back.x, batch.x) and torch.equal(back.edge_index, batch.edge_index)
        assert torch.equal(back.ptr, batch.ptr)
        x, edge_index, _ = obj.unpack(obj.to_native(batch))
        assert isinstance(x, torch.Tensor) and torch.equal(edge_index, batch.edge_index)
        obj.prepare_device(torch.device("cpu"))

    def test_layer_contract(self, layer):
        from glm.testing.asserts import assert_gnn_layer

        dims = 16
        assert_gnn_layer(layer, in_dim=dims, out_dim=dims, backend=self.backend, skip=("device",))

    def test_layer_parity(self, layer):
        from glm.testing.asserts import assert_neutral_parity

        self._reference_ready()
        if layer not in _registry().layers_for(self.reference):
            pytest.skip(f"{layer!r} has no {self.reference} implementation to compare with")
        assert_neutral_parity(layer, [self.reference, self.backend], atol=self.atol)

    def test_encoder_parity(self):
        from glm.core.encoder import EncoderConfig, GraphEncoder
        from glm.core.graph import Subgraph, SubgraphBatch

        self._reference_ready()
        config = EncoderConfig(layer="gt", in_dim=12, hidden_dim=16, out_dim=8, num_layers=2, heads=2, dropout=0.0)
        ref = GraphEncoder(config, self.reference).eval()
        mine = GraphEncoder(config, self.backend).eval()
        mine.load_neutral_state_dict(ref.neutral_state_dict())
        gen = torch.Generator().manual_seed(1)
        batch = SubgraphBatch.from_subgraphs([
            Subgraph(x=torch.randn(n, 12, generator=gen), edge_index=torch.randint(0, n, (2, 3 * n), generator=gen))
            for n in (4, 9)])
        with torch.no_grad():
            assert (mine(batch) - ref(batch)).abs().max() <= self.atol
