"""LLM rows without a graph: zero-shot and in-context learning, scored over the class names.

Both render the node text (title + abstract, clipped to ``data.max_text_words``) into a chat prompt and
score each class by the log-probability of its first reply token after the prompt (the same rule
``glm eval`` uses); classes whose names share a first token are scored by their whole reply.

* **zero-shot**: the question and the class names only;
* **ICL k-shot**: the k shots of every class as demonstrations (``Paper: ... Category: ...``), balanced
  and shuffled with the seed; the demonstrations are the split's training nodes, so the test node and
  its label are never used to pick them (the official GraphLAMA ICL script drew demonstrations by the
  test node's label).

**Calibration** (Zhao et al., ICML'21, "Calibrate before use"): the same prompt with a content-free
node text (``N/A``) gives a per-class bias, subtracted from every node's scores; reported beside the
plain scores because uncalibrated 2-way scoring can sit on one class.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from glm.bench.baselines import RowResult
from glm.core.eval.prefix_cache import PromptHead

CONTENT_FREE = "N/A"


@dataclass
class TextItem:
    """One prompt to score: its text and the class names offered."""

    prompt: str
    choices: list[str]


def node_text(source, node: int, max_words: Optional[int]) -> str:
    from glm.core.data.tasks import clip_words

    title, abstract = source.text_parts(node)
    parts = [f"Title: {clip_words(title, max_words)}" if title else "",
             f"Abstract: {clip_words(abstract, max_words)}" if abstract else ""]
    return "\n".join(p for p in parts if p) or CONTENT_FREE


def zero_shot_prompt(text: str, choices: Sequence[str], template=None) -> str:
    from glm.core.data.tasks import CITATION, classification_question

    t = template or CITATION
    return f"The target {t.node} has the following information:\n{text}\nQuestion: {classification_question(choices, t.node)}"


def icl_prompt(demos: Sequence[tuple[str, str]], text: str, choices: Sequence[str], template=None) -> str:
    """``demos``: ``(node text, class name)`` pairs, in the order shown."""
    from glm.core.data.tasks import CITATION, classification_question

    t = template or CITATION
    shown = "\n\n".join(f"{t.node.capitalize()}:\n{d}\nCategory: {c}" for d, c in demos)
    return (f"Here are {t.nodes} with their categories:\n\n{shown}\n\nNow the target {t.node}:\n{text}\n"
            f"Question: {classification_question(choices, t.node)}")


def demonstrations(source, shots: Sequence[int], labels: Sequence[str], seed: int,
                   max_words: Optional[int]) -> list[tuple[str, str]]:
    """The k shots as ``(text, label)`` demonstrations, shuffled with ``seed`` (balanced: every class's
    shots are the split's training nodes of that class)."""
    order = list(range(len(shots)))
    random.Random(seed).shuffle(order)
    return [(node_text(source, shots[i], max_words), labels[i]) for i in order]


@torch.no_grad()
def score_prompts(llm, tokenizer, items: Sequence[TextItem], batch_size: int = 8) -> list[dict[str, float]]:
    """Log-probability of each choice's first reply token (whole reply when first tokens collide)."""
    from glm.core.data.collate import GraphCollator

    collate = GraphCollator(tokenizer, max_length=None, validate=False)
    device = next(llm.parameters()).device
    rows = [tokenizer(collate.render(it.prompt, "")[0], add_special_tokens=False)["input_ids"] for it in items]
    head = PromptHead(llm, rows)  # the demonstrations every ICL prompt repeats: prefilled once
    out: list[dict[str, float]] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        logits = llm(**head.batch(rows[start:start + batch_size], collate.pad_id).forward_inputs()).logits
        logp = torch.log_softmax(logits[:, -1].float(), dim=-1)
        for r, it in enumerate(chunk):
            firsts = [_first_reply_token(collate, tokenizer, it.prompt, c) for c in it.choices]
            if len(set(firsts)) == len(firsts):
                out.append({c: float(logp[r, t]) for c, t in zip(it.choices, firsts)})
            else:
                out.append(_full_reply_scores(llm, tokenizer, collate, it, device))
    return out


def _first_reply_token(collate, tokenizer, prompt: str, choice: str) -> int:
    head, reply = collate.render(prompt, choice)
    return tokenizer(reply, add_special_tokens=False)["input_ids"][0]


def _full_reply_scores(llm, tokenizer, collate, item: TextItem, device) -> dict[str, float]:
    scores = {}
    for c in item.choices:
        head, reply = collate.render(item.prompt, c)
        h = tokenizer(head, add_special_tokens=False)["input_ids"]
        r = tokenizer(reply, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([h + r], device=device)
        logp = torch.log_softmax(llm(input_ids=ids).logits[0, :-1].float(), dim=-1)
        scores[c] = float(sum(logp[len(h) - 1 + i, t] for i, t in enumerate(r)))
    return scores


def choose(scores: Sequence[dict[str, float]], choices: Sequence[str],
           bias: Optional[dict[str, float]] = None) -> list[int]:
    """Index of the best choice per item, after subtracting a content-free ``bias``."""
    return [max(range(len(choices)), key=lambda i: s[choices[i]] - (bias or {}).get(choices[i], 0.0)) for s in scores]


def text_row(llm, tokenizer, prompts: Sequence[str], content_free: str, choices: list[str],
             batch_size: int = 8) -> RowResult:
    """Score ``prompts``; calibrated predictions from the ``content_free`` prompt's bias."""
    t0 = time.perf_counter()
    scores = score_prompts(llm, tokenizer, [TextItem(p, choices) for p in prompts], batch_size)
    infer = time.perf_counter() - t0
    bias = score_prompts(llm, tokenizer, [TextItem(content_free, choices)], 1)[0]
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    return RowResult(choose(scores, choices), 0.0, infer, 0, None, choose(scores, choices, bias),
                     {"prompt_tokens_mean": sum(lengths) / max(len(lengths), 1)})
