"""Trainer callbacks: every logged number to a CSV as training goes."""

from __future__ import annotations

import csv
from pathlib import Path

from transformers import TrainerCallback


class MetricsCSVCallback(TrainerCallback):
    """Appends (step, metric, value) rows, so a run's numbers survive an interruption."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        new = not self.path.exists()
        with self.path.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["step", "metric", "value"])
            for key, value in logs.items():
                if isinstance(value, (int, float)):
                    writer.writerow([state.global_step, key, value])
