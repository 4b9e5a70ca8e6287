"""Slow: SmolLM2-135M adapted on the demo split with the LLM frozen and with LoRA (r=8 on q/v, its own
learning rate), from the same random graph side (the demo's adapt config, no pre-training, so the
test stands alone); both evaluate on the demo's test nodes and the accuracies are printed side by side
(measured numbers with a pre-trained graph side: docs/training.md, "Choosing a tuning mode")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from safetensors import safe_open

from train_helpers import run_glm

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("peft", reason='PEFT is not installed: pip install -e ".[quant]"')


@pytest.mark.slow
def test_smollm2_lora_adapt_vs_frozen(tmp_path, data_dir, capsys):
    cfg = ROOT / "examples" / "demo_adapt.yaml"
    common = ["--backend", "pyg", "training.init_from=null"]
    modes = {"frozen": [], "lora": ["model.llm.tuning=lora", "model.llm.learning_rate=1e-4"]}
    accuracy = {}
    for mode, extra in modes.items():
        out = tmp_path / mode
        r = run_glm(tmp_path, "adapt", str(cfg), "--output-dir", str(out), "--no-progress", *common, *extra,
                    timeout=1800)
        assert r.returncode == 0, r.stderr[-3000:]
        r = run_glm(tmp_path, "eval", str(cfg), "--adapter", str(out), *common, *extra, timeout=1800)
        assert r.returncode == 0, r.stderr[-3000:]
        accuracy[mode] = float(re.search(r"accuracy ([0-9.]+)", r.stdout).group(1))
        with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
            lora = [k for k in f.keys() if ".lora_B." in k]
            if mode == "lora":
                assert lora and any(float(f.get_tensor(k).abs().max()) > 0 for k in lora), "LoRA B did not move"
            else:
                assert not lora
    with capsys.disabled():
        print(f"\nSmolLM2 demo split, adapt from a random graph side: test accuracy frozen {accuracy['frozen']:.3f}, "
              f"LoRA r=8 q/v {accuracy['lora']:.3f}")
    assert all(0.0 <= a <= 1.0 for a in accuracy.values())
