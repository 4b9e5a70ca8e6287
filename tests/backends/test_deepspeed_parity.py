"""Both backends' encoders trained by real DeepSpeed engines with the 3090 recipe (ZeRO-2,
optimizer offloaded to CPU with DeepSpeedCPUAdam, bf16), on CPU with gloo in one process,
from the same neutral weights on the same data: before training and after a few steps the bf16
embeddings, and after the steps the weights, must agree within 1e-2 (flat, scaled as in
``conftest.scaled_diff``: absolute up to 1, relative above).

DeepSpeed's CPU-Adam and shm_comm ops are JIT-built once (``make`` builds CPU-Adam after installing);
where CPU-Adam cannot be built the recipe runs with glm's fallback (torch AdamW), as glm runs it
(``glm/core/train/ds_compat.py``), and the parity is checked all the same.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import (
    BACKENDS,
    REFERENCE_BACKEND,
    record,
    scaled_diff,
    skip_unless_available,
    synthetic_case,
)

from glm.core.encoder import EncoderConfig, GraphEncoder
from glm.plugins import get_registry

deepspeed = pytest.importorskip("deepspeed", reason="DeepSpeed is not installed: pip install -e '.[deepspeed]'")

RECIPE = "3090-zero2-offload"
STEPS = 3
BF16_TOL = 1e-2
CASES = {
    "gt": dict(layer="gt", in_dim=12, hidden_dim=16, out_dim=16, num_layers=2, heads=4),
    "gcn": dict(layer="gcn", in_dim=12, hidden_dim=16, out_dim=16, num_layers=2),
    "gat": dict(layer="gat", in_dim=12, hidden_dim=16, out_dim=16, num_layers=2, heads=2),
    "sage": dict(layer="sage", in_dim=12, hidden_dim=16, out_dim=16, num_layers=2),
}


def recipe_config() -> dict:
    """The registered 3090 ZeRO-2 offload recipe with its "auto" fields filled for one process."""
    spec = get_registry().recipes.get(RECIPE)
    if spec is None:
        pytest.skip(f"recipe {RECIPE!r} is not registered")
    config = spec.source if isinstance(spec.source, dict) else json.loads(spec.source.read_text())
    config = json.loads(json.dumps(config))
    config.pop("_glm", None)
    config.update(train_micro_batch_size_per_gpu=1, gradient_accumulation_steps=1, train_batch_size=1,
                  gradient_clipping=1.0)
    config["optimizer"]["params"].update(lr=1e-3, betas=[0.9, 0.999], weight_decay=0.0)
    config["bf16"] = {"enabled": True}
    zero = config["zero_optimization"]
    zero["reduce_bucket_size"] = 500_000
    zero["offload_optimizer"]["pin_memory"] = False  # no CUDA to pin for
    assert zero["stage"] == 2 and zero["offload_optimizer"]["device"] == "cpu"
    return config


@pytest.fixture(scope="module")
def gloo():
    from glm.core.train.dist import init_distributed

    init_distributed()  # gloo, one process, DeepSpeed's shared-memory segment released
    yield


def engine_for(backend: str, config: EncoderConfig, state: dict, ds_config: dict):
    from glm.core.train.ds_compat import offload_optimizer_fallback

    encoder = GraphEncoder(config, backend)
    encoder.load_neutral_state_dict(state)
    # where DeepSpeed cannot build CPU-Adam here, the recipe runs as glm runs it: torch AdamW, same offload
    fallback = offload_optimizer_fallback(ds_config)
    engine, optimizer, _, _ = deepspeed.initialize(model=encoder, model_parameters=encoder.parameters(),
                                                   config=ds_config)
    get_registry().backend(backend).load().prepare_device(engine.device)  # GammaGL's device scope (CUDA boxes)
    assert type(optimizer.optimizer).__name__ == ("AdamW" if fallback else "DeepSpeedCPUAdam")
    return engine


def embedding_diff(engines, batch) -> float:
    for engine in engines:
        engine.eval()
    with torch.no_grad():
        outs = [engine(batch) for engine in engines]
    assert all(out.dtype == torch.bfloat16 for out in outs)
    return scaled_diff(*outs)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layer", list(CASES))
def test_deepspeed_zero2_offload_bf16_parity(gloo, backend, layer):
    skip_unless_available(REFERENCE_BACKEND)
    skip_unless_available(backend)
    config = EncoderConfig(dropout=0.0, **CASES[layer])
    torch.manual_seed(0)
    state = GraphEncoder(config, REFERENCE_BACKEND).neutral_state_dict()
    ds_config = recipe_config()
    engines = [engine_for(name, config, state, ds_config) for name in (REFERENCE_BACKEND, backend)]

    device = engines[0].device  # DeepSpeed places the module: the CPU here, cuda:0 on a GPU box (glm devcheck)
    batch = synthetic_case("weighted", f=12).batch.to(device)
    batch.x, batch.edge_weight = batch.x.to(torch.bfloat16), batch.edge_weight.to(torch.bfloat16)
    target = torch.randn(batch.num_nodes, config.out_dim, generator=torch.Generator().manual_seed(5)).to(device)
    initial = embedding_diff(engines, batch)  # bf16 forward disagreement before any step
    losses = {name: [] for name in (REFERENCE_BACKEND, backend)}
    for _ in range(STEPS):
        for name, engine in zip(losses, engines):
            engine.train()
            loss = (engine(batch).float() - target).square().mean()
            engine.backward(loss)
            engine.step()
            losses[name].append(loss.item())

    ref_loss, other_loss = losses[REFERENCE_BACKEND], losses[backend]
    assert ref_loss[-1] < ref_loss[0], f"training did not lower the loss: {ref_loss}"
    emb = embedding_diff(engines, batch)
    states = [engine.module.neutral_state_dict() for engine in engines]
    assert states[0].keys() == states[1].keys()
    weights = max(scaled_diff(states[0][k], states[1][k]) for k in states[0])
    moved = max(scaled_diff(states[0][k], state[k]) for k in state)
    record(f"deepspeed {layer}: embeddings before training", initial)
    record(f"deepspeed {layer}: embeddings after {STEPS} steps", emb)
    record(f"deepspeed {layer}: weights after {STEPS} steps", weights)
    record(f"deepspeed {layer}: loss diff", max(abs(a - b) for a, b in zip(ref_loss, other_loss)))
    record(f"deepspeed {layer}: weight change (both)", moved)
    assert moved > 1e-3, "the optimizer did not change the weights"
    assert initial <= BF16_TOL, f"bf16 embeddings differ by {initial:.3e} (scaled) before training"
    assert weights <= BF16_TOL, f"weights differ by {weights:.3e} (scaled) after {STEPS} steps"
    assert emb <= BF16_TOL, f"embeddings differ by {emb:.3e} (scaled) after {STEPS} steps"
