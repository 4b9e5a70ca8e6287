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
