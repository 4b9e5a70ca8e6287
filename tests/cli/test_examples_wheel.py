"""The example configs ship inside the package: `glm demo` and `glm examples` work from a wheel."""

import subprocess
import sys
import zipfile
from pathlib import Path

from glm.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def test_glm_examples_lists_and_copies(tmp_path, capsys):
    assert main(["examples"]) == 0
    out = capsys.readouterr().out
    assert "demo_pretrain.yaml" in out and "title_generation.yaml" in out
    (tmp_path / "demo_adapt.yaml").write_text("mine\n")
    assert main(["examples", "--copy", str(tmp_path)]) == 0
    assert "kept existing: demo_adapt.yaml" in capsys.readouterr().out
    assert (tmp_path / "demo_adapt.yaml").read_text() == "mine\n"
    assert (tmp_path / "demo_pretrain.yaml").read_bytes() == (ROOT / "examples" / "demo_pretrain.yaml").read_bytes()


def test_the_wheel_holds_the_examples_the_bench_and_the_recipes(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("graph_glm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    examples = {f"glm/examples/{p.name}" for p in (ROOT / "glm" / "examples").glob("*.yaml")}
    assert examples and examples <= names
    assert {"glm/bench/fewshot.py", "glm/bench/generation.py", "glm/demo.py", "glm/py.typed"} <= names
    assert any(n.startswith("glm/core/train/recipes/") and n.endswith(".json") for n in names)
