from pathlib import Path

import pytest

from mindwell.errors import MindwellError
from mindwell.train.recipe import describe_fields, load_recipe, parse_overrides
from mindwell.train.runner import dry_run

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "configs").glob("*.yaml"))


def test_overrides_are_parsed_as_yaml_values():
    assert parse_overrides(["learning_rate=1e-4", "merge=true", "labels=[a, b]"]) == {
        "learning_rate": 1e-4, "merge": True, "labels": ["a", "b"],
    }
    with pytest.raises(MindwellError, match="not key=value"):
        parse_overrides(["learning_rate"])


def test_a_misspelt_key_names_the_closest_valid_key(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: sft\nmodel: tiny-gemma\ndata: x.jsonl\nlearning_rat: 0.1\n")
    with pytest.raises(MindwellError, match="Unknown recipe key 'learning_rat'. Did you mean "
                                            "'learning_rate'"):
        load_recipe(recipe)
    recipe.write_text("task: sft\nmodel: tiny-gemma\ndata: x.jsonl\n")
    with pytest.raises(MindwellError, match="'lora_rank'.*'lora_r'"):
        load_recipe(recipe, ["lora_rank=4"])


def test_types_are_checked_before_anything_loads(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: sft\nmodel: tiny-gemma\ndata: x.jsonl\n")
    with pytest.raises(MindwellError, match="max_steps"):
        load_recipe(recipe, ["max_steps=many"])
    with pytest.raises(MindwellError, match="task"):
        load_recipe(recipe, ["task=translate"])
    with pytest.raises(MindwellError, match="class_weights has 2 values but labels has 3"):
        load_recipe(recipe, ["task=classify", "labels=[a, b, c]", "class_weights=[1, 2]"])
    with pytest.raises(MindwellError, match="svm_ngrams stacks an n-gram model"):
        load_recipe(recipe, ["task=classify", "classifier=embedding-head", "svm_ngrams=true"])


def test_overrides_win_over_the_file(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: sft\nmodel: tiny-gemma\ndata: x.jsonl\nmax_steps: 5\n")
    assert load_recipe(recipe, ["max_steps=7"]).max_steps == 7


def test_every_field_is_documented():
    text = describe_fields()
    assert "learning_rate" in text and "class_weights" in text


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_shipped_recipe_validates_and_dry_runs(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    head = path.read_text().splitlines()[0]
    assert head.startswith("# mindwell train configs/"), "recipes start with their command"
    recipe = load_recipe(path)
    lines = dry_run(recipe)
    assert lines[0].startswith(f"task {recipe.task}")


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_counselor_recipes_train_with_the_prompt_mindwell_serves(path):
    # A counselor trained under one system prompt and served with another meets a prompt
    # it never saw; export's Modelfile and `mindwell chat` both use COUNSELOR_SYSTEM_PROMPT.
    from mindwell.chat.prompts import COUNSELOR_SYSTEM_PROMPT

    recipe = load_recipe(path)
    if recipe.task == "sft" and "counsel" in path.name:
        assert recipe.system_prompt == COUNSELOR_SYSTEM_PROMPT
