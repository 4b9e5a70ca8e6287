"""``glm plugins``, ``glm env``, ``glm backends`` and the ``--backend`` error, in subprocesses."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GLM_ENV = ("GLM_STRICT_PLUGINS", "GLM_DISABLED_PLUGINS", "GLM_LOAD_PLUGINS", "GLM_TRACE_PLUGINS", "GLM_BACKEND")
HEAVY = ("torch_geometric", "gammagl", "tensorlayerx", "deepspeed", "transformers")

GHOST_PLUGIN = '''
from glm.plugins import BackendSpec, hookimpl

@hookimpl
def register_backends(register):
    register(BackendSpec("ghost", load=lambda: None, requires=("glm_nonexistent_framework_xyz",),
                         extra="ghost", description="needs a framework that is not installed"))
'''


def run(*args: str, paths: tuple[Path, ...] = (), env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in GLM_ENV and k != "PYTHONPATH"}
    clean.update({"PYTHONPATH": os.pathsep.join(map(str, paths)), **(env or {})})
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=clean, timeout=120)


def glm(*args: str, **kw) -> subprocess.CompletedProcess:
    return run("-m", "glm.cli.main", *args, **kw)


@pytest.fixture(scope="module")
def ghost(tmp_path_factory) -> Path:
    """An installed throw-away plugin registering backend ``ghost`` whose framework is missing."""
    from glm.testing import build_plugin_distribution

    return build_plugin_distribution(tmp_path_factory.mktemp("ghost"), "glm-ghost",
                                     {"glm_ghost": GHOST_PLUGIN}, {"ghost": "glm_ghost"})


def test_plugins_lists_builtins_as_json():
    done = glm("plugins")
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    pyg = rows["glm.backends.pyg"]
    assert pyg["builtin"] and pyg["status"] == "loaded" and pyg["errors"] == []
    assert "register_backends" in pyg["hooks"] and pyg["registered"]["backends"] == ["pyg"]
    assert pyg["version"] == metadata.version("graph-glm")
    hooked = json.loads(glm("plugins", "--hook", "register_backends").stdout)
    assert hooked and all("register_backends" in r["hooks"] for r in hooked)


def test_env_json_reports_this_machine():
    code = ("import sys, json; from glm.cli.main import main; rc = main(['env', '--json']);"
            f" print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})), file=sys.stderr)")
    done = run("-c", code)
    assert done.returncode == 0, done.stderr
    env = json.loads(done.stdout)
    assert env["python"] == platform.python_version()
    assert env["packages"]["torch"] == metadata.version("torch")
    assert env["packages"]["pluggy"] == metadata.version("pluggy")
    assert env["packages"]["numpy"] == metadata.version("numpy")
    assert env["devices"]["cpu_count"] == os.cpu_count()
    import torch

    assert env["devices"]["cuda_available"] == torch.cuda.is_available()
    assert len(env["devices"]["cuda_devices"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert env["devices"]["ram_total_gib"] > 0
    assert {b["name"] for b in env["backends"]} >= {"pyg", "gammagl"}
    if (ROOT / ".git").exists():
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
        if head.returncode == 0:
            assert env["glm"]["git_commit"] == head.stdout.strip()
    # versions come from metadata: listing them imports no graph framework
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []


def test_env_text():
    done = glm("env")
    assert done.returncode == 0, done.stderr
    assert f"- Python version: {platform.python_version()}" in done.stdout
    assert f"- torch version: {metadata.version('torch')}" in done.stdout
    assert "- backend pyg: " in done.stdout and "CUDA available:" in done.stdout


def test_backends_lists_layers_and_shows_one():
    done = glm("backends", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert rows["pyg"]["plugin"] == "glm.backends.pyg"
    if rows["pyg"]["available"]:
        one = json.loads(glm("backends", "--backend", "pyg", "--json").stdout)
        assert [r["name"] for r in one] == ["pyg"] and one[0]["gnn_layers"] == rows["pyg"]["gnn_layers"]


def test_unknown_backend_is_a_one_line_error():
    done = glm("backends", "--backend", "nosuch")
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("glm: error: unknown backend 'nosuch'") and "pyg" in lines[0]


def test_backend_with_missing_extra_names_it(ghost):
    listed = json.loads(glm("backends", "--json", paths=(ghost,)).stdout)
    row = {r["name"]: r for r in listed}["ghost"]
    assert not row["available"] and row["missing"] == ["glm_nonexistent_framework_xyz"]
    assert row["plugin"] == "ghost" and '"graph-glm[ghost]"' in row["install"]
    done = glm("backends", "--backend", "ghost", paths=(ghost,))
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "backend 'ghost' needs glm_nonexistent_framework_xyz" in lines[0]
    assert "'ghost' extra" in lines[0] and 'pip install "graph-glm[ghost]"' in lines[0]


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm on this system")
def test_env_reports_deepspeed_shared_memory_left_behind():
    segment = Path(f"/dev/shm/deepspeed_allreduce_buffer_glmtest_{os.getpid()}")
    segment.write_bytes(b"\0" * 4096)
    try:
        done = glm("env")
        assert done.returncode == 0, done.stderr
        assert "DeepSpeed allreduce segment(s)" in done.stdout and "rm /dev/shm/deepspeed_allreduce_buffer_*" in done.stdout
    finally:
        segment.unlink()
