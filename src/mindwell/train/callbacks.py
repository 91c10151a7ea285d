"""Trainer callbacks: every logged number to a CSV as training goes, and token counts."""

from __future__ import annotations

import csv
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState


class MetricsCSVCallback(TrainerCallback):
    """Appends (step, metric, value) rows, so a run's numbers survive an interruption.

    A resumed run repeats the steps after its checkpoint; their rows from the interrupted
    run are removed when training begins again, so no row is written twice. A fresh run in
    the same folder starts a new file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # Set before the evaluation of the best model after training, so its rows do not
        # read as a second evaluation at the last step.
        self.prefix = ""
        self._written: set[tuple[int, str]] = set()

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or not self.path.exists():
            return
        if state.global_step == 0:  # a fresh run: an older run's rows do not belong to it
            self.path.unlink()
            return
        with self.path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        if not rows:
            return
        kept = [rows[0], *(row for row in rows[1:] if row and int(row[0]) <= state.global_step)]
        self._written = {(int(row[0]), row[1]) for row in kept[1:]}
        if len(kept) != len(rows):
            with self.path.open("w", newline="") as handle:
                csv.writer(handle).writerows(kept)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        new = not self.path.exists()
        with self.path.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["step", "metric", "value"])
            for key, value in logs.items():
                metric = self.prefix + key
                # epoch and token counts come with both the training and the evaluation log
                # of a step: one row each.
                if not isinstance(value, (int, float)) or (state.global_step,
                                                          metric) in self._written:
                    continue
                self._written.add((state.global_step, metric))
                writer.writerow([state.global_step, metric, value])


class AnswerTokenCounter(TrainerCallback, ExportableState):
    """How many answer (labelled) tokens the optimizer steps have seen; kept in each
    checkpoint, so a resumed run goes on counting where it stopped. The trainer adds to it
    (``SFTTrainer.training_step``)."""

    def __init__(self, answer_tokens: int = 0) -> None:
        self.answer_tokens = answer_tokens

    def state(self) -> dict:
        return {"args": {}, "attributes": {"answer_tokens": self.answer_tokens}}
