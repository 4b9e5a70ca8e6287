"""glm from Python: the steps ``glm pretrain`` / ``adapt`` / ``eval`` / ``infer`` run, as functions.

A notebook's whole loop (docs/api.md walks through it)::

    import glm

    config = glm.load_config("examples/demo_pretrain.yaml", training={"max_steps": 20})
    result = glm.train(config)                              # pre-train the graph side
    adapt = glm.load_config("examples/demo_adapt.yaml", training={"init_from": str(result.output_dir)})
    glm.train(adapt)
    model, data = glm.from_pretrained(adapt.training.output_dir)   # the adapter chain on its base LLM
    scores = glm.evaluate(model, adapt, data)
    glm.save_pretrained(model, adapt, "my-model", metrics=scores)  # one folder with a model card
    glm.predict(model, adapt, data, nodes=[0, 1, 2])        # one dict per node

Every function takes the same :class:`~glm.core.config.RunConfig` the CLI reads from YAML, and raises the
CLI's named errors (:class:`glm.errors.GlmError` subclasses).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Optional, Sequence

from glm.core.config import CONFIG_FILENAME, RunConfig, config_from_dict
from glm.core.config_parse import apply_overrides, deep_merge, read_yaml


def load_config(path: Optional[str | Path] = None, overrides: Sequence[str] = (), **sections: Any) -> RunConfig:
    """A validated config: ``path`` (YAML), then dotted ``overrides``, then ``sections`` merged in
    (``training={"max_steps": 20}``), as the CLI's ``CONFIG.yaml key=value`` would."""
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(deep_merge(data, copy.deepcopy(sections)), overrides)
    return config_from_dict(data, str(path) if path is not None else "<python>")


def prepare_data(config: RunConfig, progress: bool = False):
    """The graph, its node features, the sampler and the few-shot split (a ``DataBundle``)."""
    from glm.core.train.pipeline import prepare_data as prepare

    return prepare(config, progress=progress)


def build_model(config: RunConfig):
    """The method's graph side on its base LLM (random graph side; see :func:`from_pretrained`)."""
    from glm.core.train.pipeline import build_model as build

    return build(config)


def train(config: RunConfig, model: Any = None, data: Any = None, progress: bool = False,
          callbacks: Sequence[Any] = ()):
    """Train ``config.training.stage`` into ``config.training.output_dir`` (locked while it runs, refused
    when it holds another run unless ``overwrite_output_dir`` / ``resume``); a ``TrainResult``.
    ``callbacks``: :class:`glm.TrainerCallback` s (HF's idea: ``on_log``, ``on_step_end``, ...), called after
    the built-in health, validation and reporting callbacks."""
    from glm.core.train.outdir import RunLock, check_output_dir
    from glm.core.train.pipeline import run_stage

    check_output_dir(config.training)
    with RunLock(config.training.output_dir):
        result, _, _ = run_stage(config, progress=progress, model=model, data=data, callbacks=callbacks)
    return result


def from_pretrained(run_dir: str | Path, config: Optional[RunConfig] = None):
    """``(model, data)`` of a finished run: its config (``glm_config.yaml``, or ``config``), the base LLM and
    every adapter of its chain (pre-training, then adaptation), loaded weights-only."""
    from glm.core.train.pipeline import apply_adapter_chain

    run = Path(run_dir)
    if config is None:
        from glm.core.config import load_config as load_yaml

        config = load_yaml(run / CONFIG_FILENAME)
    model = build_model(config)
    apply_adapter_chain(model, run)
    return model, prepare_data(config)


def save_pretrained(model: Any, config: RunConfig, folder: str | Path, metrics: Any = None) -> Path:
    """One self-contained folder (every trained tensor, the config, a model card ``README.md``) that
    :func:`from_pretrained` loads; ``metrics``: an ``EvalResult`` or ``{name: value}`` for the card."""
    from glm.core.train.pretrained import save_pretrained as save

    return save(model, config, folder, metrics)


def evaluate(model: Any, config: RunConfig, data: Any = None, split: str = "test", mode: Optional[str] = None):
    """Accuracy and macro-F1 on the held-out classes' ``test`` (or ``val``) nodes (an ``EvalResult``)."""
    from glm.core.eval.predict import evaluate as run_eval
    from glm.core.train.pipeline import eval_samples, make_collator

    data = data if data is not None else prepare_data(config)
    ev = config.eval
    return run_eval(model, eval_samples(config, data, split), make_collator(config, model, data),
                    make_collator(config, model, data, inference=True), mode=mode or ev.mode, match=ev.match,
                    batch_size=ev.batch_size, max_new_tokens=ev.max_new_tokens)


def predict(model: Any, config: RunConfig, data: Any, nodes: Sequence[int], mode: str = "choice",
            match: Optional[str] = None) -> list[dict]:
    """One prediction per node (any node: unlabelled ones too), as ``glm infer`` writes them."""
    from glm.core.data import tasks as T
    from glm.core.eval.predict import evaluate as run_eval
    from glm.core.train.pipeline import make_collator

    held = data.split.class_indices(data.tag, "heldout")
    samples = T.node_classification(data.source, list(nodes), classes=held, max_text_words=config.data.max_text_words,
                                    include_text=config.data.node_text, unlabelled=True)
    ev = config.eval
    result = run_eval(model, samples, make_collator(config, model, data), make_collator(config, model, data, inference=True),
                      mode=mode, match=match or ev.match, batch_size=ev.batch_size, max_new_tokens=ev.max_new_tokens)
    return [p.as_dict() for p in result.predictions]
