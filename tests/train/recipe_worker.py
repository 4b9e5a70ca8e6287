"""Train the tiny config with one recipe in a fresh process and report what happened as JSON
(used by test_offload_recipes.py): the DeepSpeed engine's set-up, the losses, which tensors
moved, and what the adapter and DeepSpeed checkpoint hold. ``python recipe_worker.py CONFIG OUT REPORT``."""

import json
import sys
from pathlib import Path

import torch


def main(config: str, out: str, report: str) -> None:
    import deepspeed

    from glm.core.adapter import read_adapter
    from glm.core.config import load_config
    from glm.core.train.pipeline import build_model, run_stage

    engines = []
    initialize = deepspeed.initialize

    def keep_engine(*args, **kwargs):  # the real initialize; the engine is kept for inspection
        result = initialize(*args, **kwargs)
        engines.append(result[0])
        return result

    deepspeed.initialize = keep_engine
    cfg = load_config(config, [f"training.output_dir={out}"])
    model = build_model(cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result, model, _ = run_stage(cfg, progress=False, model=model)
    engine = engines[0]
    params = list(model.named_parameters())
    with deepspeed.zero.GatheredParameters([p for _, p in params], modifier_rank=None):  # no-op below ZeRO-3
        after = {n: p.detach().clone() for n, p in params}
    trainable = sorted(n for n, p in params if p.requires_grad)

    def same(name: str) -> bool:  # the engine casts the module to bf16; a cast is not an update
        return torch.equal(after[name], before[name].to(after[name].dtype))

    tensors, _ = read_adapter(Path(out) / "adapter_model.safetensors")
    model_states = sorted(Path(out).glob(f"checkpoint-{result.global_step}/global_step*/*model_states.pt"))
    ds_module = torch.load(model_states[0], weights_only=False, map_location="cpu")["module"] or {}
    inner = getattr(engine.optimizer, "optimizer", engine.optimizer)
    report_data = {
        "zero_stage": engine.zero_optimization_stage(),
        "bf16": engine.bfloat16_enabled(),
        "offload_optimizer": bool(engine.zero_cpu_offload()),
        "optimizer": type(inner).__name__,
        "gradient_checkpointing": bool(model.llm.is_activation_checkpointing),
        "llm_dtype": str(next(model.llm.parameters()).dtype),
        "global_step": result.global_step,
        "losses": [r["loss"] for r in result.log_history],
        "trainable": trainable,
        "unchanged_trainable": [n for n in trainable if same(n)],
        "llm_params": sum(1 for n in after if n.startswith("llm.")),
        "changed_frozen": [n for n, p in params if not p.requires_grad and not same(n)],
        "adapter_keys": sorted(tensors),
        "adapter_mismatch": [n for n in trainable if n in tensors
                             and not torch.equal(tensors[n].float(), after[n].float())],
        "ds_module_keys": sorted(ds_module),
    }
    Path(report).write_text(json.dumps(report_data, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:4])
