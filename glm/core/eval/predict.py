"""Predictions of a :class:`~glm.core.model.GraphLanguageModel` on node-classification samples.

Two modes:

* ``choice``: constrained decoding over the candidate class names. When the candidates'
  replies start with different tokens (the usual case), one prompt forward per sample
  suffices: the class whose first reply token has the highest probability wins -- exactly
  what greedy decoding restricted to the candidates would answer. Otherwise every candidate
  is scored by the log-likelihood of its full reply (class name + end-of-turn), ``C``
  forwards per sample. No parsing, no invalid answers.
* ``generate``: greedy decoding of ``max_new_tokens``, then the answer parser ``match`` (:mod:`glm.core.eval.parsers`; every parser's accuracy is kept).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional, Sequence

import torch

from glm.core.eval.metrics import macro_f1
from glm.core.eval.parsers import accuracy_by_parser, judge
from glm.core.eval.prefix_cache import MIN_PREFIX, PrefixCache, logits_to_keep, shared_head
from glm.core.sample import Sample

logger = logging.getLogger(__name__)


@dataclass
class Prediction:
    node: Any
    label: str
    prediction: str  # raw text (generate) or the chosen class (choice)
    matched: Optional[str]
    correct: bool
    scores: Optional[dict[str, float]] = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None or k == "matched"}


@dataclass
class EvalResult:
    mode: str
    match: str
    accuracy: float
    macro_f1: float
    seconds: float
    predictions: list[Prediction] = field(default_factory=list)
    # generate mode: {parser: {"accuracy", "unmatched"}} for every answer parser (glm.core.eval.parsers)
    by_parser: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return len(self.predictions)


def _choices(sample: Sample) -> list[str]:
    choices = sample.meta.get("choices")
    if not choices:
        raise ValueError(f"sample of task {sample.task!r} has no meta['choices']; choice scoring needs them")
    return list(choices)


@torch.no_grad()
def _batches(n: int, batch_size: int, progress: bool, desc: str):
    """Batch start offsets, with a tqdm bar (stderr, only on a terminal) when ``progress``."""
    from tqdm.auto import tqdm

    return tqdm(range(0, n, batch_size), desc=desc, unit="batch", leave=False, disable=None if progress else True)


def score_choices(model, samples: Sequence[Sample], collate: Callable[[list[Sample]], Any],
                  batch_size: int = 8, progress: bool = False) -> list[dict[str, float]]:
    """Sum of answer-token log-probabilities for every choice of every sample."""
    expanded: list[tuple[int, str, Sample]] = []
    for i, s in enumerate(samples):
        for c in _choices(s):
            expanded.append((i, c, replace(s, answer=c, meta=dict(s.meta))))
    scores: list[dict[str, float]] = [{} for _ in samples]
    device = next(p for p in model.parameters()).device
    for start in _batches(len(expanded), batch_size, progress, "scoring choices"):
        chunk = expanded[start:start + batch_size]
        batch = collate([s for _, _, s in chunk]).to(device)
        labels = batch.labels
        out = model(replace(batch, labels=None))
        logp = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
        target = labels[:, 1:]
        mask = target != -100
        picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        total = (picked * mask).sum(dim=1)
        for (i, c, _), v in zip(chunk, total.tolist()):
            scores[i][c] = v
    return scores


def _first_reply_tokens(collate, sample: Sample, choices: Sequence[str]) -> Optional[list[int]]:
    """First reply token of each choice, or ``None`` when two choices share it."""
    if hasattr(collate, "first_reply_token"):
        firsts = [collate.first_reply_token(sample, c) for c in choices]
    else:
        firsts = []
        for c in choices:
            ids, labels = collate.encode(replace(sample, answer=c, meta=dict(sample.meta)))
            firsts.append(next((i for i, lab in zip(ids, labels) if lab != -100), None))
    return firsts if None not in firsts and len(set(firsts)) == len(firsts) else None


@torch.no_grad()
def score_first_tokens(model, samples: Sequence[Sample], train_collate, infer_collate,
                       batch_size: int = 8, progress: bool = False,
                       reuse_head: bool = True) -> Optional[list[dict[str, float]]]:
    """Log-probability of each choice's first reply token after the prompt (one forward per
    sample), or ``None`` if some sample's choices share a first token. ``reuse_head``: the prompts'
    shared first tokens run through the LLM once (:mod:`glm.core.eval.prefix_cache`)."""
    firsts = []
    for s in samples:
        f = _first_reply_tokens(train_collate, s, _choices(s))
        if f is None:
            return None
        firsts.append(f)
    device = next(p for p in model.parameters()).device
    # batches of similar prompt length waste less compute on padding; scores come back in input order
    encoded = [infer_collate.encode(s)[0] for s in samples] if hasattr(infer_collate, "encode") else []
    lengths = [len(ids) for ids in encoded] or [0] * len(samples)
    order = sorted(range(len(samples)), key=lambda i: -lengths[i])
    extra = logits_to_keep(model)
    graph_ids = getattr(model, "graph_token_ids", None)
    head = shared_head(encoded, graph_ids.tolist()) if reuse_head and graph_ids is not None else []
    cache = PrefixCache(model, head) if len(head) >= MIN_PREFIX else None
    scores: list[Optional[dict[str, float]]] = [None] * len(samples)
    for start in _batches(len(order), batch_size, progress, "scoring"):
        rows = order[start:start + batch_size]
        chunk = [samples[i] for i in rows]
        batch = infer_collate(chunk).to(device)  # left padded: the last position predicts the reply
        logits = cache.last_logits(model, batch) if cache is not None else None
        if logits is None:
            logits = model(replace(batch, labels=None), **extra).logits[:, -1]
        logp = torch.log_softmax(logits.float(), dim=-1)
        for row, (i, s) in enumerate(zip(rows, chunk)):
            scores[i] = {c: float(logp[row, t]) for c, t in zip(_choices(s), firsts[i])}
    return scores  # type: ignore[return-value]


@torch.no_grad()
def generate_answers(model, samples: Sequence[Sample], collate: Callable[[list[Sample]], Any],
                     batch_size: int = 8, max_new_tokens: int = 16, progress: bool = False) -> list[str]:
    """Greedy continuations (``collate`` must be an inference collator, left padding)."""
    device = next(p for p in model.parameters()).device
    texts: list[str] = []
    for start in _batches(len(samples), batch_size, progress, "generating"):
        batch = collate(list(samples[start:start + batch_size])).to(device)
        ids = model.generate(batch, max_new_tokens=max_new_tokens, do_sample=False)
        texts += model.tokenizer.batch_decode(ids, skip_special_tokens=True)
    return texts


def evaluate(model, samples: Sequence[Sample], train_collate, infer_collate=None, mode: str = "choice",
             match: str = "exact", batch_size: int = 8, max_new_tokens: int = 16, progress: bool = False) -> EvalResult:
    """Accuracy and macro-F1 of ``model`` on classification ``samples`` (``progress``: a bar per pass, on a terminal)."""
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    preds: list[Prediction] = []
    by_parser: dict[str, dict[str, float]] = {}
    try:
        if mode == "choice":
            scores = None
            if infer_collate is not None and hasattr(train_collate, "encode"):
                scores = score_first_tokens(model, samples, train_collate, infer_collate, batch_size, progress)
            if scores is None:
                if infer_collate is not None and samples:
                    logger.warning("choice scoring: two of the classes %s begin with the same token, so every class "
                                   "is scored by its own forward pass (%d times slower); class names with distinct "
                                   "first words avoid it", _choices(samples[0]), len(_choices(samples[0])))
                scores = score_choices(model, samples, train_collate, batch_size, progress)
            for s, sc in zip(samples, scores):
                best = max(sc, key=sc.get)
                preds.append(Prediction(s.meta.get("node"), s.answer, best, best, best == s.answer, sc))
        elif mode == "generate":
            if infer_collate is None:
                raise ValueError("generate mode needs an inference collator (left padding)")
            texts = generate_answers(model, samples, infer_collate, batch_size, max_new_tokens, progress)
            for s, text in zip(samples, texts):
                j = judge(text, s.answer, _choices(s), match)
                preds.append(Prediction(s.meta.get("node"), s.answer, text, j.matched, j.correct))
            if samples:
                by_parser = accuracy_by_parser(texts, [s.answer for s in samples], _choices(samples[0]))
        else:
            raise ValueError(f"eval mode must be 'choice' or 'generate', got {mode!r}")
    finally:
        model.train(was_training)
    seconds = time.perf_counter() - t0
    labels = [p.label for p in preds]
    acc = sum(p.correct for p in preds) / len(preds) if preds else float("nan")
    classes = _choices(samples[0]) if samples else None
    predicted = [p.label if p.correct else (p.matched if p.matched != p.label else None) for p in preds]
    f1 = macro_f1(predicted, labels, classes)
    return EvalResult(mode, match, acc, f1, seconds, preds, by_parser)
