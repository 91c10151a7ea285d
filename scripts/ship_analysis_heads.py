"""Copy the trained analysis heads into the package, where `mindwell analyze` loads them.

    python scripts/ship_analysis_heads.py     # after the three `mindwell train` runs

Each run's ``adapter/head.safetensors`` (a linear layer on the sentence encoder) becomes
``src/mindwell/analysis/heads/<name>.npz`` with its label names: numpy is all that is
needed to use it, and the three together are under 50 KB.
"""

from __future__ import annotations

from pathlib import Path

from mindwell.analysis.analyzer import HEADS_DIR, LinearHead

ROOT = Path(__file__).resolve().parents[1]
RUNS = {"depression": "runs/depression-embedding", "emotion_en": "runs/emotion-en-embedding",
        "emotion_ko": "runs/emotion-ko-embedding"}


def main() -> None:
    HEADS_DIR.mkdir(parents=True, exist_ok=True)
    for name, run in RUNS.items():
        adapter = ROOT / run / "adapter"
        if not (adapter / "head.safetensors").exists():
            raise SystemExit(f"{adapter} has no trained head: run mindwell train for {name}.")
        head = LinearHead.from_run(adapter)
        head.save(HEADS_DIR / f"{name}.npz")
        print(f"{name}: {len(head.labels)} labels -> {HEADS_DIR / (name + '.npz')}")


if __name__ == "__main__":
    main()
