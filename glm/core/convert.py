"""Official checkpoints -> glm: the GraphGPT/GraphLAMA graph transformer (``clip_gt_arxiv``).

The official ``graph_transformer`` (HKUDS/GraphGPT ``graphgpt/model/graph_layers/graph_transformer.py``,
copied by BUPT-GAMMA/GraphLAMA) stores::

    W_P.{weight,bias}                       input projection       -> input_proj.{weight,bias}
    gtLayers.<i>.{q,k,v}Trans  [d, d]       used as ``x @ qTrans``  -> layers.<i>.w{q,k,v} = qTrans.T
    gtLayers.<i>.norm.{weight,bias}         LayerNorm              -> layers.<i>.norm.{weight,bias}
    inverW_P.{weight,bias}                  output projection      -> output_proj.{weight,bias}
    W_pos                                   unused (``if_pos=False``), dropped

glm's layers compute ``x @ wq.T`` (``torch.nn.Linear``), so the attention matrices are transposed;
they are square, so a forgotten transpose would raise nothing -- the conversion is tested against
a reference of the official layer. Keys may carry a prefix (``gnn.``, ``model.graph_tower.``).
The official layer aggregates at ``edge_index[0]``: use ``model.encoder.options.aggregate_at=source``
on directed subgraphs (glm's own subgraphs are symmetric, where both sides agree).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Union

from torch import Tensor

from glm.errors import GlmError

_LAYER = re.compile(r"(?:^|\.)gtLayers\.(\d+)\.(qTrans|kTrans|vTrans|norm\.weight|norm\.bias)$")
_PROJ = re.compile(r"(?:^|\.)(W_P|inverW_P)\.(weight|bias)$")
_DROPPED = re.compile(r"(?:^|\.)W_pos$")
ENCODER_FORMAT = "glm-encoder/1"


class ConvertError(GlmError, ValueError):
    """The file is not an official graph-transformer state dict (named keys, expected vs found)."""


def official_gt_to_neutral(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official ``graph_transformer`` tensors -> glm's backend-neutral encoder layout."""
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in state.items():
        if m := _LAYER.search(key):
            i, name = m.groups()
            if name.endswith("Trans"):
                out[f"layers.{i}.w{name[0]}"] = value.t().contiguous()
            else:
                out[f"layers.{i}.{name}"] = value
        elif m := _PROJ.search(key):
            part = "input_proj" if m.group(1) == "W_P" else "output_proj"
            out[f"{part}.{m.group(2)}"] = value
        elif not _DROPPED.search(key):
            unknown.append(key)
    if not any(k.startswith("layers.") for k in out):
        raise ConvertError(f"no official graph-transformer keys (gtLayers.<i>.qTrans ...) found; "
                           f"first keys: {sorted(state)[:5]}")
    if unknown:
        raise ConvertError(f"unexpected keys for an official graph transformer: {sorted(unknown)[:5]}")
    return out


def read_state_dict(path: Union[str, Path]) -> dict[str, Tensor]:
    """A state dict from ``.safetensors``, or from a torch file loaded with ``weights_only=True``
    (never unpickles code)."""
    path = Path(path)
    if not path.is_file():
        raise ConvertError(f"checkpoint {path} not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    from glm.core.safe_load import UnsafeCheckpointError, safe_torch_load

    try:
        state = safe_torch_load(path)
    except UnsafeCheckpointError as exc:  # names the refused global
        raise ConvertError(str(exc)) from None
    except Exception as exc:  # a damaged or foreign file
        raise ConvertError(f"{path}: not a plain tensor state dict ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ConvertError(f"{path}: expected a mapping of tensors, found {type(state).__name__}")
    return state


def convert_official_gt(checkpoint: Union[str, Path], output: Union[str, Path]) -> tuple[Path, int]:
    """Convert an official checkpoint file into a glm encoder state (safetensors); ``(path, tensors)``."""
    from safetensors.torch import save_file

    from glm.core.io import atomic_path

    neutral = official_gt_to_neutral(read_state_dict(checkpoint))
    output = Path(output)
    with atomic_path(output) as tmp:
        save_file(neutral, str(tmp), metadata={"format": ENCODER_FORMAT, "source": "official-gt"})
    return output, len(neutral)


def load_encoder_state(model, path: Union[str, Path]) -> bool:
    """Load ``path`` into ``model.encoder`` if it is a converted encoder state; ``False`` if it is not one."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("format") != ENCODER_FORMAT:
                return False
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception:  # not a safetensors file: let the adapter reader name the problem
        return False
    encoder = getattr(model, "encoder", None)
    if encoder is None or not hasattr(encoder, "load_neutral_state_dict"):
        raise ConvertError(f"{path} is an encoder state, but method {getattr(model.method, 'name', '?')!r} has no GNN")
    encoder.load_neutral_state_dict(state)
    return True
