"""GammaGL / TensorLayerX compatibility shim for torch >= 2 (CPU wheels included).

Nothing here imports tensorlayerx or gammagl at module import time; :func:`load_gammagl`
does, once, and fixes four known problems of ``gammagl-pt23 0.5.0.post121`` +
``tensorlayerx 0.5.8`` on current torch:

1. ``TL_BACKEND`` must be ``torch`` before tlx is imported (tlx defaults to TensorFlow).
   It is set if absent; any other value raises :class:`GammaglBackendError`.
2. tlx imports ``torchvision``, ``imageio`` and ``cv2`` at import time (for its vision and
   file helpers, which glm never calls); PyPI's torchvision does not load beside a CPU torch
   wheel, and a GPU box without network may lack the others. Each one that does not import is
   replaced by a stub in ``sys.modules`` only while tlx imports, removed right after (a leftover
   stub breaks ``transformers``); calling anything of a stub raises ``RuntimeError``.
3. tlx 0.5.8 overrides ``torch.nn.Module._named_members`` without ``remove_duplicate``, which
   makes every layer forward fail on torch >= 2: the override is deleted.
4. gammagl's C++ kernels (``gammagl.mpops.torch_ext``) need a CUDA torch 2.3 with the old ABI
   and gammagl has no fallback: seven pure-torch kernels with the same semantics are installed
   into ``gammagl.mpops.torch`` when the extension did not load.

tlx's banner, its per-layer ``[TLX] Linear ...`` log lines and its "install torch 1.10.0"
warning are silenced. Importing gammagl creates ``~/.ggl`` and tlx ``~/.tl``; that is tolerated.

GammaGL layers create helper tensors on torch's *default* device, and ``tlx.set_device('GPU')``
changes that default for the whole process. :func:`device_scope` sets it only around a call
and restores torch's default device and dtype afterwards.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import sys
import threading
import types
import warnings
from typing import Any, Iterator

import torch
from torch import Tensor

from glm.errors import GlmError

KERNEL_NAMES = (
    "c_segment_sum", "c_segment_mean", "c_segment_max",
    "c_spmm_sum", "c_spmm_mean", "c_spmm_max", "c_bspmm_sum",
)

_lock = threading.Lock()
_state: dict[str, Any] = {"gammagl": None, "kernels": None}


class GammaglBackendError(GlmError, RuntimeError):
    """tensorlayerx is (or would be) set to a backend other than torch."""


# -- pure-torch kernels (semantics of gammagl's CPU kernels; index = [src; dst]) -----------------
def _full(x: Tensor, n: int, fill: float = 0.0) -> Tensor:
    return x.new_full((n, *x.shape[1:]), fill)


def _col(t: Tensor, like: Tensor) -> Tensor:
    """Reshape a per-row vector so that it broadcasts against ``like``'s trailing dims."""
    return t.view(-1, *[1] * (like.dim() - 1))


def c_segment_sum(x: Tensor, index: Tensor, n: int) -> Tensor:
    return _full(x, n).index_add(0, index, x)


def c_segment_mean(x: Tensor, index: Tensor, n: int) -> Tensor:
    count = torch.bincount(index, minlength=n).clamp(min=1).to(x.dtype)
    return c_segment_sum(x, index, n) / _col(count, x)


def c_segment_max(x: Tensor, index: Tensor, n: int) -> Tensor:
    # empty segments hold finfo.min, like the native kernel
    expanded = _col(index, x).expand_as(x)
    return _full(x, n, torch.finfo(x.dtype).min).scatter_reduce(0, expanded, x, "amax", include_self=False)


def _messages(index: Tensor, weight: Tensor, x: Tensor) -> Tensor:
    return x.index_select(0, index[0]) * _col(weight.to(x.dtype), x)


def c_spmm_sum(index: Tensor, weight: Tensor, x: Tensor) -> Tensor:
    return c_segment_sum(_messages(index, weight, x), index[1], x.shape[0])


def c_spmm_mean(index: Tensor, weight: Tensor, x: Tensor) -> Tensor:
    return c_segment_mean(_messages(index, weight, x), index[1], x.shape[0])


def c_spmm_max(index: Tensor, weight: Tensor, x: Tensor) -> Tensor:
    return c_segment_max(_messages(index, weight, x), index[1], x.shape[0])


def c_bspmm_sum(index: Tensor, weight: Tensor, x: Tensor) -> Tensor:
    return c_segment_sum(x.index_select(0, index[0]) * weight.unsqueeze(-1).to(x.dtype), index[1], x.shape[0])


# -- import-time fixes ---------------------------------------------------------------------------
def ensure_torch_backend() -> None:
    """Set ``TL_BACKEND=torch`` if unset; raise if tlx is or would be on another backend."""
    value = os.environ.get("TL_BACKEND")
    if value is None:
        os.environ["TL_BACKEND"] = "torch"
    elif value != "torch":
        raise GammaglBackendError(
            f"environment variable TL_BACKEND={value!r}, but glm's gammagl backend needs TL_BACKEND='torch';"
            " unset it or set it to 'torch' before importing glm"
        )
    tlx = sys.modules.get("tensorlayerx")
    if tlx is not None and getattr(tlx, "BACKEND", "torch") != "torch":
        raise GammaglBackendError(
            f"tensorlayerx was already imported with backend {tlx.BACKEND!r}; glm's gammagl backend needs 'torch'"
        )


# modules tlx / gammagl import for vision, file and dataset helpers glm never calls: (root, submodules it imports)
TLX_OPTIONAL_IMPORTS: dict[str, tuple[str, ...]] = {"torchvision": ("ops",), "imageio": (), "cv2": (), "pandas": ()}


def _unusable_stub(root: str, submodules: tuple[str, ...], reason: BaseException) -> dict[str, types.ModuleType]:
    """Stub modules whose every attribute is a function raising ``RuntimeError(reason)``."""

    def unusable(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{root} is unusable in this environment: {reason}")

    def make(name: str) -> types.ModuleType:
        module = types.ModuleType(name)
        module.__getattr__ = lambda attr: unusable  # type: ignore[method-assign]  # PEP 562
        return module

    stubs = {root: make(root)}
    for sub in submodules:
        stubs[f"{root}.{sub}"] = make(f"{root}.{sub}")
        setattr(stubs[root], sub, stubs[f"{root}.{sub}"])
    return stubs


@contextlib.contextmanager
def _quiet(what: str) -> Iterator[None]:
    """Swallow banners and tlx's version warning; re-raise failures with the captured output."""
    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*version of the backend.*")
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                yield
        except ImportError as exc:
            captured = (out.getvalue() + err.getvalue()).strip()
            raise ImportError(f"importing {what} failed: {exc}" + (f"\n{captured}" if captured else "")) from exc


@contextlib.contextmanager
def _optional_imports_stubbed() -> Iterator[None]:
    """Stub the :data:`TLX_OPTIONAL_IMPORTS` that do not import, for the duration of the block only."""
    stubbed: dict[str, types.ModuleType] = {}
    for root, submodules in TLX_OPTIONAL_IMPORTS.items():
        try:
            __import__(root)
            for sub in submodules:
                __import__(f"{root}.{sub}")
        except Exception as exc:  # ModuleNotFoundError, or RuntimeError (torchvision::nms) beside a CPU torch
            for key in [k for k in sys.modules if k.split(".")[0] == root]:
                del sys.modules[key]
            stubs = _unusable_stub(root, submodules, exc)
            stubbed.update(stubs)
            sys.modules.update(stubs)
    try:
        yield
    finally:
        for key in stubbed:
            sys.modules.pop(key, None)


def _import_tlx() -> types.ModuleType:
    if "tensorlayerx" not in sys.modules:
        with _optional_imports_stubbed(), _quiet("tensorlayerx"):
            import tensorlayerx  # noqa: F401
    import tensorlayerx as tlx

    module_cls = tlx.nn.Module
    override = module_cls.__dict__.get("_named_members")
    if override is not None and "remove_duplicate" not in inspect.signature(override).parameters:
        delattr(module_cls, "_named_members")
    try:
        tlx.logging.set_verbosity(tlx.logging.WARN)
    except Exception:  # logging API moved: cosmetic only
        pass
    return tlx


def _install_kernels() -> str:
    mpops = sys.modules["gammagl.mpops.torch"]
    if getattr(mpops, "use_ext", False):
        return "native"
    for name in KERNEL_NAMES:  # gammagl's functions resolve these module globals at call time
        setattr(mpops, name, globals()[name])
    return "pure-torch"


def load_gammagl() -> types.ModuleType:
    """Import gammagl with every fix applied (idempotent, thread-safe); returns the module."""
    with _lock:
        if _state["gammagl"] is None:
            ensure_torch_backend()
            _import_tlx()
            with _optional_imports_stubbed(), _quiet("gammagl"):
                import gammagl
                import gammagl.data  # noqa: F401
                import gammagl.layers.conv  # noqa: F401
                import gammagl.mpops  # noqa: F401
            _state["kernels"] = _install_kernels()
            _state["gammagl"] = gammagl
        return _state["gammagl"]


def kernels() -> str | None:
    """``'native'``, ``'pure-torch'`` or ``None`` before :func:`load_gammagl`."""
    return _state["kernels"]


# -- the global default-device quirk ------------------------------------------------------------
@contextlib.contextmanager
def restore_torch_defaults() -> Iterator[None]:
    """Restore torch's default dtype and device on exit, whatever the body changed
    (e.g. ``tlx.set_device('GPU')`` switches the default tensor type process-wide)."""
    dtype, device = torch.get_default_dtype(), torch.get_default_device()
    try:
        yield
    finally:
        torch.set_default_dtype(dtype)
        torch.set_default_device(None if device.type == "cpu" else device)


@contextlib.contextmanager
def device_scope(device: torch.device) -> Iterator[None]:
    """Make ``device`` torch's default device inside the block only (GammaGL's helper tensors
    such as ``tlx.ones(...)`` land on the default device); a no-op when it already is."""
    if torch.get_default_device() == device:
        yield
        return
    with restore_torch_defaults():
        torch.set_default_device(device)
        yield
