"""Meta-tests (datasette-style): every hook has a test and a section in docs/plugins.md."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from glm.plugins import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
               if hasattr(fn, "glm_spec"))


def test_hookspecs_found():
    assert "register_gnn_layers" in HOOKS and len(HOOKS) >= 5


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook):
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    assert re.search(rf"^def test_hook_{hook}\(", tests, flags=re.M), f"add a test named test_hook_{hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook):
    docs = (ROOT / "docs" / "plugins.md").read_text()
    assert f"### {hook}\n" in docs, f"add a '### {hook}' section to docs/plugins.md"


def test_docs_list_every_conformance_check():
    from glm.testing import ALL_CHECKS, GnnLayerConformance

    docs = (ROOT / "docs" / "plugins.md").read_text()
    assert [c for c in ALL_CHECKS if f"| `{c}` |" not in docs] == []
    assert {n[5:] for n in vars(GnnLayerConformance) if n.startswith("test_")} == set(ALL_CHECKS)
