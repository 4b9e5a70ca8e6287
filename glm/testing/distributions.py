"""Build and install a throw-away plugin distribution, to test discovery end to end.

The distribution is a real ``pyproject.toml`` project with ``[project.entry-points.glm]``,
installed with ``pip install --no-deps --no-build-isolation --no-index --target DIR`` (no
network). Put ``DIR`` on ``PYTHONPATH`` of a subprocess and glm finds the plugin exactly as
it finds one installed from PyPI.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def build_plugin_distribution(
    root: Path,
    dist_name: str,
    modules: dict[str, str],
    entry_points: dict[str, str],
    version: str = "0.1.0",
) -> Path:
    """Write a project under ``root/src-<dist_name>`` and install it into ``root/site-<dist_name>``.

    Args:
        root: an empty-ish work folder (e.g. pytest's ``tmp_path``).
        dist_name: distribution name, e.g. ``"glm-wgin"``.
        modules: top-level module name -> Python source (``{"glm_gin": "..."}``).
        entry_points: entry-point name -> ``"module"`` or ``"module:attr"`` (group ``glm``).
        version: distribution version.

    Returns:
        The install folder, to put on ``PYTHONPATH``.
    """
    src, target = Path(root) / f"src-{dist_name}", Path(root) / f"site-{dist_name}"
    src.mkdir(parents=True, exist_ok=True)
    eps = "\n".join(f'{name} = "{value}"' for name, value in entry_points.items())
    (src / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist_name}"
        version = "{version}"

        [project.entry-points.glm]
        """) + eps + "\n\n[tool.setuptools]\npy-modules = " + repr(sorted(modules)).replace("'", '"') + "\n")
    for name, source in modules.items():
        (src / f"{name}.py").write_text(textwrap.dedent(source))
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
           "--no-index", "--disable-pip-version-check", "--target", str(target), str(src)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"installing {dist_name} failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
    return target
