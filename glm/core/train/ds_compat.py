"""Workarounds for DeepSpeed, kept in one small module.

**Tied frozen weights in checkpoints.** ``save_checkpoint(exclude_frozen_parameters=True)`` drops
frozen tensors by walking ``named_parameters()``, which lists a tied weight once: the LM head of a
tied-embedding LLM (SmolLM2, Qwen2) stayed in every checkpoint (SmolLM2: 57 MB in bf16 for a 17K-parameter adapter).
:func:`exclude_tied_frozen` drops every alias of a frozen tensor.

**Shared-memory leak.** On CPU, DeepSpeed's comm backend creates a 66 MB
``/dev/shm/deepspeed_allreduce_buffer_<uid>_<addr>_<port>_<rank>`` segment in every process whose
``LOCAL_SIZE`` equals the world size and never unlinks it, so each run leaks 66 MB of RAM until
reboot (a test suite that starts a hundred engines fills ``/dev/shm`` and the machine thrashes).
:func:`release_shm_buffer` unlinks this rank's segment once every rank has mapped it; the mapping
lives on until the process exits.

**CPU-Adam build.** The ``3090-*-offload`` recipes step the optimizer on the CPU with ``DeepSpeedCPUAdam``, a C++
op that DeepSpeed JIT-builds on first use. DeepSpeed chooses the vector code (``-D__AVX512__``,
``-D__AVX256__``) from py-cpuinfo but compiles with ``-march=native``; where the two disagree
(AMD Zen 4 with gcc 12, virtual machines that hide AVX-512 from the compiler:
deepspeedai/DeepSpeed#7556) the build stops with "target specific option mismatch".

:func:`align_simd_with_compiler` makes DeepSpeed ask the compiler instead: it never claims
more than ``$CXX -march=native`` enables. If the op still cannot be built (no compiler, no
``ninja``) or ``GLM_CPU_ADAM=off`` is set, :func:`offload_optimizer_fallback` switches the
recipe to ``torch.optim.AdamW`` on the CPU (``"torch_adam": true``): the same ZeRO offload,
slower steps, and a warning that says why. A failed build is remembered beside the build
(``cpu_adam.failed`` in the torch extensions folder) so that later processes do not recompile
it for another minute only to fail again; the record names the toolchain, so a new compiler,
torch or DeepSpeed tries again, and so does ``python -m glm.core.train.ds_compat`` (a failure
that was only transient, a compiler killed for memory say, is not kept for good).

``python -m glm.core.train.ds_compat`` builds the op ahead of time and prints what happened
(``make`` runs it after installing).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

__all__ = [
    "use_venv_extensions_dir",
    "release_shm_buffer",
    "leftover_shm_segments",
    "native_simd_define",
    "align_simd_with_compiler",
    "cpu_adam_problem",
    "offload_optimizer_fallback",
    "build_shm_comm",
]

# DeepSpeed's defines, widest first, and the compiler macro each one needs.
_SIMD_NEEDS = {"-D__AVX512__": "__AVX512F__", "-D__AVX256__": "__AVX2__"}
_SIMD_ORDER = ["-D__AVX512__", "-D__AVX256__", "-D__SCALAR__"]
FAILURE_RECORD = "cpu_adam.failed"
_ADAM_TYPES = {"adam", "adamw"}


SHM_DIR = Path("/dev/shm")
SHM_PREFIX = "deepspeed_allreduce_buffer_"  # DeepSpeed's SHM_BUFFER_NAME (csrc/cpu/comm/shm.cpp) + "_"


def exclude_tied_frozen(engine: Any) -> None:
    """Make ``engine``'s checkpoints leave out every name of a frozen tensor, tied aliases included."""
    original = engine.module_state_dict

    def module_state_dict(*args: Any, exclude_frozen_parameters: bool = False, **kwargs: Any):
        sd = original(*args, exclude_frozen_parameters=exclude_frozen_parameters, **kwargs)
        if exclude_frozen_parameters:
            prefix = kwargs.get("prefix", "")
            for name, p in engine.module.named_parameters(remove_duplicate=False):
                if not p.requires_grad:
                    sd.pop(prefix + name, None)
        return sd

    engine.module_state_dict = module_state_dict


def release_shm_buffer(rank: int, world_size: int) -> None:
    """Unlink this rank's DeepSpeed shared-memory allreduce segment (call after init, all ranks)."""
    if not SHM_DIR.is_dir():
        return
    if world_size > 1:  # every rank has opened every other rank's segment once all pass this
        import torch.distributed as dist

        dist.barrier()
    addr, port = os.environ.get("MASTER_ADDR", ""), os.environ.get("MASTER_PORT", "")
    (SHM_DIR / f"{SHM_PREFIX}{os.getuid()}_{addr}_{port}_{rank}").unlink(missing_ok=True)


def leftover_shm_segments() -> tuple[int, int]:
    """Number and total bytes of DeepSpeed allreduce segments now in ``/dev/shm`` (any process's)."""
    count = size = 0
    for path in SHM_DIR.glob(f"{SHM_PREFIX}*") if SHM_DIR.is_dir() else ():
        try:
            size += path.stat().st_size
            count += 1
        except OSError:  # removed meanwhile
            pass
    return count, size


def _compiler() -> str:
    return os.environ.get("CXX", "c++")


@functools.lru_cache(maxsize=None)
def native_simd_define(cxx: Optional[str] = None) -> Optional[str]:
    """The DeepSpeed SIMD define that ``cxx -march=native`` can really compile.

    Returns ``"-D__AVX512__"``, ``"-D__AVX256__"`` or ``"-D__SCALAR__"`` on x86-64, and
    ``None`` where the question does not apply (another architecture, or no compiler to ask).
    """
    import platform

    if platform.machine().lower() not in {"x86_64", "amd64"}:
        return None
    try:
        out = subprocess.run([cxx or _compiler(), "-march=native", "-dM", "-E", "-x", "c++", os.devnull],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    macros = set(re.findall(r"^#define (\w+)", out, flags=re.MULTILINE))
    for define, needs in _SIMD_NEEDS.items():
        if needs in macros:
            return define
    return "-D__SCALAR__"


def align_simd_with_compiler() -> None:
    """Patch DeepSpeed's op builders (once) so their SIMD define never exceeds the compiler's."""
    from deepspeed.ops.op_builder.builder import OpBuilder

    if getattr(OpBuilder.simd_width, "_glm_aligned", False):
        return
    original = OpBuilder.simd_width

    def simd_width(self) -> str:
        chosen, native = original(self), native_simd_define()
        if native is None or chosen not in _SIMD_ORDER:
            return chosen
        return max(chosen, native, key=_SIMD_ORDER.index)  # the narrower of the two

    simd_width._glm_aligned = True  # type: ignore[attr-defined]
    OpBuilder.simd_width = simd_width


def use_venv_extensions_dir() -> None:
    """Inside a virtual environment, keep DeepSpeed's JIT builds with it (``<venv>/torch_extensions``, what
    ``make`` builds into) unless ``TORCH_EXTENSIONS_DIR`` is set, and build them with the venv's own ninja:
    every entry point of that venv (``glm``, ``python -m``, torchrun, DeepSpeed's launcher, pytest) then loads
    the one build instead of compiling its own under ``~/.cache``.

    The ninja torch runs is the first on ``PATH``; a venv run without activation finds the system's instead.
    Two ninja versions hash the same command differently (log v5 vs v7), so each takes the other's build
    for a stale one and rebuilds: the venv's ``bin`` goes first on ``PATH`` when it holds a ninja."""
    if sys.prefix == sys.base_prefix:
        return
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(Path(sys.prefix) / "torch_extensions"))
    venv_bin = Path(sys.prefix) / "bin"
    if (venv_bin / "ninja").is_file() and shutil.which("ninja") != str(venv_bin / "ninja"):
        os.environ["PATH"] = str(venv_bin) + os.pathsep + os.environ.get("PATH", "")


def _extensions_dir() -> Path:
    from torch.utils.cpp_extension import _get_build_directory

    return Path(_get_build_directory("cpu_adam", verbose=False)).parent


def _toolchain_key() -> dict[str, str]:
    import deepspeed
    import torch

    use_venv_extensions_dir()  # the ninja a build would run, whatever PATH this process started with

    try:
        version = subprocess.run([_compiler(), "--version"], capture_output=True, text=True,
                                 timeout=60).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        version = "none"
    return {"deepspeed": deepspeed.__version__, "torch": torch.__version__, "compiler": version,
            "simd": str(native_simd_define()), "ninja": str(shutil.which("ninja"))}


def _build_error(exc: BaseException) -> str:
    """The compiler's first error lines from a failed JIT build (or the exception itself)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        output = getattr(exc, "output", None)
        if isinstance(output, bytes):
            output = output.decode(errors="replace")
        if output:
            errors = [line.strip() for line in output.splitlines() if "error" in line.lower()]
            if errors:
                return " | ".join(errors[:3])[:600]
        exc = exc.__cause__ or exc.__context__
    return ""


def cpu_adam_problem() -> Optional[str]:
    """``None`` if ``DeepSpeedCPUAdam`` can be used in this process, else why not (one line)."""
    if os.environ.get("GLM_CPU_ADAM", "").lower() in {"0", "off", "false", "no"}:
        return "GLM_CPU_ADAM=off"
    return _build_cpu_adam()


@functools.lru_cache(maxsize=None)
def _build_cpu_adam(retry: bool = False) -> Optional[str]:
    """Build (or load) CPU-Adam; without ``retry`` a recorded failure of this toolchain is trusted."""
    use_venv_extensions_dir()
    align_simd_with_compiler()
    record = _extensions_dir() / FAILURE_RECORD
    if not retry and record.is_file():  # the toolchain is asked for only when there is a record to compare
        try:
            earlier = json.loads(record.read_text())
            if earlier.get("toolchain") == _toolchain_key():
                return (f"an earlier build failed with this toolchain ({record}; `python -m glm.core.train.ds_compat`"
                        f" tries again): {earlier['error']}")
        except (OSError, ValueError, KeyError):
            pass
    from deepspeed.accelerator import get_accelerator

    try:
        get_accelerator().create_op_builder("CPUAdamBuilder").load(verbose=False)
    except Exception as exc:  # a compiler error, a missing ninja, a broken toolchain
        error = _build_error(exc) or f"{type(exc).__name__}: {exc}"[:600]
        from glm.core.io import atomic_write_text

        try:
            atomic_write_text(record, json.dumps({"toolchain": _toolchain_key(), "error": error}, indent=1))
        except OSError:
            pass
        return f"DeepSpeed could not build its cpu_adam op: {error}"
    record.unlink(missing_ok=True)
    return None


def offload_optimizer_fallback(ds_config: dict[str, Any]) -> Optional[str]:
    """Switch an offloaded Adam/AdamW to torch's AdamW when CPU-Adam is unusable.

    Edits ``ds_config`` in place and returns the reason (for a warning), or ``None`` when the
    config does not offload the optimizer, already uses torch's Adam, or CPU-Adam works.
    """
    zero = ds_config.get("zero_optimization") or {}
    offload = zero.get("offload_optimizer") or {}
    optimizer = ds_config.get("optimizer") or {}
    if (offload.get("device") not in {"cpu", "nvme"} or str(optimizer.get("type", "")).lower() not in _ADAM_TYPES
            or (optimizer.get("params") or {}).get("torch_adam")):
        return None
    problem = cpu_adam_problem()
    if problem is None:
        return None
    optimizer.setdefault("params", {})["torch_adam"] = True
    return problem


def replay_cpu_adam_steps(optimizer: Any) -> int:
    """Make a resumed DeepSpeedCPUAdam step bit-identical to an uninterrupted run; return the steps replayed.

    The C++ optimizer keeps ``beta**t`` as a running product (multiplied once per step) and only
    recomputes it with ``pow`` when the step count jumps -- as it does on the first step after a
    resume, so the bias correction differs in its last bits. Replaying the ``adam_update`` calls
    of the finished steps on a one-element dummy rebuilds the same product; real tensors are untouched.
    """
    import torch

    while type(optimizer).__name__ != "DeepSpeedCPUAdam" and getattr(optimizer, "optimizer", None) is not None:
        optimizer = optimizer.optimizer
    if type(optimizer).__name__ != "DeepSpeedCPUAdam":
        return 0
    calls = []  # (group, step) in the order step() makes them
    steps = {id(p): int(optimizer.state[p].get("step", 0)) for g in optimizer.param_groups for p in g["params"]
             if p in optimizer.state}
    last = max(steps.values(), default=0)
    for t in range(1, last + 1):
        calls += [(g, t) for g in optimizer.param_groups for p in g["params"] if steps.get(id(p), 0) >= t]
    p, grad, m, v = (torch.zeros(1) for _ in range(4))
    for group, t in calls:
        beta1, beta2 = group["betas"]
        optimizer.ds_opt_adam.adam_update(optimizer.opt_id, t, 0.0, beta1, beta2, group["eps"], 0.0,
                                          group["bias_correction"], p, grad, m, v)
    return last


def build_shm_comm() -> Optional[str]:
    """Build (or load) DeepSpeed's CPU shared-memory allreduce op, which every CPU run loads at start-up;
    ``None`` when it is ready, else why not. Its build output goes to stderr."""
    import contextlib

    use_venv_extensions_dir()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            from deepspeed.accelerator import get_accelerator

            builder = get_accelerator().create_op_builder("ShareMemCommBuilder")
            if builder is None or not builder.is_compatible():
                return "this platform has no shared-memory comm op (DeepSpeed falls back to gloo)"
            builder.load(verbose=False)
    except Exception as exc:
        return f"DeepSpeed could not build its shm comm op: {_build_error(exc) or exc}"
    return None


def main() -> int:
    """Build CPU-Adam and the shm comm op now (``make`` calls this after installing), so that no test or
    training process compiles them; never fails the install."""
    use_venv_extensions_dir()
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        print("glm: DeepSpeed is not installed; nothing to build")
        return 0
    shm = build_shm_comm()
    print(f"glm: DeepSpeed shm comm op {'ready' if shm is None else 'not built: ' + shm}")
    problem = _build_cpu_adam(retry=True)  # an explicit build never trusts an earlier failure
    if problem is None:
        print(f"glm: DeepSpeed cpu_adam op ready in {_extensions_dir()} (SIMD {native_simd_define()})")
    else:
        print(f"glm: warning: {problem}\nglm: offload recipes will use torch AdamW on the CPU instead",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
