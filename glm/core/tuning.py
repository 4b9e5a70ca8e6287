"""What of the LLM trains: ``model.llm.tuning`` (frozen | lora | qlora | freeze), orthogonal to the
method and its stages.

=========  ==============================================================  ==========================
mode       LLM parameters that train (in ``model.llm.train_stages``)       base weights
=========  ==============================================================  ==========================
frozen     none (GraphLAMA's setting)                                      as loaded
lora       LoRA ``A``/``B`` on ``lora.target_modules`` (PEFT)              as loaded, never change
qlora      LoRA ``A``/``B`` (PEFT)                                         linears in 4 bit (bnb)
freeze     the last ``freeze.last_n`` decoder layers + ``freeze.modules``  the rest as loaded
=========  ==============================================================  ==========================

The graph side still trains as the stage says (:mod:`glm.core.stages` adds
:meth:`LlmTuning.patterns` to the stage's patterns). Under LoRA the model's ``llm`` is a PEFT
``PeftModelForCausalLM``; adapters store its LoRA tensors under PEFT's own names
(``base_model.model.<module>.lora_A.weight``), so a run folder with ``adapter_config.json`` beside
``adapter_model.safetensors`` opens with ``peft.PeftModel.from_pretrained``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatch
from typing import Any, Optional

import torch
from torch import nn

from glm.errors import GlmError

PEFT_CONFIG_FILE = "adapter_config.json"
ADAPTER_NAME = "default"  # PEFT's adapter name inside glm models
LORA_PATTERNS = ("*.lora_A.*", "*.lora_B.*")
_LAYER_RE = re.compile(r"^(.*\.layers)\.(\d+)\.")
# bitsandbytes (imported by PEFT too) warns at import that an optional CPU kernel package is missing
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)


class TuningError(GlmError, ValueError):
    """A tuning mode cannot be applied (missing package, unsupported layer or recipe)."""


@dataclass
class LlmTuning:
    """The LLM's trainable set of one model: mode, LLM-relative name patterns, stages, settings.

    Attributes:
        mode: ``frozen``, ``lora``, ``qlora`` or ``freeze``.
        llm_patterns: :func:`fnmatch` patterns over LLM parameter names (without ``llm.``).
        stages: stages in which they train (``None``: every stage).
        settings: what adapters record (``peft_config``, ``quant``, ``freeze``).
    """

    mode: str = "frozen"
    llm_patterns: list[str] = field(default_factory=list)
    stages: Optional[list[str]] = None
    settings: dict[str, Any] = field(default_factory=dict)

    def patterns(self, stage: str) -> list[str]:
        """Model-level patterns (``llm.`` + ...) of the LLM parameters that train in ``stage``."""
        if self.mode == "frozen" or (self.stages is not None and stage not in self.stages):
            return []
        return ["llm." + p for p in self.llm_patterns]

    def allows(self, name: str) -> bool:
        """Whether model parameter ``name`` (``llm.*``) may train under this mode in some stage."""
        return self.mode != "frozen" and any(fnmatch(name, "llm." + p) for p in self.llm_patterns)

    def metadata(self) -> dict[str, Any]:
        return {"mode": self.mode, "stages": self.stages, **self.settings}


FROZEN = LlmTuning()


def tuning_of(model: nn.Module) -> LlmTuning:
    """The model's :class:`LlmTuning` (frozen when it has none)."""
    return getattr(model, "llm_tuning", None) or FROZEN


# -- building -----------------------------------------------------------------------------


def apply_tuning(llm: nn.Module, cfg: Any, seed: int = 0) -> tuple[nn.Module, LlmTuning]:
    """``(llm, tuning)`` for a :class:`glm.core.config.LlmConfig`: the LLM wrapped / quantised as the
    mode needs (LoRA weights initialised from ``seed``, independently of the global RNG)."""
    mode = cfg.tuning
    if mode == "frozen":
        return llm, LlmTuning(stages=cfg.train_stages)
    if mode == "freeze":
        patterns = freeze_patterns(llm, cfg.freeze.last_n, cfg.freeze.modules)
        return llm, LlmTuning("freeze", patterns, cfg.train_stages, {"freeze": asdict(cfg.freeze)})
    quant = None
    if mode == "qlora":
        quant = asdict(cfg.quant)
        llm = quantize_4bit(llm, cfg.quant.type, cfg.quant.double_quant)
    lora = cfg.lora
    peft_config = dict(r=int(lora.r), lora_alpha=float(lora.alpha), lora_dropout=float(lora.dropout),
                       target_modules=_targets(lora.target_modules), bias="none", task_type="CAUSAL_LM")
    llm = attach_lora(llm, peft_config, seed)
    settings = {"peft_config": peft_config, **({"quant": quant} if quant else {})}
    return llm, LlmTuning(mode, list(LORA_PATTERNS), cfg.train_stages, settings)


def _targets(modules: list[str]) -> Any:
    return "all-linear" if list(modules) == ["all-linear"] else list(modules)


def attach_lora(llm: nn.Module, peft_config: dict[str, Any], seed: int = 0) -> nn.Module:
    """Wrap ``llm`` in a PEFT LoRA model (``peft_config``: ``peft.LoraConfig`` fields); LoRA ``A`` is
    initialised from ``seed`` (``B`` is zero: the wrapped model computes what ``llm`` did)."""
    try:
        from peft import get_peft_model
    except ImportError:
        raise TuningError('model.llm.tuning=lora needs PEFT: pip install -e ".[quant]"') from None
    config = lora_config(peft_config)
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        torch.manual_seed(seed)
        try:
            wrapped = get_peft_model(llm, config, adapter_name=ADAPTER_NAME)
        except ValueError as exc:  # PEFT: "Target modules {...} not found in the base model"
            raise TuningError(f"model.llm.lora.target_modules: {exc}") from None
    for p in wrapped.parameters():
        p.requires_grad_(False)  # the stage decides (glm.core.stages)
    return wrapped


def has_lora(llm: nn.Module) -> bool:
    return any(".lora_A." in n for n, _ in llm.named_parameters())


def freeze_patterns(llm: nn.Module, last_n: int, modules: list[str]) -> list[str]:
    """LLM-relative patterns of the last ``last_n`` decoder layers and ``modules``; named error when
    the LLM has no numbered ``layers`` or a module matches nothing."""
    layers: dict[str, set[int]] = {}
    for name, _ in llm.named_parameters():
        m = _LAYER_RE.match(name)
        if m:
            layers.setdefault(m.group(1), set()).add(int(m.group(2)))
    if last_n and not layers:
        raise TuningError(f"model.llm.freeze.last_n: {type(llm).__name__} has no numbered '.layers.' to train")
    patterns = []
    if last_n:
        prefix, found = max(layers.items(), key=lambda kv: len(kv[1]))
        total = max(found) + 1
        if last_n > total:
            raise TuningError(f"model.llm.freeze.last_n is {last_n} but the LLM has {total} decoder layers")
        patterns += [f"{prefix}.{i}.*" for i in range(total - last_n, total)]
    names = [n for n, _ in llm.named_parameters()]
    for module in modules:
        pattern = module if any(ch in module for ch in "*?[") else f"{module}.*"
        if not any(fnmatch(n, pattern) for n in names):
            raise TuningError(f"model.llm.freeze.modules: {module!r} matches no LLM parameter "
                              f"(e.g. {', '.join(names[-3:])})")
        patterns.append(pattern)
    return patterns


def quantize_4bit(llm: nn.Module, quant_type: str = "nf4", double_quant: bool = True,
                  skip: tuple[str, ...] = ("lm_head",)) -> nn.Module:
    """Replace the decoder's ``nn.Linear`` layers by bitsandbytes ``Linear4bit`` (in place), computing
    in the LLM's dtype; the embeddings, norms and LM head keep theirs. Works on CPU (bitsandbytes
    >= 0.46) and CUDA; quantisation happens where the weight lives."""
    try:
        with contextlib.redirect_stdout(None):
            import bitsandbytes as bnb
    except ImportError:
        raise TuningError('model.llm.tuning=qlora needs bitsandbytes: pip install -e ".[quant]"') from None
    targets = [(n, m) for n, m in llm.named_modules()
               if isinstance(m, nn.Linear) and not any(n == s or n.endswith("." + s) for s in skip)]
    if not targets:
        raise TuningError(f"model.llm.tuning=qlora: {type(llm).__name__} has no linear layers to quantise")
    for name, lin in targets:
        if lin.weight.is_meta:
            raise TuningError("model.llm.tuning=qlora: cannot quantise weights on the meta device")
        q = bnb.nn.Linear4bit(lin.in_features, lin.out_features, bias=lin.bias is not None,
                              compute_dtype=lin.weight.dtype, compress_statistics=double_quant,
                              quant_type=quant_type, device="meta")
        q.weight = bnb.nn.Params4bit(lin.weight.data.detach().clone(), requires_grad=False,
                                     compress_statistics=double_quant, quant_type=quant_type)
        if lin.bias is not None:
            q.bias = nn.Parameter(lin.bias.data.detach().clone(), requires_grad=False)
        q = q.to(lin.weight.device)  # quantises
        parent, _, child = name.rpartition(".")
        setattr(llm.get_submodule(parent) if parent else llm, child, q)
    return llm


def is_4bit(module: nn.Module) -> bool:
    return type(module).__name__ == "Linear4bit"


# -- names: glm <-> PEFT --------------------------------------------------------------------


def to_saved_name(name: str) -> str:
    """A model parameter name as adapters store it: LoRA tensors under PEFT's names
    (``llm.base_model.model.X.lora_A.default.weight`` -> ``base_model.model.X.lora_A.weight``)."""
    if name.startswith("llm.") and (".lora_A." in name or ".lora_B." in name):
        return name[len("llm."):].replace(f".lora_A.{ADAPTER_NAME}.", ".lora_A.").replace(
            f".lora_B.{ADAPTER_NAME}.", ".lora_B.")
    return name


def from_saved_name(name: str) -> str:
    """Inverse of :func:`to_saved_name`."""
    if name.startswith("base_model.model.") and (".lora_A." in name or ".lora_B." in name):
        return "llm." + name.replace(".lora_A.", f".lora_A.{ADAPTER_NAME}.").replace(
            ".lora_B.", f".lora_B.{ADAPTER_NAME}.")
    return name


def peft_config_json(settings: dict[str, Any], base_name: str) -> Optional[dict[str, Any]]:
    """The ``adapter_config.json`` of an adapter's LoRA (``None`` without LoRA)."""
    cfg = settings.get("peft_config")
    if not cfg:
        return None
    out = lora_config(cfg, base_model_name_or_path=base_name).to_dict()
    return {k: (sorted(v) if isinstance(v, set) else v) for k, v in out.items()}


def lora_config(peft_config: dict[str, Any], **extra: Any):
    """A ``peft.LoraConfig`` from recorded fields (fields this PEFT version does not know are dropped)."""
    from peft import LoraConfig

    return LoraConfig(**{k: v for k, v in peft_config.items() if k in LoraConfig.__dataclass_fields__}, **extra)


def base_llm(llm: nn.Module) -> nn.Module:
    """The transformers model under a PEFT wrapper (``llm`` itself when not wrapped)."""
    get = getattr(llm, "get_base_model", None)
    return get() if callable(get) else llm
