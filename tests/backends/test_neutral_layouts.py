"""Each built-in layer name's neutral layout is declared once (glm.core.layouts) and every reader agrees."""

import re
from pathlib import Path

import pytest

from glm.core.layouts import LAYOUTS, markdown_table
from glm.plugins import get_registry
from glm.testing import NEUTRAL_KEYS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "backends.md"


def test_docs_table_is_the_declared_one():
    found = re.search(r"<!-- layouts -->\n(.*?)\n<!-- /layouts -->", DOCS.read_text(encoding="utf-8"), re.S)
    assert found and found.group(1) == markdown_table()


def test_the_kit_reads_the_declared_keys():
    assert NEUTRAL_KEYS == {name: frozenset(layout.keys) for name, layout in LAYOUTS.items()}


@pytest.mark.parametrize("backend", ["pyg", "gammagl"])
@pytest.mark.parametrize("name", list(LAYOUTS))
def test_each_backend_layer_has_the_declared_layout(backend, name):
    registry = get_registry()
    if not registry.backends[backend].available:
        pytest.skip(f"backend {backend} is not installed ({registry.backends[backend].install_hint()})")
    layout = LAYOUTS[name]
    layer = registry.gnn_layer(name, backend).factory(8, 8, **layout.options)
    assert set(layer.neutral_state_dict()) == set(layout.keys)
    assert layer.supports_edge_weight is layout.edge_weight


def test_the_documented_builtin_layer_diff_is_in_the_source(tmp_path):
    """docs/plugins.md shows the whole diff of adding a built-in layer; it must still be what the source holds
    (the diff applies in reverse to the checkout), so the page cannot drift from the code."""
    import shutil
    import subprocess

    root = DOCS.parents[1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("needs git and a git checkout (git apply --check)")
    page = (root / "docs" / "plugins.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- builtin-layer-diff -->\n```diff\n(.*?)```\n<!-- /builtin-layer-diff -->", page, re.S)
    assert found, "docs/plugins.md: the built-in layer diff block is missing"
    diff = found.group(1)
    touched = sorted(set(re.findall(r"^\+\+\+ b/(\S+)", diff, re.M)))
    assert "glm/core/layouts.py" in touched and {"glm/backends/pyg.py", "glm/backends/gammagl.py"} <= set(touched)
    patch = tmp_path / "layer.diff"
    patch.write_text(diff, encoding="utf-8")
    done = subprocess.run(["git", "apply", "--check", "--reverse", str(patch)], cwd=root, capture_output=True,
                          text=True)
    assert done.returncode == 0, f"docs/plugins.md's diff no longer matches the source: {done.stderr.strip()}"
