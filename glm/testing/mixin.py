"""``GnnLayerConformance``: the whole conformance kit as a pytest class to subclass.

PEFT's shared-tester idea: a plugin author writes one class and gets one test per check,
parametrised over every backend the layer supports::

    from glm.testing import GnnLayerConformance

    class TestGin(GnnLayerConformance):
        layer = "gin"                      # a registered name, or a factory / nn.Module class
        # optional: backends = ("pyg",), in_dim = 16, out_dim = 16, options = {...},
        #           allow_no_grad = ("lin.bias",), skip_checks = ("dtype",)

Backends that are registered but not installed are skipped with the install command.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Sequence

import pytest
import torch

from glm.testing.asserts import run_check
from glm.testing.layer_case import LayerCase, resolve_layer


class GnnLayerConformance:
    """Subclass as ``Test...`` and set :attr:`layer`; every ``test_<check>`` runs once per backend."""

    #: registered layer name, or ``factory(in_dim, out_dim, **options) -> nn.Module``
    layer: ClassVar[Any] = None
    #: backends to run on; ``None``: every backend the registered layer supports
    #: (pure-torch layers and factories run without a backend)
    backends: ClassVar[Sequence[str] | None] = None
    in_dim: ClassVar[int] = 16
    out_dim: ClassVar[int] = 16
    options: ClassVar[dict[str, Any]] = {}
    allow_no_grad: ClassVar[Sequence[str]] = ()
    skip_checks: ClassVar[Sequence[str]] = ()
    dtypes: ClassVar[Sequence[torch.dtype]] = (torch.float32, torch.bfloat16)
    devices: ClassVar[Sequence[str] | None] = None
    atol: ClassVar[float] = 1e-5
    rtol: ClassVar[float] = 1e-4

    # -- parametrisation --------------------------------------------------------------------
    @classmethod
    def _layer_ref(cls) -> Any:
        ref = inspect.getattr_static(cls, "layer")  # a plain function must not become a method
        return ref.__func__ if isinstance(ref, (staticmethod, classmethod)) else ref

    @classmethod
    def backend_params(cls) -> list[Any]:
        """One ``pytest.param`` per backend; uninstalled backends carry a skip mark."""
        from glm.plugins.manager import get_registry

        ref = cls._layer_ref()
        if ref is None:
            return [pytest.param(None, marks=pytest.mark.skip(reason=f"{cls.__name__}.layer is not set"))]
        registry = get_registry()
        names: list[str | None]
        if cls.backends is not None:
            names = list(cls.backends)
        elif isinstance(ref, str):
            specs = registry.gnn_layers.get(ref, [])
            names = [None] if any(s.backends is None for s in specs) else sorted({b for s in specs for b in s.backends or ()})
            names = names or [None]  # unknown name: let the test fail with the registry's message
        else:
            names = [None]
        params = []
        for name in names:
            spec = registry.backends.get(name) if name else None
            if spec is not None and not spec.available:
                reason = f"backend {name!r} not installed ({spec.install_hint()})"
                params.append(pytest.param(name, id=name, marks=pytest.mark.skip(reason=reason)))
            else:
                params.append(pytest.param(name, id=name or "torch"))
        return params

    def pytest_generate_tests(self, metafunc: Any) -> None:
        """pytest calls this on test classes: parametrise ``glm_backend``."""
        if "glm_backend" in metafunc.fixturenames:
            metafunc.parametrize("glm_backend", type(self).backend_params())

    @pytest.fixture
    def layer_case(self, glm_backend: str | None) -> LayerCase:
        return resolve_layer(type(self)._layer_ref(), in_dim=self.in_dim, out_dim=self.out_dim,
                             backend=glm_backend, options=self.options)

    def _check(self, check: str, case: LayerCase) -> None:
        if check in self.skip_checks:
            pytest.skip(f"{check} is in {type(self).__name__}.skip_checks")
        opts: dict[str, Any] = dict(allow_no_grad=tuple(self.allow_no_grad), dtypes=tuple(self.dtypes),
                                    devices=self.devices)
        if check not in ("device", "determinism", "neutral_state_dict"):
            opts.update(atol=self.atol, rtol=self.rtol)
        result = run_check(case, check, **opts)
        if result.startswith("skipped:"):
            pytest.skip(result)

    # -- one test per check -----------------------------------------------------------------
    def test_output_shape(self, layer_case: LayerCase) -> None:
        self._check("output_shape", layer_case)

    def test_determinism(self, layer_case: LayerCase) -> None:
        self._check("determinism", layer_case)

    def test_node_permutation(self, layer_case: LayerCase) -> None:
        self._check("node_permutation", layer_case)

    def test_edge_permutation(self, layer_case: LayerCase) -> None:
        self._check("edge_permutation", layer_case)

    def test_grad_flow(self, layer_case: LayerCase) -> None:
        self._check("grad_flow", layer_case)

    def test_edge_weight(self, layer_case: LayerCase) -> None:
        self._check("edge_weight", layer_case)

    def test_empty_edges(self, layer_case: LayerCase) -> None:
        self._check("empty_edges", layer_case)

    def test_dtype(self, layer_case: LayerCase) -> None:
        self._check("dtype", layer_case)

    def test_device(self, layer_case: LayerCase) -> None:
        self._check("device", layer_case)

    def test_neutral_state_dict(self, layer_case: LayerCase) -> None:
        self._check("neutral_state_dict", layer_case)

