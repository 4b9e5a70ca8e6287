"""glm's two DeepSpeed-on-CPU workarounds (glm/core/train/ds_compat.py): the shared-memory segment
DeepSpeed leaks per process, and CPU-Adam's SIMD define checked against the compiler."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from glm.core.train import ds_compat

deepspeed = pytest.importorskip("deepspeed", reason="DeepSpeed is not installed: pip install -e '.[deepspeed]'")
x86_only = pytest.mark.skipif(platform.machine().lower() not in {"x86_64", "amd64"},
                              reason="DeepSpeed's AVX defines exist on x86-64 only")
SHM = Path("/dev/shm")


def _fake_compiler(tmp_path: Path, macros: list[str]) -> str:
    """A ``c++`` that answers ``-dM -E`` with the given predefined macros."""
    script = tmp_path / "fake-c++"
    lines = "\n".join(f"echo '#define {m} 1'" for m in macros)
    script.write_text(f"#!/bin/sh\n{lines}\n")
    script.chmod(0o755)
    return str(script)


@x86_only
@pytest.mark.parametrize("macros, define", [
    (["__AVX__", "__AVX2__", "__AVX512F__"], "-D__AVX512__"),
    (["__AVX__", "__AVX2__"], "-D__AVX256__"),
    (["__SSE2__"], "-D__SCALAR__"),
])
def test_native_simd_define_follows_the_compiler(tmp_path, macros, define):
    assert ds_compat.native_simd_define(_fake_compiler(tmp_path, macros)) == define


@x86_only
def test_native_simd_define_without_a_compiler_is_none(tmp_path):
    assert ds_compat.native_simd_define(str(tmp_path / "no-such-compiler")) is None


@x86_only
@pytest.mark.parametrize("macros, allowed", [
    (["__AVX2__"], {"-D__AVX256__", "-D__SCALAR__"}),
    ([], {"-D__SCALAR__"}),
])
def test_deepspeed_builder_never_claims_more_than_the_compiler(tmp_path, monkeypatch, macros, allowed):
    """DeepSpeed reads py-cpuinfo; a compiler whose -march=native lacks AVX-512 must win (DeepSpeed#7556)."""
    from deepspeed.accelerator import get_accelerator

    monkeypatch.setenv("CXX", _fake_compiler(tmp_path, macros))
    ds_compat.native_simd_define.cache_clear()
    try:
        ds_compat.align_simd_with_compiler()
        builder = get_accelerator().create_op_builder("CPUAdamBuilder")
        assert builder.simd_width() in allowed
    finally:
        ds_compat.native_simd_define.cache_clear()


def test_fallback_switches_only_an_offloaded_adam(monkeypatch):
    monkeypatch.setenv("GLM_CPU_ADAM", "off")
    offloaded = {"optimizer": {"type": "AdamW", "params": {"lr": 1e-3}},
                 "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}}}
    assert ds_compat.offload_optimizer_fallback(offloaded) == "GLM_CPU_ADAM=off"
    assert offloaded["optimizer"]["params"] == {"lr": 1e-3, "torch_adam": True}
    on_gpu = {"optimizer": {"type": "AdamW", "params": {}}, "zero_optimization": {"stage": 2}}
    assert ds_compat.offload_optimizer_fallback(on_gpu) is None and on_gpu["optimizer"]["params"] == {}
    sgd = {"optimizer": {"type": "SGD", "params": {}},
           "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}}}
    assert ds_compat.offload_optimizer_fallback(sgd) is None


INIT = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_SIZE="1", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=sys.argv[2])
    if sys.argv[1] == "glm":
        from glm.core.train.dist import init_distributed
        init_distributed()
    else:
        import deepspeed
        deepspeed.init_distributed(dist_backend="gloo", verbose=False)
    segment = Path(f"/dev/shm/deepspeed_allreduce_buffer_{os.getuid()}_127.0.0.1_{sys.argv[2]}_0")
    print("exists" if segment.exists() else "gone")
""")


@pytest.mark.skipif(not SHM.is_dir(), reason="no /dev/shm on this system")
def test_glm_releases_the_shared_memory_deepspeed_leaks(tmp_path):
    import os

    results = {}
    # the control is plain DeepSpeed in this venv as a user runs it (activated: the venv's ninja first on PATH),
    # so that its load finds the venv's shm-op build instead of rebuilding it with another ninja
    env = {**os.environ, "PATH": str(Path(sys.prefix) / "bin") + os.pathsep + os.environ.get("PATH", "")}
    for how in ("deepspeed", "glm"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = str(s.getsockname()[1])
        proc = subprocess.run([sys.executable, "-c", INIT, how, port], capture_output=True, text=True, timeout=600,
                              env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        leaked = list(SHM.glob(f"deepspeed_allreduce_buffer_*_{port}_*"))
        results[how] = (proc.stdout.strip().splitlines()[-1], [p.name for p in leaked])
        for path in leaked:  # the control run's leak is removed here, not left on the machine
            path.unlink()
    if results["deepspeed"][0] == "gone":
        pytest.skip("this DeepSpeed build creates no shared-memory segment here (shm_comm op unavailable)")
    assert results["deepspeed"][1], "control: plain DeepSpeed leaves its segment behind after exit"
    assert results["glm"] == ("gone", [])


def test_a_recorded_build_failure_is_trusted_for_the_same_toolchain(tmp_path, monkeypatch):
    import json

    monkeypatch.delenv("GLM_CPU_ADAM", raising=False)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    ds_compat._build_cpu_adam.cache_clear()
    try:
        record = ds_compat._extensions_dir() / ds_compat.FAILURE_RECORD
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"toolchain": ds_compat._toolchain_key(), "error": "cc1plus: error: boom"}))
        problem = ds_compat.cpu_adam_problem()
        assert problem.startswith("an earlier build failed") and "cc1plus: error: boom" in problem
        assert "python -m glm.core.train.ds_compat" in problem  # how to try again
    finally:
        ds_compat._build_cpu_adam.cache_clear()


def test_build_error_quotes_the_compiler():
    build = subprocess.CalledProcessError(1, ["ninja"], output=b"[1/3] c++ -c x.cpp\nx.cpp:3: error: mismatch\nmore\n")
    try:
        try:
            raise build
        except subprocess.CalledProcessError as exc:
            raise RuntimeError("Error building extension 'cpu_adam'") from exc
    except RuntimeError as outer:
        assert ds_compat._build_error(outer) == "x.cpp:3: error: mismatch"


def test_every_entry_point_builds_with_the_venvs_ninja(tmp_path):
    """Two ninja versions (the system's and the venv's) hash one command differently, so a process that
    found the other one rebuilt the ops: whatever PATH a process starts with, it uses the venv's ninja."""
    import os
    import shutil

    venv_ninja = Path(sys.prefix) / "bin" / "ninja"
    if sys.prefix == sys.base_prefix or not venv_ninja.is_file():
        pytest.skip("not in a virtual environment with its own ninja")
    code = ("import shutil; from glm.core.train.ds_compat import use_venv_extensions_dir; "
            "use_venv_extensions_dir(); print(shutil.which('ninja'))")
    system = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != venv_ninja.parent)
    found = set()
    for path in (system, str(venv_ninja.parent) + os.pathsep + system):
        env = {**os.environ, "PATH": path}
        env.pop("TORCH_EXTENSIONS_DIR", None)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        found.add(out.stdout.strip())
    assert found == {str(venv_ninja)}, f"entry points would use {found} (system: {shutil.which('ninja', path=system)})"
