"""GraphLanguageModel: a frozen Hugging Face causal LM with graph node tokens spliced into its input.

Data path (shapes for a batch of ``B`` samples, ``G`` graphs, ``N = sum N_i`` nodes, ``L`` tokens)::

    SubgraphBatch --encoder--> H [N, d]
    hop distances [N] --HopEncoding--> P [N, p]
    [H ; P] --DualGate(task embedding of each node's sample)--> U [N, g]
    U --Projector--> Q [N, hidden]
    embed(input_ids) [B, L, hidden]; the k-th <g_patch> of row b <- k-th node of sample b (glm.core.tokens)
    --> frozen LLM (loss / generate)

The LLM, including its embedding matrix, is never modified or resized. The three graph
tokens (``<g_start> <g_patch> <g_end>``) are added to the tokenizer; their input embeddings
live in :attr:`GraphLanguageModel.graph_token_embeddings` (``[3, hidden]``, initialised to the
mean input embedding as in the official code), which trains only with
``train_graph_token_rows=True``. Their ids never reach the LLM's embedding lookup and the LM
head cannot emit them.

Differences from the official code (``GraphLAMAConfig.paper_compatible()`` restores the
paper's behaviour where it is a modelling choice rather than a bug):

* every graph of a sample is spliced (the official loop kept only the last one) -- always;
* link-prediction samples go through hop code and gates (official: bypassed) --
  ``gate_multi_graph``;
* hop code ``onehot`` with a separate far class (official: 2-bit, far = target) -- ``hop_mode``;
* mixing weights through a sigmoid (official: unconstrained) -- ``alpha_mode``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Optional

import torch
from torch import Tensor, nn

from glm.core.gate import AlphaMode, DualGate
from glm.core.graph import SubgraphBatch
from glm.core.hop import HopEncoding, HopMode, hop_distances
from glm.core.projector import Projector, ProjectorKind
from glm.core.sample import GraphBatch
from glm.core.tokens import G_END, G_PATCH, G_START, add_graph_tokens


class SpliceError(ValueError):
    """The graph tokens of a batch do not match its graphs (counts per row, placeholders per sample)."""


class PaddingError(ValueError):
    """A batch is padded the wrong way for the requested operation."""


@dataclass
class GraphLAMAConfig:
    """Graph-side configuration of :class:`GraphLanguageModel` (GraphLAMA defaults).

    Args:
        graph_dim: encoder output size ``d`` (128).
        max_hops: ``K`` of the hop code (2).
        hop_mode: ``"onehot"`` (K+2 classes), ``"official"`` (2-bit, paper) or ``"learned"`` (embedding table).
        hop_dim: width of the ``"learned"`` hop table.
        gate_dim: gate output size = task-embedding size (128).
        alpha_mode: ``"sigmoid"`` or ``"free"`` (paper).
        alpha_init: initial mixing weights (0.5).
        projector: ``"linear"`` (paper) or ``"mlp"``.
        projector_hidden: hidden width of the MLP projector (default: LLM hidden size).
        gate_multi_graph: gate samples with several graphs (link prediction) too; ``False``
            reproduces the official bypass (encoder output straight to the projector; needs
            ``graph_dim == gate_dim``).
        train_graph_token_rows: let the 3 graph-token embeddings train (LLM stays frozen).
    """

    graph_dim: int = 128
    max_hops: int = 2
    hop_mode: HopMode = "onehot"
    hop_dim: int = 2
    gate_dim: int = 128
    alpha_mode: AlphaMode = "sigmoid"
    alpha_init: float = 0.5
    projector: ProjectorKind = "linear"
    projector_hidden: Optional[int] = None
    gate_multi_graph: bool = True
    train_graph_token_rows: bool = False

    @classmethod
    def paper_compatible(cls, **overrides: Any) -> "GraphLAMAConfig":
        """The official code's choices: 2-bit hop code, unconstrained α, no gates for link prediction."""
        return replace(cls(hop_mode="official", alpha_mode="free", gate_multi_graph=False), **overrides)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class GraphLanguageModel(nn.Module):
    r"""GraphLAMA around any Hugging Face causal LM.

    Args:
        llm: a ``transformers`` causal LM (Llama, Qwen2/3, Mistral, SmolLM2, ...); frozen here.
        tokenizer: its tokenizer; the graph tokens are added to it.
        encoder: any module with ``forward(batch: SubgraphBatch) -> [N, graph_dim]``
            (normally :class:`glm.core.encoder.GraphEncoder`).
        config: :class:`GraphLAMAConfig`.

    Submodules: ``llm`` (frozen), ``encoder``, ``hop``, ``gate``, ``projector``; parameter
    ``graph_token_embeddings`` ``[3, hidden]``.
    """

    def __init__(self, llm: nn.Module, tokenizer: Any, encoder: nn.Module,
                 config: Optional[GraphLAMAConfig] = None) -> None:
        super().__init__()
        self.config = config = config or GraphLAMAConfig()
        self.llm = llm
        self.tokenizer = tokenizer
        for p in self.llm.parameters():
            p.requires_grad_(False)
        hidden = int(llm.config.hidden_size)
        self.encoder = encoder
        self.hop = HopEncoding(config.max_hops, config.hop_mode, config.hop_dim)
        self.gate = DualGate(config.graph_dim + self.hop.out_dim, config.gate_dim,
                             config.alpha_init, config.alpha_mode)
        self.projector = Projector(config.gate_dim, hidden, config.projector, config.projector_hidden)
        if not config.gate_multi_graph and config.graph_dim != config.gate_dim:
            raise ValueError(
                f"GraphLAMAConfig: gate_multi_graph=False feeds the encoder output to the projector, so "
                f"graph_dim ({config.graph_dim}) must equal gate_dim ({config.gate_dim})"
            )
        token_ids = add_graph_tokens(tokenizer)
        self.register_buffer("graph_token_ids", torch.tensor(token_ids, dtype=torch.long), persistent=False)
        weight = llm.get_input_embeddings().weight
        if weight.is_meta:  # weight-less build: rows cannot be derived from the embeddings
            rows = torch.randn(3, hidden) * float(getattr(llm.config, "initializer_range", 0.02))
        else:
            rows = weight.detach().float().mean(dim=0, keepdim=True).repeat(3, 1).cpu()
        self.graph_token_embeddings = nn.Parameter(rows, requires_grad=config.train_graph_token_rows)

    # ---- graph side ------------------------------------------------------------------
    def set_task_embedding(self, embedding: Optional[Tensor]) -> None:
        """Default frozen task embedding ``[gate_dim]`` for batches without ``task_embedding``
        (e.g. ``glm.core.text.TaskTextEncoder`` output); ``None`` clears it."""
        self.gate.set_task_embedding(embedding)

    @property
    def patch_token_id(self) -> int:
        return int(self.graph_token_ids[1])

    def node_tokens(self, graphs: SubgraphBatch, graphs_per_sample: Tensor,
                    task_embedding: Optional[Tensor] = None) -> Tensor:
        """Projected node vectors of all graphs, sample-major: ``[N, hidden]``.

        Args:
            graphs: ``G`` graphs with ``N`` nodes in total.
            graphs_per_sample: ``[B]``, sums to ``G``.
            task_embedding: ``[B, gate_dim]`` or ``None`` (the gate's default is used).
        """
        gps = graphs_per_sample.to(graphs.ptr.device).long()
        if int(gps.sum()) != graphs.num_graphs:
            raise SpliceError(f"graphs_per_sample sums to {int(gps.sum())} but the batch has {graphs.num_graphs} graphs")
        h = self.encoder(graphs)
        if h.dim() != 2 or h.shape != (graphs.num_nodes, self.config.graph_dim):
            raise ValueError(f"encoder output must be [N={graphs.num_nodes}, {self.config.graph_dim}], "
                             f"found {tuple(h.shape)}")
        hop = graphs.hop if graphs.hop is not None else hop_distances(graphs, max_hops=self.config.max_hops)
        z = torch.cat([h, self.hop(hop.to(h.device), dtype=h.dtype)], dim=-1)
        sample_of_graph = torch.repeat_interleave(torch.arange(gps.numel(), device=gps.device), gps)
        sample_of_node = sample_of_graph[graphs.batch].to(h.device)
        e = None if task_embedding is None else task_embedding.to(h.device)[sample_of_node]
        u = self.gate(z, e)
        if not self.config.gate_multi_graph:
            multi = (gps > 1).to(h.device)[sample_of_node]
            u = torch.where(multi[:, None], h, u)
        return self.projector(u)

    # ---- splicing ----------------------------------------------------------------------
    def embed(self, batch: GraphBatch) -> Tensor:
        """Token embeddings with graph tokens and node vectors spliced in: ``[B, L, hidden]``."""
        ids = batch.input_ids
        tids = self.graph_token_ids.to(ids.device)
        is_graph_token = torch.isin(ids, tids)
        embeds = self.llm.get_input_embeddings()(ids.masked_fill(is_graph_token, 0))
        which = (ids[is_graph_token][:, None] == tids[None, :]).long().argmax(dim=-1)
        # out-of-place writes: the embedding output may be a grad-requiring leaf (enable_input_require_grads)
        rows = self.graph_token_embeddings.to(embeds.device, embeds.dtype)[which]
        embeds = embeds.index_put((is_graph_token,), rows)
        patch = ids == tids[1]
        self._check_splice(batch, patch, ids == tids[0])
        nodes = self.node_tokens(batch.graphs, batch.graphs_per_sample, batch.task_embedding)
        # boolean indexing is row-major: the k-th patch of row b gets the k-th node of sample b
        return embeds.index_put((patch,), nodes.to(embeds.device, embeds.dtype))

    @staticmethod
    def _check_splice(batch: GraphBatch, patch: Tensor, start: Tensor) -> None:
        gps = batch.graphs_per_sample.to(patch.device).long()
        if gps.numel() != patch.shape[0]:
            raise SpliceError(f"graphs_per_sample has {gps.numel()} entries for {patch.shape[0]} rows")
        sizes = (batch.graphs.ptr[1:] - batch.graphs.ptr[:-1]).to(patch.device)
        sample_of_graph = torch.repeat_interleave(torch.arange(gps.numel(), device=patch.device), gps)
        expected = torch.zeros_like(gps).index_add_(0, sample_of_graph, sizes)
        found = patch.sum(dim=1)
        starts = start.sum(dim=1)
        bad = ((found != expected) | (starts != gps)).nonzero().flatten()
        if bad.numel():
            b = int(bad[0])
            raise SpliceError(
                f"row {b}: expected {int(gps[b])} {G_START} and {int(expected[b])} {G_PATCH} tokens "
                f"(one per node of its graphs), found {int(starts[b])} and {int(found[b])}; "
                f"was the prompt expanded with glm.core.tokens.expand_graph_placeholders? ({G_END} closes each graph)"
            )

    @staticmethod
    def position_ids(attention_mask: Tensor) -> Tensor:
        """Positions counted over real tokens only (left or right padding): ``[B, L]``."""
        return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)

    def forward(self, batch: GraphBatch, **llm_kwargs: Any):
        """Causal-LM forward; returns the LLM's output (``loss`` when ``batch.labels`` is set, ``logits [B, L, V]``)."""
        embeds = self.embed(batch)
        return self.llm(inputs_embeds=embeds, attention_mask=batch.attention_mask,
                        position_ids=self.position_ids(batch.attention_mask), labels=batch.labels, **llm_kwargs)

    @torch.no_grad()
    def generate(self, batch: GraphBatch, **generate_kwargs: Any) -> Tensor:
        """Generate continuations; graph vectors are spliced in the prefill step only.

        ``batch`` must be left-padded. Returns the new token ids ``[B, T_new]``.
        """
        mask = batch.attention_mask
        if bool((mask[:, -1] == 0).any()):
            raise PaddingError("generate: batch must be left-padded (a row ends with padding); "
                               "set tokenizer.padding_side = 'left' when collating for inference")
        embeds = self.embed(batch)
        generate_kwargs.setdefault("pad_token_id", self.tokenizer.pad_token_id)
        return self.llm.generate(inputs_embeds=embeds, attention_mask=mask, **generate_kwargs)

    # ---- memory / training helpers --------------------------------------------------
    def gradient_checkpointing_enable(self) -> None:
        """Checkpoint the LLM's layers (non-reentrant, so gradients reach the spliced node tokens)."""
        kwargs = {"use_reentrant": False}
        if hasattr(self.llm, "activation_checkpointing_enable"):  # transformers >= 5.x
            self.llm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            self.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)

    def graph_parameters(self) -> dict[str, nn.Parameter]:
        """All parameters outside the LLM, by name."""
        return {n: p for n, p in self.named_parameters() if not n.startswith("llm.")}
