"""Shared helpers for the model-core tests: a pure-torch stand-in encoder, random subgraphs,
hand-built GraphBatch objects and tiny GraphLanguageModels (random init, no downloads)."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from glm.core.graph import Subgraph, SubgraphBatch
from glm.core.llm import tiny_llm
from glm.core.model import GraphLanguageModel
from glm.methods.graphlama import GraphLAMAConfig, graphlama_model
from glm.core.sample import GraphBatch
from glm.core.tokens import expand_graph_placeholders


class TinyEncoder(nn.Module):
    """Pure-torch encoder with GraphEncoder's signature: ``forward(SubgraphBatch) -> [N, out_dim]``
    (linear, mean over in-neighbours plus self, linear)."""

    def __init__(self, in_dim: int = 8, out_dim: int = 16) -> None:
        super().__init__()
        self.lin1 = nn.Linear(in_dim, out_dim)
        self.lin2 = nn.Linear(out_dim, out_dim)

    def forward(self, batch: SubgraphBatch) -> Tensor:
        h = self.lin1(batch.x)
        src, dst = batch.edge_index
        agg = torch.zeros_like(h).index_add_(0, dst, h[src])
        deg = torch.zeros(h.shape[0], device=h.device).index_add_(0, dst, torch.ones_like(dst, dtype=h.dtype))
        return self.lin2(torch.relu(h + agg / deg.clamp(min=1)[:, None]))


def random_subgraph(num_nodes: int, num_edges: int, feat_dim: int = 8, gen: Optional[torch.Generator] = None,
                    symmetric: bool = True) -> Subgraph:
    """A random subgraph (target at 0); edges may be duplicated or self loops; symmetric by default."""
    gen = gen or torch.Generator().manual_seed(0)
    ei = torch.randint(0, num_nodes, (2, num_edges), generator=gen)
    if symmetric:
        ei = torch.cat([ei, ei.flip(0)], dim=1)
    return Subgraph(x=torch.randn(num_nodes, feat_dim, generator=gen), edge_index=ei)


def make_graph_batch(tokenizer, prompts: Sequence[str], graphs: Sequence[Sequence[Subgraph]],
                     answers: Optional[Sequence[str]] = None, task_embedding: Optional[Tensor] = None,
                     padding_side: str = "right") -> GraphBatch:
    """Tokenise prompts (``<graph>`` expanded per graph) + answers into a padded GraphBatch;
    labels cover the answer tokens and the closing eos only."""
    rows, labels = [], []
    for i, (prompt, gs) in enumerate(zip(prompts, graphs)):
        text = expand_graph_placeholders(prompt, [g.num_nodes for g in gs])
        ids = tokenizer(text, add_special_tokens=False).input_ids
        lab = [-100] * len(ids)
        if answers is not None:
            ans = tokenizer(answers[i], add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
            ids, lab = ids + ans, lab + ans
        rows.append(ids)
        labels.append(lab)
    length = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(rows), length), pad, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    lab_t = torch.full_like(input_ids, -100)
    for b, (ids, lab) in enumerate(zip(rows, labels)):
        sl = slice(length - len(ids), length) if padding_side == "left" else slice(0, len(ids))
        input_ids[b, sl] = torch.tensor(ids)
        mask[b, sl] = 1
        lab_t[b, sl] = torch.tensor(lab)
    flat = [g for gs in graphs for g in gs]
    return GraphBatch(
        input_ids=input_ids, attention_mask=mask, labels=lab_t if answers is not None else None,
        graphs=SubgraphBatch.from_subgraphs(flat),
        graphs_per_sample=torch.tensor([len(gs) for gs in graphs], dtype=torch.long),
        task_embedding=task_embedding,
    )


def tiny_model(family: str = "llama", config: Optional[GraphLAMAConfig] = None, feat_dim: int = 8,
               graph_dim: int = 16, seed: int = 0, **llm_overrides) -> GraphLanguageModel:
    """A GraphLanguageModel over a tiny random LLM and a :class:`TinyEncoder`."""
    llm, tok = tiny_llm(family, seed=seed, **llm_overrides)
    config = config or GraphLAMAConfig(graph_dim=graph_dim, gate_dim=graph_dim)
    torch.manual_seed(seed + 1)
    return graphlama_model(llm, tok, TinyEncoder(feat_dim, config.graph_dim), config, feature_dim=feat_dim)



def sample_batch(model: GraphLanguageModel, sizes: Sequence[Sequence[int]], padding_side: str = "right",
                 answers: bool = True, seed: int = 0) -> GraphBatch:
    """A batch whose sample ``b`` has graphs of ``sizes[b]`` nodes (prompts differ in length)."""
    gen = torch.Generator().manual_seed(seed)
    enc = model.encoder
    feat = enc.lin1.in_features if hasattr(enc, "lin1") else enc.config.in_dim
    graphs = [[random_subgraph(n, 2 * n, feat, gen) for n in ns] for ns in sizes]
    prompts = [f"Q{b}{'!' * b}: " + " and ".join(["<graph>"] * len(ns)) + " ok?" for b, ns in enumerate(sizes)]
    ans = [f"A{b}" for b in range(len(sizes))] if answers else None
    task = torch.randn(len(sizes), model.config.gate_dim, generator=gen)
    return make_graph_batch(model.tokenizer, prompts, graphs, ans, task, padding_side)
