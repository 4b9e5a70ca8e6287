"""Title generation scored: batched decoding (left padding, stop at EOS), then :mod:`glm.core.eval.text_metrics`.

Shapes:
    - **samples:** ``title_generation`` samples (:func:`glm.core.data.tasks.title_generation`), the title as
      ``answer``
    - **output:** :class:`GenerationResult` (one output per sample, the metrics of all of them)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from glm.core.sample import Sample


@dataclass
class GeneratedTitle:
    node: Any
    reference: str
    output: str

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "reference": self.reference, "output": self.output}


@dataclass
class GenerationResult:
    scores: dict[str, float]
    seconds: float
    outputs: list[GeneratedTitle] = field(default_factory=list)

    @property
    def num_samples(self) -> int:
        return len(self.outputs)


def first_line(text: str) -> str:
    """The reply's first non-empty line, stripped of quotes and a leading "Title:" (what the prompt asks for)."""
    line = next((ln for ln in text.strip().splitlines() if ln.strip()), "")
    line = line.strip().strip('"').strip()
    return line[len("title:"):].strip() if line.lower().startswith("title:") else line


def decoding(max_new_tokens: int, do_sample: bool = False, temperature: float = 1.0, seed: int = 0) -> dict[str, Any]:
    """``generate`` keyword arguments of greedy or sampled decoding (sampling seeds torch with ``seed``)."""
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample}
    if do_sample:
        kwargs["temperature"] = temperature
        torch.manual_seed(seed)
    return kwargs


def evaluate_generation(model: Any, samples: Sequence[Sample], infer_collate: Callable[[list[Sample]], Any],
                        batch_size: int = 8, max_new_tokens: int = 32, do_sample: bool = False,
                        temperature: float = 1.0, seed: int = 0, progress: bool = False) -> GenerationResult:
    """Generate a title for every sample (greedy, or sampled with ``temperature``) and score them."""
    from glm.core.eval.predict import _batches
    from glm.core.eval.text_metrics import generation_scores

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    kwargs = decoding(max_new_tokens, do_sample, temperature, seed)
    t0 = time.perf_counter()
    outputs: list[str] = []
    try:
        for start in _batches(len(samples), batch_size, progress, "generating"):
            batch = infer_collate(list(samples[start:start + batch_size])).to(device)
            with torch.no_grad():
                ids = model.generate(batch, **kwargs)
            outputs += [first_line(t) for t in model.tokenizer.batch_decode(ids, skip_special_tokens=True)]
    finally:
        model.train(was_training)
    refs = [s.answer for s in samples]
    scores = generation_scores(outputs, refs) if samples else {}
    return GenerationResult(scores, time.perf_counter() - t0,
                            [GeneratedTitle(s.meta.get("node"), s.answer, o) for s, o in zip(samples, outputs)])
