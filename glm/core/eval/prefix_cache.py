"""Prompts' shared head, run through the LLM once.

Every scoring prompt begins with the same tokens: the chat template's system turn and the task's opening
words up to the first graph token (SmolLM2: 25 of ~240 tokens; Vicuna's system prompt is longer). The
LLM's keys and values for that head are computed once (:class:`PrefixCache`) and shared by every row of
every batch; each forward then runs only the rest of the prompt. Rows are left padded, so a row
``[pad * s][head][rest]`` becomes ``[pad * s][rest]`` after the cached head, with the pads masked and
positions counted on from the head's length, which is what the full forward computes. Batches whose rows
do not start with the head (or are not left padded) fall back to the full forward.

:class:`PromptHead` does the same for a plain LLM's token-id prompts (the text rows of the benches: an
in-context row repeats the same demonstrations before every test node): a batch is laid out as
``[head | pad ... | rest]``, for one forward (:meth:`HeadBatch.forward_inputs`) or for ``generate``
(:meth:`HeadBatch.generate_inputs`, which skips the cached positions).

Shapes:
    - **head ids:** ``[P]``; cached keys / values per layer ``[1, kv_heads, P, head_dim]``
    - **batch:** ``input_ids``, ``attention_mask`` ``[B, L]`` (left padded) -> last logits ``[B, V]``
    - **PromptHead batch:** ``input_ids``, ``attention_mask``, ``position_ids`` ``[B, P + S]`` (``S``: the
      longest rest), the head's cache for ``B`` rows
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
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
        self.cache = _prefill(model.llm, self.head, **logits_to_keep(model))
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
        out = model.llm(inputs_embeds=rest, attention_mask=full_mask, position_ids=positions,
                        **{self.cache_arg: _repeated(self.cache, b)}, use_cache=True, **logits_to_keep(model))
        return out.logits[:, -1]


@torch.no_grad()
def left_pad(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """``(input_ids, attention_mask)`` ``[B, L]`` of token-id rows padded on the left (the last position of
    every row is its last real token: it predicts the reply)."""
    width = max(map(len, ids))
    batch = torch.full((len(ids), width), pad_id)
    mask = torch.zeros_like(batch)
    for r, row in enumerate(ids):
        batch[r, width - len(row):] = torch.tensor(list(row))
        mask[r, width - len(row):] = 1
    return batch, mask


@dataclass
class HeadBatch:
    """Rows laid out as ``[head | pad ... | rest]`` after ``prompt_head``'s head, with a copy of its cache
    repeated for them (``None``: no head)."""

    input_ids: Tensor
    attention_mask: Tensor
    position_ids: Tensor
    cache: Optional[Any]
    prompt_head: "PromptHead"

    def forward_inputs(self) -> dict[str, Any]:
        """Keyword arguments of one forward pass over the rest (the head is in the cache) that returns the
        logits of the last position (of every position where the LLM cannot keep only the last)."""
        p, h = len(self.prompt_head.head), self.prompt_head
        out = {"input_ids": self.input_ids[:, p:], "attention_mask": self.attention_mask,
               "position_ids": self.position_ids[:, p:], **h.last_only}
        return {**out, h.cache_arg: self.cache} if self.cache is not None else out

    def generate_inputs(self) -> dict[str, Any]:
        """Keyword arguments of ``generate``: the whole rows (it skips the cached positions)."""
        out = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        return {**out, self.prompt_head.cache_arg: self.cache} if self.cache is not None else out


class PromptHead:
    """The shared head of a plain LLM's token-id prompts ``rows`` (every batch of the call), prefilled once
    when at least :data:`MIN_PREFIX` tokens long."""

    def __init__(self, llm: Any, rows: Sequence[Sequence[int]]) -> None:
        self.head = shared_head(rows, stop_ids=())
        if len(self.head) < MIN_PREFIX:
            self.head = []
        self.device = next(llm.parameters()).device
        self.cache_arg = _cache_argument(llm)
        self.last_only = last_logits_only(llm)
        head = torch.tensor(self.head, device=self.device)
        self.cache = _prefill(llm, head, **self.last_only) if self.head else None

    def batch(self, rows: Sequence[Sequence[int]], pad_id: int) -> HeadBatch:
        """``rows`` (each starting with the head) on the LLM's device: the head, then the left-padded rest."""
        p = len(self.head)
        if any(list(r[:p]) != self.head for r in rows):
            raise ValueError("a prompt does not start with the head it is batched after")
        rest, mask = left_pad([r[p:] for r in rows], pad_id)
        b = len(rows)
        ids = torch.cat([torch.tensor(self.head, dtype=rest.dtype).expand(b, p), rest], 1)
        mask = torch.cat([torch.ones(b, p, dtype=mask.dtype), mask], 1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = _repeated(self.cache, b) if self.cache is not None else None
        return HeadBatch(ids.to(self.device), mask.to(self.device), positions.to(self.device), cache, self)


@torch.no_grad()
def _prefill(llm: Any, head: Tensor, **extra: Any) -> Any:
    """The LLM's key/value cache of the token ids ``head`` ``[P]`` (one row)."""
    ids = head[None]
    out = llm(inputs_embeds=llm.get_input_embeddings()(ids), attention_mask=torch.ones_like(ids),
              position_ids=torch.arange(ids.shape[1], device=ids.device)[None], use_cache=True, **extra)
    return getattr(out, "cache", None) or out.past_key_values


def _repeated(cache: Any, rows: int) -> Any:
    """A copy of a one-row ``cache`` for ``rows`` rows (forward and ``generate`` extend it in place)."""
    cache = copy.deepcopy(cache)
    cache.batch_repeat_interleave(rows)
    return cache


def _cache_argument(llm: Any) -> str:
    """``cache`` (transformers >= 5.25) or ``past_key_values`` (earlier), on the model a PEFT wrapper wraps."""
    import inspect

    from glm.core.tuning import base_llm

    return "cache" if "cache" in inspect.signature(base_llm(llm).forward).parameters else "past_key_values"


def logits_to_keep(model: Any) -> dict[str, Any]:
    """``logits_to_keep=1`` where the graph model's LLM takes it (the last position's logits only)."""
    llm = getattr(model, "llm", None)
    return last_logits_only(llm) if llm is not None else {}


def last_logits_only(llm: Any) -> dict[str, Any]:
    """``logits_to_keep=1`` where the LLM's ``forward`` takes it, else nothing (every position's logits)."""
    from glm.core.model import _accepts_logits_to_keep

    return {"logits_to_keep": 1} if _accepts_logits_to_keep(llm) else {}
