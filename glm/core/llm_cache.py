"""A dequantised copy of a GGUF model, written once and loaded in a fraction of a second after that.

transformers reads a GGUF file by parsing every metadata field (SmolLM2's 49k-token vocabulary three
times: config, tokenizer, weights) and dequantising every tensor: about 18 s for SmolLM2-135M on two
cores, paid by every ``glm`` command. :func:`cached_gguf_folder` does that once and writes the result as a
plain HF folder (``model.safetensors`` in float32, which holds every dequantised value exactly, the config
and the tokenizer); later loads read it like any local model (0.3 s). The weights, logits, tokenizer and
:func:`glm.core.llm.llm_identity` (hence adapter compatibility) equal the GGUF path's (tests/llm).

Where: ``$GLM_LLM_CACHE``, else ``~/.cache/glm/llm``; one folder per GGUF file, keyed by its name, size
and modification time, the transformers version and :data:`CACHE_FORMAT`. A folder appears complete or
not at all (written beside, then renamed); an unwritable cache falls back to the GGUF path with a warning.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Optional

logger = logging.getLogger(__name__)
CACHE_FORMAT = 1
SOURCE_FILE = "glm_gguf_source.json"


def cache_root() -> Path:
    env = os.environ.get("GLM_LLM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "glm" / "llm"


def cache_key(gguf: Path) -> str:
    import transformers

    st = gguf.stat()
    raw = json.dumps([gguf.name, st.st_size, st.st_mtime_ns, transformers.__version__, CACHE_FORMAT])
    return f"{gguf.stem}-{hashlib.sha256(raw.encode()).hexdigest()[:12]}"


def _write(model: Any, tokenizer: Any, folder: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # tied: one tensor, stored once
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = copy.deepcopy(model.config)
    quant = getattr(config, "quantization_config", None)
    if quant is not None:
        delattr(config, "quantization_config")  # a plain model now: from_pretrained must not re-quantise
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    source = {"quantization_config": quant.to_dict() if hasattr(quant, "to_dict") else quant}
    (folder / SOURCE_FILE).write_text(json.dumps(source, default=str), encoding="utf-8")


def cached_gguf_folder(folder: Path, gguf_file: str, load_gguf: Any) -> Optional[Path]:
    """The cache folder of ``folder/gguf_file``, made now with ``load_gguf()`` -> ``(model, tokenizer)`` (float32)
    when missing; ``None`` when the cache cannot be written."""
    gguf = folder / gguf_file
    target = cache_root() / cache_key(gguf)
    if (target / SOURCE_FILE).is_file():
        return target
    tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        model, tokenizer = load_gguf()
        _write(model, tokenizer, tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first: keep its folder
            if not (target / SOURCE_FILE).is_file():
                raise
        logger.info("dequantised %s once into %s", gguf.name, target)
        return target
    except OSError as err:
        logger.warning("could not write the dequantised copy of %s to %s (%s); loading the GGUF file itself",
                       gguf.name, target.parent, err)
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def restore_identity(model: Any, folder: Path) -> None:
    """Give the loaded model's config the GGUF path's ``quantization_config`` entry, which
    :func:`~glm.core.llm.llm_identity` hashes (adapters made either way stay compatible)."""
    from transformers.utils.quantization_config import GgufConfig

    quant = json.loads((folder / SOURCE_FILE).read_text(encoding="utf-8")).get("quantization_config")
    if quant:
        model.config.quantization_config = GgufConfig(gguf_file=quant.get("gguf_file"),
                                                      dequantize=bool(quant.get("dequantize", False)))
