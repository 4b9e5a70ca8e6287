"""Analytic memory planner for a frozen causal LLM with graph tokens spliced into its input.

The model counts what actually lives on the device at the two moments that set the peak of a
training step, for a frozen Llama-layout LLM whose *input* requires grad (GraphLAMA: node tokens
enter at the input, so backward runs through every layer even though no LLM weight trains).

Per decoder layer, autograd saves (``s`` = bytes of the compute dtype, B batch, L sequence,
h hidden, i intermediate, H heads, Hkv kv heads, d head size); with frozen weights a matmul
saves only its weight (already resident), never its input:

=============================  =============================================================
RMSNorm (x2)                   its fp32 input ``4·B·L·h`` (HF upcasts) + ``rsqrt`` ``4·B·L``
gated MLP                      gate output, SiLU output, up output: ``3·B·L·i·s``
sdpa / flash, no padding       q ``B·L·H·d·s``, k, v ``B·L·Hkv·d·s``, output ``B·L·H·d·s``,
                               log-sum-exp ``4·B·H·L``
sdpa with padding mask         as above but k, v repeated to ``H`` heads, plus the mask
                               ``B·L·L·s`` (converted per layer)
eager                          q, repeated k and v ``3·B·L·H·d·s``, fp32 softmax ``4·B·H·L²``
                               and its cast ``B·H·L²·s`` (same tensor in fp32)
=============================  =============================================================

With gradient checkpointing only each layer's input ``B·L·h·s`` is kept and one layer is
recomputed at a time.

When the LLM trains (``tuning``, :mod:`glm.core.tuning`), the layers that train also keep what
their weight gradients need: LoRA keeps its input once per distinct input (``q/k/v`` share the
attention input ``B·L·h·s``, ``gate/up`` the MLP input, ``down`` its own ``B·L·i·s``; ``o_proj``'s
input is already saved by attention) and ``B·L·r·s`` per target for ``lora_B``; with dropout each
target keeps its dropped input and a mask ``B·L·in·(s+1)`` instead (the CPU's mask is ``s`` bytes). A trained layer (``freeze``)
keeps the inputs of all its linears and of its two norm weights. A 4-bit base stores
``0.5 + 4/64`` bytes per linear weight (``+1/64 + 4/(64·256)`` with double quantisation) and
dequantises one linear at a time to the compute dtype. The LM head and loss add about ``B·L·V·12`` bytes at the start of backward
(fp32 log-softmax output, its gradient, the gradient of the logits and its cast). These
numbers were checked tensor by tensor with ``torch.autograd.graph.saved_tensors_hooks``
(``tests/plan/test_memory.py``) and against measured peaks (``bench/plan_accuracy.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from glm.core.choices import Tuning, options
from glm.core.plan.models import GIB, LLMShape
from glm.errors import GlmError

DTYPE_BYTES = {"float32": 4, "fp32": 4, "bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2}
# bytes per quantised linear weight (bitsandbytes: int8 + per-row scale; NF4 + fp32 absmax per 64)
QUANT_BYTES = {"8bit": 1.0 + 4 / 4096, "4bit": 0.5 + 4 / 64}
DOUBLE_QUANT_4BIT = 0.5 + 1 / 64 + 4 / (64 * 256)  # 8-bit absmax per 64 weights + fp32 scale per 256 blocks
TUNING = options(Tuning)
# Llama-layout linears of one decoder layer: name -> (input, output) as functions of the shape
LINEARS = {
    "q_proj": lambda m: (m.hidden, m.heads * m.head_dim), "k_proj": lambda m: (m.hidden, m.kv_heads * m.head_dim),
    "v_proj": lambda m: (m.hidden, m.kv_heads * m.head_dim), "o_proj": lambda m: (m.heads * m.head_dim, m.hidden),
    "gate_proj": lambda m: (m.hidden, m.intermediate), "up_proj": lambda m: (m.hidden, m.intermediate),
    "down_proj": lambda m: (m.intermediate, m.hidden),
}
# which saved tensor a linear's input is: shared inputs are saved once
LINEAR_INPUT = {"q_proj": "attn_in", "k_proj": "attn_in", "v_proj": "attn_in", "o_proj": "attn_out",
                "gate_proj": "mlp_in", "up_proj": "mlp_in", "down_proj": "mlp_act"}
OPTIMIZER_BYTES = {"adamw": 8, "adam": 8, "adamw8bit": 2, "sgd": 0}
ATTENTION = ("sdpa", "eager", "flash_attention_2")

TIGHT_FRACTION = 0.10  # "tight" when less than 10 % of the card would stay free


class PlanError(GlmError, ValueError):
    """A plan input is inconsistent (unknown dtype, attention implementation, ...)."""


@dataclass
class PlanInput:
    """Everything the estimate depends on.

    Args:
        llm: the frozen LLM's architecture.
        dtype: dtype the LLM computes in (DeepSpeed ``bf16`` casts the whole model).
        quantization: ``None``, ``"8bit"`` or ``"4bit"`` (linear layers of the decoder only).
        trainable_params / frozen_graph_params: graph-side parameter counts (encoder, hop,
            gate, projector) that train / stay frozen in this stage.
        stage: ``pretrain``, ``adapt`` (both train) or ``infer`` (no backward).
        zero_stage, offload_optimizer, offload_param: the DeepSpeed recipe's ZeRO settings.
        world_size: ranks of the launch; the plan is per rank: ZeRO-1 partitions the optimizer states,
            ZeRO-2 the gradients too, ZeRO-3 the weights too (DeepSpeed pads each partition to one size,
            so every rank peaks alike on its GPU; host RAM holds one model load per local rank).
        micro_batch: samples per forward.
        text_tokens: tokens that are not node tokens (prompt, answer, graph delimiters).
        loss_positions: sequence positions where training runs the LM head (the reply positions the
            loss reads, over the batch); ``None`` = every position.
        graphs_per_sample, nodes_per_graph: node tokens = their product (``[10, 10]`` fan-out -> 111).
        gradient_checkpointing: recompute each LLM layer in backward.
        attention: ``sdpa``, ``eager`` or ``flash_attention_2``.
        padded: the batch carries padding (``micro_batch > 1`` by default): sdpa then gets a mask.
        optimizer: ``adamw`` (two fp32 states), ``adamw8bit`` or ``sgd``.
        graph_dim, gnn_layers: graph encoder width / depth (graph-side activations).
        generate_tokens, eval_batch: generation budget; 0 = no generation phase.
        device: ``cuda`` (adds CUDA context and fragmentation reserve) or ``cpu``.
        cuda_context_gib: CUDA context + cuBLAS/NCCL workspaces, outside the caching allocator.
        fragmentation: reserve as a fraction of the allocated peak (reserved - allocated).
        tuning: what of the LLM trains (``frozen``, ``lora``, ``qlora`` = 4-bit base + LoRA, ``freeze``).
        lora_r, lora_targets, lora_dropout: LoRA rank, target linears (``all-linear`` = all seven), dropout.
        freeze_layers: decoder layers that train under ``freeze`` (the last ones).
        double_quant: 4-bit base with double quantisation (``qlora``).
        accumulation: gradient accumulation steps. Without ZeRO and accumulation, the LLM's weight
            gradients appear in backward as the trained layers free their activations and are gone
            before the next forward; otherwise they stay resident like every gradient.
    """

    llm: LLMShape
    dtype: str = "bfloat16"
    quantization: Optional[str] = None
    trainable_params: int = 0
    frozen_graph_params: int = 0
    stage: str = "adapt"
    zero_stage: int = 0
    offload_optimizer: bool = False
    offload_param: bool = False
    world_size: int = 1
    micro_batch: int = 1
    text_tokens: int = 256
    loss_positions: Optional[int] = None
    graphs_per_sample: int = 1
    nodes_per_graph: int = 111
    gradient_checkpointing: bool = False
    attention: str = "sdpa"
    padded: Optional[bool] = None
    optimizer: str = "adamw"
    graph_dim: int = 128
    gnn_layers: int = 3
    generate_tokens: int = 0
    eval_batch: int = 1
    device: str = "cuda"
    cuda_context_gib: float = 0.75
    fragmentation: float = 0.10
    stage3_max_live_params: int = 1_000_000_000
    tuning: str = "frozen"
    lora_r: int = 8
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    lora_dropout: float = 0.0
    freeze_layers: int = 0
    double_quant: bool = True
    accumulation: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(LINEARS) if "all-linear" in self.lora_targets else tuple(self.lora_targets)

    @property
    def llm_trainable_params(self) -> int:
        """LLM parameters that train: LoRA ``A``/``B`` on every layer, or the last layers."""
        m = self.llm
        if self.tuning in ("lora", "qlora"):
            return m.layers * sum(self.lora_r * sum(LINEARS[t](m)) for t in self.targets)
        if self.tuning == "freeze":
            return self.freeze_layers * m.layer_params
        return 0

    @property
    def trained_layers(self) -> int:
        """Decoder layers whose weights (or LoRA) get gradients."""
        return {"lora": self.llm.layers, "qlora": self.llm.layers, "freeze": self.freeze_layers}.get(self.tuning, 0)

    @property
    def quant(self) -> Optional[str]:
        """The base's quantisation (``qlora`` implies 4 bit)."""
        return "4bit" if self.tuning == "qlora" else self.quantization

    @property
    def node_tokens(self) -> int:
        return self.graphs_per_sample * self.nodes_per_graph

    @property
    def seq_len(self) -> int:
        return self.text_tokens + self.node_tokens

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def is_padded(self) -> bool:
        return self.micro_batch > 1 if self.padded is None else self.padded

    def replace(self, **changes: Any) -> "PlanInput":
        return dataclasses.replace(self, **changes)

    def check(self) -> "PlanInput":
        if self.dtype not in DTYPE_BYTES:
            raise PlanError(f"dtype must be one of {', '.join(DTYPE_BYTES)}; found {self.dtype!r}")
        if self.quantization not in (None, *QUANT_BYTES):
            raise PlanError(f"quantization must be none, 8bit or 4bit; found {self.quantization!r}")
        if self.tuning not in TUNING:
            raise PlanError(f"tuning must be one of {', '.join(TUNING)}; found {self.tuning!r}")
        unknown = [t for t in self.targets if t not in LINEARS]
        if self.tuning in ("lora", "qlora") and unknown:
            raise PlanError(f"LoRA targets {unknown} are not Llama-layout linears ({', '.join(LINEARS)}, all-linear)")
        if self.freeze_layers > self.llm.layers:
            raise PlanError(f"freeze_layers {self.freeze_layers} > {self.llm.layers} decoder layers")
        if self.attention not in ATTENTION:
            raise PlanError(f"attention must be one of {', '.join(ATTENTION)}; found {self.attention!r}")
        if self.optimizer not in OPTIMIZER_BYTES:
            raise PlanError(f"optimizer must be one of {', '.join(OPTIMIZER_BYTES)}; found {self.optimizer!r}")
        if self.stage not in ("pretrain", "adapt", "infer"):
            raise PlanError(f"stage must be pretrain, adapt or infer; found {self.stage!r}")
        if isinstance(self.world_size, bool) or not isinstance(self.world_size, int) or self.world_size < 1:
            raise PlanError(f"world size (--nproc) must be >= 1; found {self.world_size!r}")
        if self.zero_stage not in (0, 1, 2, 3):
            raise PlanError(f"ZeRO stage must be 0..3; found {self.zero_stage!r}")
        if self.micro_batch < 1 or self.seq_len < 1:
            raise PlanError(f"micro_batch and sequence length must be >= 1; found {self.micro_batch}, {self.seq_len}")
        return self


@dataclass
class Item:
    """One row of the plan: bytes on the accelerator and in host RAM at the peak."""

    name: str
    gpu: float
    cpu: float = 0.0
    note: str = ""


@dataclass
class MemoryPlan:
    """The itemised estimate; ``peak`` is device memory (GPU, or the process on CPU)."""

    input: PlanInput
    items: list[Item]
    peak: float
    cpu_peak: float
    train_peak: float
    generate_peak: float
    dominant: str

    def item(self, name: str) -> Item:
        for it in self.items:
            if it.name == name:
                return it
        raise KeyError(name)

    @property
    def peak_over_weights(self) -> float:
        """The peak minus resident weights, CUDA context and reserve: what a step adds on top of a
        loaded model (the quantity the CPU probe measures as peak-RSS growth)."""
        skip = {"frozen LLM weights", "graph-side weights", "LoRA weights", "CUDA context", "fragmentation reserve"}
        return sum(it.gpu for it in self.items if it.name not in skip and not it.name.startswith("generation"))

    def verdict(self, card_gib: float) -> tuple[str, float]:
        """``("fits" | "tight" | "does not fit", headroom bytes)`` for a card of ``card_gib``."""
        card = card_gib * GIB
        headroom = card - self.peak
        if headroom < 0:
            return "does not fit", headroom
        return ("tight" if headroom < TIGHT_FRACTION * card else "fits"), headroom

    def to_dict(self) -> dict[str, Any]:
        inp = dataclasses.asdict(self.input)
        inp["llm"] = self.input.llm.to_dict()
        inp["seq_len"] = self.input.seq_len
        return {
            "input": inp,
            "items": [dataclasses.asdict(it) for it in self.items],
            "peak_bytes": self.peak, "cpu_peak_bytes": self.cpu_peak,
            "train_peak_bytes": self.train_peak, "generate_peak_bytes": self.generate_peak,
            "peak_over_weights_bytes": self.peak_over_weights, "dominant": self.dominant,
        }


# --------------------------------------------------------------------------------------
# the pieces
# --------------------------------------------------------------------------------------


def weight_bytes(p: PlanInput) -> float:
    """Bytes of the frozen LLM's weights in their storage format."""
    llm, s = p.llm, p.dtype_bytes
    if p.quant is None:
        return llm.num_params * s
    rest = llm.num_params - llm.linear_params
    per = DOUBLE_QUANT_4BIT if p.quant == "4bit" and p.double_quant and p.tuning == "qlora" else QUANT_BYTES[p.quant]
    return llm.linear_params * per + rest * s


def tuning_saved_bytes(p: PlanInput, batch: int, seq: int) -> float:
    """Extra bytes one *trained* decoder layer keeps for its weight gradients (LoRA or full layer)."""
    m, s, bl = p.llm, p.dtype_bytes, batch * seq
    width = {"attn_in": m.hidden, "attn_out": 0, "mlp_in": m.hidden, "mlp_act": m.intermediate}
    if p.tuning == "freeze":
        return bl * s * (sum(width.values()) + 2 * m.hidden)  # linears' inputs + the two norms' normalised inputs
    if p.tuning not in ("lora", "qlora"):
        return 0.0
    out = sum(bl * p.lora_r * s for _ in p.targets)  # lora_B's input A(x)
    if p.lora_dropout > 0:  # each target keeps its own dropped input and mask (bool on CUDA, input dtype on CPU)
        mask = 1 if p.device == "cuda" else s
        return out + sum(bl * LINEARS[t](m)[0] * (s + mask) for t in p.targets)
    return out + sum(bl * width[i] * s for i in {LINEAR_INPUT[t] for t in p.targets})


def dequantised_bytes(p: PlanInput) -> float:
    """The largest linear dequantised to the compute dtype (a 4-bit base, one layer at a time)."""
    if p.quant != "4bit":
        return 0.0
    return max(i * o for i, o in (f(p.llm) for f in LINEARS.values())) * p.dtype_bytes


def layer_saved_bytes(p: PlanInput, batch: int, seq: int) -> float:
    """Bytes autograd keeps for one decoder layer of a frozen LLM whose input requires grad."""
    llm, s, b, n = p.llm, p.dtype_bytes, batch, seq
    h, i, H, Hkv, d = llm.hidden, llm.intermediate, llm.heads, llm.kv_heads, llm.head_dim
    bl = b * n
    norms = 2 * (4 * bl * h + 4 * bl)
    mlp = (3 if llm.mlp == "gated" else 1) * bl * i * s
    if p.attention == "eager":
        attn = 3 * bl * H * d * s + 4 * b * H * n * n + (b * H * n * n * s if s != 4 else 0)
    elif p.attention == "sdpa" and p.is_padded:
        attn = 4 * bl * H * d * s + 4 * b * H * n + b * n * n * s
    else:  # sdpa without mask (GQA native) or flash attention
        attn = 2 * bl * H * d * s + 2 * bl * Hkv * d * s + 4 * b * H * n
    return norms + mlp + attn


def layer_backward_transient(p: PlanInput, batch: int, seq: int) -> float:
    """Extra bytes while one layer runs backward: gradients of its intermediate tensors."""
    llm, s, bl = p.llm, p.dtype_bytes, batch * seq
    mlp = 3 * bl * llm.intermediate * s + 2 * bl * llm.hidden * 4
    attn = 3 * bl * llm.heads * llm.head_dim * s + 4 * bl * llm.hidden
    if p.attention == "eager":
        attn += batch * llm.heads * seq * seq * (4 + 2 * s)
    return max(mlp, attn)


def head_positions(p: PlanInput, seq: int) -> int:
    """Positions where training runs the LM head: ``loss_positions``, at most the sequence."""
    return seq if p.loss_positions is None else min(seq, p.loss_positions)


def logits_bytes(p: PlanInput, batch: int, seq: int) -> tuple[float, float]:
    """(logits still held during backward, peak of LM head + loss at the start of backward).

    Training computes logits only at the positions the loss reads (``loss_positions``,
    :meth:`glm.core.model.GraphLanguageModel.answer_loss`) and keeps only ``loss``, so the logits tensor is
    freed before backward; at its start live the fp32 log-softmax output (saved), its incoming
    gradient and the fp32 gradient of the logits, plus that gradient's cast to a 16-bit dtype.
    """
    blv = batch * head_positions(p, seq) * p.llm.vocab
    cast = blv * p.dtype_bytes if p.dtype_bytes != 4 else 0
    return 0.0, 12 * blv + cast


def graph_side_activation_bytes(p: PlanInput) -> float:
    """Saved tensors of the graph side for the batch's node tokens (small; counted with saved-tensor hooks).

    The gate and projector keep about 6 node-wise ``graph_dim`` tensors. A trained GNN (pre-train)
    keeps, per layer, 3 node-wise and 3 edge-wise ``graph_dim`` tensors plus 4 edge-wise attention
    scores (8 heads); sampled subgraphs are near-trees, so about 2 directed edges per node. A frozen
    encoder (adapt) keeps nothing. Plus the gradient of the spliced node vectors in backward.
    """
    nodes = p.micro_batch * p.node_tokens
    edges = 2 * nodes
    graph = 6 * nodes * p.graph_dim * 4
    if p.stage == "pretrain":  # the encoder trains
        graph += p.gnn_layers * (3 * nodes * p.graph_dim * 4 + 3 * edges * p.graph_dim * 4 + 4 * edges * 8 * 4)
    return graph + nodes * p.llm.hidden * p.dtype_bytes


# --------------------------------------------------------------------------------------
# the estimate
# --------------------------------------------------------------------------------------


def estimate(p: PlanInput) -> MemoryPlan:
    """Itemised peak memory of one training step (and of generation when ``generate_tokens``)."""
    p.check()
    llm, s, b, n = p.llm, p.dtype_bytes, p.micro_batch, p.seq_len
    gpu = p.device == "cuda"
    items: list[Item] = []
    trains = p.stage != "infer"

    # weights
    w = weight_bytes(p)
    if p.zero_stage == 3 and p.world_size > 1 and not p.offload_param:
        live = w / p.world_size + llm.largest_layer_params * s
        items.append(Item("frozen LLM weights", min(w, live), 0.0,
                          f"ZeRO-3: 1/{p.world_size} of {llm.num_params / 1e9:.2f} B params per rank + one gathered layer"))
    elif p.zero_stage == 3 and p.offload_param and gpu:
        live = min(llm.num_params, p.stage3_max_live_params + llm.largest_layer_params) * s
        items.append(Item("frozen LLM weights", min(w, live), w,
                          "ZeRO-3 param offload: all on CPU, up to stage3_max_live_parameters gathered on GPU"))
    else:
        q = f", {p.quant} linears" if p.quant else ""
        items.append(Item("frozen LLM weights", w, 0.0, f"{llm.num_params / 1e9:.2f} B params x {s} B{q}"))
    graph_w = (p.trainable_params + p.frozen_graph_params) * s
    items.append(Item("graph-side weights", graph_w, 0.0,
                      f"{p.trainable_params:,} trainable + {p.frozen_graph_params:,} frozen"))
    lora = p.llm_trainable_params if p.tuning in ("lora", "qlora") else 0
    if lora:
        items.append(Item("LoRA weights", lora * s, 0.0, f"r={p.lora_r} on {', '.join(p.targets)}: {lora:,} params"))

    # trainable states
    pt = (p.trainable_params + p.llm_trainable_params) if trains else 0
    mixed = s != 4
    # without ZeRO and accumulation the LLM's weight gradients exist only in backward (see accumulation)
    llm_in_backward = bool(pt and p.zero_stage == 0 and p.accumulation == 1 and p.llm_trainable_params)
    pt_llm = p.llm_trainable_params * (s + (4 if mixed else 0)) if llm_in_backward else 0.0
    if pt:
        pg = pt - (p.llm_trainable_params if llm_in_backward else 0)
        ranks = p.world_size
        grads = pg * s + (pg * 4 if mixed else 0)  # compute-dtype grads + fp32 grad copy (mixed precision)
        states = pt * (OPTIMIZER_BYTES[p.optimizer] + (4 if mixed else 0))  # Adam m, v + fp32 master
        if ranks > 1 and p.zero_stage >= 1:  # this rank's partition
            states /= ranks
            if p.zero_stage >= 2:
                grads /= ranks
                pg = pg / ranks
        if p.offload_optimizer and gpu:
            items.append(Item("gradients", pg * s, pg * 4 if mixed else pg * s, "fp32 partition on CPU (offload)"))
            items.append(Item("optimizer states", 0.0, states, f"{p.optimizer} on CPU (offload_optimizer)"))
        else:
            note = "compute dtype" + (" + fp32 copy" if mixed else "")
            if llm_in_backward:
                note += f"; the LLM's ({pt_llm / 2**20:.1f} MiB) appear in backward (backward working set)"
            items.append(Item("gradients", grads, 0.0, note))
            items.append(Item("optimizer states", states, 0.0, p.optimizer + (" + fp32 master" if mixed else "")))

    # activations
    train_act = 0.0
    if trains:
        per_layer = layer_saved_bytes(p, b, n)
        # the spliced inputs_embeds are layer 0's input: saved by its first norm (or as its checkpoint),
        # so they are inside the layer terms; the final norm's input is freed before any layer's backward
        final_norm = 4 * b * n * llm.hidden + 4 * b * n
        held, loss_peak = logits_bytes(p, b, n)
        transient = layer_backward_transient(p, b, n) + dequantised_bytes(p)  # incoming / residual gradients
        tuned = tuning_saved_bytes(p, b, n)  # per trained layer, for its weight gradients
        if p.gradient_checkpointing:
            layers_saved = llm.layers * b * n * llm.hidden * s
            at_layer = layers_saved + per_layer + tuned + transient + held
            note = f"checkpoints {llm.layers} x B·L·h + one recomputed layer"
        else:
            layers_saved = llm.layers * per_layer + p.trained_layers * tuned
            at_layer = layers_saved + transient + held
            if pt_llm:  # once the earliest trained layer is done: its successors' activations are gone
                at_layer = max(at_layer, layers_saved - p.trained_layers * (per_layer + tuned) + pt_llm + transient)
            note = f"{llm.layers} layers x {per_layer / 2**20:.1f} MiB (B={b}, L={n}, {p.attention})"
            if tuned:
                note += f" + {p.trained_layers} trained x {tuned / 2**20:.1f} MiB ({p.tuning})"
        saved = layers_saved + final_norm
        at_loss = saved + loss_peak
        items.append(Item("activations", saved, 0.0, note))
        items.append(Item("logits + loss", loss_peak, 0.0, f"B·K·V = {b}x{head_positions(p, n)}x{llm.vocab} "
                                                           f"(K: positions the loss reads), fp32 loss"))
        extra = max(0.0, at_layer - at_loss)
        items.append(Item("backward working set", extra, 0.0,
                          "one layer's recompute and gradients" if p.gradient_checkpointing else "one layer's gradients"))
        items.append(Item("graph-side activations", graph_side_activation_bytes(p), 0.0,
                          f"{b} x {p.node_tokens} node tokens"))
        train_act = max(at_loss, at_layer) + items[-1].gpu
    static = sum(it.gpu for it in items if it.name in ("frozen LLM weights", "graph-side weights", "LoRA weights",
                                                       "gradients", "optimizer states"))
    train_alloc = static + train_act

    # generation (inference) phase
    gen_alloc = 0.0
    if p.generate_tokens > 0 or p.stage == "infer":
        t = n + p.generate_tokens
        kv = 2 * llm.layers * p.eval_batch * llm.kv_heads * llm.head_dim * t * s
        prefill = p.eval_batch * n * (2 * llm.intermediate + 4 * llm.hidden) * s + p.eval_batch * llm.vocab * 4
        if p.attention == "eager":
            prefill += p.eval_batch * llm.heads * n * n * (4 + s)
        items.append(Item("generation KV cache", kv, 0.0, f"{p.eval_batch} x {t} tokens (not at the training peak)"))
        items.append(Item("generation prefill", prefill, 0.0, "one layer's temporaries + last-token logits"))
        gen_alloc = sum(it.gpu for it in items if it.name in ("frozen LLM weights", "graph-side weights",
                                                              "LoRA weights")) + kv + prefill + dequantised_bytes(p)

    alloc = max(train_alloc, gen_alloc)
    if gpu:
        items.append(Item("CUDA context", p.cuda_context_gib * GIB, 0.0, "driver context, cuBLAS/NCCL workspaces"))
        items.append(Item("fragmentation reserve", p.fragmentation * alloc, 0.0,
                          f"{p.fragmentation:.0%} of allocated (reserved - allocated)"))
    overhead = sum(it.gpu for it in items if it.name in ("CUDA context", "fragmentation reserve"))
    cpu = sum(it.cpu for it in items)
    if gpu:
        # loading goes through host RAM once (HF from_pretrained); offloaded states stay there
        cpu = max(cpu, w) if not (p.zero_stage == 3 and p.offload_param) else cpu
    peak_items = [it for it in items if not it.name.startswith("generation")] if train_alloc >= gen_alloc else \
        [it for it in items if it.name not in ("gradients", "optimizer states", "activations", "logits + loss",
                                                 "backward working set", "graph-side activations")]
    dominant = max(peak_items, key=lambda it: it.gpu).name
    return MemoryPlan(p, items, alloc + overhead, cpu, train_alloc, gen_alloc, dominant)
