"""Reliability tests reuse the tiny training configuration of tests/train."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
