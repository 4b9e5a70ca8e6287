"""Prompts take their domain words from the dataset (or ``data.prompt``): CiteSeer's stay as they were,
a user's web graph gets pages and plain text (no title/abstract splitting)."""

import pytest
import torch

from glm.core.data import tasks as T
from glm.core.data.tag import build_tag, synthetic_tag


def _web():
    tag = build_tag("webkb", ["a", "b", "c"], ["Course page Intro to Graphs. Syllabus and homework.",
                                                 "Faculty page. Research on databases.", "Student page. Hobbies."],
                    ["course", "faculty", "student"], [(0, 1), (1, 2)])
    return T.GraphSource(tag, torch.zeros(3, 4), [2, 2], cache_dir=False,
                         template=T.PromptTemplate(graph="web graph", node="page", nodes="pages", split_title=False))


def test_citation_prompts_are_unchanged():
    source = T.GraphSource(synthetic_tag(), torch.zeros(48, 4), [2, 2], cache_dir=False)
    s = T.node_classification(source, [0], max_text_words=5)[0]
    assert s.prompt.startswith("Given a citation graph: \n<graph>\nwhere the 0th node is the target paper, with the "
                               "following information: \nTitle: ")
    assert s.prompt.endswith("Directly give the full name of the most likely category of this paper.")
    assert T.GRAPH_MATCHING_TASK_TEXT == ("please reorder the list of papers according to the order of graph tokens "
                                          "(i.e., complete the matching of graph tokens and papers).")


def test_a_web_graph_gets_its_own_words():
    source = _web()
    nc = T.node_classification(source, [0], max_text_words=20)[0]
    assert "Given a web graph" in nc.prompt and "target page" in nc.prompt and "this page belong to" in nc.prompt
    assert "Text: Course page Intro to Graphs." in nc.prompt and "Title:" not in nc.prompt and "paper" not in nc.prompt
    gm = T.graph_matching(source, [1], max_nodes=3)[0]
    assert "subgraph of a web graph" in gm.prompt and "list of pages" in gm.task_text and "paper" not in gm.prompt
    lp = T.link_prediction(source, 2, seed=0)
    assert lp and all("subgraphs of a web graph" in s.prompt and "paper" not in s.prompt for s in lp)


def test_dataset_and_config_choose_the_template(tmp_path):
    from glm.core.config import load_config
    from glm.core.train.pipeline import PipelineError, prompt_template

    assert prompt_template(load_config(None, ["data.dataset=citeseer_tag"])) == T.CITATION
    assert prompt_template(load_config(None, ["data.dataset=tag_files"])) == T.GENERIC
    cfg = load_config(None, ["data.dataset=tag_files", "data.prompt={graph: web graph, node: page, nodes: pages}"])
    assert prompt_template(cfg) == T.PromptTemplate("web graph", "page", "pages", False)
    with pytest.raises(PipelineError, match=r"data.prompt: unknown keys \['nuon'\]"):
        prompt_template(load_config(None, ["data.prompt={nuon: x}"]))
