"""mindwell export on the tiny model: GGUF files, Modelfile, round-trip checks, planted faults.

The tiny Gemma is trained for a few seconds, exported to f16 and q8_0 with llama.cpp's own
converter, reloaded through llama.cpp, and verified. Then each known fault (no template, a
wrong stop token, a doubled or missing BOS) is planted into a copy of the GGUF and the
matching check must fail.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mindwell.errors import MindwellError
from mindwell.export.exporter import export_run
from mindwell.export.gguf_files import rewrite_metadata
from mindwell.export.llamacpp_tools import check_types, llama_cpp_dir
from mindwell.export.samples import tokenizer_sample
from mindwell.export.verify import check_bos, check_chat_template, check_stop_tokens
from mindwell.inference.llamacpp import LlamaCppBackend
from mindwell.inference.templates import GEMMA, GEMMA_TEMPLATE
from mindwell.train import load_recipe, train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    try:
        llama_cpp_dir()
    except MindwellError as err:  # no package index reachable: nothing to convert with
        pytest.skip(f"llama.cpp's converter is not available: {err.message}")
    run = tmp_path_factory.mktemp("tiny-run")
    train(load_recipe(ROOT / "configs" / "tiny-sft.yaml", [
        f"output_dir={run}", "max_steps=60", "learning_rate=2e-2", "validation_fraction=0",
        "eval_steps=1000", "save_steps=1000", f"data={ROOT / 'configs/data/tiny-chat.jsonl'}",
    ]))
    out = tmp_path_factory.mktemp("tiny-export")
    return run, export_run(run, out, ["f16", "q8_0"], name="tiny-counselor")


@pytest.fixture(scope="module")
def tokenizer(exported):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(exported[0] / "adapter"))


def test_tiny_export_writes_every_file_and_passes_every_check(exported):
    _, result = exported
    assert result.report is not None
    assert result.report.ok, [c.summary for c in result.report.failed()]
    names = [check.name for check in result.report.checks]
    assert names == ["tokenizer", "chat_template", "bos", "stop_tokens", "generation",
                     "lora", "perplexity"]
    assert set(result.files) == {"f16", "q8_0"}
    for path in [*result.files.values(), result.lora, result.modelfile]:
        assert path.exists() and path.stat().st_size > 0
    saved = json.loads((result.out_dir / "verify.json").read_text())
    assert saved["ok"] is True
    tokenizer_check = saved["checks"][0]
    assert tokenizer_check["details"]["strings"] >= 200
    assert saved["checks"][5]["details"]["mean_agreement"] >= 0.9  # base + LoRA GGUF
    rows = saved["checks"][-1]["details"]["rows"]
    assert {"pytorch", "f16", "q8_0"} <= set(rows)
    assert abs(rows["f16"]["increase_pct"]) < 1.0
    generation = saved["checks"][4]["details"]
    assert generation["mean_agreement"] == 1.0  # the tiny model has no near-ties to flip
    modelfile = result.modelfile.read_text()
    assert "FROM ./tiny-counselor-q8_0.gguf" in modelfile
    assert 'PARAMETER stop "<end_of_turn>"' in modelfile
    assert "<bos>" not in modelfile
    assert not (result.out_dir / "merged").exists()  # the fp32 intermediate is removed


def test_the_export_is_usable_by_name(exported):
    from mindwell.inference import load_backend

    backend = load_backend("tiny-counselor", n_ctx=512, threads=1)
    try:
        assert backend.model_path.name == "tiny-counselor-q8_0.gguf"
        reply = backend.generate([{"role": "user", "content": "I feel lonely."}],
                                 stream=False, max_tokens=4, temperature=0)
        assert isinstance(reply, str)
    finally:
        backend.close()


def _backend(path: Path) -> LlamaCppBackend:
    return LlamaCppBackend(path, template=GEMMA, n_ctx=512, threads=1, jinja=True,
                           cache_prompt=False)


def test_a_gguf_without_chat_template_fails_the_template_check(exported, tokenizer, tmp_path):
    planted = rewrite_metadata(exported[1].files["f16"], {},
                               remove=("tokenizer.chat_template",),
                               target=tmp_path / "no-template.gguf")
    backend = _backend(planted)
    try:
        check = check_chat_template(backend, tokenizer, GEMMA)
    finally:
        backend.close()
    assert not check.ok
    assert "format differently" in check.summary


def test_a_wrong_stop_token_fails_the_stop_check(exported, tokenizer, tmp_path):
    normal_id = tokenizer("a", add_special_tokens=False)["input_ids"][0]
    planted = rewrite_metadata(exported[1].files["f16"],
                               {"tokenizer.ggml.eot_token_id": normal_id,
                                "tokenizer.ggml.eos_token_id": normal_id},
                               target=tmp_path / "wrong-stop.gguf")
    check = check_stop_tokens(planted, tokenizer, GEMMA, ["<end_of_turn>"])
    assert not check.ok
    assert "'<end_of_turn>'" in check.summary and "declares" in check.summary
    good = check_stop_tokens(exported[1].files["f16"], tokenizer, GEMMA, ["<eos>"])
    assert not good.ok and "Modelfile" in good.summary


@pytest.mark.parametrize("fault, updates", [
    ("doubled", {"tokenizer.chat_template": "{{ bos_token }}" + GEMMA_TEMPLATE}),
    ("missing", {"tokenizer.ggml.add_bos_token": False}),
])
def test_a_doubled_or_missing_bos_fails_the_bos_check(exported, tokenizer, tmp_path, fault,
                                                      updates):
    planted = rewrite_metadata(exported[1].files["f16"], updates,
                               target=tmp_path / f"{fault}-bos.gguf")
    backend = _backend(planted)
    try:
        check = check_bos(backend, tokenizer, "")
    finally:
        backend.close()
    assert not check.ok
    assert ("starts with 2 BOS" if fault == "doubled" else "starts with 0 BOS") in check.summary
    assert not check_bos(_backend(exported[1].files["f16"]), tokenizer, "<bos>hi").ok


def test_tokenizer_sample_is_wide():
    sample = tokenizer_sample()
    assert len(sample) >= 200
    assert any("한국어" in s for s in sample) and any("🙂" in s for s in sample)
    assert any(s.startswith("\t") for s in sample) and any("def " in s for s in sample)


def test_unknown_quantization_is_named():
    with pytest.raises(MindwellError, match="q4_k_x"):
        check_types(["f16", "q4_k_x"])
    assert check_types(["F16", " q4_K_M"]) == ["f16", "q4_k_m"]


def test_a_directory_without_a_model_is_a_clear_cli_error(tmp_path):
    (tmp_path / "empty-run").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "mindwell", "export", str(tmp_path / "empty-run"), "--out",
         str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "holds no trained model" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_adapter_whose_base_is_missing_is_a_clear_error(tmp_path):
    adapter = tmp_path / "run" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": str(tmp_path / "gone")}))
    with pytest.raises(MindwellError, match="gone"):
        export_run(tmp_path / "run", tmp_path / "out", ["f16"])


def test_a_lora_classifier_exports_merged_and_predicts_like_the_run(tmp_path):
    import numpy as np

    from mindwell.analysis.evaluate import load_classifier

    run = tmp_path / "classify-run"
    train(load_recipe(ROOT / "configs" / "tiny-classify.yaml",
                      [f"output_dir={run}", "max_steps=5", "eval_steps=1000",
                       "save_steps=1000"]))
    result = export_run(run, tmp_path / "out")
    exported_dir = result.files["classifier"]
    assert (exported_dir / "mindwell_classifier.json").exists()
    assert not (exported_dir / "adapter_config.json").exists()  # merged: no PEFT needed
    texts = ["I feel hopeless", "What a lovely day", "요즘 너무 힘들어요"]
    before, after = load_classifier(str(run)), load_classifier(str(exported_dir))
    assert before.labels == after.labels
    np.testing.assert_allclose(before.predict_proba(texts), after.predict_proba(texts), atol=1e-4)
