"""Conformance kit for plugin authors: check a GNN layer against glm's layer contract.

* :func:`assert_gnn_layer` runs every check on a registered name or a factory.
* :class:`GnnLayerConformance` is the same as a pytest class to subclass (needs pytest).
* :class:`MethodConformance` checks a method (stage table, token shapes, what trains, adapters,
  backend parity); :class:`BackendConformance` checks a backend against the reference backend.
* :func:`random_graph` / :func:`empty_graph` build small inputs.
* :func:`neutral_parity` measures backend disagreement on any device / dtype; ``glm devcheck``
  (:mod:`glm.devcheck`) runs it with the rest of the GPU check.
* :func:`build_plugin_distribution` makes a throw-away installed plugin, to test discovery
  through a real entry point.
"""

from __future__ import annotations

from typing import Any

from glm.testing.asserts import (
    ALL_CHECKS,
    NEUTRAL_KEYS,
    CheckSkipped,
    ConformanceError,
    assert_gnn_layer,
    assert_neutral_parity,
    neutral_parity,
    run_check,
)
from glm.testing.graphs import GraphCase, empty_graph, random_graph
from glm.testing.layer_case import LayerCase, resolve_layer

__all__ = [
    "ALL_CHECKS",
    "NEUTRAL_KEYS",
    "neutral_parity",
    "CheckSkipped",
    "ConformanceError",
    "BackendConformance",
    "GnnLayerConformance",
    "GraphCase",
    "LayerCase",
    "MethodConformance",
    "assert_gnn_layer",
    "assert_neutral_parity",
    "build_plugin_distribution",
    "empty_graph",
    "random_graph",
    "resolve_layer",
    "run_check",
]


def __getattr__(name: str) -> Any:
    """Lazy: the mixin imports pytest, the distribution helper runs pip."""
    if name == "GnnLayerConformance":
        from glm.testing.mixin import GnnLayerConformance

        return GnnLayerConformance
    if name == "MethodConformance":
        from glm.testing.method import MethodConformance

        return MethodConformance
    if name == "BackendConformance":
        from glm.testing.backend import BackendConformance

        return BackendConformance
    if name == "build_plugin_distribution":
        from glm.testing.distributions import build_plugin_distribution

        return build_plugin_distribution
    raise AttributeError(f"module 'glm.testing' has no attribute {name!r}")
