"""A third-party method plugin (the code blocks of docs/methods.md): installed through a real entry
point it is listed, trains through the CLI, and passes the method conformance kit in-process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from plugin_helpers import docs_block, module_from_source  # noqa: E402
from train_helpers import subprocess_env, write_tiny_config  # noqa: E402

from glm.plugins import pm  # noqa: E402
from glm.testing import MethodConformance  # noqa: E402

pytestmark = pytest.mark.timeout(600)


def methods_block(first_line: str) -> str:
    return docs_block(first_line, "methods.md")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    from glm.testing import build_plugin_distribution

    toml = methods_block("# pyproject.toml")
    assert '[project.entry-points.glm]\nmeanpool = "glm_meanpool"' in toml
    return build_plugin_distribution(tmp_path_factory.mktemp("method-dist"), "glm-meanpool",
                                     {"glm_meanpool": methods_block("# glm_meanpool.py")}, {"meanpool": "glm_meanpool"})


def _env(tmp_path: Path, site: Path) -> dict[str, str]:
    env = subprocess_env(tmp_path)
    env["PYTHONPATH"] = str(site) + ":" + env["PYTHONPATH"]
    return env


def test_entry_point_method_is_listed_and_trains(installed, tmp_path):
    import subprocess

    env = _env(tmp_path, installed)
    cfg = write_tiny_config(tmp_path, training={"max_steps": 2, "save_steps": 0})
    done = subprocess.run([sys.executable, "-m", "glm.cli.main", "methods", str(cfg), "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert rows["meanpool"]["plugin"] == "meanpool" and rows["meanpool"]["tokens"] == "2 per graph"
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "glm.cli.main", "pretrain", str(cfg), "--method", "meanpool",
                           "model.meanpool.tokens=3", "--output-dir", str(out), "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pretrain: 2 steps" in done.stdout and (out / "adapter_model.safetensors").is_file()


@pytest.fixture(scope="class", autouse=False)
def meanpool_registered():
    module = module_from_source("glm_meanpool_docs", methods_block("# glm_meanpool.py"))
    pm.register(module, name="meanpool-docs")
    yield
    pm.unregister(name="meanpool-docs")


@pytest.mark.usefixtures("meanpool_registered")
class TestMeanPoolConformance(MethodConformance):
    method = "meanpool"
    method_config = {"tokens": 3}
