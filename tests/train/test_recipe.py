import importlib.util
import os
from pathlib import Path

import pytest
import yaml

from mindwell.errors import MindwellError
from mindwell.train.recipe import describe_fields, load_recipe, parse_overrides
from mindwell.train.runner import dry_run, plan

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


def _data_files(path: Path) -> list[Path]:
    """A recipe's data files as its author meant them: relative to the recipe's folder
    (read here with plain YAML, not with mindwell's resolution under test)."""
    values = yaml.safe_load(path.read_text())
    data = values["data"]
    files = [data] if isinstance(data, str) else list(data)
    files += [values["eval_data"]] if values.get("eval_data") else []
    return [Path(os.path.normpath(path.parent / f)) for f in files]


@pytest.mark.parametrize("where", ["repository", "elsewhere"])
@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_shipped_recipe_dry_runs_from_any_directory(path, where, tmp_path, monkeypatch):
    """From the repository root and from an unrelated folder, every recipe either checks
    every data file it names (rows and columns) or fails naming the missing file and the
    script that makes it: a dry run never passes over a file it could not read."""
    monkeypatch.chdir(ROOT if where == "repository" else tmp_path)
    head = path.read_text().splitlines()[0]
    assert head.startswith("# mindwell train configs/"), "recipes start with their command"
    recipe = load_recipe(path)
    files = _data_files(path)
    result = plan(recipe)
    assert result.lines[0].startswith(f"task {recipe.task}")
    missing = [f for f in files if not f.exists()]
    earlier = yaml.safe_load(path.read_text()).get("init_adapter")
    if earlier and not (path.parent / earlier).exists():
        # A second stage before its first: named, with what to run.
        with pytest.raises(MindwellError, match="init_adapter: .* is not a folder"):
            dry_run(recipe)
        return
    if not missing:
        assert result.error() is None, result.error()
        assert dry_run(recipe) == result.lines
        for file in files:
            assert any(line.startswith(f"data: {file}: ") and "rows, columns ok" in line
                       for line in result.lines), (file, result.lines)
    else:
        with pytest.raises(MindwellError) as caught:
            dry_run(recipe)
        text = str(caught.value)
        assert "Data file not found" in text and missing[0].name in text
        assert sum("MISSING, columns not checked" in line for line in result.lines) == len(
            missing)
        script = yaml.safe_load(path.read_text()).get("data_script")
        if script:  # the remedy names the script, wherever the run started
            assert f"python {os.path.normpath(path.parent / script)}" in text or (
                f"python {script.removeprefix('../')}" in text and where == "repository")


def test_data_paths_are_found_from_the_working_directory_first_then_the_recipes_folder(
        tmp_path, monkeypatch):
    recipes = tmp_path / "recipes"
    (recipes / "data").mkdir(parents=True)
    (recipes / "data" / "chat.jsonl").write_text('{"messages": []}\n')
    (recipes / "r.yaml").write_text("task: sft\nmodel: tiny-gemma\ndata: data/chat.jsonl\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_recipe(recipes / "r.yaml").data == str(recipes / "data" / "chat.jsonl")
    (elsewhere / "data").mkdir()
    (elsewhere / "data" / "chat.jsonl").write_text('{"messages": []}\n')
    assert load_recipe(recipes / "r.yaml").data == "data/chat.jsonl"  # the working directory
    # An override on the command line is found the same way.
    assert load_recipe(recipes / "r.yaml", ["data=../recipes/data/chat.jsonl"]).data == (
        "../recipes/data/chat.jsonl")


def test_a_missing_data_file_names_where_it_looked_and_the_script_that_makes_it(
        tmp_path, monkeypatch):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "build.py").write_text("print('building')\n")
    (tmp_path / "configs").mkdir()
    recipe_file = tmp_path / "configs" / "r.yaml"
    recipe_file.write_text("task: classify\nmodel: tiny-gemma\ndata: ../runs/data/x.csv\n"
                           "data_script: ../scripts/build.py\n")
    (tmp_path / "elsewhere" / "deeper").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "elsewhere" / "deeper")
    recipe = load_recipe(recipe_file)
    with pytest.raises(MindwellError) as caught:
        dry_run(recipe)
    assert "Data file not found: ../runs/data/x.csv" in caught.value.message
    assert str(tmp_path / "runs" / "data" / "x.csv") in caught.value.message  # beside recipe
    assert str(tmp_path / "elsewhere" / "runs" / "data" / "x.csv") in caught.value.message
    assert f"python {tmp_path / 'scripts' / 'build.py'}" in caught.value.hint
    from mindwell.train import train

    with pytest.raises(MindwellError, match="Data file not found"):  # training: same words
        train(recipe)
    assert not (tmp_path / "elsewhere" / "deeper" / "runs").exists()  # nothing was started


def test_report_to_accepts_one_name_and_is_checked_against_what_is_installed(tmp_path):
    from mindwell.train.runner import report_to

    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: sft\nmodel: tiny-gemma\ndata: x.jsonl\nreport_to: tensorboard\n")
    assert load_recipe(recipe).report_to == ["tensorboard"]
    assert load_recipe(recipe, ["report_to=none"]).report_to == []
    assert report_to(load_recipe(recipe, ["report_to=[]"])) == []
    installed = importlib.util.find_spec("wandb") is not None
    wandb = load_recipe(recipe, ["report_to=wandb"])
    assert wandb.report_to == ["wandb"]
    if installed:
        assert report_to(wandb) == ["wandb"]
    else:
        with pytest.raises(MindwellError, match="wandb is not installed") as caught:
            report_to(wandb)
        assert "pip install wandb" in caught.value.hint
    with pytest.raises(MindwellError, match="'tensorbord' is not a logger.*'tensorboard'"):
        report_to(load_recipe(recipe, ["report_to=[tensorbord]"]))


def test_lora_targets_are_checked_against_the_models_layers(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: sft\nmodel: tiny-gemma\ndata: x.jsonl\nreport_to: []\n")
    result = plan(load_recipe(recipe, ["lora_target_modules=[qq_proj, k_proj]"]))
    problems = [p.message for p in result.problems]
    assert any("'qq_proj' matches no layer of tiny-gemma (did you mean 'q_proj'?)" in p
               for p in problems), problems
    assert "q_proj" in result.problems[0].hint and "all-linear" in result.problems[0].hint
    assert not any("k_proj'" in p for p in problems)
    result = plan(load_recipe(recipe, ["lora_target_modules=[mlp]"]))
    assert any("'mlp' names a Gemma3MLP of tiny-gemma, not a layer LoRA can adapt" in p.message
               for p in result.problems)
    good = plan(load_recipe(recipe))
    assert any(line.startswith("lora_target_modules:") and "ok" in line for line in good.lines)
    assert not any("lora_target_modules" in p.message for p in good.problems)


def test_a_short_name_suggests_the_key_it_stands_for(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: sft\nmodel: tiny-gemma\ndata: x.jsonl\n")
    with pytest.raises(MindwellError, match="'lr'. Did you mean 'learning_rate'"):
        load_recipe(recipe, ["lr=1e-4"])


def test_warmup_longer_than_the_run_is_a_warning(tmp_path):
    from mindwell.train.runner import recipe_warnings

    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: sft\nmodel: tiny-gemma\ndata: x.jsonl\nmax_steps: 10\n")
    assert recipe_warnings(load_recipe(recipe, ["warmup_steps=10"])) == []
    [warning] = recipe_warnings(load_recipe(recipe, ["warmup_steps=11"]))
    assert "warmup_steps=11 is more than the 10 optimizer steps" in warning
    # Epoch-based: 40 examples, batch 4, accumulation 2 -> 5 steps an epoch, 2 epochs.
    epochs = load_recipe(recipe, ["max_steps=-1", "num_epochs=2", "batch_size=4",
                                  "gradient_accumulation_steps=2", "warmup_steps=12"])
    assert "the 10 optimizer steps" in recipe_warnings(epochs, 40)[0]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_counselor_recipes_train_with_the_prompt_mindwell_serves(path):
    # A counselor trained under one system prompt and served with another meets a prompt
    # it never saw; export's Modelfile and `mindwell chat` both use COUNSELOR_SYSTEM_PROMPT.
    from mindwell.chat.prompts import COUNSELOR_SYSTEM_PROMPT

    recipe = load_recipe(path)
    if recipe.task == "sft" and "counsel" in path.name:
        assert recipe.system_prompt == COUNSELOR_SYSTEM_PROMPT
