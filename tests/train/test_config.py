import pytest
import yaml

from glm.core.config import (ConfigError, RunConfig, apply_overrides, config_from_dict, load_config, save_config)
from glm.core.encoder import EncoderConfig
from glm.methods.graphlama import GraphLAMAConfig


def write(tmp_path, text):
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


def test_defaults_and_sections_reuse_core_configs():
    cfg = load_config()
    assert isinstance(cfg.model.encoder, EncoderConfig)
    assert cfg.model.method == "graphlama" and isinstance(cfg.model.method_config, GraphLAMAConfig)
    assert cfg.training.stage == "pretrain" and cfg.recipe == "cpu"  # the method's pre-training stage


def test_method_sections(tmp_path):
    path = write(tmp_path, "model:\n  graphlama:\n    hop_mode: official\n")
    cfg = load_config(path)
    assert cfg.model.method_config.hop_mode == "official"
    saved = yaml.safe_load(cfg.to_yaml())
    assert saved["model"]["graphlama"]["hop_mode"] == "official" and "graph" not in saved["model"]
    assert load_config(None, ["model.method=llaga", "model.llaga.template=hop_field"]).model.method_config.template == "hop_field"
    gpt = load_config(None, ["model.method=graphgpt"])
    assert gpt.training.stage == "task"  # GraphGPT's pre-training stage
    with pytest.raises(ConfigError, match="model.graph"):  # no old names: unknown like any other key
        load_config(None, ["model.graph.hop_mode=official"])
    with pytest.raises(ConfigError, match="unknown method 'nosuch'; registered: graphgpt, graphlama, llaga"):
        load_config(None, ["model.method=nosuch"])
    with pytest.raises(ConfigError, match="unknown key 'model.llaga.foo'"):
        load_config(None, ["model.llaga.foo=1"])
    with pytest.raises(ConfigError, match=r"training.stage \(stages of method 'graphgpt'\) must be one of match"):
        load_config(None, ["model.method=graphgpt", "training.stage=adapt_official"])
    # a config written for GraphLAMA names the roles: they map to the other method's stages
    assert load_config(None, ["training.stage=pretrain", "model.method=graphgpt"]).training.stage == "task"
    assert load_config(None, ["training.stage=adapt", "model.method=graphgpt"]).training.stage == "adapt"


def test_yaml_plus_dotted_overrides(tmp_path):
    path = write(tmp_path, "training:\n  learning_rate: 1e-4\n  max_steps: 3\ndata:\n  fanout: [5, 5]\n")
    cfg = load_config(path, ["training.seed=7", "data.heldout_classes=[AI, DB]", "model.encoder.layer=gcn",
                             "model.graphlama.hop_mode=official", "backend=gammagl"])
    assert cfg.training.learning_rate == 1e-4  # "1e-4" is a string for YAML 1.1; coerced to float
    assert cfg.training.max_steps == 3 and cfg.training.seed == 7
    assert cfg.data.fanout == [5, 5] and cfg.data.heldout_classes == ["AI", "DB"]
    assert cfg.model.encoder.layer == "gcn" and cfg.model.method_config.hop_mode == "official"
    assert cfg.backend == "gammagl"


def test_unknown_key_names_key_file_and_valid_keys(tmp_path):
    path = write(tmp_path, "training:\n  learnin_rate: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "training.learnin_rate" in msg and str(path) in msg and "learning_rate" in msg


def test_unknown_override_and_wrong_types():
    with pytest.raises(ConfigError, match="unknown key 'model.encoder.foo'.*valid keys in model.encoder: layer"):
        load_config(None, ["model.encoder.foo=1"])
    with pytest.raises(ConfigError, match=r"unknown key 'graphlama:training'.*one per --adapt-set\)$"):
        load_config(None, ["graphlama:training.num_epochs=2"])  # a second setting after one --adapt-set
    with pytest.raises(ConfigError, match="training.seed expects an integer, found str 'abc'"):
        load_config(None, ["training.seed=abc"])
    with pytest.raises(ConfigError, match="data.fanout expects a list"):
        load_config(None, ["data.fanout=5"])
    with pytest.raises(ConfigError, match="model.graphlama.hop_mode must be one of onehot, official, learned"):
        load_config(None, ["model.graphlama.hop_mode=bits"])
    with pytest.raises(ConfigError, match="training.stage .*must be one of pretrain, adapt, adapt_official"):
        load_config(None, ["training.stage=finetune"])
    with pytest.raises(ConfigError, match="look like section.key=value"):
        load_config(None, ["training.seed"])
    with pytest.raises(ConfigError, match="is a section"):
        load_config(None, ["training=3"])


def test_cross_field_checks():
    with pytest.raises(ConfigError, match=r"graph_dim \(64\) must equal model.encoder.out_dim \(128\)"):
        load_config(None, ["model.graphlama.graph_dim=64"])
    with pytest.raises(ConfigError, match="micro_batch_size must be >= 1"):
        load_config(None, ["training.micro_batch_size=0"])


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(None, ["training.max_steps=5", "data.fanout=[4,2]"])
    path = save_config(cfg, tmp_path / "run")
    assert path.name == "glm_config.yaml"
    again = config_from_dict(yaml.safe_load(path.read_text()), str(path))
    assert again == cfg
    assert not list((tmp_path / "run").glob(".*tmp*"))


def test_apply_overrides_creates_sections():
    data = apply_overrides({}, ["a.b.c=1", "a.b.d=[1, 2]", "e=x"])
    assert data == {"a": {"b": {"c": 1, "d": [1, 2]}}, "e": "x"}
    assert RunConfig().to_dict()["training"]["output_dir"] == "runs/glm"


def test_literal_choices_are_one_table_checked_on_load_and_on_validate():
    """Every fixed choice is a Literal of glm.core.choices: loading refuses other values, and so does
    validate() for a config changed in Python (which loading never saw)."""
    import typing

    from glm.core import choices
    from glm.core.config_rules import literal_problems

    assert choices.options(choices.Tuning) == ("frozen", "lora", "qlora", "freeze")
    assert choices.options(typing.Optional[choices.Attention]) == ("sdpa", "eager", "flash_attention_2")
    assert choices.options(int) == ()
    with pytest.raises(ConfigError, match="training.lr_scheduler must be one of cosine, linear, constant; found 'step'"):
        load_config(None, ["training.lr_scheduler=step"])
    cfg = load_config(None, ["model.llm.attention=null"])
    assert list(literal_problems(cfg)) == []
    cfg.model.llm.quant.type = "int3"
    cfg.eval.mode = "vote"
    assert list(literal_problems(cfg)) == ["model.llm.quant.type must be one of nf4, fp4; found 'int3'",
                                           "eval.mode must be one of choice, generate; found 'vote'"]
    with pytest.raises(ConfigError, match="model.llm.quant.type must be one of nf4, fp4"):
        cfg.validate()
