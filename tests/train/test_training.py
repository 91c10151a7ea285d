"""Training runs on the tiny model: artifacts, resume, class weights, merge, accelerate."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from mindwell.errors import MindwellError
from mindwell.train import load_recipe, train

ROOT = Path(__file__).resolve().parents[2]


def recipe(name: str, tmp_path: Path, *overrides: str):
    return load_recipe(ROOT / "configs" / name, [f"output_dir={tmp_path}", *overrides])


@pytest.fixture(autouse=True)
def _run_from_root(monkeypatch):
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("name", ["tiny-sft.yaml", "tiny-classify.yaml"])
def test_cli_runs_leave_adapter_metrics_plot_and_card(name, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mindwell", "train", f"configs/{name}", f"output_dir={tmp_path}"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    assert (tmp_path / "adapter" / "tokenizer_config.json").exists()
    assert (tmp_path / "loss_curve.png").stat().st_size > 10_000
    assert "## Validation metrics" in (tmp_path / "README.md").read_text()
    assert (tmp_path / "recipe.yaml").exists()
    csv_text = (tmp_path / "metrics.csv").read_text()
    assert "eval_loss" in csv_text and "loss" in csv_text
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["global_step"] == 30
    if name == "tiny-classify.yaml":
        assert {"eval_accuracy", "eval_f1_weighted", "eval_f1_macro",
                "eval_precision_macro", "eval_recall_weighted"} <= set(summary["metrics"])


def test_sft_lowers_validation_loss_and_the_adapter_loads_for_chat(tmp_path):
    result = train(recipe("tiny-sft.yaml", tmp_path, "max_steps=40"))
    evals = [h["eval_loss"] for h in result.history if "eval_loss" in h]
    assert evals[-1] < evals[0]
    from mindwell.inference import load_backend

    backend = load_backend(str(tmp_path / "adapter"))
    reply = backend.generate([{"role": "user", "content": "I feel lonely."}],
                             stream=False, max_tokens=5, temperature=0)
    assert isinstance(reply, str)


class CrashAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt("simulated interruption")


def test_resume_continues_from_the_last_checkpoint(tmp_path, caplog):
    settings = ["max_steps=20", "save_steps=5", "eval_steps=5", "logging_steps=1"]
    with pytest.raises(KeyboardInterrupt):
        train(recipe("tiny-sft.yaml", tmp_path, *settings), callbacks=[CrashAt(7)])
    assert (tmp_path / "checkpoint-5").exists() and not (tmp_path / "checkpoint-10").exists()
    rows = list(csv.reader((tmp_path / "metrics.csv").open()))[1:]
    assert 6 in {int(row[0]) for row in rows}  # logged, then redone after the crash

    seen = []

    class FirstStep(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            seen.append(state.global_step)

    with caplog.at_level("INFO", logger="mindwell.train"):
        result = train(recipe("tiny-sft.yaml", tmp_path, *settings, "resume=true"),
                       callbacks=[FirstStep()])
    assert "Resuming from checkpoint-5" in caplog.text
    assert seen[0] == 5  # picked up after checkpoint-5, not from 0
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["global_step"] == 20
    assert result.history
    # Every (step, metric) once: steps 6-7 of the crashed run were replaced by the resumed
    # ones, and the start was not evaluated again.
    rows = [(row[0], row[1]) for row in list(csv.reader((tmp_path / "metrics.csv").open()))[1:]]
    duplicated = {row for row in rows if rows.count(row) > 1}
    assert not duplicated, duplicated
    assert ("0", "eval_loss") in rows and ("20", "eval_loss") in rows
    # 6 training conversations, batch 4: two steps an epoch, so 20 steps are 10 epochs,
    # counted across the interruption.
    assert summary["train_tokens"] == 10 * summary["data_tokens"]
    assert summary["train_answer_tokens"] == 10 * summary["data_answer_tokens"]


def test_init_adapter_starts_a_second_stage_where_the_first_ended(tmp_path):
    first = train(recipe("tiny-sft.yaml", tmp_path / "one", "max_steps=20", "eval_steps=20",
                         "save_steps=20", f"output_dir={tmp_path / 'one'}"))
    first_evals = [h["eval_loss"] for h in first.history if "eval_loss" in h]
    assert first_evals[-1] < first_evals[0]
    second = train(recipe("tiny-sft.yaml", tmp_path / "two", "max_steps=2", "eval_steps=2",
                          "save_steps=2", f"output_dir={tmp_path / 'two'}",
                          f"init_adapter={tmp_path / 'one' / 'checkpoint-20'}"))
    start = next(h["eval_loss"] for h in second.history if "eval_loss" in h)
    # The second stage's step-0 evaluation is the first stage's last, not the base's.
    assert start == pytest.approx(first_evals[-1], rel=1e-4)
    assert (tmp_path / "two" / "adapter" / "adapter_config.json").exists()


def test_init_adapter_that_is_not_an_adapter_is_named_by_the_dry_run(tmp_path):
    from mindwell.train.runner import dry_run

    with pytest.raises(MindwellError, match="holds no PEFT adapter"):
        dry_run(recipe("tiny-sft.yaml", tmp_path, f"init_adapter={tmp_path}"))


def test_train_tokens_count_what_the_steps_saw(tmp_path):
    train(recipe("tiny-sft.yaml", tmp_path / "one", "max_steps=1", "eval_steps=1000",
                 "save_steps=1000", f"output_dir={tmp_path / 'one'}"))
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert 0 < one["train_tokens"] < one["data_tokens"]  # 4 of the 6 conversations
    assert 0 < one["train_answer_tokens"] < one["train_tokens"]
    train(recipe("tiny-sft.yaml", tmp_path / "two", "max_steps=4", "eval_steps=1000",
                 "save_steps=1000", f"output_dir={tmp_path / 'two'}"))
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["train_tokens"] == 2 * two["data_tokens"]  # two whole epochs
    assert f"saw {two['train_tokens']:,} tokens" in (tmp_path / "two" / "README.md").read_text()


def test_the_card_says_dropped_when_drop_long_dropped_examples(tmp_path):
    # Tokenized, the six training conversations are 62-155 tokens long; three exceed 100.
    train(recipe("tiny-sft.yaml", tmp_path, "max_steps=2", "max_length=100", "drop_long=true",
                 "eval_steps=1000", "save_steps=1000"))
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert (summary["dropped_long_examples"], summary["truncated_examples"]) == (3, 0)
    assert summary["train_examples"] == 3
    card = (tmp_path / "README.md").read_text()
    assert "3 longer than 100 tokens dropped (drop_long)" in card
    assert "truncated" not in card
    train(recipe("tiny-sft.yaml", tmp_path / "cut", "max_steps=2", "max_length=100",
                 "eval_steps=1000", "save_steps=1000", f"output_dir={tmp_path / 'cut'}"))
    assert "3 truncated at 100 tokens" in (tmp_path / "cut" / "README.md").read_text()


def test_warmup_longer_than_the_run_warns_at_train_time(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="mindwell.train"):
        train(recipe("tiny-sft.yaml", tmp_path, "max_steps=2", "warmup_steps=5",
                     "eval_steps=1000", "save_steps=1000"))
    assert "warmup_steps=5 is more than the 2 optimizer steps" in caplog.text


def test_training_from_another_directory_finds_the_recipes_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = train(load_recipe(ROOT / "configs" / "tiny-sft.yaml",
                               ["output_dir=out", "max_steps=1", "eval_steps=1000",
                                "save_steps=1000"]))
    assert result.train_examples == 6
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").exists()


def test_a_wrong_lora_target_is_a_clear_error_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mindwell", "train", "configs/tiny-sft.yaml",
         f"output_dir={tmp_path}", "lora_target_modules=[qq_proj]"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    assert "'qq_proj' matches no layer of tiny-gemma (did you mean 'q_proj'?)" in result.stderr
    assert "Traceback" not in result.stderr


def test_class_weights_change_the_loss():
    from mindwell.train.classify import WeightedTrainer

    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    labels = torch.tensor([0, 1, 1])

    class Model(torch.nn.Module):
        def forward(self, **inputs):
            return type("Out", (), {"logits": logits})()

    def loss_with(weights):
        trainer = WeightedTrainer.__new__(WeightedTrainer)
        trainer.class_weights = weights
        return trainer.compute_loss(Model(), {"labels": labels.clone()})

    plain = torch.nn.functional.cross_entropy(logits, labels)
    weighted = torch.nn.functional.cross_entropy(
        logits, labels, weight=torch.tensor([0.2, 0.8]))
    assert torch.allclose(loss_with(None), plain)
    assert torch.allclose(loss_with([0.2, 0.8]), weighted)
    assert not torch.allclose(plain, weighted)


def test_auto_class_weights_are_balanced_and_recorded(tmp_path):
    train(recipe("tiny-classify.yaml", tmp_path, "max_steps=2", "validation_fraction=0.0",
                 "max_train_samples=10"))
    summary = json.loads((tmp_path / "metrics.json").read_text())
    weights = summary["class_weights"]
    assert len(weights) == 4 and weights != [1.0] * 4


def test_labels_outside_the_label_set_are_rejected(tmp_path):
    from mindwell.errors import MindwellError

    with pytest.raises(MindwellError, match="not in the label set"):
        train(recipe("tiny-classify.yaml", tmp_path, "labels=[neutral, sad, joy]",
                     "class_weights=null"))


def test_embedding_head_trains_on_frozen_sentence_embeddings(tmp_path):
    result = train(recipe("tiny-classify.yaml", tmp_path, "classifier=embedding-head",
                          "max_steps=150", "learning_rate=0.05"))
    assert (tmp_path / "adapter" / "head.safetensors").exists()
    assert json.loads((tmp_path / "adapter" / "head_config.json").read_text())["labels"] == [
        "neutral", "sad", "joy", "anger"]
    assert result.metrics["eval_accuracy"] >= 0.5  # 4 classes: chance is 0.25


def test_merge_writes_a_loadable_merged_model(tmp_path):
    train(recipe("tiny-sft.yaml", tmp_path, "max_steps=3", "merge=true"))
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert not any("lora" in name for name, _ in merged.named_parameters())


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate CLI not installed")
def test_accelerate_launch_runs_the_same_recipe_on_cpu(tmp_path):
    result = subprocess.run(
        ["accelerate", "launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "mindwell", "train",
         "configs/tiny-sft.yaml", f"output_dir={tmp_path}", "max_steps=4"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()


def test_qlora_falls_back_to_lora_without_cuda(caplog):
    from mindwell.train.models import effective_method

    qlora = load_recipe(None, {"task": "sft", "model": "tiny-gemma", "data": "x.jsonl",
                               "method": "qlora"})
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with caplog.at_level("WARNING", logger="mindwell.train"):
        assert effective_method(qlora) == "lora"
    assert "QLoRA needs a CUDA GPU" in caplog.text


def test_full_fine_tuning_saves_a_whole_model(tmp_path):
    train(recipe("tiny-sft.yaml", tmp_path, "method=full", "max_steps=2",
                 "validation_fraction=0.0"))
    assert (tmp_path / "adapter" / "config.json").exists()
    assert not (tmp_path / "adapter" / "adapter_config.json").exists()


def test_dpo_prefers_the_chosen_reply_on_held_out_pairs(tmp_path):
    result = train(recipe("tiny-dpo.yaml", tmp_path))
    evals = [h for h in result.history if "eval_loss" in h]
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"]
    assert evals[-1]["eval_rewards/margins"] > 0 and result.metrics["eval_rewards/accuracies"] > 0.5
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["preference_pairs"] == 6


def test_dpo_rows_must_end_with_the_persons_turn(tmp_path):
    from mindwell.errors import MindwellError

    data = tmp_path / "prefs.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "hello"}],
                                "chosen": "Hi there.", "rejected": "Go away."}) + "\n")
    with pytest.raises(MindwellError, match="must end with the person's turn"):
        train(recipe("tiny-dpo.yaml", tmp_path, f"data={data}", "validation_fraction=0"))


def test_encoder_classifier_fine_tunes_the_sentence_encoder(tmp_path):
    result = train(recipe("tiny-classify.yaml", tmp_path, "classifier=encoder",
                          "model=use-multilingual-v3", "max_steps=16", "batch_size=4",
                          "learning_rate=1e-3"))
    adapter = tmp_path / "adapter"
    assert (adapter / "encoder.safetensors").exists() and (adapter / "head.safetensors").exists()
    assert "eval_accuracy" in result.metrics
    from mindwell.analysis.evaluate import load_classifier
    from mindwell.models.use_torch import load_use_encoder

    classifier = load_classifier(str(tmp_path))
    assert classifier.labels == ("neutral", "sad", "joy", "anger")
    probabilities = classifier.predict_proba(["I feel empty", "what a great day"])
    assert probabilities.shape == (2, 4)
    assert np.allclose(probabilities.sum(1), 1, atol=1e-5)
    # The delta is a real change of the encoder, not the shipped weights.
    from safetensors.torch import load_file

    tuned = load_file(str(adapter / "encoder.safetensors"))
    base = load_use_encoder().state_dict_delta()
    assert any(not torch.equal(tuned[k], base[k]) for k in base)


def test_encoder_classifier_refuses_another_model(tmp_path):
    with pytest.raises(MindwellError, match="Set model: use-multilingual-v3"):
        train(recipe("tiny-classify.yaml", tmp_path, "classifier=encoder"))


def test_packing_trains_on_every_conversation_in_fewer_rows(tmp_path):
    # Tokenized, the six training conversations are 62-155 tokens (654 in all): in rows of
    # up to 256 they pack into three rows, one step of batch 4 per epoch.
    train(recipe("tiny-sft.yaml", tmp_path, "packing=true", "max_length=256", "max_steps=2",
                 "eval_steps=1", "save_steps=1000"))
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert (summary["packed_rows"], summary["train_examples"]) == (3, 6)
    assert summary["conversations_per_row"] == 2.0
    assert summary["data_tokens"] == 654
    assert summary["train_tokens"] == 2 * 654  # two epochs, padding excluded
    rows = list(csv.reader((tmp_path / "metrics.csv").open()))[1:]
    evals = [float(value) for step, metric, value in rows if metric == "eval_loss"]
    assert len(evals) == 3 and evals[-1] < evals[0]  # start, step 1, step 2
    from mindwell.errors import MindwellError

    with pytest.raises(MindwellError, match="packing is for task: sft"):
        recipe("tiny-classify.yaml", tmp_path, "packing=true")
