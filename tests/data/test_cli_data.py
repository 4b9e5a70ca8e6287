"""``glm data`` commands."""

import json

from glm.cli.main import main
from glm.core.data.splits import load_split
from glm.core.data.tag import synthetic_tag


def test_data_list(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "citeseer_tag" in out and "synthetic" in out and "tag_files" in out


def test_data_stats_text_and_json(capsys):
    assert main(["data", "stats", "synthetic", "--tokenizer", "tiny", "--limit", "12", "--fanouts", "3", "2"]) == 0
    out = capsys.readouterr().out
    assert "synthetic: 48 nodes" in out and "4 classes" in out and "p50" in out and "p99" in out
    assert main(["data", "stats", "synthetic", "--tokenizer", "tiny", "--limit", "12", "--json",
                 "--task", "link_prediction"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["nodes"] == 48 and stats["prompt_lengths"]["prompts"] == 12
    tok = stats["prompt_lengths"]["tokens"]
    assert tok["p50"] <= tok["p90"] <= tok["p99"] <= tok["max"]


def test_data_split_writes_manifest(tmp_path, capsys):
    out = tmp_path / "s.json"
    assert main(["data", "split", "synthetic", "--n-way", "2", "--k-shot", "5", "--seed", "1", "-o", str(out),
                 "--val-per-class", "2", "--test-per-class", "3"]) == 0
    split = load_split(out, synthetic_tag())
    assert len(split.train) == 10 and len(split.test) == 6
    assert "2-way 5-shot" in capsys.readouterr().out


def test_data_stats_uses_the_config_text_budget(tmp_path, capsys):
    def p50(*extra):
        assert main(["data", "stats", "synthetic", "--tokenizer", "tiny", "--limit", "12", "--json", *extra]) == 0
        out = json.loads(capsys.readouterr().out)["prompt_lengths"]
        return out["max_text_words"], out["tokens"]["p50"]

    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {max_text_words: 3}\n")
    words, short = p50("--config", str(cfg))
    assert words == 3 and short < p50("--max-text-words", "40")[1]


def test_tag_files_dataset_is_named_after_its_folder(tmp_path):
    from glm.core.data.loaders import load_tag_files

    folder = tmp_path / "webkb"
    folder.mkdir()
    (folder / "nodes.csv").write_text("id,text,label\na,page one,X\nb,page two,Y\n")
    (folder / "edges.csv").write_text("source,target\na,b\n")
    assert load_tag_files(folder / "nodes.csv", folder / "edges.csv").name == "webkb"
    assert load_tag_files(folder / "nodes.csv", folder / "edges.csv", name="pages").name == "pages"


def test_data_split_takes_its_defaults_from_the_run_config(tmp_path, capsys):
    """The split a training run makes and `glm data split --config` agree (one source of defaults)."""
    from glm.core.config import load_config
    from glm.core.data.splits import make_few_shot_split

    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {dataset: synthetic, n_way: 2, k_shot: 3, seed: 4, val_per_class: 2, test_per_class: 5}\n")
    out = tmp_path / "s.json"
    assert main(["data", "split", "synthetic", "--config", str(cfg), "-o", str(out)]) == 0
    d = load_config(cfg).data
    expected = make_few_shot_split(synthetic_tag(), d.n_way, d.k_shot, d.seed, val_per_class=d.val_per_class,
                                   test_per_class=d.test_per_class)
    got = load_split(out, synthetic_tag())
    assert (got.train, got.val, got.test) == (expected.train, expected.val, expected.test)


def test_missing_data_is_one_line_error(tmp_path, capsys):
    assert main(["data", "stats", "citeseer_tag", "--data-dir", str(tmp_path), "--limit", "0"]) == 2
    err = capsys.readouterr().err
    assert "not found; looked in" in err and str(tmp_path) in err


def test_tag_files_via_cli(tmp_path, capsys):
    (tmp_path / "n.csv").write_text("id,text,label\na,Alpha Beta This is text,X\nb,Gamma Delta This is more,Y\n")
    (tmp_path / "e.csv").write_text("source,target\na,b\n")
    assert main(["data", "stats", "tag_files", "--nodes", str(tmp_path / "n.csv"), "--edges", str(tmp_path / "e.csv"),
                 "--limit", "0"]) == 0
    assert "n: 2 nodes, 1 undirected edges" in capsys.readouterr().out
    (tmp_path / "e.csv").write_text("source,target\na,zz\n")
    assert main(["data", "stats", "tag_files", "--nodes", str(tmp_path / "n.csv"), "--edges", str(tmp_path / "e.csv"),
                 "--limit", "0"]) == 2
    assert "e.csv:2: field 'target'" in capsys.readouterr().err


def test_data_export_writes_the_induced_subgraph_of_some_classes(tmp_path, capsys):
    import torch

    from glm.core.data import load_dataset
    from glm.core.data.loaders import load_tag_files

    tag = load_dataset("synthetic")
    keep = tag.class_names[:2]
    out = tmp_path / "part"
    assert main(["data", "export", "synthetic", "--classes", ",".join(keep), "-o", str(out)]) == 0
    part = load_tag_files(out / "nodes.csv", out / "edges.csv")
    assert part.name == "part" and part.class_names == sorted(keep)
    kept = [i for i in range(tag.num_nodes) if tag.class_names[int(tag.labels[i])] in keep]
    assert part.node_ids == [tag.node_ids[i] for i in kept] and part.texts == [tag.texts[i] for i in kept]
    ids = set(part.node_ids)
    induced = {(tag.node_ids[s], tag.node_ids[t]) for s, t in tag.edge_index.t().tolist()
               if tag.node_ids[s] in ids and tag.node_ids[t] in ids}
    assert {(part.node_ids[s], part.node_ids[t]) for s, t in part.edge_index.t().tolist()} == induced
    assert 0 < part.num_edges < tag.num_edges and torch.equal(part.labels.unique(), torch.tensor([0, 1]))

    rest = tmp_path / "rest"
    assert main(["data", "export", "synthetic", "--exclude-classes", ",".join(keep), "-o", str(rest)]) == 0
    assert not ids & set(load_tag_files(rest / "nodes.csv", rest / "edges.csv").node_ids)  # disjoint graphs

    before = (out / "nodes.csv").read_bytes()
    capsys.readouterr()
    assert main(["data", "export", "synthetic", "-o", str(out)]) == 2  # an earlier export is not replaced
    assert "--overwrite" in capsys.readouterr().err and (out / "nodes.csv").read_bytes() == before
    assert main(["data", "export", "synthetic", "--classes", "Nope", "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "['Nope'] are not classes" in err and not (tmp_path / "x").exists()
