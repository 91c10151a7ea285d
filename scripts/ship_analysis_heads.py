"""Copy the trained analysis heads into the package, where `mindwell analyze` loads them.

    python scripts/ship_analysis_heads.py     # after the three `mindwell train` runs

Each run's ``adapter/head.safetensors`` (a linear layer on the sentence encoder) becomes
``src/mindwell/analysis/heads/<name>.npz`` with its label names: numpy is all that is
needed to use it, and the three together are under 50 KB.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parents[1]
RUNS = {"depression": "runs/depression-embedding", "emotion_en": "runs/emotion-en-embedding",
        "emotion_ko": "runs/emotion-ko-embedding"}


def main() -> None:
    out_dir = ROOT / "src" / "mindwell" / "analysis" / "heads"
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, run in RUNS.items():
        adapter = ROOT / run / "adapter"
        if not (adapter / "head.safetensors").exists():
            raise SystemExit(f"{adapter} has no trained head: run mindwell train for {name}.")
        saved = load_file(str(adapter / "head.safetensors"))
        labels = json.loads((adapter / "head_config.json").read_text())["labels"]
        np.savez(out_dir / f"{name}.npz", weight=saved["weight"].astype(np.float32),
                 bias=saved["bias"].astype(np.float32), labels=np.array(labels))
        print(f"{name}: {len(labels)} labels -> {out_dir / (name + '.npz')}")


if __name__ == "__main__":
    main()
