"""The Trainer takes the ``training`` section and a recipe, not the whole run configuration: a model that
is no graph language model trains through it, and a run built from a RunConfig records that config."""

from dataclasses import dataclass, replace

import pytest
import torch
import yaml

import glm
from glm.core.config import CONFIG_FILENAME, TrainingConfig, config_from_dict
from glm.core.train.arguments import Recipe, RunRecord
from glm.core.train.checkpoint import CheckpointError, check_resume_config


@dataclass
class Out:
    loss: torch.Tensor


class Regression(torch.nn.Module):
    """y = 3x - 1, learnt by one linear layer: ``forward(batch) -> .loss`` is all the Trainer asks."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(1, 1)

    def forward(self, batch: dict) -> Out:
        return Out(torch.nn.functional.mse_loss(self.linear(batch["x"]), batch["y"]))


def _collate(xs: list[float]) -> dict:
    x = torch.tensor(xs).unsqueeze(1)
    return {"x": x, "y": 3 * x - 1}


def test_the_trainer_trains_any_model_from_the_training_section_and_a_recipe(tmp_path):
    torch.manual_seed(0)
    model = Regression()
    training = TrainingConfig(output_dir=str(tmp_path / "run"), max_steps=60, micro_batch_size=4,
                       learning_rate=0.1, warmup_ratio=0.0, lr_scheduler="constant", logging_steps=20,
                       save_steps=0, seed=3)
    data = [i / 16 for i in range(-16, 16)]
    result = glm.Trainer(training, glm.Recipe("cpu"), model, data, _collate, progress=False).train()

    assert result.global_step == 60
    first = result.log_history[0]["loss"]
    assert result.final_loss < first / 20, (first, result.final_loss)
    assert abs(model.linear.weight.item() - 3) < 0.2 and abs(model.linear.bias.item() + 1) < 0.2
    # without a RunRecord the run records what it was given: the training section and the recipe
    written = yaml.safe_load((tmp_path / "run" / CONFIG_FILENAME).read_text())
    assert written["recipe"] == "cpu" and written["training"]["max_steps"] == 60
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()


def test_recipe_and_record_from_a_run_config():
    cfg = config_from_dict({"recipe": "3090-zero2-offload",
                            "model": {"llm": {"learning_rate": 1e-5, "gradient_checkpointing": True},
                                      "stage_extra": ["projector.*"]}})
    assert Recipe.from_config(cfg) == Recipe("3090-zero2-offload", 1e-5, True)
    record = RunRecord.from_config(cfg)
    assert record.config == cfg.to_dict() and record.stage_extra == ("projector.*",)
    assert record.adapter_metadata["recipe"] == "3090-zero2-offload"
    assert yaml.safe_load(record.to_yaml()) == cfg.to_dict()


def test_resume_compares_the_recorded_config(tmp_path):
    cfg = config_from_dict({})
    (tmp_path / CONFIG_FILENAME).write_text(RunRecord.from_config(cfg).to_yaml())
    check_resume_config(tmp_path, cfg.to_dict())  # the same: fine
    other = config_from_dict({"training": {"learning_rate": 0.5}}).to_dict()
    with pytest.raises(CheckpointError, match="learning_rate"):
        check_resume_config(tmp_path, other)
    check_resume_config(tmp_path, other, resume_anyway=True)


def test_each_section_validates_itself():
    from glm.core.config import ConfigError, DataConfig, EvalConfig, GenerationSplit, ModelConfig

    with pytest.raises(ConfigError, match=r"^<s>: training.learning_rate must be > 0, found -1"):
        replace(TrainingConfig(), learning_rate=-1.0).validate("<s>")
    with pytest.raises(ConfigError, match="training.lr_scheduler must be one of"):
        replace(TrainingConfig(), lr_scheduler="sometimes").validate()
    with pytest.raises(ConfigError, match="training.load_best_model_at_end needs validation"):
        replace(TrainingConfig(), load_best_model_at_end=True).validate()
    with pytest.raises(ConfigError, match="data.generation.train must be a count"):
        replace(DataConfig(), generation=GenerationSplit(train=2.5)).validate()
    with pytest.raises(ConfigError, match="eval.match must be one of"):
        replace(EvalConfig(), match="fuzzy").validate()
    model = ModelConfig()
    model.llm.dtype = "float8"
    with pytest.raises(ConfigError, match="model.llm.dtype must be one of"):
        model.validate()
    for section in (TrainingConfig(), DataConfig(), EvalConfig(), ModelConfig()):
        assert section.validate() is section


def test_the_trainer_refuses_a_bad_training_section_before_anything_runs(tmp_path):
    bad = replace(TrainingConfig(), output_dir=str(tmp_path / "run"), micro_batch_size=0)
    with pytest.raises(glm.core.config.ConfigError, match="training.micro_batch_size must be >= 1, found 0"):
        glm.Trainer(bad, glm.Recipe(), Regression(), [0.0], _collate)
    assert not (tmp_path / "run").exists()
