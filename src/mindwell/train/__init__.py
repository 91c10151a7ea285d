"""Fine-tuning: `load_recipe(...)` then `train(recipe)`; see `mindwell train --help`."""

from mindwell.train.recipe import Recipe, load_recipe
from mindwell.train.runner import TrainResult, train

__all__ = ["Recipe", "TrainResult", "load_recipe", "train"]
