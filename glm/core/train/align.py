"""Alignment warm-up: soft tokens pulled towards the LLM's own embedding of their node's text.

Run before the first step through the LLM of a stage (``training.align``), it needs no LLM forward
or backward, so thousands of samples cost seconds on a CPU. The target of node ``v`` is the mean
input-embedding row of the LLM's tokens of ``v``'s text (clipped to ``data.max_text_words``): a soft
token that starts in the LLM's embedding space, near the words of its node, is read far more
easily than one that starts anywhere.

Losses (``training.align.loss``; ``z`` the node's soft token, ``t`` its target):

* ``cosine``: :math:`1 - \\cos(z, t)`, averaged over the nodes of a batch;
* ``contrastive``: symmetric InfoNCE between tokens and targets of the batch's nodes at
  ``temperature`` (CLIP's loss); a node that occurs in several subgraphs of a batch is not its own
  negative.

Only methods with one soft token per node (``tokens_per_graph is None``: GraphLAMA, GraphGPT) have a
per-node target; others are refused by name.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from glm.core.choices import AlignLoss, options
from glm.errors import GlmError

logger = logging.getLogger("glm.train")

ALIGN_LOG = "align_log.jsonl"


class AlignError(GlmError, ValueError):
    """The alignment warm-up cannot run for this model or data (named setting, found value)."""


class TextEmbeddingTargets:
    r"""Mean LLM input-embedding row of each node's text, computed once per node.

    Args:
        embedding: the LLM's input-embedding weight ``[V, hidden]`` (frozen).
        tokenizer: the LLM's tokenizer.
        texts: node texts, indexed by global node id.
        max_words: words of a text kept (``None``: all).

    Shapes:
        - **node_ids:** ``[N]`` int64 global ids
        - **output:** ``[N, hidden]`` float32
    """

    def __init__(self, embedding: Tensor, tokenizer: Any, texts: Sequence[str], max_words: Optional[int]) -> None:
        from glm.core.data.tasks import clip_words

        self.embedding = embedding.detach()
        self.tokenizer = tokenizer
        self.texts = texts
        self.clip = lambda text: clip_words(text, max_words)
        self._cache: dict[int, Tensor] = {}

    def _one(self, node: int) -> Tensor:
        ids = self.tokenizer(self.clip(self.texts[node]), add_special_tokens=False)["input_ids"]
        if not ids:  # an empty text: the mean embedding row stands for "no words"
            return self.embedding.float().mean(dim=0)
        return self.embedding[torch.as_tensor(ids, device=self.embedding.device)].float().mean(dim=0)

    def __call__(self, node_ids: Tensor) -> Tensor:
        rows = []
        for node in node_ids.tolist():
            if node not in self._cache:
                self._cache[node] = self._one(node).cpu()
            rows.append(self._cache[node])
        return torch.stack(rows)


def align_loss(tokens: Tensor, targets: Tensor, node_ids: Tensor, kind: str = "contrastive",
               temperature: float = 0.1) -> Tensor:
    r"""The warm-up loss of one batch (see the module docstring).

    Shapes:
        - **tokens, targets:** ``[N, hidden]``; **node_ids:** ``[N]``
        - **output:** scalar
    """
    if kind not in options(AlignLoss):
        raise AlignError(f"training.align.loss must be one of {options(AlignLoss)}, found {kind!r}")
    z = F.normalize(tokens.float(), dim=-1)
    t = F.normalize(targets.float().to(z.device), dim=-1)
    if kind == "cosine":
        return (1 - (z * t).sum(-1)).mean()
    logits = z @ t.T / temperature
    ids = node_ids.to(z.device)
    same = (ids[:, None] == ids[None, :]) & ~torch.eye(len(ids), dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(same, float("-inf"))
    labels = torch.arange(len(ids), device=z.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def align_runs(config: Any) -> bool:
    """Whether ``config``'s stage runs the warm-up: ``training.align.steps`` > 0 and a stage on the
    pre-training data (it belongs to pre-training's many samples, not to the k shots)."""
    return bool(config.training.align.steps) and \
        config.model.method_spec.stages[config.training.stage].data == "pretrain"


def check_align(model: torch.nn.Module, settings: Any) -> None:
    """Raise :class:`AlignError` unless ``model``'s method gives every node one soft token (the warm-up
    aligns a node's token to that node's text; LLaGA's k tokens per graph have no such text)."""
    module = getattr(model, "node_token_module", None)
    if module is None or module.tokens_per_graph is not None:
        name = type(module).__name__ if module is not None else type(model).__name__
        raise AlignError(f"training.align.steps={settings.steps}: {name} places a fixed number of soft tokens per "
                         "graph, not one per node, so its tokens have no node text to align to; set "
                         "training.align.steps=0")


def align_warmup(model: torch.nn.Module, samples: Sequence[Any], collate_fn: Callable[[list[Any]], Any],
                 targets: TextEmbeddingTargets, settings: Any, seed: int, logging_steps: int = 10,
                 log_dir: Optional[Path] = None) -> list[dict[str, float]]:
    """Train the stage's graph-side parameters for ``settings.steps`` steps of the alignment loss.

    ``settings``: :class:`glm.core.config.AlignSettings`. The LLM is not run; its trainable parts
    (if any) get no gradient. Returns the logged records (also written to ``log_dir/align_log.jsonl``).
    """
    check_align(model, settings)
    params = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("llm.")]
    if not params:
        raise AlignError("training.align: the stage trains no graph-side parameter")
    if len(samples) == 0:
        raise AlignError("training.align: the stage has no samples")
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    order: list[int] = []
    records: list[dict[str, float]] = []
    window = 0.0
    was_training = model.training
    model.train()
    t0 = time.perf_counter()
    for step in range(1, settings.steps + 1):
        if len(order) < settings.batch_size:
            order += torch.randperm(len(samples), generator=g).tolist()
        batch = collate_fn([samples[i] for i in order[:settings.batch_size]])
        del order[:settings.batch_size]
        graphs = batch.graphs
        if graphs.node_ids is None:
            raise AlignError("training.align: the batch's subgraphs carry no global node ids (SubgraphBatch.node_ids)")
        tokens = model.node_tokens(graphs, batch.graphs_per_sample, batch.task_embedding)
        target = targets(graphs.node_ids.cpu()).to(tokens.device)
        loss = align_loss(tokens, target, graphs.node_ids, settings.loss, settings.temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        window += float(loss.detach())
        if step % logging_steps == 0 or step == settings.steps:
            n = logging_steps if step % logging_steps == 0 else step % logging_steps
            with torch.no_grad():
                cos = F.cosine_similarity(tokens.detach().float(), target, dim=-1).mean()
            records.append({"align_step": step, "align_loss": round(window / n, 6), "align_cos": round(float(cos), 6),
                            "elapsed_s": round(time.perf_counter() - t0, 3)})
            window = 0.0
    model.train(was_training)
    optimizer.zero_grad(set_to_none=True)
    if records:
        logger.info("alignment warm-up: %d steps in %.1f s, loss %.4f -> %.4f, cosine to the text embedding %.3f",
                    settings.steps, records[-1]["elapsed_s"], records[0]["align_loss"], records[-1]["align_loss"],
                    records[-1]["align_cos"])
    if log_dir is not None:
        with open(Path(log_dir) / ALIGN_LOG, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in records)
    return records
