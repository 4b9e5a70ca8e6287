"""``glm bench generation``: title generation, every baseline and method on the same test nodes.

Rows (:func:`all_rows`):

* ``neighbour_title``: the title of the graph neighbour most similar to the node (cosine of the node
  features over its titled 1-hop neighbours; without one, the most similar training example's title). It
  uses the structure and no LLM.
* ``llm_zero_shot``: the LLM with the abstract and the question, no graph, no examples.
* ``llm_icl``: the same with up to :data:`ICL_DEMOS` training examples as earlier turns of the chat
  (the abstract and question, then the title as the assistant's reply).
* every registered method (``graphgpt``, ``llaga``, ``graphlama``, a plugin's): pre-trained (once, on ``--pretrain-config`` or the
  config) and adapted on the training examples (``data.generation.train``, default 5); a method adapts the
  ``model.stage_extra`` patterns it has parameters for (LLaGA has no encoder); ``<method>@0.8``: adapted
  on 80 % of the titled nodes (the official 80/20 split; the adaptation's ``max_steps`` bounds how many of
  them it sees). A method adapts with the config's ``training`` section, or with its own
  (``--adapt-config METHOD=PATH``: that file's ``training`` and ``model.stage_extra``, as in the few-shot bench).

Draws: draw 0 uses the config's split, draw ``d > 0`` redraws the training examples from outside the
validation and test nodes (``data.generation.draw``); the test nodes never change. Every row decodes
the same way (``eval.do_sample`` / ``eval.temperature``, greedy by default; ``eval.max_new_tokens``).
Each (row, draw) is stored under ``<out>/rows/`` with the hash of its settings and reused.
"""

from __future__ import annotations

import copy
import functools
import json
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from glm.bench.method_rows import BenchRun, note_pretraining
from glm.bench.settings import (AdaptSettings, BenchError, adapt_of, adapt_report, config_hash, store_result,
                                stored_result)
from glm.core.io import atomic_write_text

ICL_DEMOS = 3
TABLE_METRICS = (("bleu", "BLEU"), ("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L"),
                 ("graphlama_bleu1", "GL-BLEU-1"), ("graphlama_bleu4", "GL-BLEU-4"),
                 ("graphlama_charbleu4", "GL-charBLEU-4"))


@dataclass
class GenerationRow:
    row: str
    draw: int
    scores: dict[str, float]
    test_nodes: int
    train_examples: int
    train_seconds: float
    infer_seconds_per_node: float
    examples: list[dict[str, Any]] = field(default_factory=list)
    row_seconds: float = 0.0  # wall time of the row (model build, adaptation, generation), pre-training excluded


def _prompt(abstract: str, node: str = "paper") -> str:
    from glm.core.data.tasks import CITATION

    return f"Abstract: {abstract}\nQuestion: {replace(CITATION, node=node).title_generation_text()}"


def _chat_ids(tokenizer: Any, chat: Sequence[dict[str, str]]) -> list[int]:
    if getattr(tokenizer, "chat_template", None):
        return list(tokenizer.apply_chat_template(list(chat), add_generation_prompt=True, tokenize=True,
                                                  return_dict=True)["input_ids"])
    from glm.core.data.collate import PLAIN_TEMPLATE  # no template: glm's plain "User: ... Assistant: " turns

    text = "".join(PLAIN_TEMPLATE.format(prompt=m["content"]) if m["role"] == "user" else m["content"] + "\n"
                   for m in chat)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def generate_from_chats(llm: Any, tokenizer: Any, chats: Sequence[list[dict[str, str]]], batch_size: int,
                        max_new_tokens: int, do_sample: bool = False, temperature: float = 1.0,
                        seed: int = 0) -> list[str]:
    """The LLM's next assistant turn of each chat (``[{"role", "content"}, ...]``), decoded in batches with
    left padding and stopped at EOS; the first line of each reply. The turns every chat starts with (the
    in-context examples) are prefilled once (:class:`~glm.core.eval.prefix_cache.PromptHead`)."""
    from glm.core.eval.generation import decoding, first_line
    from glm.core.eval.prefix_cache import PromptHead

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    kwargs = {**decoding(max_new_tokens, do_sample, temperature, seed), "pad_token_id": pad}
    rows = [_chat_ids(tokenizer, c) for c in chats]
    head = PromptHead(llm, rows)
    out: list[str] = []
    for start in range(0, len(rows), batch_size):
        batch = head.batch(rows[start:start + batch_size], pad)
        width = batch.input_ids.shape[1]
        with torch.no_grad():
            new = llm.generate(**batch.generate_inputs(), **kwargs)[:, width:]
        out += [first_line(t) for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    return out


@dataclass
class GenerationBench:
    """What every row shares: the config (``data.task: title_generation``), the data, the output folder."""

    config: Any
    data: Any
    out: Path
    pretrain_config: Any = None
    progress: bool = True
    force: bool = False
    split: str = "test"  # the nodes every row is scored on: test, or val (data.generation.val) to choose settings
    run: BenchRun = field(default_factory=BenchRun)  # overrides, pre-training done or reused, start time
    adapt: dict[str, AdaptSettings] = field(default_factory=dict)  # by method, "" for the rest (default: config's)
    _llm: Any = None

    @property
    def suffix(self) -> str:
        return "" if self.split == "test" else f"-{self.split}"

    @functools.cached_property
    def titled(self) -> list[int]:
        """The nodes with a title (one pass over the texts, shared by every row and draw)."""
        from glm.core.data.generation_split import titled_nodes

        return titled_nodes(self.data.source)

    def nodes(self, draw: int, train: Optional[float] = None):
        from glm.core.data.generation_split import generation_nodes

        settings = replace(self.config.data.generation, draw=draw, **({} if train is None else {"train": train}))
        return generation_nodes(self.data.source, settings, self.config.data.seed, self.titled)

    @property
    def test(self) -> list[int]:
        """The scored nodes: the test nodes, or the validation nodes with ``split="val"``."""
        return self.nodes(0).val if self.split == "val" else self.nodes(0).test

    def adapt_for(self, method: str) -> Optional[AdaptSettings]:
        """The adaptation settings of ``method``: its own, else the default, else ``None`` (the config's)."""
        return adapt_of(self.adapt, method)

    def llm(self):
        if self._llm is None:
            from glm.core.llm import load_llm_from_config

            self._llm = load_llm_from_config(self.config.model.llm)
        return self._llm

    def abstract(self, node: int) -> str:
        from glm.core.data.tasks import clip_words

        return clip_words(self.data.source.text_parts(node)[1] or "", self.config.data.max_text_words)

    def title(self, node: int) -> str:
        return self.data.source.text_parts(node)[0] or ""


# -- rows -------------------------------------------------------------------------------------------


def _neighbour_title(b: GenerationBench, draw: int) -> tuple[list[str], int, float, float]:
    x = torch.nn.functional.normalize(b.data.source.x.float(), dim=-1)
    csr = b.data.source.sampler  # the sampler's CSR index: a node's neighbours are one slice of col
    train = b.nodes(draw).train
    titled = torch.zeros(b.data.tag.num_nodes, dtype=torch.bool)
    titled[torch.tensor(b.titled, dtype=torch.long)] = True
    out, t0 = [], time.perf_counter()
    for node in b.test:
        nbrs = csr.col[csr.rowptr[node]:csr.rowptr[node + 1]]
        nbrs = nbrs[titled[nbrs] & (nbrs != node)]
        pool = nbrs if nbrs.numel() else torch.tensor(train)
        best = int(pool[(x[pool] @ x[node]).argmax()])
        out.append(b.title(best))
    return out, len(train), 0.0, time.perf_counter() - t0


def _text_row(icl: bool) -> Callable[[GenerationBench, int], tuple[list[str], int, float, float]]:
    """Zero-shot: one user turn (abstract + question). ICL: the training examples as earlier turns of the
    same chat (user: abstract + question, assistant: its title), then the test node's turn."""
    def run(b: GenerationBench, draw: int) -> tuple[list[str], int, float, float]:
        llm, tok = b.llm()
        node = b.data.source.template.node
        demos: list[dict[str, str]] = []
        if icl:
            for n in b.nodes(draw).train[:ICL_DEMOS]:
                demos += [{"role": "user", "content": _prompt(b.abstract(n), node)},
                          {"role": "assistant", "content": b.title(n)}]
        ev = b.config.eval
        chats = [[*demos, {"role": "user", "content": _prompt(b.abstract(n), node)}] for n in b.test]
        t0 = time.perf_counter()
        outputs = generate_from_chats(llm, tok, chats, ev.batch_size, ev.max_new_tokens, ev.do_sample,
                                      ev.temperature, draw)
        return outputs, ICL_DEMOS if icl else 0, 0.0, time.perf_counter() - t0
    return run


def _method_row(method: str, train: Optional[float] = None) -> Callable[[GenerationBench, int], Any]:
    def run(b: GenerationBench, draw: int):
        from glm.core.eval.generation import evaluate_generation
        from glm.bench.method_rows import _config, pretrained
        from glm.core.train.pipeline import eval_samples, make_collator, run_stage

        base = pretrained(b, method)
        out = b.out / "methods" / method / f"adapt{'' if train is None else f'@{train:g}'}-draw{draw}"
        cfg = _config(b, method, "adapt", out, base)
        gen = replace(cfg.data.generation, draw=draw, **({} if train is None else {"train": train}))
        cfg.data = replace(cfg.data, task="title_generation", generation=gen)
        result, model, _ = run_stage(cfg, progress=b.progress, data=b.data)
        ev = cfg.eval
        res = evaluate_generation(model, eval_samples(cfg, b.data, b.split), make_collator(cfg, model, b.data, True),
                                  ev.batch_size, ev.max_new_tokens, ev.do_sample, ev.temperature, seed=draw)
        return [o.output for o in res.outputs], len(b.nodes(draw, train).train), result.train_seconds, res.seconds
    return run


@dataclass(frozen=True)
class GenRowSpec:
    name: str
    run: Callable[[GenerationBench, int], Any]
    description: str
    method: Optional[str] = None


BASELINE_ROWS: dict[str, GenRowSpec] = {r.name: r for r in [
    GenRowSpec("neighbour_title", _neighbour_title, "the most similar titled neighbour's title (no LLM)"),
    GenRowSpec("llm_zero_shot", _text_row(False), "the LLM with the abstract, no graph, no examples"),
    GenRowSpec("llm_icl", _text_row(True), f"the LLM with {ICL_DEMOS} training examples in context"),
]}
FULL_SPLIT = 0.8  # GraphLAMA's 80/20 title-generation split


def all_rows() -> dict[str, GenRowSpec]:
    """The baselines, then every registered method (a plugin's too) adapted on the k training examples and
    on the 80 % split (``<method>@0.8``); every row is in the default table."""
    from glm.plugins import get_registry

    methods = sorted(get_registry().methods)
    return {**BASELINE_ROWS,
            **{m: GenRowSpec(m, _method_row(m), f"{m}: pre-trained, adapted on the training examples", m)
               for m in methods},
            **{f"{m}@{FULL_SPLIT:g}": GenRowSpec(f"{m}@{FULL_SPLIT:g}", _method_row(m, FULL_SPLIT),
                                                 f"{m}: pre-trained, adapted on the 80 % split", m) for m in methods}}


def run_rows(b: GenerationBench, rows: Sequence[str], draws: int, log: Callable[[str], None] = print
             ) -> list[GenerationRow]:
    from glm.core.eval.text_metrics import generation_scores

    table = all_rows()
    unknown = [r for r in rows if r not in table]
    if unknown:
        raise BenchError(f"unknown rows {unknown}; known: {', '.join(table)}")
    if b.config.data.task != "title_generation":
        raise BenchError("glm bench generation needs a title-generation config (data.task: title_generation)")
    test = b.test
    if not test:
        raise BenchError("--split val: no validation nodes; set data.generation.val > 0")
    from glm.bench.method_rows import check_adaptation

    for method in dict.fromkeys(table[r].method for r in rows if table[r].method):
        check_adaptation(b, method, log)
    refs = [b.title(n) for n in test]
    found: list[GenerationRow] = []
    for name in rows:
        spec = table[name]
        digest = config_hash(b.config, b.adapt_for(spec.method) if spec.method else None,
                             b.pretrain_config if spec.method else None)
        for draw in range(draws if name != "llm_zero_shot" else 1):
            path = b.out / f"rows{b.suffix}" / name / f"draw-{draw}.json"
            saved = stored_result(path, digest, b.force)
            if saved is not None:  # read back: costs this run nothing
                found.append(GenerationRow(**{**saved, "row_seconds": 0.0}))
                if spec.method:
                    note_pretraining(b, spec.method)  # the row's cost includes its pre-training
                continue
            t0, pretrained_before = time.perf_counter(), sum(b.run.pretrain_seconds.values())
            outputs, n_train, train_s, gen_s = spec.run(b, draw)  # gen_s: producing the outputs only
            row_s = time.perf_counter() - t0 - (sum(b.run.pretrain_seconds.values()) - pretrained_before)
            infer_s = gen_s / max(len(test), 1)
            examples = [{"node": n, "reference": r, "output": o} for n, r, o in list(zip(test, refs, outputs))[:5]]
            row = GenerationRow(name, draw, generation_scores(outputs, refs), len(test), n_train, train_s, infer_s,
                                examples, row_s)
            store_result(path, digest, asdict(row))
            found.append(row)
        log(f"{name}: done")
    return found


def summarise(results: Sequence[GenerationRow]) -> list[dict[str, Any]]:
    rows: dict[str, list[GenerationRow]] = {}
    for r in results:
        rows.setdefault(r.row, []).append(r)
    out = []
    for name, rs in rows.items():
        entry: dict[str, Any] = {"row": name, "draws": len(rs), "train_examples": rs[0].train_examples,
                                 "train_seconds": statistics.fmean(r.train_seconds for r in rs),
                                 "infer_seconds_per_node": statistics.fmean(r.infer_seconds_per_node for r in rs),
                                 "row_seconds": sum(r.row_seconds for r in rs),
                                 "examples": rs[0].examples}
        for key in rs[0].scores:
            values = [r.scores[key] for r in rs]
            entry[key] = statistics.fmean(values)
            entry[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        out.append(entry)
    return out


def markdown(summary: Sequence[dict[str, Any]], title: str) -> str:
    head = "| row | draws | train examples | " + " | ".join(label for _, label in TABLE_METRICS) + " | s/node |"
    lines = [f"# {title}", "", head, "|" + "---|" * (len(TABLE_METRICS) + 4)]
    for s in summary:
        cells = [f"{s[k]:.2f} ± {s[k + '_std']:.2f}" if not k.startswith("graphlama") else
                 f"{s[k]:.3f} ± {s[k + '_std']:.3f}" for k, _ in TABLE_METRICS]
        lines.append(f"| {s['row']} | {s['draws']} | {s['train_examples']} | " + " | ".join(cells)
                     + f" | {s['infer_seconds_per_node']:.2f} |")
    lines += ["", "BLEU: sacrebleu corpus BLEU; ROUGE: rouge-score F1 (stemmed); both 0-100. GL-BLEU: GraphLAMA's "
              "own BLEU (nltk sentence BLEU with output and title swapped, no smoothing; charBLEU on characters), "
              "0-1, not comparable to BLEU (docs/bench.md).", "", "## Example outputs (draw 0)", ""]
    for s in summary:
        lines.append(f"**{s['row']}**")
        lines += [f"- node {e['node']}: {e['output']!r} (reference: {e['reference']!r})" for e in s["examples"][:3]]
        lines.append("")
    return "\n".join(lines)


def timing(b: GenerationBench, summary: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Where this run's time went: each method's pre-training (run now, or reused from the cache), each row's
    wall seconds (this run's rows; rows read back from ``rows/`` cost nothing), the whole run's wall and CPU
    seconds (every thread of this process) and its peak RSS."""
    from glm.core.train.log import peak_rss_mb

    wall, cpu = time.perf_counter() - b.run.started[0], time.process_time() - b.run.started[1]
    return {**b.run.pretraining(), "row_seconds": {s["row"]: round(s["row_seconds"], 1) for s in summary},
            "total_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}


def timing_markdown(t: dict[str, Any]) -> list[str]:
    pre = ", ".join(f"{m} {s:.0f} s" for m, s in t["pretrain_seconds"].items()) or "none"
    reused = ", ".join(f"{m}" + (f" ({s:.0f} s when made)" if s else "") for m, s in t["pretrain_reused"].items())
    rows = ", ".join(f"{r} {s:.0f} s" for r, s in t["row_seconds"].items())
    return ["## Time (this run)", "", f"- total **{t['total_seconds']:.0f} s** wall, {t['cpu_seconds']:.0f} s CPU, "
            f"peak RSS {t['peak_rss_mb'] / 1024:.2f} GiB",
            f"- pre-training: {pre}" + (f"; reused from the cache: {reused}" if reused else ""),
            f"- rows (adaptation + generation; 0 s: read back from rows/): {rows}", ""]


def write_report(b: GenerationBench, results: Sequence[GenerationRow], draws: int) -> dict[str, Path]:
    from glm.core.llm import llm_label

    summary = summarise(results)
    spent = timing(b, summary)
    scored = "validation" if b.split == "val" else "test"
    title = (f"Title generation on {b.data.tag.name}: {len(b.test)} {scored} nodes, "
             f"{b.config.data.generation.train:g} training examples, {draws} draw(s), "
             f"LLM {llm_label(b.config.model.llm)}")
    paths = {"markdown": b.out / f"bench{b.suffix}.md", "json": b.out / f"bench{b.suffix}.json"}
    atomic_write_text(markdown(summary, title) + "\n" + "\n".join(timing_markdown(spent)), paths["markdown"])
    per_draw = [{"row": r.row, "draw": r.draw, "test_nodes": r.test_nodes, "train_seconds": r.train_seconds,
                 "infer_seconds_per_node": r.infer_seconds_per_node, **r.scores} for r in results]
    atomic_write_text(json.dumps({"title": title, "config": b.run.config, "overrides": list(b.run.overrides),
                                  **adapt_report(b.adapt),
                                  "summary": summary, "results": per_draw, "time": spent}, indent=1), paths["json"])
    return paths


def prepare(config: Any, out: Path, pretrain_config: Any = None, progress: bool = True, force: bool = False,
            split: str = "test", overrides: Sequence[str] = (), adapt: Optional[dict[str, AdaptSettings]] = None,
            config_path: str = ""):
    """A :class:`GenerationBench` of ``config`` (its data prepared); ``config_path`` and ``overrides``: the file
    and the ``key=value`` s ``config`` was loaded with, for the report; ``adapt``: ``--adapt-config`` 's
    settings by method."""
    from glm.core.train.pipeline import prepare_data

    return GenerationBench(copy.deepcopy(config), prepare_data(config, progress=progress), out, pretrain_config,
                           progress, force, split, BenchRun(tuple(overrides), config=config_path), dict(adapt or {}))
