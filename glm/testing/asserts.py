"""Conformance checks for GNN layers (the layer contract of :mod:`glm.core.encoder`).

In the spirit of PyG's ``torch_geometric.testing.assert_module``: one call checks that a
layer a plugin registers behaves like glm's own layers::

    from glm.testing import assert_gnn_layer
    assert_gnn_layer("gin", in_dim=16, out_dim=16)                  # a registered pure-torch layer
    assert_gnn_layer("gat", backend="gammagl", allow_no_grad=["conv.linear.weights"])
    assert_gnn_layer(MyConv, in_dim=8, out_dim=4)                   # a factory, before registering it

Each check is also a function ``check_<name>(case, **tolerances)`` that raises
:class:`ConformanceError` (an ``AssertionError``) naming the layer, the backend and what
was expected versus found, and raises :class:`CheckSkipped` when it does not apply.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor

from glm.core.layouts import LAYOUTS
from glm.testing.graphs import GraphCase, empty_graph, random_graph
from glm.testing.layer_case import LayerCase, LayerRef, resolve_layer

ALL_CHECKS: tuple[str, ...] = (
    "output_shape", "determinism", "node_permutation", "edge_permutation", "grad_flow",
    "edge_weight", "empty_edges", "dtype", "device", "neutral_state_dict",
)

# Neutral layouts of glm's built-in layer names (glm.core.layouts); a backend that implements one of
# these names must use exactly these keys, so checkpoints move across backends.
NEUTRAL_KEYS: dict[str, frozenset[str]] = {name: frozenset(layout.keys) for name, layout in LAYOUTS.items()}

# Largest allowed |out_dtype - out_fp32| relative to max(1, max |out_fp32|).
DTYPE_TOLERANCE: dict[torch.dtype, float] = {
    torch.float32: 0.0, torch.float64: 1e-5, torch.float16: 1e-2, torch.bfloat16: 5e-2,
}


class ConformanceError(AssertionError):
    """A layer breaks the layer contract; the message names layer, backend, check and values."""


class CheckSkipped(Exception):
    """A check does not apply (e.g. no CUDA device); the message says why."""


def _fail(case: LayerCase, check: str, message: str) -> ConformanceError:
    return ConformanceError(f"{case.label} fails {check}: {message}")


def _forward(case: LayerCase, module: torch.nn.Module, graph: GraphCase, check: str) -> Tensor:
    try:
        out = module(*graph.args())
    except Exception as exc:
        raise _fail(case, check, f"forward raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(out, Tensor):
        raise _fail(case, check, f"forward returned {type(out).__name__}, expected a Tensor [N, out_dim]")
    return out


def _max_diff(a: Tensor, b: Tensor) -> float:
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def _close(case: LayerCase, check: str, found: Tensor, expected: Tensor, atol: float, rtol: float, what: str) -> None:
    if found.shape != expected.shape:
        raise _fail(case, check, f"{what}: shape {tuple(found.shape)}, expected {tuple(expected.shape)}")
    if not torch.allclose(found.double(), expected.double(), atol=atol, rtol=rtol):
        raise _fail(case, check, f"{what}: max abs difference {_max_diff(found, expected):.3g}"
                                 f" exceeds atol={atol:g}, rtol={rtol:g}")


def _graph(case: LayerCase, seed: int = 0, weights: bool = False) -> GraphCase:
    return random_graph(12, 40, case.in_dim, seed=seed, edge_weight=weights)


# -- the checks -----------------------------------------------------------------------------
def check_output_shape(case: LayerCase, **_: Any) -> None:
    """Output is a finite ``[N, out_dim]`` tensor with the input's dtype and device."""
    graph = _graph(case)
    out = _forward(case, case.build(), graph, "output_shape")
    expected = (graph.num_nodes, case.out_dim)
    if tuple(out.shape) != expected:
        raise _fail(case, "output_shape", f"output shape {tuple(out.shape)}, expected {expected} (N, out_dim)")
    if out.dtype != graph.x.dtype or out.device != graph.x.device:
        raise _fail(case, "output_shape", f"output {out.dtype} on {out.device}, expected {graph.x.dtype} on"
                                          f" {graph.x.device} (the input's)")
    if not torch.isfinite(out).all():
        raise _fail(case, "output_shape", "output has NaN/inf values")


def check_determinism(case: LayerCase, atol: float = 1e-6, **_: Any) -> None:
    """Two forward passes in eval mode give the same output."""
    module, graph = case.build(), _graph(case)
    with torch.no_grad():
        first, second = _forward(case, module, graph, "determinism"), _forward(case, module, graph, "determinism")
    _close(case, "determinism", second, first, atol, 0.0, "second call vs first")


def check_node_permutation(case: LayerCase, atol: float = 1e-5, rtol: float = 1e-4, **_: Any) -> None:
    """Relabelling the nodes permutes the output rows the same way (equivariance)."""
    module, graph = case.build(), _graph(case, weights=True)
    perm = torch.randperm(graph.num_nodes, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for g, what in ((graph.with_weights(None), "without edge_weight"), (graph, "with edge_weight")):
            out = _forward(case, module, g, "node_permutation")
            out_perm = _forward(case, module, g.permute_nodes(perm), "node_permutation")
            _close(case, "node_permutation", out_perm, out[perm], atol, rtol, f"out(P x) vs P out(x) {what}")


def check_edge_permutation(case: LayerCase, atol: float = 1e-5, rtol: float = 1e-4, **_: Any) -> None:
    """The order of the edge list (with its weights) does not change the output."""
    module, graph = case.build(), _graph(case, weights=True)
    perm = torch.randperm(graph.num_edges, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = _forward(case, module, graph, "edge_permutation")
        out_perm = _forward(case, module, graph.permute_edges(perm), "edge_permutation")
    _close(case, "edge_permutation", out_perm, out, atol, rtol, "shuffled edges vs original")


def check_grad_flow(case: LayerCase, allow_no_grad: Iterable[str] = (), **_: Any) -> None:
    """A loss on the output gives finite, non-zero gradients to the input features and to
    every trainable parameter, except names matching an ``allow_no_grad`` pattern
    (``fnmatch``, e.g. GammaGL GAT's unused ``conv.linear.weights``)."""
    module, graph = case.build(), _graph(case, weights=True)
    x = graph.x.clone().requires_grad_(True)
    weights = graph.edge_weight.clone().requires_grad_(True)
    out = _forward(case, module, GraphCase(x, graph.edge_index, weights), "grad_flow")
    probe = torch.randn(out.shape, generator=torch.Generator().manual_seed(3), dtype=out.dtype)
    (out * probe).sum().backward()  # a random probe: a plain sum is flat under LayerNorm
    if x.grad is None or not torch.isfinite(x.grad).all() or not x.grad.abs().sum() > 0:
        raise _fail(case, "grad_flow", "no finite, non-zero gradient reaches the input features x")
    if getattr(module, "supports_edge_weight", False) and (weights.grad is None or not weights.grad.abs().sum() > 0):
        raise _fail(case, "grad_flow", "supports_edge_weight is True but no gradient reaches edge_weight")
    allowed = list(allow_no_grad)
    dead, bad = [], []
    for name, param in module.named_parameters():
        if not param.requires_grad or any(fnmatch.fnmatchcase(name, p) for p in allowed):
            continue
        if param.grad is None or not param.grad.abs().sum() > 0:
            dead.append(name)
        elif not torch.isfinite(param.grad).all():
            bad.append(name)
    if dead:
        raise _fail(case, "grad_flow", f"parameters get no gradient: {dead} (unused parameters waste optimizer"
                                       f" state; if intended, pass allow_no_grad={dead!r})")
    if bad:
        raise _fail(case, "grad_flow", f"parameters get NaN/inf gradients: {bad}")


def check_edge_weight(case: LayerCase, atol: float = 1e-5, rtol: float = 1e-4, **_: Any) -> None:
    """``edge_weight`` is accepted; all-ones weights equal ``None``; and weights change the
    output exactly when the layer says ``supports_edge_weight = True``."""
    module, graph = case.build(), _graph(case, weights=True)
    with torch.no_grad():
        plain = _forward(case, module, graph.with_weights(None), "edge_weight")
        ones = _forward(case, module, graph.with_weights(torch.ones(graph.num_edges)), "edge_weight")
        weighted = _forward(case, module, graph, "edge_weight")
    if tuple(weighted.shape) != tuple(plain.shape) or not torch.isfinite(weighted).all():
        raise _fail(case, "edge_weight", f"weighted output {tuple(weighted.shape)} is not a finite tensor"
                                         f" shaped like the unweighted one {tuple(plain.shape)}")
    _close(case, "edge_weight", ones, plain, atol, rtol, "edge_weight=ones vs edge_weight=None")
    supports = getattr(module, "supports_edge_weight", None)
    changed = not torch.allclose(weighted, plain, atol=atol, rtol=rtol)
    if supports is True and not changed:
        raise _fail(case, "edge_weight", "supports_edge_weight is True but random weights leave the output unchanged")
    if supports is False and changed:
        raise _fail(case, "edge_weight", f"supports_edge_weight is False but weights change the output"
                                         f" (max difference {_max_diff(weighted, plain):.3g})")


def check_empty_edges(case: LayerCase, **_: Any) -> None:
    """A graph without edges (``edge_index`` ``[2, 0]``) gives a finite ``[N, out_dim]`` output."""
    module, graph = case.build(), empty_graph(5, case.in_dim)
    with torch.no_grad():
        for g, what in ((graph, "edge_weight=None"), (graph.with_weights(torch.empty(0)), "edge_weight=[0]")):
            out = _forward(case, module, g, "empty_edges")
            if tuple(out.shape) != (5, case.out_dim) or not torch.isfinite(out).all():
                raise _fail(case, "empty_edges", f"{what}: output {tuple(out.shape)} finite={bool(torch.isfinite(out).all())},"
                                                 f" expected finite (5, {case.out_dim})")


def check_dtype(case: LayerCase, dtypes: Sequence[torch.dtype] = (torch.float32, torch.bfloat16), **_: Any) -> None:
    """For each dtype, ``module.to(dtype)`` on inputs of that dtype returns that dtype and
    agrees with float32 within ``DTYPE_TOLERANCE`` (relative to the output's scale)."""
    module, graph = case.build(), _graph(case, weights=True)
    with torch.no_grad():
        reference = _forward(case, module, graph, "dtype")
        scale = max(1.0, float(reference.abs().max()))
        for dtype in dtypes:
            out = _forward(case, case.build().to(dtype), graph.to(dtype=dtype), "dtype")  # same seed, same weights
            if out.dtype != dtype:
                raise _fail(case, "dtype", f"input and parameters in {dtype} give output in {out.dtype}")
            error = _max_diff(out, reference) / scale
            if error > DTYPE_TOLERANCE.get(dtype, 1e-2):
                raise _fail(case, "dtype", f"{dtype} output differs from float32 by {error:.3g} (relative to the"
                                           f" output scale), more than {DTYPE_TOLERANCE.get(dtype, 1e-2):g}")


def check_device(case: LayerCase, devices: Sequence[str] | None = None, atol: float = 1e-4,
                 rtol: float = 1e-3, **_: Any) -> str | None:
    """After ``module.to(device)`` every parameter and the output live on ``device``, and the
    output matches the CPU one. Default devices: ``cpu`` and ``cuda`` when available."""
    cuda = torch.cuda.is_available()
    devices = list(devices) if devices is not None else ["cpu"] + (["cuda"] if cuda else [])
    module, graph = case.build(), _graph(case, weights=True)
    with torch.no_grad():
        reference = _forward(case, module, graph, "device")
        try:
            for name in devices:
                device = torch.device(name)
                case.prepare(device)
                moved = case.build().to(device)  # same seed, same weights
                stray = [n for n, t in [*moved.named_parameters(), *moved.named_buffers()] if t.device.type != device.type]
                if stray:
                    raise _fail(case, "device", f"after .to({name!r}) these stay elsewhere: {stray}")
                out = _forward(case, moved, graph.to(device), "device")
                if out.device.type != device.type:
                    raise _fail(case, "device", f"output on {out.device}, expected {device}")
                _close(case, "device", out.cpu(), reference, atol, rtol, f"output on {name} vs cpu")
        finally:
            case.prepare("cpu")
    return None if cuda or devices != ["cpu"] else "cpu only: no CUDA device here"


def check_neutral_state_dict(case: LayerCase, atol: float = 1e-6, **_: Any) -> None:
    """``neutral_state_dict()`` -> ``load_neutral_state_dict()`` into a differently seeded
    layer reproduces the output; missing keys and wrong shapes raise; built-in layer names
    use the documented keys (:data:`NEUTRAL_KEYS`)."""
    source, target, graph = case.build(seed=0), case.build(seed=1), _graph(case, weights=True)
    for attr in ("neutral_state_dict", "load_neutral_state_dict"):
        if not callable(getattr(source, attr, None)):
            raise _fail(case, "neutral_state_dict", f"layer has no {attr}() (required by the layer contract,"
                                                    f" glm/core/encoder.py)")
    state = source.neutral_state_dict()
    if not state or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise _fail(case, "neutral_state_dict", "neutral_state_dict() must return a non-empty dict[str, Tensor]")
    expected_keys = NEUTRAL_KEYS.get(case.name) if case.registered and not case.options else None
    if expected_keys is not None and set(state) != expected_keys:
        raise _fail(case, "neutral_state_dict", f"keys {sorted(state)}, expected the neutral layout {sorted(expected_keys)}")
    target.load_neutral_state_dict({k: v.clone() for k, v in state.items()})
    with torch.no_grad():
        _close(case, "neutral_state_dict", _forward(case, target, graph, "neutral_state_dict"),
               _forward(case, source, graph, "neutral_state_dict"), atol, 0.0, "reloaded layer vs source")
    first = sorted(state)[0]
    broken: list[tuple[str, dict[str, Tensor]]] = [
        (f"missing key {first!r}", {k: v for k, v in state.items() if k != first}),
        (f"mis-shaped {first!r}", {**state, first: torch.zeros(*(s + 1 for s in state[first].shape), 1)}),
    ]
    for what, bad in broken:
        try:
            case.build(seed=2).load_neutral_state_dict(bad)
        except Exception:
            continue
        raise _fail(case, "neutral_state_dict", f"load_neutral_state_dict accepted a state with a {what}; it must raise")


CHECKS: dict[str, Callable[..., str | None]] = {name: globals()[f"check_{name}"] for name in ALL_CHECKS}


# -- the one-call entry point ---------------------------------------------------------------
def run_check(case: LayerCase, check: str, **options: Any) -> str:
    """Run one check; returns ``"passed"``, ``"passed (<note>)"`` or ``"skipped: <why>"``."""
    try:
        note = CHECKS[check](case, **options)
    except CheckSkipped as exc:
        return f"skipped: {exc}"
    return f"passed ({note})" if note else "passed"


def assert_gnn_layer(
    layer: LayerRef,
    in_dim: int = 16,
    out_dim: int = 16,
    *,
    backend: str | None = None,
    options: dict[str, Any] | None = None,
    checks: Sequence[str] = ALL_CHECKS,
    skip: Sequence[str] = (),
    allow_no_grad: Iterable[str] = (),
    dtypes: Sequence[torch.dtype] = (torch.float32, torch.bfloat16),
    devices: Sequence[str] | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> dict[str, str]:
    """Check a GNN layer against the layer contract; raise one :class:`ConformanceError`
    listing every failed check, else return ``{check: "passed" | "skipped: ..."}``.

    Args:
        layer: a registered layer name, or ``factory(in_dim, out_dim, **options)``.
        in_dim, out_dim: sizes to build it with.
        backend: the backend to run it on (needed for backend-specific registered layers).
        options: extra factory keyword arguments.
        checks / skip: which of :data:`ALL_CHECKS` to run / leave out.
        allow_no_grad: ``fnmatch`` patterns of parameters allowed to get no gradient.
        dtypes: dtypes for the dtype check (float32 and bfloat16 by default).
        devices: devices for the device check (cpu, plus cuda when available).
        atol, rtol: tolerances of the permutation and edge-weight comparisons.
    """
    unknown = sorted(set(checks) - set(ALL_CHECKS) | set(skip) - set(ALL_CHECKS))
    if unknown:
        raise ValueError(f"unknown checks {unknown}; known: {list(ALL_CHECKS)}")
    case = resolve_layer(layer, in_dim=in_dim, out_dim=out_dim, backend=backend, options=options)
    opts = dict(allow_no_grad=tuple(allow_no_grad), dtypes=tuple(dtypes), devices=devices, atol=atol, rtol=rtol)
    report, failures = {}, []
    for check in checks:
        if check in skip:
            report[check] = "skipped: asked"
            continue
        try:
            report[check] = run_check(case, check, **_options_for(check, opts))
        except ConformanceError as exc:
            failures.append(str(exc))
    if failures:
        raise ConformanceError(f"{len(failures)} conformance check(s) failed:\n- " + "\n- ".join(failures))
    return report


def neutral_parity(
    layer: str,
    backends: Sequence[str],
    in_dim: int = 16,
    out_dim: int = 16,
    *,
    options: dict[str, Any] | None = None,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> dict[str, float]:
    """Largest output difference of each of ``backends[1:]`` from ``backends[0]`` with the same
    neutral parameters, on ``device`` in ``dtype`` (max over the unweighted and the weighted graph;
    relative to ``max(1, max |reference output|)``). The layer is built on ``backends[0]``, its
    ``neutral_state_dict()`` loaded into the same layer name on each other backend."""
    cases = [resolve_layer(layer, in_dim=in_dim, out_dim=out_dim, backend=b, options=options) for b in backends]
    graph = _graph(cases[0], weights=True).to(device, dtype)
    graphs = (graph.with_weights(None), graph)
    out: dict[str, float] = {}
    try:
        cases[0].prepare(device)
        source = cases[0].build(seed=0)
        state = source.neutral_state_dict()
        with torch.no_grad():
            expected = [_forward(cases[0], source.to(device, dtype), g, "parity") for g in graphs]
            scale = max(1.0, max(float(e.abs().max()) for e in expected))
            for case in cases[1:]:
                case.prepare(device)
                target = case.build(seed=1)
                target.load_neutral_state_dict({k: v.clone() for k, v in state.items()})
                target = target.to(device, dtype)
                found = [_forward(case, target, g, "parity") for g in graphs]
                for f, e in zip(found, expected):
                    if f.shape != e.shape:
                        raise _fail(case, "parity", f"shape {tuple(f.shape)}, expected {tuple(e.shape)}")
                out[case.backend_name or case.label] = max(_max_diff(f, e) for f, e in zip(found, expected)) / scale
    finally:
        for case in cases:
            case.prepare("cpu")
    return out


def assert_neutral_parity(
    layer: str,
    backends: Sequence[str],
    in_dim: int = 16,
    out_dim: int = 16,
    *,
    options: dict[str, Any] | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> None:
    """The same neutral parameters give the same output on every backend: the layer is
    built on ``backends[0]``, its ``neutral_state_dict()`` loaded into the same layer name on
    each other backend, and outputs compared on one graph (with and without edge weights)."""
    cases = [resolve_layer(layer, in_dim=in_dim, out_dim=out_dim, backend=b, options=options) for b in backends]
    source = cases[0].build(seed=0)
    state = source.neutral_state_dict()
    graph = _graph(cases[0], weights=True)
    with torch.no_grad():
        expected = [_forward(cases[0], source, g, "parity") for g in (graph.with_weights(None), graph)]
        for case in cases[1:]:
            target = case.build(seed=1)
            target.load_neutral_state_dict({k: v.clone() for k, v in state.items()})
            for g, ref, what in zip((graph.with_weights(None), graph), expected, ("unweighted", "weighted")):
                _close(case, "parity", _forward(case, target, g, "parity"), ref, atol, rtol,
                       f"{what} output vs {cases[0].label} with the same neutral parameters")


def _options_for(check: str, opts: dict[str, Any]) -> dict[str, Any]:
    """Tolerances apply to comparisons of equal-precision outputs only; device keeps its own."""
    if check == "device":
        return {k: v for k, v in opts.items() if k not in ("atol", "rtol")}
    if check in ("determinism", "neutral_state_dict"):
        return {k: v for k, v in opts.items() if k not in ("atol", "rtol")}
    return opts
