"""Discovery through real entry points: throw-away distributions installed with pip."""

from __future__ import annotations

import json
import textwrap

import pytest
from plugin_helpers import docs_block, run_glm

pytestmark = pytest.mark.timeout(300)


def plugin_warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("glm: warning: plugin")]


def test_docs_pyproject_matches_the_example_plugin():
    toml = docs_block("# pyproject.toml")
    assert '[project.entry-points.glm]\nwgin = "glm_wgin"' in toml


def test_third_party_layer_is_listed(installed_plugins):
    done = run_glm("plugins", paths=(installed_plugins["wgin"],))
    assert done.returncode == 0, done.stderr
    assert plugin_warning_lines(done.stderr) == []
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    wgin = rows["wgin"]
    assert wgin["distribution"] == "glm-wgin" and wgin["version"] == "0.1.0" and not wgin["builtin"]
    assert wgin["hooks"] == ["register_gnn_layers"] and wgin["registered"] == {"gnn_layers": ["wgin"]}
    assert wgin["status"] == "loaded" and wgin["errors"] == []


def test_third_party_layer_passes_the_conformance_kit(installed_plugins):
    code = textwrap.dedent("""
        from glm.plugins import get_registry
        from glm.testing import assert_gnn_layer
        registry = get_registry()
        assert registry.gnn_layer("wgin", "pyg").plugin == "wgin", registry.gnn_layers
        assert all("wgin" in registry.layers_for(b) for b in registry.backends)
        report = assert_gnn_layer("wgin", in_dim=16, out_dim=8)  # pure torch: no backend needed
        assert all(v.startswith("passed") for v in report.values()), report
        print("ok", report)
    """)
    done = run_glm("-c", code, paths=(installed_plugins["wgin"],), module=None)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")


def test_conformance_mixin_in_a_plugin_test_suite(installed_plugins, tmp_path):
    (tmp_path / "test_wgin_plugin.py").write_text(textwrap.dedent("""
        from glm.testing import GnnLayerConformance

        class TestGin(GnnLayerConformance):
            layer = "wgin"
            out_dim = 8
    """))
    done = run_glm("-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path),
                   paths=(installed_plugins["wgin"],), module="pytest")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "10 passed" in done.stdout, done.stdout[-2000:]


@pytest.mark.parametrize("which, stage", [("broken_import", "import"),
                                          ("broken_register", "register_gnn_layers")])
def test_broken_plugin_warns_once_and_cli_keeps_working(installed_plugins, which, stage):
    paths = (installed_plugins["wgin"], installed_plugins[which])
    done = run_glm("plugins", paths=paths)
    assert done.returncode == 0, done.stderr
    lines = plugin_warning_lines(done.stderr)
    assert len(lines) == 1, done.stderr
    assert f"'{which}'" in lines[0] and f"failed at {stage}" in lines[0] and "broken" in lines[0]
    assert "Traceback" not in done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows[which]["status"] == "failed" and rows[which]["errors"][0]["stage"] == stage
    assert rows["wgin"]["status"] == "loaded"  # the healthy plugin still works

    strict = run_glm("plugins", paths=paths, env={"GLM_STRICT_PLUGINS": "1"})
    assert strict.returncode != 0
    assert strict.stdout == ""
    err = strict.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("glm: error: plugin") and f"'{which}'" in err[0], strict.stderr



def test_disabled_plugin_is_not_imported(installed_plugins):
    paths = (installed_plugins["broken_import"],)
    done = run_glm("plugins", paths=paths, env={"GLM_DISABLED_PLUGINS": "broken_import", "GLM_STRICT_PLUGINS": "1"})
    assert done.returncode == 0, done.stderr
    assert {r["name"]: r["status"] for r in json.loads(done.stdout)}["broken_import"] == "disabled"


def test_load_plugins_selects_entry_points(installed_plugins):
    paths = (installed_plugins["wgin"], installed_plugins["broken_import"])
    done = run_glm("plugins", paths=paths, env={"GLM_LOAD_PLUGINS": "wgin"})
    assert done.returncode == 0 and plugin_warning_lines(done.stderr) == [], done.stderr
    names = {r["name"] for r in json.loads(done.stdout)}
    assert "wgin" in names and "broken_import" not in names


def test_python_dash_m_glm_works():
    done = run_glm("--version", module="glm")
    assert done.returncode == 0 and done.stdout.startswith("glm "), done.stderr
