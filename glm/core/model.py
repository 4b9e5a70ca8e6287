"""GraphLanguageModel: a frozen Hugging Face causal LM with a method's soft tokens spliced into its input.

Data path (shapes for a batch of ``B`` samples, ``G`` graphs, ``N = sum N_i`` nodes, ``L`` tokens)::

    SubgraphBatch --method's node-token module (glm.core.method)--> Q [T, hidden]
        T = N (one token per node) or G * k (k tokens per graph)
    embed(input_ids) [B, L, hidden]; the t-th <g_patch> of row b <- the t-th token of sample b (glm.core.tokens)
    --> frozen LLM (loss / generate)

This module holds only what every method shares: the frozen LLM, the graph special tokens,
splicing, ``forward``, ``generate`` and position ids. The method's graph side (GraphLAMA's
encoder + hop code + dual gate + projector, GraphGPT's GNN + projector, LLaGA's templates +
projector, a plugin's) is a :class:`~glm.core.method.NodeTokenModule`; its submodules are
registered on the model under their own names (``encoder``, ``gate``, ...), so stage
patterns, adapters and checkpoints keep the names the method chose.

The LLM, including its embedding matrix, is never modified or resized. The three graph
tokens (``<g_start> <g_patch> <g_end>``) are added to the tokenizer; their input embeddings
live in :attr:`GraphLanguageModel.graph_token_embeddings` (``[3, hidden]``, initialised to the
mean input embedding as in the official GraphGPT/GraphLAMA code), which trains only with
``train_graph_token_rows=True``. Their ids never reach the LLM's embedding lookup and the LM
head cannot emit them.
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers.modeling_outputs import CausalLMOutput

from glm.core.choices import TrainLoss, options
from glm.core.method import MethodError, MethodSpec, NodeTokenModule
from glm.core.sample import GraphBatch
from glm.core.tokens import G_END, G_PATCH, G_START, add_graph_tokens
from glm.errors import GlmError

IGNORE_INDEX = -100
TRAIN_LOSSES = options(TrainLoss)
CORE_NAMES = ("llm", "graph_token_embeddings", "tokenizer", "method", "node_token_module", "llm_tuning")


class SpliceError(GlmError, ValueError):
    """The graph tokens of a batch do not match its graphs (counts per row, placeholders per sample)."""


class PaddingError(GlmError, ValueError):
    """A batch is padded the wrong way for the requested operation."""


class GraphLanguageModel(nn.Module):
    r"""A method's soft graph tokens spliced into any Hugging Face causal LM.

    Args:
        llm: a ``transformers`` causal LM (Llama, Qwen2/3, Mistral, SmolLM2, ...); frozen here.
        tokenizer: its tokenizer; the graph tokens are added to it.
        node_tokens: the method's :class:`~glm.core.method.NodeTokenModule`.
        method: its :class:`~glm.core.method.MethodSpec` (stage table, adapter buffers); ``None``
            for a bare module (stage functions then need an explicit table).
        train_graph_token_rows: let the three graph-token rows train (default: the method
            config's ``train_graph_token_rows``, else ``False``).

    ``train_loss`` (attribute, set by the trainer from ``training.loss``) picks the loss of a
    forward with labels: ``None`` (default) returns the LLM's own output (logits at every
    position); ``"lm"`` / ``"choice"`` / ``"lm+choice"`` compute the LM head only at the positions
    the loss reads (:meth:`answer_loss`).

    Attributes: ``llm`` (frozen), the node-token module's submodules, ``graph_token_embeddings``
    ``[3, hidden]``, ``config`` (the method's config), ``method``.
    """

    def __init__(self, llm: nn.Module, tokenizer: Any, node_tokens: NodeTokenModule,
                 method: Optional[MethodSpec] = None, train_graph_token_rows: Optional[bool] = None) -> None:
        super().__init__()
        self.llm = llm
        self.tokenizer = tokenizer
        for p in self.llm.parameters():
            p.requires_grad_(False)
        hidden = int(llm.config.hidden_size)
        self._adopt(node_tokens)
        self.method = method
        self.config = node_tokens.config
        if train_graph_token_rows is None:
            train_graph_token_rows = bool(getattr(self.config, "train_graph_token_rows", False))
        self.train_graph_token_rows = train_graph_token_rows
        token_ids = add_graph_tokens(tokenizer)
        self.register_buffer("graph_token_ids", torch.tensor(token_ids, dtype=torch.long), persistent=False)
        weight = llm.get_input_embeddings().weight
        if weight.is_meta:  # weight-less build: rows cannot be derived from the embeddings
            rows = torch.randn(3, hidden) * float(getattr(llm.config, "initializer_range", 0.02))
        else:
            rows = weight.detach().float().mean(dim=0, keepdim=True).repeat(3, 1).cpu()
        self.graph_token_embeddings = nn.Parameter(rows, requires_grad=train_graph_token_rows)
        self.train_loss: Optional[str] = None
        self.llm_tuning = None  # glm.core.tuning.LlmTuning, set by the factory (None: frozen)
        self.token_norm: Optional[float] = None  # set_token_norm
        self.last_token_norm: Optional[float] = None  # mean soft-token norm of the last training forward

    def _adopt(self, node_tokens: NodeTokenModule) -> None:
        """Register the module's submodules under their own names; keep the module itself unregistered."""
        own = [n for n, _ in node_tokens.named_parameters(recurse=False)]
        own += [n for n, _ in node_tokens.named_buffers(recurse=False)]
        if own:
            raise MethodError(f"{type(node_tokens).__name__}: keep parameters and buffers in submodules "
                              f"(found {own} on the module itself)")
        for name, child in node_tokens.named_children():
            if name in CORE_NAMES:
                raise MethodError(f"{type(node_tokens).__name__}: submodule name {name!r} is reserved by the model")
            self.add_module(name, child)
        object.__setattr__(self, "node_token_module", node_tokens)

    def train(self, mode: bool = True) -> "GraphLanguageModel":
        super().train(mode)
        self.node_token_module.training = mode
        return self

    # ---- graph side ------------------------------------------------------------------
    def set_task_embedding(self, embedding: Optional[Tensor]) -> None:
        """Default frozen task embedding for batches without ``task_embedding`` (methods with a
        task gate, e.g. ``glm.core.text.TaskTextEncoder`` output for GraphLAMA); ``None`` clears it."""
        self.node_token_module.set_task_embedding(embedding)

    def set_token_norm(self, mode: Optional[str]) -> None:
        """``"embedding"``: rescale every soft token to the mean L2 norm of the LLM's input-embedding
        rows (soft tokens far off the scale the LLM reads are a known failure of projected tokens);
        ``None`` / ``"none"``: leave them as the method returns them."""
        if mode in (None, "none"):
            self.token_norm = None
        elif mode == "embedding":
            weight = self.llm.get_input_embeddings().weight
            measured = self.embedding_norm()
            self.token_norm = measured if measured is not None else \
                float(getattr(self.llm.config, "initializer_range", 0.02)) * weight.shape[1] ** 0.5
        else:
            raise ValueError(f"token_norm must be 'none' or 'embedding', found {mode!r}")

    def embedding_norm(self) -> Optional[float]:
        """Mean L2 norm of the LLM's input-embedding rows (``None`` for a weight-less build)."""
        weight = self.llm.get_input_embeddings().weight
        if weight.is_meta or weight.numel() == 0:
            return None
        return float(weight.detach().float().norm(dim=1).mean())

    @property
    def patch_token_id(self) -> int:
        return int(self.graph_token_ids[1])

    def num_graph_tokens(self, num_nodes: int) -> int:
        """``<g_patch>`` tokens for one graph of ``num_nodes`` nodes (the method's placement)."""
        return self.node_token_module.num_tokens(num_nodes)

    def tokens_per_graph_of(self, graphs) -> Tensor:
        """``[G]`` soft tokens per graph of a :class:`~glm.core.graph.SubgraphBatch`."""
        sizes = graphs.ptr[1:] - graphs.ptr[:-1]
        k = self.node_token_module.tokens_per_graph
        return sizes if k is None else torch.full_like(sizes, int(k))

    def node_tokens(self, graphs, graphs_per_sample: Tensor, task_embedding: Optional[Tensor] = None) -> Tensor:
        """Soft tokens of all graphs, sample-major: ``[T, hidden]``.

        Args:
            graphs: ``G`` graphs with ``N`` nodes in total.
            graphs_per_sample: ``[B]``, sums to ``G``.
            task_embedding: ``[B, D_t]`` or ``None``.
        """
        gps = graphs_per_sample.to(graphs.ptr.device).long()
        if int(gps.sum()) != graphs.num_graphs:
            raise SpliceError(f"graphs_per_sample sums to {int(gps.sum())} but the batch has {graphs.num_graphs} graphs")
        tokens = self.node_token_module(graphs, gps, task_embedding)
        expected = int(self.tokens_per_graph_of(graphs).sum())
        if tokens.dim() != 2 or tokens.shape[0] != expected:
            raise SpliceError(f"{type(self.node_token_module).__name__} returned {tuple(tokens.shape)}, "
                              f"expected [{expected}, hidden] soft tokens")
        return tokens

    # ---- splicing ----------------------------------------------------------------------
    def embed(self, batch: GraphBatch) -> Tensor:
        """Token embeddings with graph tokens and soft tokens spliced in: ``[B, L, hidden]``."""
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
        if self.training and nodes.numel():  # for the training-health log (glm.core.train.health)
            self.last_token_norm = float(nodes.detach().float().norm(dim=-1).mean())
        if self.token_norm is not None:
            nodes = nodes * (self.token_norm / nodes.float().norm(dim=-1, keepdim=True).clamp(min=1e-6)).to(nodes.dtype)
        # boolean indexing is row-major: the k-th patch of row b gets the k-th soft token of sample b
        return embeds.index_put((patch,), nodes.to(embeds.device, embeds.dtype))

    def _check_splice(self, batch: GraphBatch, patch: Tensor, start: Tensor) -> None:
        gps = batch.graphs_per_sample.to(patch.device).long()
        if gps.numel() != patch.shape[0]:
            raise SpliceError(f"graphs_per_sample has {gps.numel()} entries for {patch.shape[0]} rows")
        sizes = self.tokens_per_graph_of(batch.graphs).to(patch.device)
        sample_of_graph = torch.repeat_interleave(torch.arange(gps.numel(), device=patch.device), gps)
        expected = torch.zeros_like(gps).index_add_(0, sample_of_graph, sizes)
        found = patch.sum(dim=1)
        starts = start.sum(dim=1)
        bad = ((found != expected) | (starts != gps)).nonzero().flatten()
        if bad.numel():
            b = int(bad[0])
            raise SpliceError(
                f"row {b}: expected {int(gps[b])} {G_START} and {int(expected[b])} {G_PATCH} tokens "
                f"(the method's placement), found {int(starts[b])} and {int(found[b])}; "
                f"was the prompt expanded with glm.core.tokens.expand_graph_placeholders? ({G_END} closes each graph)"
            )

    @staticmethod
    def position_ids(attention_mask: Tensor) -> Tensor:
        """Positions counted over real tokens only (left or right padding): ``[B, L]``."""
        return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)

    def forward(self, batch: GraphBatch, **llm_kwargs: Any):
        """Causal-LM forward; returns the LLM's output (``loss`` when ``batch.labels`` is set, ``logits [B, L, V]``),
        or :meth:`answer_loss`'s when ``train_loss`` is set and the batch has labels."""
        embeds = self.embed(batch)
        if self.train_loss is not None and batch.labels is not None and not llm_kwargs:
            return self.answer_loss(embeds, batch, self.train_loss)
        return self.llm(inputs_embeds=embeds, attention_mask=batch.attention_mask,
                        position_ids=self.position_ids(batch.attention_mask), labels=batch.labels, **llm_kwargs)

    def answer_loss(self, embeds: Tensor, batch: GraphBatch, mode: str = "lm") -> CausalLMOutput:
        r"""Training loss with the LM head evaluated only where the loss reads it.

        * ``lm``: mean next-token cross-entropy over reply tokens (equals the LLM's own loss);
        * ``choice``: for rows with candidates (``batch.choice_ids``), cross-entropy of a softmax over
          the candidates' first reply tokens at the position before the reply -- exactly the rule of
          choice scoring in ``glm eval`` --; rows without candidates contribute their mean
          next-token loss; the loss is the mean over rows;
        * ``lm+choice``: the ``lm`` loss plus the mean ``choice`` term of rows with candidates.

        Shapes:
            - **embeds:** ``[B, L, hidden]``; **batch.labels:** ``[B, L]``
            - **output:** ``loss`` scalar, ``logits [B, K, V]`` at the ``K`` kept positions
        """
        if mode not in TRAIN_LOSSES:
            raise ValueError(f"train_loss must be one of {TRAIN_LOSSES}, found {mode!r}")
        target = batch.labels[:, 1:]
        answer = target != IGNORE_INDEX  # [B, L-1]: position p predicts labels[p + 1]
        if batch.choice_ids is not None and batch.choice_target is not None:
            has_choice = batch.choice_target.to(answer.device) >= 0
        else:
            has_choice = torch.zeros(answer.shape[0], dtype=torch.bool, device=answer.device)
        first = answer.int().argmax(dim=1)  # first reply position of each row
        need = answer.clone()
        if mode == "choice":
            need[has_choice] = False
            need[has_choice, first[has_choice]] = True
        keep = need.any(dim=0).nonzero().flatten()
        logits = self._logits_at(embeds, batch.attention_mask, keep).float()  # [B, K, V]
        rows = torch.arange(answer.shape[0], device=answer.device)
        token_loss = F.cross_entropy(logits.transpose(1, 2), target[:, keep], ignore_index=IGNORE_INDEX,
                                     reduction="none")  # [B, K]
        col = torch.searchsorted(keep, first).clamp(max=max(keep.numel() - 1, 0))
        choice_loss = torch.zeros(first.shape, device=logits.device)
        if mode != "lm" and bool(has_choice.any()):
            r = rows[has_choice]
            ids = batch.choice_ids.to(logits.device)[r]
            picked = logits[r, col[r]].gather(-1, ids.clamp(min=0)).masked_fill(ids < 0, float("-inf"))
            terms = F.cross_entropy(picked, batch.choice_target.to(logits.device)[r], reduction="none")
            choice_loss = choice_loss.index_put((r,), terms)
        if mode == "lm":
            loss = token_loss.sum() / answer.sum().clamp(min=1)
        elif mode == "choice":
            counts = (target[:, keep] != IGNORE_INDEX).sum(dim=1).clamp(min=1)
            row_lm = token_loss.sum(dim=1) / counts
            loss = torch.where(has_choice, choice_loss, row_lm).mean()
        else:
            loss = token_loss.sum() / answer.sum().clamp(min=1) + choice_loss.sum() / has_choice.sum().clamp(min=1)
        return CausalLMOutput(loss=loss, logits=logits)

    def _logits_at(self, embeds: Tensor, attention_mask: Tensor, keep: Tensor) -> Tensor:
        """LM logits at sequence positions ``keep`` only: ``[B, K, V]``."""
        kwargs = dict(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=self.position_ids(attention_mask))
        if _accepts_logits_to_keep(self.llm):
            return self.llm(**kwargs, logits_to_keep=keep).logits
        return self.llm(**kwargs).logits[:, keep]

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


def _accepts_logits_to_keep(llm: nn.Module) -> bool:
    """Whether ``llm.forward`` takes ``logits_to_keep`` (transformers' causal LMs do; it may be a tensor of
    positions); a PEFT wrapper passes it through to the model it wraps."""
    from glm.core.tuning import base_llm

    try:
        return "logits_to_keep" in inspect.signature(base_llm(llm).forward).parameters
    except (TypeError, ValueError):
        return False
