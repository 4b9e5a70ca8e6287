"""From a :class:`~glm.core.config.RunConfig` to a model, samples and a finished run.

This is the wiring behind ``glm pretrain`` / ``glm adapt`` / ``glm infer`` / ``glm eval``::

    config -> LLM (+ tokenizer) -> the method's graph side (glm.core.factory) -> GraphLanguageModel
           -> TAG -> node features (cached) -> GraphSource (fan-out) -> few-shot split
           -> task samples (pretrain: the pre-training classes; adapt: k shots of the held-out classes)
           -> GraphCollator (chat template, task embeddings) -> Trainer (DeepSpeed)

Adaptation starts from ``training.init_from`` (a pre-training run directory or adapter file);
adapters record that origin, so inference re-applies the whole chain with :func:`apply_adapter_chain`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from glm.core.config import RunConfig
from glm.core.sample import Sample
from glm.core.train.checkpoint import ADAPTER_FILE, CheckpointError
from glm.errors import GlmError

logger = logging.getLogger("glm.train")

class PipelineError(GlmError, ValueError):
    """The configuration cannot be turned into a model or data (named field, found value)."""


# -- model ------------------------------------------------------------------------------------


def load_llm(config: RunConfig):
    """``(model, tokenizer)`` for ``model.llm``: ``smollm2-135m``, ``tiny-random`` or a local folder."""
    from glm.core.llm import load_llm_from_config

    return load_llm_from_config(config.model.llm)


def build_model(config: RunConfig, backend: Optional[str] = None):
    """A :class:`~glm.core.model.GraphLanguageModel` for ``config`` (random graph side); see
    :mod:`glm.core.factory`."""
    from glm.core.factory import FactoryError
    from glm.core.factory import build_model as factory_build

    llm, tok = load_llm(config)
    try:
        return factory_build(config, backend, llm=llm, tokenizer=tok)
    except FactoryError as exc:
        raise PipelineError(str(exc)) from None


def adapter_path(path: str | os.PathLike) -> Path:
    """An adapter file from a file, a run directory or a checkpoint directory."""
    p = Path(path)
    if p.is_file():
        return p
    if (p / ADAPTER_FILE).is_file():
        return p / ADAPTER_FILE
    from glm.core.train.checkpoint import latest_checkpoint

    last = latest_checkpoint(p) if p.is_dir() else None
    if last is not None and (last / ADAPTER_FILE).is_file():
        return last / ADAPTER_FILE
    raise CheckpointError(f"no adapter found at {str(p)!r} (expected a file or a folder with {ADAPTER_FILE})")


def apply_adapter_chain(model, path: str | os.PathLike, _depth: int = 0) -> list[Path]:
    """Load an adapter and, first, the adapters it was trained on top of (``init_from``).

    A converted encoder state (``glm convert official-gt``) loads into ``model.encoder``.
    """
    from glm.core.adapter import load_adapter, read_adapter
    from glm.core.convert import load_encoder_state

    if _depth > 8:
        raise CheckpointError(f"adapter chain deeper than 8 at {path} (a cycle?)")
    file = adapter_path(path)
    if load_encoder_state(model, file):
        return [file]
    _, meta = read_adapter(file)
    parent = (meta.get("extra") or {}).get("init_from")
    loaded = []
    if parent:
        parent_path = Path(parent)
        if not parent_path.is_absolute() and not parent_path.exists():
            parent_path = file.parent / parent  # relative to the adapter
        loaded += apply_adapter_chain(model, parent_path, _depth + 1)
    load_adapter(model, file)
    return loaded + [file]


def check_feature_compatibility(config: RunConfig, init_from: str | os.PathLike) -> None:
    """Refuse a graph side pre-trained on other node features (embedder, width) -- its encoder reads
    other coordinates -- or with another ``model.token_norm`` -- its projector was trained for another
    token scale. Adapters written before glm recorded these are accepted."""
    from glm.core.adapter import AdapterFormatError, read_adapter

    try:
        _, meta = read_adapter(adapter_path(init_from))
    except (AdapterFormatError, CheckpointError, FileNotFoundError):
        return  # a converted encoder state has nothing recorded; a missing file is named when it is loaded
    extra = meta.get("extra") or {}
    norm = extra.get("token_norm")
    if norm is not None and norm != config.model.token_norm:
        raise PipelineError(f"training.init_from={init_from}: model.token_norm differs (pre-trained with {norm!r}, "
                            f"now {config.model.token_norm!r}); the projector was trained for that token scale")
    saved = extra.get("features")
    if not saved:
        return
    from glm.core.data.matrix import feature_source

    mine = {"embedder": feature_source(config.data), "dim": config.model.encoder.in_dim}
    diffs = [f"{k}: pre-trained with {saved.get(k)!r} (on {saved.get('dataset')}), now {v!r}"
             for k, v in mine.items() if saved.get(k) != v]
    if diffs:
        raise PipelineError(f"training.init_from={init_from}: node features differ ({'; '.join(diffs)}); use the "
                            "same data.embedder, data.propagate, data.standardize and model.encoder.in_dim as the pre-training")


# -- data -------------------------------------------------------------------------------------


@dataclass
class DataBundle:
    """A loaded dataset with everything the tasks need."""

    tag: Any
    source: Any  # glm.core.data.tasks.GraphSource
    split: Any  # glm.core.data.splits.FewShotSplit
    task_encoder: Any  # glm.core.text.TaskTextEncoder
    raw_x: Any = None  # the features before data.propagate / data.standardize (the bench's feature baselines read these)


def prepare_data(config: RunConfig, progress: bool = False, tag: Any = None, x: Optional[torch.Tensor] = None) -> DataBundle:
    """Load ``data.dataset`` (or take ``tag``), its node features (or ``x``), the sampler, the few-shot split."""
    from glm.core.data import load_dataset
    from glm.core.data.features import node_features
    from glm.core.data.splits import make_few_shot_split
    from glm.core.data.tasks import GraphSource
    from glm.core.text import TaskTextEncoder, get_embedder

    d = config.data
    options = dict(d.options)
    if d.dataset not in ("synthetic",):
        options.setdefault("data_dir", d.data_dir)  # None: glm.core.data.tag.resolve_data_dir searches
    if tag is None:
        tag = load_dataset(d.dataset, **options)
    embedder = get_embedder(d.embedder)
    if x is not None:
        pass
    elif d.features:
        from glm.core.data.matrix import matrix_features

        x = matrix_features(d.features, tag.num_nodes, config.model.encoder.in_dim)
    else:
        x = node_features(tag, embedder, dim=config.model.encoder.in_dim, cache_dir=d.cache_dir, progress=progress)
    raw_x = None
    if d.propagate:
        from glm.core.data.propagate import propagate

        raw_x, x = x, propagate(x, tag.edge_index, d.propagate)
    if d.standardize:
        from glm.core.data.standardize import standardize

        raw_x, x = (x if raw_x is None else raw_x), standardize(x)
    source = GraphSource(tag, x, d.fanout, d.seed, cache_dir=d.cache_dir, template=prompt_template(config))
    # new_graph: every class is new (all "held out"); pretrain_graph: every class pre-trains (none held out)
    n_way = {"new_graph": tag.num_classes, "pretrain_graph": 0}.get(d.split, d.n_way)
    split = make_few_shot_split(tag, n_way, d.k_shot, d.seed, None if d.split != "heldout" else d.heldout_classes,
                                val_per_class=d.val_per_class, test_per_class=d.test_per_class)
    task_dim = getattr(config.model.method_config, "task_embedding_dim", None)
    task_encoder = TaskTextEncoder(embedder, dim=task_dim) if task_dim else None
    return DataBundle(tag, source, split, task_encoder, raw_x)


def prompt_template(config: RunConfig):
    """The dataset's prompt words (its registration), overridden by ``data.prompt``."""
    from glm.core.data.tasks import PromptTemplate
    from glm.plugins.manager import get_registry

    spec = get_registry().datasets.get(config.data.dataset)
    try:
        return PromptTemplate.from_options(spec.prompt if spec else None, config.data.prompt)
    except (TypeError, ValueError) as exc:
        raise PipelineError(str(exc)) from None


def _take(nodes: list[int], n: Optional[int], seed: int) -> list[int]:
    if n is None or n >= len(nodes):
        return list(nodes)
    g = torch.Generator().manual_seed(seed)
    return [nodes[i] for i in torch.randperm(len(nodes), generator=g)[:n].tolist()]


def stage_samples(config: RunConfig, data: DataBundle, stage: Optional[str] = None) -> list[Sample]:
    """Training samples of ``stage`` (default ``training.stage``), as the method's stage table says.

    ``pretrain`` data: every task of the stage (default ``data.tasks``) on the pre-training classes'
    nodes (``samples_per_task`` each); ``fewshot`` data: node classification on the ``k_shot``
    training nodes of the held-out classes, with the held-out class names as choices.
    """
    from glm.core.data import tasks as T

    d = config.data
    stage = stage or config.training.stage
    spec = config.model.method_spec.stages[stage]
    split, source = data.split, data.source
    if spec.data == "fewshot":
        return fewshot_samples(config, data)
    if not split.pretrain:
        if config.data.split == "new_graph":
            raise PipelineError(f"data.split=new_graph: {data.tag.name} has no pre-training classes (every class is "
                                "new); pre-train on another dataset and adapt here with training.init_from")
        raise PipelineError("data.n_way leaves no pre-training classes; lower data.n_way")
    samples: list[Sample] = []
    if d.datasets:  # more pre-training graphs, each with its own share (glm.core.train.mix)
        from glm.core.train.mix import mixed_pretrain_samples

        own = stage_samples(replace_data(config, datasets=[]), data, stage)
        return mixed_pretrain_samples(config, data, stage, own, prepare_data, stage_samples)
    for i, task in enumerate(spec.tasks if spec.tasks is not None else d.tasks):
        if task not in T.TASKS:
            raise PipelineError(f"data.tasks: unknown task {task!r}; known: {', '.join(T.TASKS)}")
        nodes = _take(split.pretrain, d.samples_per_task, d.seed + 17 * (i + 1))
        samples += T.TASKS[task](source, nodes, classes=split.class_indices(data.tag, "pretrain"),
                                 max_text_words=d.max_text_words, graph_matching_nodes=d.graph_matching_nodes,
                                 node_text=d.node_text,
                                 seed=d.seed, pool=split.pretrain)
    return samples


def replace_data(config: RunConfig, **changes: Any) -> RunConfig:
    """A copy of ``config`` with ``data`` fields changed."""
    import copy
    import dataclasses

    other = copy.copy(config)
    other.data = dataclasses.replace(config.data, **changes)
    return other


def _held_out(config: RunConfig, data: DataBundle) -> None:
    if not data.split.heldout_classes:
        raise PipelineError(f"data.split={config.data.split}: {data.tag.name} holds no class out, so there is "
                            "nothing to adapt to or evaluate; adapt on another graph (data.split=new_graph)")


def generation_samples(config: RunConfig, data: DataBundle, which: str = "train") -> list[Sample]:
    """Title-generation samples of the ``data.generation`` nodes (``train`` / ``val`` / ``test``)."""
    from glm.core.data import tasks as T
    from glm.core.data.generation_split import generation_nodes

    split = generation_nodes(data.source, config.data.generation, config.data.seed)
    return T.title_generation(data.source, getattr(split, which), max_abstract_words=config.data.max_text_words)


def fewshot_samples(config: RunConfig, data: DataBundle) -> list[Sample]:
    """Node-classification samples of the ``k_shot`` training nodes of the held-out classes (title
    generation: its train examples)."""
    from glm.core.data import tasks as T

    if config.data.task == "title_generation":
        return generation_samples(config, data, "train")
    _held_out(config, data)
    return T.node_classification(data.source, data.split.train, classes=data.split.class_indices(data.tag, "heldout"),
                                 max_text_words=config.data.max_text_words, include_text=config.data.node_text)


def eval_samples(config: RunConfig, data: DataBundle, which: str = "test") -> list[Sample]:
    """Node-classification samples of the held-out classes' ``test`` (or ``val``) nodes (title generation:
    its test / val nodes)."""
    from glm.core.data import tasks as T

    if config.data.task == "title_generation":
        return generation_samples(config, data, which)
    _held_out(config, data)
    nodes = data.split.test if which == "test" else data.split.val
    return T.node_classification(data.source, nodes, classes=data.split.class_indices(data.tag, "heldout"),
                                 max_text_words=config.data.max_text_words, include_text=config.data.node_text)


def make_collator(config: RunConfig, model, data: Optional[DataBundle], inference: bool = False):
    """The collator for ``model`` (its tokenizer and its method's token placement)."""
    from glm.core.data.collate import GraphCollator

    return GraphCollator(model.tokenizer, max_length=config.model.llm.max_length,
                         padding_side="left" if inference else "right", inference=inference,
                         task_embedding=data.task_encoder if data is not None else None,
                         tokens_per_graph=model.node_token_module.tokens_per_graph)


# -- a whole stage ----------------------------------------------------------------------------


def run_stage(config: RunConfig, progress: bool = True, model=None, data: Optional[DataBundle] = None,
              callbacks: Sequence[Any] = ()):
    """Train ``config.training.stage``; return ``(TrainResult, model, data)``. ``callbacks``:
    :class:`~glm.core.train.callbacks.TrainerCallback` s after the built-in ones."""
    from glm.core.stages import format_parameter_table, set_stage, trainable_parameters
    from glm.core.train.arguments import Recipe, RunRecord
    from glm.core.train.loop import Trainer, set_seed

    t = config.training
    set_seed(t.seed, t.deterministic)
    if model is None:
        model = build_model(config)
    if t.init_from:
        check_feature_compatibility(config, t.init_from)
        chain = apply_adapter_chain(model, t.init_from)
        logger.debug("initialised from %s", ", ".join(map(str, chain)))
    set_stage(model, t.stage, extra=config.model.stage_extra)
    model.train_loss = t.loss
    logger.debug("%s", format_parameter_table(trainable_parameters(model)))
    if data is None:
        data = prepare_data(config, progress=progress)
    samples = stage_samples(config, data)
    collator = make_collator(config, model, data)
    trainer = Trainer(t, Recipe.from_config(config), model, samples, collator, progress=progress,
                      hidden_size=int(model.llm.config.hidden_size), validator=make_validator(config, model, data),
                      warmup=make_align_warmup(config, model, data, samples, collator), callbacks=callbacks,
                      record=RunRecord.from_config(config))
    return trainer.train(), model, data


def make_align_warmup(config: RunConfig, model, data: DataBundle, samples: list[Sample], collator):
    """``warmup(run_dir)`` of ``training.align`` (``None`` when ``steps`` is 0 or the stage adapts: the
    warm-up belongs to pre-training, on its many samples, not to the k shots)."""
    from glm.core.train.align import TextEmbeddingTargets, align_runs, align_warmup, check_align

    if not align_runs(config):
        return None
    settings = config.training.align
    check_align(model, settings)  # before the trainer starts
    if data.tag.texts is None:
        raise PipelineError(f"training.align.steps={settings.steps}: {data.tag.name} has no node texts to align to")
    targets = TextEmbeddingTargets(model.llm.get_input_embeddings().weight, model.tokenizer, data.tag.texts,
                                   config.data.max_text_words)

    def warmup(run_dir: Optional[Path]):
        return align_warmup(model, samples, collator, targets, settings, config.training.seed,
                            config.training.logging_steps, log_dir=run_dir)

    return warmup


def make_validator(config: RunConfig, model, data: DataBundle):
    """The :class:`~glm.core.train.validation.Validator` of ``training.eval_steps`` (``None`` when off):
    ``eval.val_samples`` validation nodes of the held-out classes, drawn once with ``data.seed``."""
    from glm.core.train.validation import Validator

    if config.training.eval_steps <= 0:
        return None
    samples = eval_samples(config, data, "val")
    if not samples:
        raise PipelineError("training.eval_steps: the split has no validation nodes; set data.val_per_class > 0")
    samples = _take(samples, config.eval.val_samples, config.data.seed)
    return Validator(samples, make_collator(config, model, data), make_collator(config, model, data, inference=True),
                     batch_size=config.eval.batch_size)
