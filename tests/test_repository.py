"""Checks on the repository itself: lint, and the README command CI runs."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    if shutil.which("ruff") is None:
        pytest.skip("ruff is not installed")
    result = subprocess.run(["ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = readme.split("<!-- test-command -->", 1)[1].split("```bash\n", 1)[1].split("\n")[0]
    assert "pytest" in command
    assert "test-command" in (ROOT / ".ci" / "run").read_text()


def test_no_shared_data_is_committed():
    result = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip("not a git checkout")
    tracked = result.stdout.splitlines()
    # Only the project's own tiny examples (configs/data) may be data files, and the
    # trained deltas that ship inside the package (the counselor's LoRA GGUF).
    data_files = [path for path in tracked if path.endswith((".csv", ".tsv", ".parquet",
                                                             ".gguf", ".json"))]
    shipped = ("configs/data/", "src/mindwell/models/counselor/", "docs/eval/")
    assert all(path.startswith(shipped) for path in data_files), data_files
