"""Training health for the log: gradient norm per parameter group and the soft tokens' scale.

Every ``logging_steps`` the trainer adds to ``trainer_log.jsonl``:

* ``grad_norm/<group>``: L2 norm of the group's gradients at the last micro-batch of the step
  (under ZeRO-1/2/3 the partitioned gradients are assembled first). Groups are the method's
  ``parameter_groups`` (``gate.task_related``, ``gate.task_invariant`` for GraphLAMA), else the
  first component of the parameter name (``encoder``, ``hop``, ``projector``, ...; the LLM's
  trained tensors: ``lora`` or ``llm``);
* ``update_ratio/<group>``: ``|w_now - w_then| / |w_then|`` over the logging window (since the
  previous record), the parameter-update ratio;
* ``act/<module>/{mean,std,zero}``: mean, standard deviation and fraction of exact zeros of the
  encoder output and the node tokens in the last training forward (forward hooks, no extra
  forward; a fraction of zeros near 1 means dead units);
* ``token_norm``: mean L2 norm of the soft tokens the method produced (before ``model.token_norm``
  rescaling) and ``token_norm_ratio``: that over the LLM's mean input-embedding norm -- soft tokens
  far off the embedding scale (ratio far from 1 without rescaling) are a known failure.

One warning per run and kind: a non-finite group norm, a group norm above 100x its running median
(exploding) or below 1e-8 (vanishing).
"""

from __future__ import annotations

import logging
import math
import statistics
from typing import Any, Optional

import torch
from torch import nn

logger = logging.getLogger("glm.train")
EXPLODE, VANISH = 100.0, 1e-8


def total_norm(group_norms: dict[str, float]) -> Optional[float]:
    """The global gradient norm from the group norms (the groups partition the trainable parameters)."""
    return math.sqrt(sum(v * v for v in group_norms.values())) if group_norms else None


def parameter_groups(model: nn.Module, hints: tuple[str, ...] = ()) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Trainable parameters by group: the longest ``hints`` prefix that matches, else the name's first part;
    the LLM's trained tensors (``model.llm.tuning``) are ``lora`` or ``llm``."""
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        match = max((h for h in hints if name == h or name.startswith(h + ".")), key=len, default=None)
        if match is None and name.startswith("llm."):
            match = "lora" if ".lora_" in name else "llm"
        groups.setdefault(match or name.split(".")[0], []).append((name, p))
    return groups


class TrainingHealth:
    """Gradient norms per group and soft-token scale of ``model`` (a GraphLanguageModel or any module)."""

    def __init__(self, model: nn.Module) -> None:
        method = getattr(model, "method", None)
        self.model = model
        self.groups = parameter_groups(model, tuple(getattr(method, "parameter_groups", ()) or ()))
        self.history: dict[str, list[float]] = {}
        self.warned: set[tuple[str, str]] = set()
        self.embedding_norm = model.embedding_norm() if hasattr(model, "embedding_norm") else None
        self.last: dict[str, float] = {}
        self.snapshot = self._weights()
        self.activations: dict[str, dict[str, float]] = {}
        self.hooks = []
        watched = {"encoder": getattr(model, "encoder", None), "tokens": getattr(model, "node_token_module", None)}
        for name, module in watched.items():
            if isinstance(module, nn.Module):
                self.hooks.append(module.register_forward_hook(self._activation_hook(name)))

    def _activation_hook(self, name: str):
        def hook(module: nn.Module, _inputs: Any, out: Any) -> None:
            if module.training and isinstance(out, torch.Tensor) and out.numel():
                x = out.detach().float()
                self.activations[name] = {"mean": float(x.mean()), "std": float(x.std()) if x.numel() > 1 else 0.0,
                                          "zero": float((x == 0).float().mean())}
        return hook

    def close(self) -> None:
        for h in self.hooks:
            h.remove()
        self.hooks.clear()

    def _weights(self) -> dict[str, list[torch.Tensor]]:
        return {g: [p.detach().float().clone() for _, p in params if p.numel()] for g, params in self.groups.items()}

    def update_ratios(self) -> dict[str, float]:
        """``|w_now - w_then| / |w_then|`` per group since the last call; takes a new snapshot."""
        now = self._weights()
        out = {}
        for g, then in self.snapshot.items():
            if then and len(then) == len(now.get(g, [])):
                delta = math.sqrt(sum(float((a - b).pow(2).sum()) for a, b in zip(now[g], then)))
                base = math.sqrt(sum(float(b.pow(2).sum()) for b in then))
                out[g] = delta / base if base > 0 else float("inf") if delta > 0 else 0.0
        self.snapshot = now
        return out

    def grad_norms(self, partitioned: bool = False) -> dict[str, float]:
        """L2 norm of each group's gradients. ``partitioned`` (ZeRO-1/2/3): the full gradients are
        assembled with DeepSpeed's ``safe_get_full_grad`` -- a collective: every rank must call this,
        after backward and before the optimizer step."""
        if partitioned:
            from deepspeed.utils import safe_get_full_grad
        out = {}
        for group, params in self.groups.items():
            full = [safe_get_full_grad(p) if partitioned else p.grad for _, p in params]
            grads = [g.detach().float().norm() for g in full if g is not None]
            if grads:
                out[group] = float(torch.linalg.vector_norm(torch.stack(grads)))
        return out

    def observe(self, grad_norms: Optional[dict[str, float]]) -> None:
        """Every optimizer step: keep the norms for the next record; warn (once per kind and group) on bad ones."""
        self.last = grad_norms or {}
        for group, value in self.last.items():
            self._check(group, value)

    def record(self) -> dict[str, Any]:
        """The health fields of one log record (the last observed step)."""
        rec: dict[str, Any] = {f"grad_norm/{g}": v for g, v in self.last.items()}
        rec.update({f"update_ratio/{g}": v for g, v in self.update_ratios().items()})
        for name, stats in self.activations.items():
            rec.update({f"act/{name}/{k}": round(v, 6) for k, v in stats.items()})
        token = getattr(self.model, "last_token_norm", None)
        if token is not None:
            rec["token_norm"] = round(token, 5)
            if self.embedding_norm:
                rec["token_norm_ratio"] = round(token / self.embedding_norm, 5)
        return rec

    def _check(self, group: str, value: float) -> None:
        past = self.history.setdefault(group, [])
        if not math.isfinite(value):
            self._warn(group, "nan", f"gradient norm of {group} is {value}")
        elif value < VANISH:
            self._warn(group, "vanish", f"gradient norm of {group} is {value:.2e} (< {VANISH:g}): vanishing")
        elif len(past) >= 3 and value > EXPLODE * statistics.median(past):
            self._warn(group, "explode", f"gradient norm of {group} is {value:.3g}, over {EXPLODE:g}x its median "
                                         f"{statistics.median(past):.3g}: exploding")
        if math.isfinite(value):
            past.append(value)

    def _warn(self, group: str, kind: str, message: str) -> None:
        if (group, kind) not in self.warned:
            self.warned.add((group, kind))
            logger.warning("training health: %s (said once per run)", message)
