"""Helpers for plugin-seam tests: docs code blocks, modules from source, running the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GLM_ENV = ("GLM_STRICT_PLUGINS", "GLM_DISABLED_PLUGINS", "GLM_LOAD_PLUGINS", "GLM_TRACE_PLUGINS", "GLM_BACKEND")


def docs_block(first_line: str, page: str = "plugins.md") -> str:
    """The fenced code block of ``docs/<page>`` whose first line is ``first_line``."""
    text = (ROOT / "docs" / page).read_text()
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        if block.startswith(first_line + "\n"):
            return block
    raise AssertionError(f"docs/{page} has no code block starting with {first_line!r}")


def module_from_source(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = f"<{name}>"
    sys.modules[name] = module  # dataclasses / pickling look modules up here
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module




def run_glm(*args: str, paths: tuple[Path, ...] = (), env: dict[str, str] | None = None,
            module: str | None = "glm.cli.main") -> subprocess.CompletedProcess:
    """Run ``python -m MODULE ARGS`` (``module=None``: ``python ARGS``) in a fresh process, so
    no global state leaks, with ``paths`` (installed throw-away plugins) on ``PYTHONPATH``."""
    clean = {k: v for k, v in os.environ.items() if k not in GLM_ENV and k != "PYTHONPATH"}
    clean["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    clean.update(env or {})
    cmd = [sys.executable, *(["-m", module] if module else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=clean, timeout=120)


BROKEN_IMPORT = '''
raise RuntimeError("broken at import")
'''

BROKEN_REGISTER = '''
from glm.plugins import hookimpl

@hookimpl
def register_gnn_layers(register):
    raise ValueError("broken inside register_gnn_layers")
'''
