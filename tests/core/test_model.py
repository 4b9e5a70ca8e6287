"""GraphLanguageModel: splicing positions/counts, padding, several graphs per sample, gradients
through the frozen LLM, gradient checkpointing and generate() with graph tokens."""

import pytest
import torch

from glm.core.model import PaddingError, SpliceError
from glm.methods.graphlama import GraphLAMAConfig, graphlama_model
from glm.core.tokens import G_END, G_PATCH, G_START

from model_helpers import sample_batch, tiny_model

SIZES = {
    "unbatched-1graph": [[5]],
    "batched-1graph": [[5], [9], [3]],
    "unbatched-2graphs": [[4, 6]],
    "batched-2graphs": [[4, 6], [7, 2], [3, 3]],
}


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("case", sorted(SIZES))
def test_patch_positions_and_counts(model, case, padding_side):
    sizes = SIZES[case]
    batch = sample_batch(model, sizes, padding_side)
    with torch.no_grad():
        embeds = model.embed(batch)
        nodes = model.node_tokens(batch.graphs, batch.graphs_per_sample, batch.task_embedding)
        plain = model.llm.get_input_embeddings()(batch.input_ids.clamp(max=model.llm.config.vocab_size - 1))
    start_id, patch_id, end_id = (model.tokenizer.convert_tokens_to_ids(t) for t in (G_START, G_PATCH, G_END))
    offset = 0
    for b, ns in enumerate(sizes):
        ids = batch.input_ids[b]
        starts = (ids == start_id).nonzero().flatten().tolist()
        ends = (ids == end_id).nonzero().flatten().tolist()
        assert len(starts) == len(ends) == len(ns)
        for s, e, n in zip(starts, ends, ns):
            assert e - s == n + 1  # <g_start> N*<g_patch> <g_end>
            assert bool((ids[s + 1:e] == patch_id).all())
            # k-th patch of this graph <- k-th node of this graph (sample-major order)
            assert torch.equal(embeds[b, s + 1:e], nodes[offset:offset + n])
            assert torch.equal(embeds[b, s], model.graph_token_embeddings[0])
            assert torch.equal(embeds[b, e], model.graph_token_embeddings[2])
            offset += n
        text = ~torch.isin(ids, model.graph_token_ids)
        assert torch.equal(embeds[b][text], plain[b][text])
    assert offset == nodes.shape[0] == batch.graphs.num_nodes


def test_wrong_patch_count_is_rejected(model):
    batch = sample_batch(model, [[5], [4]])
    patch_id = model.patch_token_id
    row = batch.input_ids[1]
    row[(row == patch_id).nonzero()[0]] = model.tokenizer.convert_tokens_to_ids("a")
    with pytest.raises(SpliceError, match="row 1: expected 1 <g_start> and 4 <g_patch>"):
        model(batch)


@pytest.mark.parametrize("case", ["batched-1graph", "batched-2graphs"])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_batched_logits_match_unbatched(model, case, padding_side):
    sizes = SIZES[case]
    batch = sample_batch(model, sizes, padding_side)
    with torch.no_grad():
        out = model(batch)
        for b in range(len(sizes)):
            single = sample_batch(model, sizes, padding_side)  # same seed -> same graphs; slice sample b
            gps = single.graphs_per_sample
            first = int(gps[:b].sum())
            graphs = single.graphs.subgraphs()[first:first + int(gps[b])]
            from glm.core.graph import SubgraphBatch
            from glm.core.sample import GraphBatch

            keep = single.attention_mask[b].bool()
            one = GraphBatch(single.input_ids[b:b + 1, keep], single.attention_mask[b:b + 1, keep],
                             single.labels[b:b + 1, keep], SubgraphBatch.from_subgraphs(graphs),
                             gps[b:b + 1], single.task_embedding[b:b + 1])
            ref = model(one).logits[0]
            torch.testing.assert_close(out.logits[b][batch.attention_mask[b].bool()], ref, atol=1e-5, rtol=1e-4)


def test_both_graphs_of_a_sample_are_spliced_and_gated(model):
    batch = sample_batch(model, [[4, 6]])
    with torch.no_grad():
        base = model.embed(batch)
        batch.graphs.x[:4] += 1.0  # change only the first graph
        changed = model.embed(batch)
    patch = (batch.input_ids[0] == model.patch_token_id).nonzero().flatten()
    diff = (base[0, patch] - changed[0, patch]).abs().sum(-1)
    assert bool((diff[:4] > 0).all())  # the first graph is spliced (official code kept only the last)
    # gate is applied to link-prediction samples: output == projector(gate([h; hop]))
    with torch.no_grad():
        h = model.encoder(batch.graphs)
        from glm.core.hop_distance import hop_distances

        z = torch.cat([h, model.hop(hop_distances(batch.graphs, max_hops=2))], -1)
        expected = model.projector(model.gate(z, batch.task_embedding.expand(h.shape[0], -1)))
    torch.testing.assert_close(changed[0, patch], expected)


def test_paper_compatible_bypasses_gate_for_link_prediction():
    model = tiny_model("llama", GraphLAMAConfig.paper_compatible(graph_dim=16, gate_dim=16))
    batch = sample_batch(model, [[4, 6], [5]])
    with torch.no_grad():
        nodes = model.node_tokens(batch.graphs, batch.graphs_per_sample, batch.task_embedding)
        h = model.encoder(batch.graphs)
    torch.testing.assert_close(nodes[:10], model.projector(h[:10]))  # 2-graph sample: no gate
    assert not torch.allclose(nodes[10:], model.projector(h[10:]))  # 1-graph sample: gated


def test_input_skip_adds_the_node_features_to_the_soft_token():
    """``input_skip``: each soft token is the paper's token plus a linear map of the node's features, zero at
    the start (the paper's tokens), trained in adaptation while the encoder stays as pre-trained; a node-token
    module without the feature width is refused; off (the default), no such part."""
    from glm.core.method import MethodError
    from glm.core.stages import set_stage
    from glm.methods.graphlama import GraphLAMANodeTokens

    model = tiny_model("llama", GraphLAMAConfig(graph_dim=16, gate_dim=16, input_skip=True), feat_dim=8)
    paper = tiny_model("llama", feat_dim=8)
    assert model.node_token_module.input_skip.weight.shape == (model.llm.config.hidden_size, 8)
    assert paper.node_token_module.input_skip is None
    batch = sample_batch(model, [[5], [4]])
    g, tokens = batch.graphs, model.node_token_module
    with torch.no_grad():
        torch.testing.assert_close(model.node_tokens(g, batch.graphs_per_sample, batch.task_embedding),
                                   paper.node_tokens(g, batch.graphs_per_sample, batch.task_embedding))
        tokens.input_skip.weight.normal_()
        skipped = model.node_tokens(g, batch.graphs_per_sample, batch.task_embedding)
        paper_tokens = paper.node_tokens(g, batch.graphs_per_sample, batch.task_embedding)
    torch.testing.assert_close(skipped, paper_tokens + g.x @ tokens.input_skip.weight.T)
    set_stage(model, "adapt")
    model.zero_grad(set_to_none=True)
    model(batch).loss.backward()
    assert tokens.input_skip.weight.grad.abs().sum() > 0
    assert model.encoder.lin1.weight.grad is None  # adaptation's stage: the encoder stays as pre-trained
    with pytest.raises(MethodError, match="input_skip=True needs the node feature width"):
        GraphLAMANodeTokens(model.encoder, GraphLAMAConfig(graph_dim=16, gate_dim=16, input_skip=True), 32)


def test_precomputed_hop_is_used(model):
    batch = sample_batch(model, [[6]])
    from glm.core.hop_distance import hop_distances

    with torch.no_grad():
        computed = model.embed(batch)
        batch.graphs.hop = hop_distances(batch.graphs, max_hops=2)
        same = model.embed(batch)
        batch.graphs.hop = torch.zeros_like(batch.graphs.hop)
        other = model.embed(batch)
    assert torch.equal(computed, same)
    assert not torch.equal(computed, other)


def test_gradients_reach_encoder_through_frozen_llm(model):
    batch = sample_batch(model, [[5], [4, 3]])
    model.zero_grad(set_to_none=True)
    model(batch).loss.backward()
    assert all(p.grad is None for p in model.llm.parameters())
    for name, p in model.encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    model.zero_grad(set_to_none=True)


def test_gradient_checkpointing_keeps_gradients():
    model = tiny_model("llama")
    batch = sample_batch(model, [[5], [4, 3]])
    model.train()

    def encoder_grads():
        model.zero_grad(set_to_none=True)
        model(batch).loss.backward()
        return [p.grad.clone() for p in model.encoder.parameters()]

    plain = encoder_grads()
    model.gradient_checkpointing_enable()
    assert model.llm.model.gradient_checkpointing
    ckpt = encoder_grads()
    for a, b in zip(plain, ckpt):
        assert b.abs().sum() > 0
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3", "mistral", "smollm2"])
def test_generate_with_graph_tokens(family):
    model = tiny_model(family)
    batch = sample_batch(model, [[5], [3, 4]], padding_side="left", answers=False)
    out = model.generate(batch, max_new_tokens=4, do_sample=False)
    assert out.shape[0] == 2 and 1 <= out.shape[1] <= 4
    with torch.no_grad():
        first = model(batch).logits[:, -1].argmax(-1)
    assert torch.equal(out[:, 0], first)  # greedy first token == forward on the spliced prompt
    assert int(out.max()) < model.llm.config.vocab_size


def test_generate_requires_left_padding(model):
    batch = sample_batch(model, [[5], [9]], padding_side="right", answers=False)
    with pytest.raises(PaddingError, match="left-padded"):
        model.generate(batch, max_new_tokens=1)


def _backend_encoder(backend: str):
    from glm.core.encoder import EncoderConfig, GraphEncoder
    from glm.plugins import get_registry
    from glm.plugins.registry import RegistryError

    try:
        get_registry().backend(backend).load()
    except (RegistryError, ImportError) as err:
        pytest.skip(f"backend {backend!r} unavailable: {err}")
    cfg = EncoderConfig(layer="gt", in_dim=8, hidden_dim=16, out_dim=16, num_layers=2, heads=4, dropout=0.0)
    return GraphEncoder(cfg, backend)


def test_whole_model_same_logits_on_both_backends():
    from glm.core.llm import tiny_llm
    
    cfg = GraphLAMAConfig(graph_dim=16, gate_dim=16)
    models = {}
    for backend in ("pyg", "gammagl"):
        llm, tok = tiny_llm("llama", seed=0)
        models[backend] = graphlama_model(llm, tok, _backend_encoder(backend), cfg)
    pyg, ggl = models["pyg"], models["gammagl"]
    ggl.load_state_dict({k: v for k, v in pyg.state_dict().items() if not k.startswith("encoder.")}, strict=False)
    ggl.encoder.load_neutral_state_dict(pyg.encoder.neutral_state_dict())
    batch = sample_batch(pyg, [[5], [4, 6]], padding_side="left")
    pyg.zero_grad(set_to_none=True)
    out_p = pyg(batch)
    out_g = ggl(batch)
    torch.testing.assert_close(out_g.logits, out_p.logits, atol=1e-5, rtol=1e-5)
    out_p.loss.backward()
    out_g.loss.backward()
    gp = pyg.gate.task_related.weight.grad
    torch.testing.assert_close(ggl.gate.task_related.weight.grad, gp, atol=1e-5, rtol=1e-4)
    assert gp.abs().sum() > 0


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_collator_batches_feed_the_model(padding_side):
    """The data side's GraphCollator output splices correctly (contract of glm.core.tokens)."""
    from glm.core.data.collate import GraphCollator
    from glm.core.sample import Sample

    from model_helpers import random_subgraph

    model = tiny_model("qwen2")
    gen = torch.Generator().manual_seed(0)
    samples = [
        Sample("Node <graph>: which class?", "ML", [random_subgraph(5, 8, 8, gen)], "node_classification", "classify"),
        Sample("Linked? <graph> and <graph>", "yes", [random_subgraph(3, 4, 8, gen), random_subgraph(6, 9, 8, gen)],
               "link_prediction", "link"),
    ]
    collate = GraphCollator(model.tokenizer, padding_side=padding_side, inference=padding_side == "left",
                            task_embedding=lambda text: torch.full((16,), float(len(text))))
    batch = collate(samples)
    if padding_side == "right":
        out = model(batch)
        assert torch.isfinite(out.loss)
    else:
        assert model.generate(batch, max_new_tokens=2, do_sample=False).shape[0] == 2
