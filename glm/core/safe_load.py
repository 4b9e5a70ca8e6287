"""Loading checkpoints without running code from them.

A pickle can execute code when it is loaded, and checkpoints travel (shared folders, downloads).
glm therefore never unpickles arbitrary objects:

* **RNG state** is written as ``rng_state.safetensors`` (torch / CUDA generator states and numpy's
  key array as tensors, Python's state and numpy's scalars as JSON metadata).
* **DeepSpeed's files** (``mp_rank_00_model_states.pt``, ZeRO optimizer shards) are pickles that
  DeepSpeed 0.19 loads with ``weights_only=False``. :func:`install_safe_deepspeed_loading` makes
  its checkpoint engine load them with ``weights_only=True`` and an allow-list of the three
  DeepSpeed classes its optimizer state holds (:data:`DEEPSPEED_SAFE_GLOBALS`); anything else is
  refused with :class:`UnsafeCheckpointError` naming the file and the refused global.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import random
import re
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from glm.errors import GlmError

DEEPSPEED_SAFE_GLOBALS = (
    "deepspeed.runtime.fp16.loss_scaler:LossScaler",
    "deepspeed.runtime.fp16.loss_scaler:DynamicLossScaler",
    "deepspeed.runtime.zero.config:ZeroStageEnum",
    "deepspeed.utils.tensor_fragment:fragment_address",
)


class UnsafeCheckpointError(GlmError, RuntimeError):
    """A checkpoint file holds something other than tensors and allow-listed types; it was not loaded."""


def _resolve(names: tuple[str, ...]) -> list[Any]:
    found = []
    for name in names:
        module, _, attr = name.partition(":")
        try:
            found.append(getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError):
            continue  # another numpy / DeepSpeed version: that name does not exist there
    return found


def safe_torch_load(path: str | os.PathLike, allowed: tuple[str, ...] = (), map_location: Any = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with ``allowed`` extra globals (``"module:name"``); refusals
    become :class:`UnsafeCheckpointError` (file, refused global)."""
    try:
        with torch.serialization.safe_globals(_resolve(allowed)), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's note on the pickle protocol of foreign files
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f"the global {found.group(1)}" if found else "a non-tensor object"
        raise UnsafeCheckpointError(f"{path}: refused to load {what} (glm loads checkpoints weights-only, "
                                    "so a crafted file cannot run code); is it from a trusted glm run?") from None


# -- RNG state --------------------------------------------------------------------------------


def save_rng_state(path: str | os.PathLike) -> None:
    """Python, numpy, torch (and CUDA) generator states as safetensors + JSON metadata."""
    from safetensors.torch import save_file

    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors = {"torch_cpu": torch.get_rng_state(), "numpy_keys": torch.from_numpy(keys.astype(np.int64))}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda_{i}"] = state
    meta = {"python": [version, list(internal), gauss], "numpy": [kind, int(pos), int(has_gauss), float(cached)]}
    save_file(tensors, str(path), metadata={"glm_rng": json.dumps(meta)})


def load_rng_state(checkpoint: str | os.PathLike, rank_file: str) -> bool:
    """Restore the RNG state saved in ``checkpoint/rank_file``; ``False`` if none."""
    from safetensors import safe_open

    path = Path(checkpoint) / rank_file
    if path.is_file():
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["glm_rng"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        version, internal, gauss = meta["python"]
        random.setstate((version, tuple(internal), gauss))
        kind, pos, has_gauss, cached = meta["numpy"]
        np.random.set_state((kind, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(tensors["torch_cpu"])
        cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda_"))]
        if cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda)
        return True
    return False


# -- DeepSpeed --------------------------------------------------------------------------------


def install_safe_deepspeed_loading() -> None:
    """Make DeepSpeed's torch checkpoint engine load weights-only (idempotent)."""
    from deepspeed.runtime.checkpoint_engine import torch_checkpoint_engine as engine_module

    engine_cls = engine_module.TorchCheckpointEngine
    if getattr(engine_cls.load, "_glm_safe", False):
        return

    def load(self, path: str, map_location: Any = None) -> Any:
        return safe_torch_load(path, DEEPSPEED_SAFE_GLOBALS, map_location)

    load._glm_safe = True  # type: ignore[attr-defined]
    engine_cls.load = load


# -- Planetoid raw files ----------------------------------------------------------------------


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only what Planetoid's ``ind.<name>.*`` files hold: numpy arrays, scipy sparse
    matrices, ``defaultdict`` / ``OrderedDict`` and plain builtins. Any other global (a function
    such as ``os.system``, a class with a dangerous ``__reduce__``) raises."""

    ALLOWED = {
        "numpy": {"ndarray", "dtype"},
        "numpy.core.multiarray": {"_reconstruct", "scalar"},
        "numpy._core.multiarray": {"_reconstruct", "scalar"},
        "collections": {"defaultdict", "OrderedDict"},
        "copy_reg": {"_reconstructor"},
        "copyreg": {"_reconstructor"},
        "_codecs": {"encode"},
        "builtins": {"dict", "list", "tuple", "set", "frozenset", "int", "float", "str", "bytes", "bool",
                     "complex", "object", "bytearray"},
        "__builtin__": {"dict", "list", "tuple", "set", "object", "int", "float"},
    }
    _SPARSE = re.compile(r"^scipy\.sparse(\.[_a-z]+)?$")
    _SPARSE_CLASS = re.compile(r"^(csr|csc|coo|lil|dok|bsr|dia)_(matrix|array)$")
    _NUMPY_DTYPE = re.compile(r"^[A-Za-z0-9]+DType$")

    def find_class(self, module: str, name: str) -> Callable[..., Any]:
        ok = (name in self.ALLOWED.get(module, ())
              or (self._SPARSE.match(module) is not None and self._SPARSE_CLASS.match(name) is not None)
              or (module == "numpy.dtypes" and self._NUMPY_DTYPE.match(name) is not None))
        if not ok:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return super().find_class(module, name)


def restricted_pickle_load(fh: Any, path: str | os.PathLike, encoding: str = "latin1") -> Any:
    """``pickle.load`` through :class:`RestrictedUnpickler`; refusals name the file."""
    try:
        return RestrictedUnpickler(fh, encoding=encoding).load()
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(f"{path}: {exc}; refusing to unpickle it (only numpy / scipy data is read)") from None
