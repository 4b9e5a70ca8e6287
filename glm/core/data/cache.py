"""On-disk cache helpers: cache folder, content-hash keys, atomic tensor/JSON writes.

Cache folder: ``$GLM_CACHE_DIR`` or ``~/.cache/glm``. Every file is written to a temporary
name in the same folder and moved into place with :func:`os.replace`, so a crash never leaves a
half-written entry that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
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


def _atomic(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_torch_save(obj: Any, path: Path | str) -> Path:
    return _atomic(Path(path), lambda f: torch.save(obj, f))


def atomic_write_text(text: str, path: Path | str) -> Path:
    return _atomic(Path(path), lambda f: f.write(text.encode("utf-8")))


def load_cached(path: Path | str) -> Optional[Any]:
    """The cached object, or ``None`` when absent or unreadable (a corrupt entry is ignored)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
