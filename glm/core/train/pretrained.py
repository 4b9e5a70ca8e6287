"""``save_pretrained``: one self-contained folder per trained model, with a model card (HF's habit).

A run folder's adapter holds only what its stage trained and points at the run it started from
(``training.init_from``: adaptation on top of pre-training). :func:`save_pretrained` writes instead::

    <folder>/adapter_model.safetensors   every tensor any stage of the method trains (graph side, and
                                         LoRA when the LLM trains), safetensors, no init_from: nothing else
                                         is needed but the base LLM
    <folder>/glm_config.yaml             the run config (init_from cleared, output_dir = the folder)
    <folder>/README.md                   the model card: method, base LLM, data, features, metrics, config
    <folder>/adapter_config.json         PEFT's file when the LLM trains LoRA

:func:`glm.run.from_pretrained` loads it weights-only as it loads a run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

from glm.core.config import CONFIG_FILENAME, RunConfig, config_from_dict


def adapter_metadata(config: RunConfig) -> dict[str, Any]:
    """What an adapter records about its run: recipe, parent adapter, node features, token norm."""
    from glm.core.data.matrix import feature_source

    d, t = config.data, config.training
    return {"recipe": config.recipe,
            "init_from": str(Path(t.init_from).resolve()) if t.init_from else None,
            "features": {"embedder": feature_source(d), "dim": config.model.encoder.in_dim,
                         "reduction": "random_projection", "dataset": d.dataset},
            "token_norm": config.model.token_norm}


def trained_names(model: Any, config: RunConfig) -> list[str]:
    """Every parameter a stage of the model's method trains, in ``named_parameters`` order."""
    from glm.core.stages import stage_parameter_names

    extra = tuple(config.model.stage_extra)
    names: set[str] = set()
    for stage in config.model.method_spec.stages:
        names.update(stage_parameter_names(model, stage, extra=extra))
    return [n for n, _ in model.named_parameters() if n in names]


def _metrics(metrics: Any) -> dict[str, float]:
    if metrics is None:
        return {}
    if hasattr(metrics, "accuracy"):  # an EvalResult
        return {"accuracy": float(metrics.accuracy), "macro_f1": float(metrics.macro_f1),
                "test_nodes": float(metrics.num_samples)}
    return {str(k): float(v) for k, v in dict(metrics).items()}


def save_pretrained(model: Any, config: RunConfig, folder: str | Path,
                    metrics: Optional[Mapping[str, float] | Any] = None) -> Path:
    """Write ``model`` (trained under ``config``) to ``folder`` as described above; return the folder.

    ``metrics``: an :class:`~glm.core.eval.predict.EvalResult` or ``{name: value}`` for the card.
    """
    from glm.core.adapter import save_adapter
    from glm.core.io import atomic_write_text
    from glm.core.train.checkpoint import ADAPTER_FILE, write_peft_config

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    data = config.to_dict()
    data["training"].update(init_from=None, output_dir=str(out), resume=None)
    saved = config_from_dict(data, "<save_pretrained>")
    meta = {**adapter_metadata(saved), "metrics": _metrics(metrics), "self_contained": True}
    stage = config.training.stage or config.model.method_spec.pretrain_stage
    save_adapter(model, out / ADAPTER_FILE, stage, extra=trained_names(model, config), extra_metadata=meta)
    write_peft_config(model, out)
    atomic_write_text(saved.to_yaml(), out / CONFIG_FILENAME)
    atomic_write_text(model_card(model, saved, meta), out / "README.md")
    return out


def model_card(model: Any, config: RunConfig, meta: Mapping[str, Any]) -> str:
    """The README.md of a saved model: HF-style YAML front matter, then what was trained on what."""
    import yaml

    from glm.core.llm import llm_identity

    base = llm_identity(model.llm)
    llm = config.model.llm
    method = config.model.method
    features = meta["features"]
    trained = set(trained_names(model, config))
    n_tensors = sum(p.numel() for n, p in model.named_parameters() if n in trained)
    front = {"library_name": "glm", "base_model": llm.path or llm.name, "tags": ["graph-language-model", method],
             "datasets": [config.data.dataset]}
    metrics = meta.get("metrics") or {}
    rows = "\n".join(f"| {k} | {v:.4g} |" for k, v in metrics.items()) or "| (none given) | |"
    t = config.training
    return f"""---
{yaml.safe_dump(front, sort_keys=False).strip()}
---

# {method} on {config.data.dataset}

A graph language model trained with glm: the `{method}` graph side ({n_tensors:,} trained parameters) turns
a node's sampled subgraph into soft tokens for the frozen LLM `{llm.path or llm.name}`.

| | |
|---|---|
| method | `{method}`, stage `{t.stage or config.model.method_spec.pretrain_stage}` |
| base LLM | `{base['name_or_path'] or llm.name}` ({base['model_type']}, {base['num_hidden_layers']} layers, hidden {base['hidden_size']}, config hash `{base['config_hash']}`), dtype {llm.dtype}, tuning `{llm.tuning}` |
| data | `{config.data.dataset}`, split `{config.data.split}`, fan-out {list(config.data.fanout)}, tasks {list(config.data.tasks)} |
| node features | `{features['embedder']}`, {features['dim']} dimensions |
| training | {t.max_steps if t.max_steps > 0 else f'{t.num_epochs} epochs'} steps at lr {t.learning_rate:g}, recipe `{config.recipe}`, seed {t.seed} |

## Metrics

| metric | value |
|---|---|
{rows}

## Use

```python
import glm

model, data = glm.from_pretrained("path/to/this/folder")   # the base LLM is loaded by name, then these tensors
glm.predict(model, glm.load_config("path/to/this/folder/glm_config.yaml"), data, nodes=[0, 1, 2])
```

`adapter_model.safetensors` holds every trained tensor (safetensors; nothing is unpickled); its metadata
records the base LLM's identity, and loading it on another base is refused with the differences.

## Config

```yaml
{config.to_yaml().strip()}
```
"""
