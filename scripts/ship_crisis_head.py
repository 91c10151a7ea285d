"""Turn a trained crisis-risk run into the head the safety gate ships with.

    mindwell train configs/crisis-risk.yaml
    python scripts/ship_crisis_head.py runs/crisis-risk [--recall 0.95]

The run's support-vector machine is copied with float16 support vectors. Thresholds are
chosen on the run's own validation split (rebuilt from its saved recipe with the same
seed), never on the red-team suites: ``threshold`` is the highest decision value that still
keeps validation recall of crisis messages at ``--recall`` (0.95 by default);
``medium_threshold`` keeps it at ``--medium-recall`` and only counts towards risk
accumulating over a conversation.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from mindwell.safety.learned import HEAD_PATH, CrisisHead
from mindwell.train.classify import load_split
from mindwell.train.recipe import Recipe


def threshold_for_recall(scores: np.ndarray, positive: np.ndarray, recall: float) -> float:
    """The highest score that keeps at least `recall` of the positives at or above it."""
    ranked = np.sort(scores[positive])
    keep = int(np.ceil(recall * len(ranked)))
    return float(ranked[len(ranked) - keep]) if keep else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--recall", type=float, default=0.95)
    parser.add_argument("--medium-recall", type=float, default=0.995)
    parser.add_argument("--out", type=Path, default=HEAD_PATH)
    args = parser.parse_args()

    trained = CrisisHead.from_run(args.run_dir / "adapter" / "svm.npz")
    recipe = Recipe(**yaml.safe_load((args.run_dir / "recipe.yaml").read_text()))
    _, _, eval_texts, eval_ids, names = load_split(recipe)
    if not eval_texts:
        raise SystemExit("The run has no validation split to choose thresholds on.")
    crisis = names.index("1")
    positive = np.array(eval_ids) == crisis
    scores = trained.scores(eval_texts)
    threshold = threshold_for_recall(scores, positive, args.recall)
    medium = min(threshold, threshold_for_recall(scores, positive, args.medium_recall))
    shipped = replace(trained, threshold=threshold, medium_threshold=medium)
    shipped.save(args.out)
    flagged = scores >= threshold
    print(f"validation: {positive.sum()} crisis / {(~positive).sum()} not; threshold "
          f"{threshold:.3f} -> recall {flagged[positive].mean():.3f}, false alarms "
          f"{flagged[~positive].mean():.3f}; medium threshold {medium:.3f}; wrote {args.out}")


if __name__ == "__main__":
    main()
