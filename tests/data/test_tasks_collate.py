"""Task prompts and the collator: graph tokens, answer-only labels, padding, truncation, chat templates."""

import pytest
import torch

from glm.core.data.collate import IGNORE_INDEX, GraphCollator, prompt_token_lengths
from glm.core.data.errors import ContextOverflowError
from glm.core.data.tag import synthetic_tag
from glm.core.data.tasks import (
    GraphSource,
    graph_matching,
    link_prediction,
    node_classification,
    split_title_abstract,
    task_text,
    title_generation,
    truncate_subgraph,
)
from glm.core.graph import GraphValidationError
from glm.core.llm import tiny_tokenizer
from glm.core.sample import Sample
from glm.core.text import HashingEmbedder, TaskTextEncoder
from glm.core.tokens import G_END, G_PATCH, G_START


@pytest.fixture(scope="module")
def source():
    tag = synthetic_tag(num_nodes=60, seed=1)
    return GraphSource(tag, torch.randn(tag.num_nodes, 8), fanouts=(4, 3), cache_dir=False)


@pytest.fixture()
def tok():
    return tiny_tokenizer()


# -- prompts ------------------------------------------------------------------------------------------
def test_node_classification_prompt(source):
    s = node_classification(source, [0, 5], classes=[0, 1])[0]
    assert s.prompt.startswith("Given a citation graph: \n<graph>\nwhere the 0th node is the target paper")
    assert "Title: " in s.prompt and "Abstract: " in s.prompt
    assert "Which of the following categories does this paper belong to: Robotics, Databases?" in s.prompt
    assert s.answer == "Robotics" and s.task_text == task_text("node_classification", ["Robotics", "Databases"])
    assert s.graphs[0].node_ids[0] == 0 and s.meta["node"] == 0
    with pytest.raises(GraphValidationError, match="not among the choices"):
        node_classification(source, [2], classes=[0, 1])


def test_prompt_without_text(source):
    tag = source.tag
    notext = type(tag)(**{**tag.__dict__, "texts": None, "_hash": None})
    s = node_classification(GraphSource(notext, source.x, cache_dir=False), [3])[0]
    assert "Title" not in s.prompt and "Abstract" not in s.prompt
    assert "0th node is the target paper. Question:" in s.prompt


def test_graph_matching_answer_is_the_reordering(source):
    s = graph_matching(source, [7], max_nodes=5, seed=3)[0]
    g = s.graphs[0]
    assert g.num_nodes <= 5 and int(g.node_ids[0]) == 7
    perm = s.meta["order"]
    titles = [split_title_abstract(source.tag.texts[i])[0] for i in g.node_ids.tolist()]
    for j, p in enumerate(perm):  # paper j+1 in the list is graph token p+1
        assert f"{j + 1}. {titles[p]}" in s.prompt
        assert f"Graph token {p + 1} corresponds to paper {j + 1}." in s.answer


def test_link_prediction_balanced_and_no_leak(source):
    samples = link_prediction(source, 20, seed=0)
    labels = [s.answer for s in samples]
    assert labels.count("yes") == labels.count("no") == 10
    edges = set(map(tuple, source.tag.edge_index.t().tolist()))
    for s in samples:
        a, b = s.meta["pair"]
        assert ((a, b) in edges) == (s.answer == "yes")
        assert s.prompt.count("<graph>") == 2 and len(s.graphs) == 2
        for sg, other in ((s.graphs[0], b), (s.graphs[1], a)):
            ids = sg.node_ids.tolist()
            if other in ids:  # the pair's own edge is never in the subgraph
                j = ids.index(other)
                assert not ((sg.edge_index[0] == 0) & (sg.edge_index[1] == j)).any()
    assert [s.meta["pair"] for s in link_prediction(source, 20, seed=0)] == [s.meta["pair"] for s in samples]


def test_title_generation(source):
    s = title_generation(source, [4])[0]
    assert s.answer == split_title_abstract(source.tag.texts[4])[0]
    assert s.answer not in s.prompt and "Abstract: This paper" in s.prompt


@pytest.mark.parametrize("text,title", [
    ("Argument in Multi-Agent Systems Multi-agent systems research is concerned", "Argument in Multi-Agent Systems"),
    ("Software Engineering and Middleware: A Roadmap The construction of a large class", "Software Engineering and Middleware: A Roadmap"),
    ("Exploration versus Exploitation in Topic Driven Crawlers Topic driven crawlers are", "Exploration versus Exploitation in Topic Driven Crawlers"),
    ("Automatically Analyzing and Organizing Music Archives . We are experiencing", "Automatically Analyzing and Organizing Music Archives"),
    ("Bias, Variance, and Error Correcting Output Codes for Local Learners : This paper", "Bias, Variance, and Error Correcting Output Codes for Local Learners"),
])
def test_split_title_abstract(text, title):
    assert split_title_abstract(text)[0] == title


def test_truncate_subgraph_keeps_connectivity(source):
    sg = source.subgraphs([11])[0]
    small = truncate_subgraph(sg, 3)
    assert small.num_nodes == min(3, sg.num_nodes) and (small.edge_index < 3).all()
    small.validate()


# -- collate ------------------------------------------------------------------------------------------
def test_labels_only_on_answer_and_graph_tokens(source, tok):
    samples = node_classification(source, [0, 1, 2])
    enc = TaskTextEncoder(HashingEmbedder(), dim=16)
    batch = GraphCollator(tok, task_embedding=enc)(samples)
    start, patch, end = (tok.convert_tokens_to_ids(t) for t in (G_START, G_PATCH, G_END))
    assert batch.graphs.num_graphs == 3 and batch.graphs_per_sample.tolist() == [1, 1, 1]
    assert batch.task_embedding.shape == (3, 16)
    assert torch.equal(batch.task_embedding[0], enc(samples[0].task_text))
    for row, s in enumerate(samples):
        ids, lab = batch.input_ids[row], batch.labels[row]
        assert int((ids == patch).sum()) == s.graphs[0].num_nodes
        i0 = int((ids == start).nonzero()[0])
        assert int(ids[i0 + s.graphs[0].num_nodes + 1]) == end  # <g_end> exactly N+1 after <g_start>
        supervised = lab[lab != IGNORE_INDEX]
        assert tok.decode(supervised) == s.answer + tok.eos_token
        assert (lab[: int((lab != IGNORE_INDEX).nonzero()[0])] == IGNORE_INDEX).all()  # prompt masked
        assert (lab[batch.attention_mask[row] == 0] == IGNORE_INDEX).all()  # padding masked
        assert batch.attention_mask[row, 0] == 1  # right padding
    assert batch.meta[0]["label"] == samples[0].answer


def test_left_padding_inference(source, tok):
    samples = node_classification(source, [0, 30])
    batch = GraphCollator(tok, padding_side="left", inference=True)(samples)
    assert batch.labels is None
    assert (batch.attention_mask[:, -1] == 1).all()
    lengths = batch.attention_mask.sum(1)
    assert lengths.min() < batch.input_ids.shape[1] or lengths.max() == lengths.min()
    text = tok.decode(batch.input_ids[0][batch.attention_mask[0] == 1])
    assert text.endswith("<|assistant|>") and samples[0].answer not in text[-20:]


def test_two_graph_sample(source, tok):
    samples = link_prediction(source, 4, seed=1)
    batch = GraphCollator(tok)(samples)
    patch = tok.convert_tokens_to_ids(G_PATCH)
    assert batch.graphs.num_graphs == 8 and batch.graphs_per_sample.tolist() == [2, 2, 2, 2]
    for row, s in enumerate(samples):
        assert int((batch.input_ids[row] == patch).sum()) == sum(g.num_nodes for g in s.graphs)
    sizes = batch.graphs.sizes
    assert sizes[:2] == [g.num_nodes for g in samples[0].graphs]  # sample-major order


def test_context_overflow_and_answer_truncation(source, tok):
    s = node_classification(source, [0])[0]
    n_prompt = len(GraphCollator(tok, inference=True).encode(s)[0])
    with pytest.raises(ContextOverflowError, match="graph node tokens, never cut"):
        GraphCollator(tok, max_length=n_prompt - 1).encode(s)
    ids, lab = GraphCollator(tok, max_length=n_prompt + 2).encode(s)
    assert len(ids) == n_prompt + 2 and sum(l != IGNORE_INDEX for l in lab) == 2 and s.meta["answer_truncated"]
    patch = tok.convert_tokens_to_ids(G_PATCH)
    assert ids.count(patch) == s.graphs[0].num_nodes


def test_plain_template_without_chat_template(source, tok):
    tok.chat_template = None
    s = node_classification(source, [0])[0]
    ids, lab = GraphCollator(tok).encode(s)
    text = tok.decode(ids)
    assert text.startswith("User: Given a citation graph") and "\nAssistant: Robotics</s>" in text
    assert tok.decode([i for i, l in zip(ids, lab) if l != IGNORE_INDEX]) == "Robotics</s>"


def test_prompt_already_with_graph_tokens_is_rejected(source, tok):
    s = node_classification(source, [0])[0]
    bad = Sample(prompt=s.prompt + G_PATCH, answer="x", graphs=s.graphs, task="t", task_text="t")
    with pytest.raises(GraphValidationError, match="<g_patch>"):
        GraphCollator(tok).encode(bad)


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    from glm.core.llm import LLMLoadError, smollm2_gguf_path

    try:
        path = smollm2_gguf_path()
    except LLMLoadError as exc:
        pytest.skip(f"SmolLM2 package not installed: {exc}")
    return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)


def test_real_chat_template_smollm2(source, smollm2_tokenizer):
    tok = smollm2_tokenizer
    samples = node_classification(source, [0, 1]) + title_generation(source, [4])
    batch = GraphCollator(tok)(samples)
    for row, s in enumerate(samples):
        lab = batch.labels[row]
        assert tok.decode(lab[lab != IGNORE_INDEX]) == s.answer + "<|im_end|>"
        text = tok.decode(batch.input_ids[row][batch.attention_mask[row] == 1])
        assert text.startswith("<|im_start|>system") and "<|im_start|>assistant\n" + s.answer in text
        assert int((batch.input_ids[row] == tok.convert_tokens_to_ids(G_PATCH)).sum()) == s.graphs[0].num_nodes
    lengths = prompt_token_lengths(samples, tok)
    assert torch.equal(lengths, batch.attention_mask.sum(1))
