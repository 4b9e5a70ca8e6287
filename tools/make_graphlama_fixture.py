"""Record GraphLAMA outputs and adapters of glm 0.1 (run once, at the commit before the method seam).

The test ``tests/methods/test_graphlama_compat.py`` rebuilds the same model with today's code,
loads these adapters and checks that tensors, logits and loss are bit-identical.

    python tools/make_graphlama_fixture.py tests/fixtures/graphlama_v01
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "core"))
from model_helpers import sample_batch, tiny_model  # noqa: E402

from glm.core.adapter import save_adapter  # noqa: E402
from glm.core.stages import set_stage  # noqa: E402

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
model = tiny_model("llama")
batch = sample_batch(model, [[5], [4, 6]], seed=3)
with torch.no_grad():
    base = model(batch)
# one AdamW step in each stage so the adapters differ from the init
for stage in ("pretrain", "adapt"):
    set_stage(model, stage)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = model(batch).loss
    loss.backward()
    opt.step()
    opt.zero_grad()
    save_adapter(model, out / f"{stage}.safetensors", stage)
with torch.no_grad():
    after = model(batch)
graph_side = {n: p.detach().clone() for n, p in model.graph_parameters().items()}
save_file({"init_logits": base.logits, "init_loss": base.loss.reshape(1), "logits": after.logits,
           "loss": after.loss.reshape(1), **{f"state.{k}": v.contiguous() for k, v in graph_side.items()}},
          str(out / "expected.safetensors"))
print("wrote", out, "loss", float(after.loss))
