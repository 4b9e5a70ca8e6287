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
def shared_dir() -> Path:
    """The read-only data folder beside the project; tests needing it skip when it is absent."""
    if not (SHARED / "data").is_dir():
        pytest.skip("shared data folder not found at ../shared/data (real-data test)")
    return SHARED
