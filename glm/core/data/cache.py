"""On-disk cache helpers: cache folder, content-hash keys, load helpers (atomic writes: :mod:`glm.core.io`).

Cache folder: ``$GLM_CACHE_DIR`` or ``~/.cache/glm``. Every file is written to a temporary
name in the same folder and moved into place with :func:`os.replace`, so a crash never leaves a
half-written entry that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional

import torch


def default_cache_dir() -> Path:
    env = os.environ.get("GLM_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "glm"


def cache_key(*parts: Any) -> str:
    """Stable 20-hex-char key from the ``repr``/JSON of the parts."""
    blob = json.dumps([str(p) for p in parts], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def load_cached(path: Path | str) -> Optional[Any]:
    """The cached object, or ``None`` when absent or unreadable (a corrupt entry is ignored)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
