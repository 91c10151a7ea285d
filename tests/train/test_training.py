"""Training runs on the tiny model: artifacts, resume, class weights, merge, accelerate."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

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


def test_resume_continues_from_the_last_checkpoint(tmp_path):
    settings = ["max_steps=20", "save_steps=5", "eval_steps=5"]
    with pytest.raises(KeyboardInterrupt):
        train(recipe("tiny-sft.yaml", tmp_path, *settings), callbacks=[CrashAt(7)])
    assert (tmp_path / "checkpoint-5").exists() and not (tmp_path / "checkpoint-10").exists()

    seen = []

    class FirstStep(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            seen.append(state.global_step)

    result = train(recipe("tiny-sft.yaml", tmp_path, *settings, "resume=true"),
                   callbacks=[FirstStep()])
    assert seen[0] == 5  # picked up after checkpoint-5, not from 0
    assert json.loads((tmp_path / "metrics.json").read_text())["global_step"] == 20
    assert result.history


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
