"""Choice scoring's shared prompt head, run through the LLM once.

Every scoring prompt begins with the same tokens: the chat template's system turn and the task's opening
words up to the first graph token (SmolLM2: 25 of ~240 tokens; Vicuna's system prompt is longer). The
LLM's keys and values for that head are computed once (:class:`PrefixCache`) and shared by every row of
every batch; each forward then runs only the rest of the prompt. Rows are left padded, so a row
``[pad * s][head][rest]`` becomes ``[pad * s][rest]`` after the cached head, with the pads masked and
positions counted on from the head's length, which is what the full forward computes. Batches whose rows
do not start with the head (or are not left padded) fall back to the full forward.

Shapes:
    - **head ids:** ``[P]``; cached keys / values per layer ``[1, kv_heads, P, head_dim]``
    - **batch:** ``input_ids``, ``attention_mask`` ``[B, L]`` (left padded) -> last logits ``[B, V]``
"""

from __future__ import annotations

import copy
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

MIN_PREFIX = 8  # a shorter head saves less than the cache copy costs


def shared_head(id_lists: Sequence[Sequence[int]], stop_ids: Sequence[int]) -> list[int]:
    """The longest common first tokens of ``id_lists``, cut before the first of ``stop_ids`` (graph tokens,
    whose embeddings a method may compute) and one token short of the shortest list."""
    if not id_lists:
        return []
    first, stops = list(id_lists[0]), set(int(t) for t in stop_ids)
    n = min(len(ids) for ids in id_lists) - 1
    for ids in id_lists[1:]:
        n = min(n, next((i for i, (a, b) in enumerate(zip(first, ids)) if a != b), n))
    n = next((i for i, t in enumerate(first[:n]) if t in stops), n)
    return first[:max(n, 0)]


class PrefixCache:
    """Keys and values of ``head`` on ``model.llm``, reused for every batch (see the module docstring)."""

    def __init__(self, model: Any, head: Sequence[int]) -> None:
        device = next(model.parameters()).device
        self.head = torch.tensor(list(head), dtype=torch.long, device=device)
        ids = self.head[None]
        embeds = model.llm.get_input_embeddings()(ids)
        out = model.llm(inputs_embeds=embeds, attention_mask=torch.ones_like(ids),
                        position_ids=torch.arange(ids.shape[1], device=device)[None], use_cache=True,
                        **logits_to_keep(model))
        self.cache = getattr(out, "cache", None) or out.past_key_values
        self.cache_arg = _cache_argument(model.llm)

    @property
    def length(self) -> int:
        return int(self.head.numel())

    def last_logits(self, model: Any, batch: Any) -> Optional[Tensor]:
        """``[B, V]`` logits at each row's last position, or ``None`` when the batch does not fit the head."""
        ids, mask = batch.input_ids, batch.attention_mask
        b, length = ids.shape
        p = self.length
        pad = (mask == 0).sum(dim=1)
        j = torch.arange(length, device=ids.device)
        if not torch.equal(mask.bool(), j[None] >= pad[:, None]) or int(pad.max()) + p >= length:
            return None  # not left padded, or a row no longer than the head
        starts = pad[:, None] + torch.arange(p, device=ids.device)[None]
        if not bool((ids.gather(1, starts) == self.head[None]).all()):
            return None
        embeds = model.embed(batch)
        rest_len = length - p
        k = torch.arange(rest_len, device=ids.device)[None]
        src = torch.where(k < pad[:, None], k, k + p)  # [B, L-P]: the head's columns left out
        rest = embeds.gather(1, src[..., None].expand(-1, -1, embeds.shape[-1]))
        real = k >= pad[:, None]
        full_mask = torch.cat([torch.ones(b, p, dtype=mask.dtype, device=mask.device), real.to(mask.dtype)], dim=1)
        positions = (p + k - pad[:, None]).clamp(min=p)
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(b)
        out = model.llm(inputs_embeds=rest, attention_mask=full_mask, position_ids=positions,
                        **{self.cache_arg: cache}, use_cache=True, **logits_to_keep(model))
        return out.logits[:, -1]


def _cache_argument(llm: Any) -> str:
    """``cache`` (transformers >= 5.25) or ``past_key_values`` (earlier), on the model a PEFT wrapper wraps."""
    import inspect

    from glm.core.tuning import base_llm

    return "cache" if "cache" in inspect.signature(base_llm(llm).forward).parameters else "past_key_values"


def logits_to_keep(model: Any) -> dict[str, Any]:
    from glm.core.model import _accepts_logits_to_keep

    llm = getattr(model, "llm", None)
    return {"logits_to_keep": 1} if llm is not None and _accepts_logits_to_keep(llm) else {}
