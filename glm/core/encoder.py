"""Graph encoder: a stack of registry GNN layers on one backend.

Layer contract (what ``register_gnn_layers`` factories return)::

    layer = factory(in_dim, out_dim, **options)          # torch.nn.Module
    h = layer(x, edge_index, edge_weight=None)           # [N, in] -> [N, out]
    layer.neutral_state_dict() -> dict[str, Tensor]      # backend-neutral parameter layout
    layer.load_neutral_state_dict(state) -> None         # inverse; raises on missing/shape mismatch

Neutral layouts: one per built-in layer name, declared once in
:data:`glm.core.layouts.LAYOUTS` (keys, shapes, semantics, whether ``edge_weight`` is used; layers
expose the last as ``supports_edge_weight``). A whole :class:`GraphEncoder` adds ``input_proj.weight/bias``
and ``output_proj.weight/bias`` (``torch.nn.Linear`` layout) and prefixes layer keys with
``layers.<i>.``.

The official GraphLAMA code aggregates the graph transformer at ``edge_index[0]``; glm
follows PyG's source -> target flow (aggregate at ``edge_index[1]``). On the symmetric
subgraphs glm's samplers produce the two agree.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import torch
from torch import Tensor, nn

from glm.core.graph import SubgraphBatch
from glm.errors import GlmError


@dataclass
class EncoderConfig:
    """Configuration of a :class:`GraphEncoder`.

    Args:
        layer: registered GNN layer name (a built-in of :data:`glm.core.layouts.LAYOUTS` or a plugin's).
        in_dim: node feature size (128 in GraphLAMA).
        hidden_dim: width inside the stack.
        out_dim: output size ``d`` (the gate input is ``d + hop_dim``).
        num_layers: number of GNN layers.
        heads: attention heads (``gt``, ``gat``).
        dropout: dropout after the input projection (``gt``) or between layers.
        input_proj / output_proj: add ``Linear(in_dim, hidden_dim)`` before and
            ``Linear(hidden_dim, out_dim)`` after the stack (GraphLAMA's ``W_P`` / ``inverW_P``);
            ``None`` = on for ``gt``, off otherwise.
        activation: between conv layers (``relu``, ``gelu``, ``none``); ``gt`` uses none.
        options: extra keyword arguments for the layer factory.
    """

    layer: str = "gt"
    in_dim: int = 128
    hidden_dim: int = 128
    out_dim: int = 128
    num_layers: int = 3
    heads: int = 8
    dropout: float = 0.1
    input_proj: Optional[bool] = None
    output_proj: Optional[bool] = None
    activation: str = "relu"
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- neutral parameter layouts -----------------------------------------------------------------
class NeutralStateError(GlmError, ValueError):
    """A neutral state dict does not fit a layer or encoder: missing, unexpected or mis-shaped keys."""


def check_neutral_state(state: dict[str, Tensor], expected: dict[str, tuple[int, ...]], where: str) -> None:
    """Raise :class:`NeutralStateError` unless ``state`` has exactly the keys of ``expected``
    with those shapes. ``where`` names the layer (e.g. ``"gat (pyg)"``) in the message."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise NeutralStateError(
            f"{where}: neutral state keys do not match; missing {missing or 'none'},"
            f" unexpected {unexpected or 'none'} (expected {sorted(expected)})"
        )
    for key, shape in expected.items():
        found = tuple(state[key].shape)
        if found != tuple(shape):
            raise NeutralStateError(f"{where}: {key!r} must have shape {tuple(shape)}, found {found}")


@torch.no_grad()
def copy_into(param: Tensor, value: Tensor) -> None:
    """Copy ``value`` into ``param`` in place, casting to its dtype and device."""
    param.copy_(value.detach().to(device=param.device, dtype=param.dtype))


# -- the encoder -------------------------------------------------------------------------------
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "none": nn.Identity}


def _accepts(factory: Any, name: str) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class GraphEncoder(nn.Module):
    r"""A stack of registry GNN layers on one backend, with GraphLAMA's optional projections.

    .. code-block:: text

        x -> [input_proj W_P -> dropout (gt)] -> layer_1 -> [act -> dropout] -> ... -> layer_L
          -> [output_proj inverW_P]

    ``gt`` layers get no activation and no dropout between them (GraphLAMA); other layers get
    ``config.activation`` and ``config.dropout`` between consecutive layers. Each layer comes
    from ``get_registry().gnn_layer(config.layer, backend)``; ``heads`` is passed to factories
    that accept it, ``config.options`` to all.

    Args:
        config: :class:`EncoderConfig`.
        backend: registered backend name (``pyg``, ``gammagl`` or a plugin's); raises
            :class:`~glm.plugins.BackendUnavailableError` naming the pip extra if its framework
            is missing.

    Shapes:
        - **input:** :class:`~glm.core.graph.SubgraphBatch` with ``x [sum N, in_dim]``
        - **output:** node embeddings ``[sum N, out_dim]``
    """

    def __init__(self, config: EncoderConfig, backend: str = "pyg") -> None:
        super().__init__()
        from glm.plugins import get_registry

        if config.num_layers < 1:
            raise ValueError(f"EncoderConfig.num_layers must be >= 1, found {config.num_layers}")
        if config.activation not in ACTIVATIONS:
            raise ValueError(f"EncoderConfig.activation must be one of {sorted(ACTIVATIONS)}, found {config.activation!r}")
        registry = get_registry()
        self.backend_name = backend
        self.backend = registry.backend(backend).load()
        spec = registry.gnn_layer(config.layer, backend)
        self.config = config
        is_gt = config.layer == "gt"
        use_in = is_gt if config.input_proj is None else config.input_proj
        use_out = is_gt if config.output_proj is None else config.output_proj

        options = dict(config.options)
        if "heads" not in options and _accepts(spec.factory, "heads"):
            options["heads"] = config.heads
        self.input_proj = nn.Linear(config.in_dim, config.hidden_dim) if use_in else None
        dim = config.hidden_dim if use_in else config.in_dim
        layers = []
        for i in range(config.num_layers):
            last = i == config.num_layers - 1
            out = config.out_dim if last and not use_out else config.hidden_dim
            layers.append(spec.factory(dim, out, **options))
            dim = out
        self.layers = nn.ModuleList(layers)
        self.output_proj = nn.Linear(config.hidden_dim, config.out_dim) if use_out else None
        self.input_dropout = nn.Dropout(config.dropout) if is_gt and use_in else None
        between = not is_gt and config.num_layers > 1
        self.activation = ACTIVATIONS["none" if is_gt else config.activation]()
        self.dropout = nn.Dropout(config.dropout) if between else None
        self._prepared: torch.device | None = None

    def forward(self, batch: SubgraphBatch) -> Tensor:
        # the layers take plain tensors: no native Data/Graph round trip in the hot path
        # (backend.to_native / from_native stay as user conversions)
        return self.encode(batch.x, batch.edge_index, batch.edge_weight)

    def encode(self, x: Tensor, edge_index: Tensor, edge_weight: Optional[Tensor] = None) -> Tensor:
        """The stack on plain tensors: ``[N, in_dim], [2, E], [E] | None -> [N, out_dim]``."""
        if self._prepared != x.device:
            self.backend.prepare_device(x.device)
            self._prepared = x.device
        if self.input_proj is not None:
            x = self.input_proj(x)
            if self.input_dropout is not None:
                x = self.input_dropout(x)
        for i, layer in enumerate(self.layers):
            x = layer(x, edge_index, edge_weight)
            if i < len(self.layers) - 1:
                x = self.activation(x)
                if self.dropout is not None:
                    x = self.dropout(x)
        if self.output_proj is not None:
            x = self.output_proj(x)
        return x

    # -- backend-neutral weights ---------------------------------------------------------------
    def _parts(self) -> dict[str, Any]:
        parts: dict[str, Any] = {}
        if self.input_proj is not None:
            parts["input_proj"] = self.input_proj
        for i, layer in enumerate(self.layers):
            if not hasattr(layer, "neutral_state_dict"):
                raise NeutralStateError(
                    f"gnn layer {self.config.layer!r} on backend {self.backend_name!r} ({type(layer).__name__})"
                    " does not implement neutral_state_dict()"
                )
            parts[f"layers.{i}"] = layer
        if self.output_proj is not None:
            parts["output_proj"] = self.output_proj
        return parts

    @staticmethod
    def _part_state(part: Any) -> dict[str, Tensor]:
        if isinstance(part, nn.Linear):
            return {k: v.detach().clone() for k, v in part.state_dict().items()}
        return part.neutral_state_dict()

    def neutral_state_dict(self) -> dict[str, Tensor]:
        """All weights in the backend-neutral layout, keys ``input_proj.weight``,
        ``layers.<i>.<layer key>``, ``output_proj.bias`` ...; loadable on any backend."""
        return {f"{name}.{k}": v for name, part in self._parts().items() for k, v in self._part_state(part).items()}

    def load_neutral_state_dict(self, state: dict[str, Tensor]) -> None:
        """Inverse of :meth:`neutral_state_dict`; :class:`NeutralStateError` names missing,
        unexpected or mis-shaped keys."""
        expected = {k: tuple(v.shape) for k, v in self.neutral_state_dict().items()}
        check_neutral_state(state, expected, f"GraphEncoder({self.config.layer!r}, {self.backend_name!r})")
        for name, part in self._parts().items():
            sub = {k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")}
            if isinstance(part, nn.Linear):
                for key, value in sub.items():
                    copy_into(getattr(part, key), value)
            else:
                part.load_neutral_state_dict(sub)


def build_encoder(config: EncoderConfig | dict[str, Any], backend: str = "pyg") -> GraphEncoder:
    """A :class:`GraphEncoder` from a config object or a plain dict (e.g. parsed YAML)."""
    if isinstance(config, dict):
        unknown = set(config) - set(EncoderConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(f"encoder config: unknown fields {sorted(unknown)}; known {sorted(EncoderConfig.__dataclass_fields__)}")
        config = EncoderConfig(**config)
    return GraphEncoder(config, backend)
