import json

import pytest

from glm.core.config import load_config
from glm.core.eval.metrics import accuracy, macro_f1, majority_baseline, normalize
from glm.core.eval.parsers import judge


def match_class(answer, choices, mode="exact"):
    return judge(answer, choices[0], choices, mode).matched


def is_correct(answer, label, choices, mode="exact"):
    return judge(answer, label, choices, mode).correct
from glm.core.recipe import RecipeError, load_recipe, recipe_hints
from glm.core.train.dsconfig import resolve_recipe
from glm.plugins.manager import get_registry

BUILTIN = ("cpu", "single-gpu", "3090-zero2-offload", "3090-zero3-offload")


def test_builtin_recipes_are_registered_through_the_hook():
    recipes = get_registry().recipes
    for name in BUILTIN:
        assert name in recipes and recipes[name].description
        assert recipes[name].plugin == "glm.core.train.recipes"


@pytest.mark.parametrize("name", BUILTIN)
def test_auto_fields_are_filled_from_the_config(name):
    cfg = load_config(None, ["training.micro_batch_size=2", "training.gradient_accumulation_steps=4",
                             "training.learning_rate=3e-4", "training.max_grad_norm=0.5"])
    ds = resolve_recipe(name, cfg.training, world_size=2, device_type="cpu", hidden_size=576)
    assert "auto" not in json.dumps(ds) and "_glm" not in ds
    assert ds["train_micro_batch_size_per_gpu"] == 2 and ds["gradient_accumulation_steps"] == 4
    assert ds["train_batch_size"] == 16 and ds["gradient_clipping"] == 0.5
    assert ds["optimizer"]["params"]["lr"] == 3e-4
    assert ds["bf16"]["enabled"] is False  # no CUDA here


def test_recipe_shapes_match_their_promise():
    assert resolve_recipe("cpu", load_config().training)["zero_optimization"]["stage"] == 0
    z2 = resolve_recipe("3090-zero2-offload", load_config().training, hidden_size=576)["zero_optimization"]
    assert z2["stage"] == 2 and z2["offload_optimizer"]["device"] == "cpu" and z2["reduce_bucket_size"] == 576 ** 2
    z3 = resolve_recipe("3090-zero3-offload", load_config().training, hidden_size=576)["zero_optimization"]
    assert z3["stage"] == 3 and z3["offload_param"]["device"] == "cpu"
    assert recipe_hints(load_recipe("3090-zero2-offload")[0]) == {"gradient_checkpointing": True}


def test_user_json_and_errors(tmp_path):
    own = tmp_path / "mine.json"
    own.write_text(json.dumps({"train_micro_batch_size_per_gpu": "auto", "zero_optimization": {"stage": 1},
                               "optimizer": {"type": "AdamW", "params": {"lr": "auto"}}}))
    ds = resolve_recipe(str(own), load_config().training)
    assert ds["zero_optimization"]["stage"] == 1 and ds["optimizer"]["params"]["lr"] == 2e-5
    own.write_text(json.dumps({"train_micro_batch_size_per_gpu": 8}))
    with pytest.raises(RecipeError, match="train_micro_batch_size_per_gpu is 8 but the config says 1"):
        resolve_recipe(str(own), load_config().training)
    own.write_text(json.dumps({"scheduler": {"params": {"warmup_num_steps": "auto"}}}))
    with pytest.raises(RecipeError, match="scheduler.params.warmup_num_steps"):
        resolve_recipe(str(own), load_config().training)
    with pytest.raises(RecipeError, match="unknown recipe 'nope'"):
        resolve_recipe("nope", load_config().training)
    with pytest.raises(RecipeError, match="not found"):
        resolve_recipe(str(tmp_path / "missing.json"), load_config().training)


def test_exact_matching_is_strict_and_normalised():
    choices = ["Database", "Human-Computer Interaction"]
    assert normalize("  Answer: Human-Computer  interaction. ") == "human computer interaction"
    assert match_class("Database.", choices) == "Database"
    assert match_class("human computer interaction", choices) == "Human-Computer Interaction"
    assert match_class("Database or Human-Computer Interaction", choices) is None
    assert match_class("Databases", choices) is None


def test_substring_matching_is_the_papers_lenient_rule():
    choices = ["AI", "Machine Learning"]
    assert is_correct("It is about Machine Learning, I think", "Machine Learning", choices, "substring")
    assert is_correct("AI or Machine Learning", "AI", choices, "substring")  # lenient by design
    assert not is_correct("AIR traffic", "AI", choices, "substring")  # whole words only
    assert not is_correct("It is about Machine Learning", "Machine Learning", choices, "exact")


def test_accuracy_macro_f1_majority():
    labels = ["a", "a", "b", "b"]
    assert accuracy(["a", "b", "b", None], labels) == 0.5
    # class a: tp1 fn1 fp0 -> 2/3; class b: tp1 fp1 fn1 -> 1/2
    assert macro_f1(["a", "b", "b", None], labels) == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert macro_f1(labels, labels) == 1.0
    assert majority_baseline(["a", "a", "b"], labels) == 0.5
    with pytest.raises(ValueError):
        accuracy(["a"], labels)
