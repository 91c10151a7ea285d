"""Turn a trained crisis-risk run into the head the safety gate ships with.

    mindwell train configs/crisis-risk.yaml
    python scripts/ship_crisis_head.py runs/crisis-risk [--recall 0.95] \
        [--dev-suite tests/safety/redteam.jsonl --dev-suite tests/safety/redteam_holdout.jsonl]

The run's models are copied with float16 weights. ``threshold`` is the highest decision
value that still keeps recall of crisis messages on the run's own validation split (rebuilt
from its saved recipe with the same seed) at ``--recall`` (0.95 by default); then, for each
``--dev-suite``, it is lowered in steps of 0.05 until the whole gate (rules, conversation and
this head) keeps that suite's recall at ``--dev-recall`` (0.99), and one step more as a
margin. Recall comes first, and validation rows are single training-style messages while
the suites are whole conversations through the gate. Suites used here are development
sets; the suites written blind (redteam_fresh, redteam_blind, redteam_blind2) stay out.
``medium_threshold`` keeps validation recall at ``--medium-recall`` and only counts towards
risk accumulating over a conversation.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from mindwell.safety.crisis import SafetyGate
from mindwell.safety.evaluate import evaluate, read_suite
from mindwell.safety.learned import HEAD_PATH, CrisisHead
from mindwell.safety.risk import RiskAssessor
from mindwell.train.classify import load_split
from mindwell.train.recipe import Recipe


def threshold_for_recall(scores: np.ndarray, positive: np.ndarray, recall: float) -> float:
    """The highest score that keeps at least `recall` of the positives at or above it."""
    ranked = np.sort(scores[positive])
    keep = int(np.ceil(recall * len(ranked)))
    return float(ranked[len(ranked) - keep]) if keep else 1.0


def suite_recall(head: CrisisHead, rows: list[dict]) -> float:
    recall = evaluate(rows, gate=SafetyGate(RiskAssessor(head=head))).recall
    if recall is None:
        raise SystemExit("A development suite needs lines with escalate: true.")
    return recall


def lowered_for_suites(head: CrisisHead, suites: list[Path], recall: float,
                       step: float = 0.05) -> CrisisHead:
    """The head with its threshold lowered until every suite keeps ``recall``, plus a step."""
    for path in suites:
        rows = read_suite(path)
        while (reached := suite_recall(head, rows)) < recall:
            if head.threshold - step < head.medium_threshold:
                raise SystemExit(f"{path}: recall {recall} is out of reach above the medium "
                                 "threshold; the model needs work, not a threshold.")
            head = replace(head, threshold=head.threshold - step)
        print(f"{path.name}: recall {reached:.3f} at threshold {head.threshold:.3f}")
    if suites:  # one step more, as a margin, but never below the medium threshold
        head = replace(head, threshold=max(head.threshold - step, head.medium_threshold))
    return head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--recall", type=float, default=0.95)
    parser.add_argument("--medium-recall", type=float, default=0.995)
    parser.add_argument("--dev-suite", type=Path, action="append", default=[])
    parser.add_argument("--dev-recall", type=float, default=0.99)
    parser.add_argument("--out", type=Path, default=HEAD_PATH)
    args = parser.parse_args()

    trained = CrisisHead.from_run(args.run_dir / "adapter" / "svm.npz")
    recipe = Recipe(**yaml.safe_load((args.run_dir / "recipe.yaml").read_text()))
    _, _, eval_texts, eval_ids, names, _ = load_split(recipe)
    if not eval_texts:
        raise SystemExit("The run has no validation split to choose thresholds on.")
    crisis = names.index("1")
    positive = np.array(eval_ids) == crisis
    scores = trained.scores(eval_texts)
    threshold = threshold_for_recall(scores, positive, args.recall)
    medium = min(threshold, threshold_for_recall(scores, positive, args.medium_recall))
    shipped = replace(trained, threshold=threshold, medium_threshold=medium)
    shipped = lowered_for_suites(shipped, args.dev_suite, args.dev_recall)
    shipped.save(args.out)
    saved = CrisisHead.load(args.out)  # float16 on disk: check what ships, not what was built
    for path in args.dev_suite:
        print(f"{path.name} with the saved head: recall "
              f"{suite_recall(saved, read_suite(path)):.3f}")
    flagged = scores >= shipped.threshold
    print(f"validation: {positive.sum()} crisis / {(~positive).sum()} not; threshold "
          f"{shipped.threshold:.3f} (validation rule: {threshold:.3f}) -> recall "
          f"{flagged[positive].mean():.3f}, false alarms {flagged[~positive].mean():.3f}; "
          f"medium threshold {medium:.3f}; wrote {args.out}")


if __name__ == "__main__":
    main()
