"""Test-wide environment: offline hub, torch backend for tensorlayerx, single-process DeepSpeed."""

import os
import socket

os.environ.setdefault("TL_BACKEND", "torch")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("LOCAL_SIZE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(autouse=True)
def _own_bench_cache(tmp_path, monkeypatch):
    """Each test keeps the benches' pre-trained runs (``$GLM_BENCH_CACHE``) in its own folder (subprocesses too)."""
    monkeypatch.setenv("GLM_BENCH_CACHE", str(tmp_path / "bench-cache"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The read-only data folder: ``$GLM_DATA_DIR`` when set, else ``../shared/data`` beside the project (as
    glm looks for it); tests needing it skip when it is absent."""
    found = Path(os.environ["GLM_DATA_DIR"]).expanduser() if os.environ.get("GLM_DATA_DIR") else SHARED / "data"
    if not found.is_dir():
        pytest.skip(f"data folder not found at {'$GLM_DATA_DIR' if os.environ.get('GLM_DATA_DIR') else '../shared/data'} "
                    "(real-data test; set GLM_DATA_DIR to the folder with citeseer_tag/ and planetoid/)")
    return found
