"""One rank of the two-process test: train the tiny config, then save this rank's trainable
tensors to ``OUT/rank<r>.pt`` (launched by ``torch.distributed.run``)."""

import sys
from pathlib import Path

import torch


def main(config: str, out: str) -> None:
    from glm.core.config import load_config
    from glm.core.train.pipeline import run_stage

    cfg = load_config(config, [f"training.output_dir={out}"])
    result, model, _ = run_stage(cfg, progress=False)
    import torch.distributed as dist

    tensors = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    torch.save({"tensors": tensors, "world_size": dist.get_world_size(), "global_step": result.global_step},
               Path(out) / f"rank{dist.get_rank()}.pt")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
