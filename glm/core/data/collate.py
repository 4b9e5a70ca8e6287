"""Samples -> :class:`~glm.core.sample.GraphBatch`: chat template, graph tokens, answer-only labels, padding.

For each sample the user prompt (``<graph>`` expanded to ``<g_start> <g_patch>*N <g_end>``) is
rendered with ``tokenizer.apply_chat_template`` (generation prompt included); the assistant reply
is the rest of the rendered conversation up to and including the end-of-turn / EOS token. Labels
are ``-100`` on the prompt and on padding, the token ids on the reply (as GraphGPT's
``preprocess_v1``). Tokenizers without a chat template get ``"User: {prompt}\\nAssistant: "``.

Truncation never cuts graph tokens: a reply that does not fit is shortened; a prompt (with its
graph tokens) that does not fit raises :class:`~glm.core.data.errors.ContextOverflowError`
(tasks bound text length with word budgets so this stays rare).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from glm.core.data.errors import ContextOverflowError
from glm.core.graph import GraphValidationError, SubgraphBatch
from glm.core.sample import GraphBatch, Sample
from glm.core.tokens import add_graph_tokens, expand_graph_placeholders

IGNORE_INDEX = -100
PLAIN_TEMPLATE = "User: {prompt}\nAssistant: "


class GraphCollator:
    """Collate :class:`Sample` lists into :class:`GraphBatch` (use as a ``DataLoader`` ``collate_fn``).

    Args:
        tokenizer: a Hugging Face tokenizer; the graph tokens are added to it (idempotent) - resize
            the model's embeddings afterwards (the model does this in glm).
        max_length: context limit in tokens (default: ``tokenizer.model_max_length`` when it is a real
            limit, else none).
        padding_side: ``"right"`` (training) or ``"left"`` (batched generation).
        inference: drop answers and labels; the prompt ends with the generation prompt.
        task_embedding: ``task_text -> [D_t]`` (e.g. :class:`glm.core.text.TaskTextEncoder`); ``None``
            leaves ``GraphBatch.task_embedding`` unset.
        system_prompt: optional system message (default: the template's own default, if any).
        tokens_per_graph: ``<g_patch>`` tokens per graph: ``None`` = one per node (GraphLAMA,
            GraphGPT), ``k`` = a fixed count (LLaGA's templates, prefix-token methods); take it from
            the model's method (``model.node_token_module.tokens_per_graph``).
        validate: check every subgraph with :meth:`Subgraph.validate` (finite features, target at
            node 0, edges in range) -- on by default; a sample that fails names itself.
    """

    def __init__(self, tokenizer, max_length: Optional[int] = None, padding_side: str = "right",
                 inference: bool = False, task_embedding: Optional[Callable[[str], Tensor]] = None,
                 system_prompt: Optional[str] = None, tokens_per_graph: Optional[int] = None, validate: bool = True):
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.tokenizer = tokenizer
        self.graph_token_ids = add_graph_tokens(tokenizer)
        limit = getattr(tokenizer, "model_max_length", None)
        self.max_length = max_length if max_length is not None else (limit if limit and limit < 1_000_000 else None)
        self.padding_side = padding_side
        self.inference = inference
        self.task_embedding = task_embedding
        self.system_prompt = system_prompt
        self.tokens_per_graph = tokens_per_graph
        self.validate = validate
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise ValueError("the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token")
        self.pad_id = int(pad)
        self._first_reply_token: dict[str, Optional[int]] = {}

    # -- rendering -------------------------------------------------------------------------------
    def _messages(self, prompt: str, answer: Optional[str]) -> list[dict]:
        msgs = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        msgs.append({"role": "user", "content": prompt})
        if answer is not None:
            msgs.append({"role": "assistant", "content": answer})
        return msgs

    def render(self, prompt: str, answer: str) -> tuple[str, str]:
        """``(prompt_text, reply_text)``: the reply text is what follows the generation prompt in the
        rendered conversation, cut after the first EOS / end-of-turn token."""
        tok = self.tokenizer
        eos = tok.eos_token or ""
        if getattr(tok, "chat_template", None):
            head = tok.apply_chat_template(self._messages(prompt, None), tokenize=False, add_generation_prompt=True)
            full = tok.apply_chat_template(self._messages(prompt, answer), tokenize=False)
            if full.startswith(head) and answer in full[len(head):]:
                reply = full[len(head):]
                cut = reply.find(eos, reply.find(answer) + len(answer)) if eos else -1
                return head, reply[: cut + len(eos)] if cut >= 0 else reply
            return head, answer + eos  # templates that rewrite earlier turns (e.g. reasoning tags)
        head = (self.system_prompt + "\n" if self.system_prompt else "") + PLAIN_TEMPLATE.format(prompt=prompt)
        return head, answer + eos

    def encode(self, sample: Sample) -> tuple[list[int], list[int]]:
        """``(input_ids, labels)`` of one sample (labels empty at inference)."""
        if self.validate:
            for i, g in enumerate(sample.graphs):
                g.validate(f"{_where(sample)} graph {i}")
        k = self.tokens_per_graph
        sizes = [g.num_nodes if k is None else int(k) for g in sample.graphs]
        prompt = expand_graph_placeholders(sample.prompt, sizes)
        head, reply = self.render(prompt, sample.answer)
        ids = self.tokenizer(head, add_special_tokens=False)["input_ids"]
        start, patch, end = self.graph_token_ids
        n_patch = sum(1 for i in ids if i == patch)
        if n_patch != sum(sizes) or ids.count(start) != len(sizes) or ids.count(end) != len(sizes):
            raise GraphValidationError(
                f"{_where(sample)}: expected {sum(sizes)} <g_patch> tokens in {len(sizes)} graph blocks after "
                f"tokenisation, found {n_patch} in {ids.count(start)} (does the prompt already contain graph tokens?)")
        if self.inference:
            self._check_fits(sample, len(ids), 0, sum(sizes))
            return ids, []
        answer_ids = self.tokenizer(reply, add_special_tokens=False)["input_ids"]
        self._check_fits(sample, len(ids), 1, sum(sizes))
        if self.max_length is not None and len(ids) + len(answer_ids) > self.max_length:
            answer_ids = answer_ids[: self.max_length - len(ids)]
            sample.meta["answer_truncated"] = True
        return ids + answer_ids, [IGNORE_INDEX] * len(ids) + answer_ids

    def _check_fits(self, sample: Sample, prompt_len: int, need: int, graph_tokens: int) -> None:
        if self.max_length is not None and prompt_len + need > self.max_length:
            raise ContextOverflowError(
                f"{_where(sample)}: the prompt is {prompt_len} tokens ({graph_tokens} of them graph node tokens, "
                f"never cut) and needs {need} more for the answer, but the context is {self.max_length}; "
                "sample smaller subgraphs (fan-out) or shorten texts (max_text_words)")

    def first_reply_token(self, sample: Sample, answer: str) -> Optional[int]:
        """The first token of ``answer``'s rendered reply (cached per answer; the reply never depends on the prompt)."""
        if answer not in self._first_reply_token:
            _, reply = self.render(sample.prompt, answer)
            ids = self.tokenizer(reply, add_special_tokens=False)["input_ids"]
            self._first_reply_token[answer] = int(ids[0]) if ids else None
        return self._first_reply_token[answer]

    def choice_tokens(self, sample: Sample) -> Optional[tuple[list[int], int]]:
        """``(first reply token of each choice, index of the answer)`` for a sample with
        ``meta["choices"]`` whose choices start with distinct tokens; else ``None``."""
        choices = sample.meta.get("choices")
        if not choices or sample.answer not in choices:
            return None
        firsts = [self.first_reply_token(sample, c) for c in choices]
        if None in firsts or len(set(firsts)) != len(firsts):
            return None
        return firsts, list(choices).index(sample.answer)  # type: ignore[return-value]

    # -- batching --------------------------------------------------------------------------------
    def __call__(self, samples: Sequence[Sample]) -> GraphBatch:
        if not samples:
            raise ValueError("GraphCollator: got an empty batch")
        encoded = [self.encode(s) for s in samples]
        width = max(len(ids) for ids, _ in encoded)
        b = len(samples)
        input_ids = torch.full((b, width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((b, width), dtype=torch.long)
        labels = None if self.inference else torch.full((b, width), IGNORE_INDEX, dtype=torch.long)
        for row, (ids, lab) in enumerate(encoded):
            sl = slice(0, len(ids)) if self.padding_side == "right" else slice(width - len(ids), width)
            input_ids[row, sl] = torch.tensor(ids, dtype=torch.long)
            attention[row, sl] = 1
            if labels is not None:
                labels[row, sl] = torch.tensor(lab, dtype=torch.long)
        graphs = [g for s in samples for g in s.graphs]
        task_emb = None
        if self.task_embedding is not None:
            task_emb = torch.stack([torch.as_tensor(self.task_embedding(s.task_text)) for s in samples]).float()
        choice_ids = choice_target = None
        if not self.inference:
            picked = [self.choice_tokens(s) for s in samples]
            if any(p is not None for p in picked):
                width_c = max(len(p[0]) for p in picked if p is not None)
                choice_ids = torch.full((b, width_c), -1, dtype=torch.long)
                choice_target = torch.full((b,), IGNORE_INDEX, dtype=torch.long)
                for row, p in enumerate(picked):
                    if p is not None:
                        choice_ids[row, : len(p[0])] = torch.tensor(p[0], dtype=torch.long)
                        choice_target[row] = p[1]
        return GraphBatch(
            input_ids=input_ids,
            attention_mask=attention,
            labels=labels,
            graphs=SubgraphBatch.from_subgraphs(graphs),
            graphs_per_sample=torch.tensor([len(s.graphs) for s in samples], dtype=torch.long),
            task_embedding=task_emb,
            meta=[dict(s.meta, task=s.task, answer=s.answer) for s in samples],
            choice_ids=choice_ids,
            choice_target=choice_target,
        )


def _where(sample: Sample) -> str:
    ident = sample.meta.get("node", sample.meta.get("pair", "?"))
    return f"{sample.task} sample {ident} ({sample.meta.get('dataset', '?')})"


def prompt_token_lengths(samples: Sequence[Sample], tokenizer, with_answer: bool = True) -> Tensor:
    """Token count of each rendered sample (graph tokens included), ``[len(samples)]`` int64."""
    collator = GraphCollator(tokenizer, max_length=None, inference=not with_answer)
    collator.max_length = None
    return torch.tensor([len(collator.encode(s)[0]) for s in samples], dtype=torch.long)
