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
                     "lora", "finetune", "perplexity"]
    assert set(result.files) == {"f16", "q8_0"}
    for path in [*result.files.values(), result.lora, result.modelfile]:
        assert path.exists() and path.stat().st_size > 0
    saved = json.loads((result.out_dir / "verify.json").read_text())
    assert saved["ok"] is True
    tokenizer_check = saved["checks"][0]
    assert tokenizer_check["details"]["strings"] >= 200
    assert saved["checks"][5]["details"]["mean_agreement"] >= 0.9  # base + LoRA GGUF
    finetune = saved["checks"][6]
    assert finetune["ok"] and not finetune["warn"], finetune["summary"]
    kept = finetune["details"]["files"]
    assert set(kept) == {"f16", "q8_0", "lora on base"}
    assert finetune["details"]["prompts_that_differ"] >= 3  # 60 steps moved the model
    for name, row in kept.items():  # every file answers like the trained model
        assert row["kept"] > 0.9, (name, row)
        assert row["agreement_with_trained"] > row["agreement_with_base"], (name, row)
    rows = saved["checks"][-1]["details"]["rows"]
    assert {"pytorch", "f16", "q8_0"} <= set(rows)
    assert abs(rows["f16"]["increase_pct"]) < 1.0
    generation = saved["checks"][4]["details"]
    assert generation["mean_agreement"] == 1.0  # the tiny model has no near-ties to flip
    modelfile = result.modelfile.read_text()
    assert "FROM ./tiny-counselor-q8_0.gguf" in modelfile
    assert "ollama create tiny-counselor -f Modelfile" in modelfile  # the registered name
    assert "mindwell-counselor" not in modelfile
    assert 'PARAMETER stop "<end_of_turn>"' in modelfile
    assert "<bos>" not in modelfile
    assert not (result.out_dir / "merged").exists()  # the fp32 intermediate is removed


@pytest.fixture(scope="module")
def lost_in_quantization(tmp_path_factory):
    """The issue's case in small: the base was itself quantized (like the embedded Gemma,
    trained dequantized from Q4_K_M), a short LoRA run moves it less than half a
    quantization step, and re-quantizing to the same type rounds the update away. The base
    here is the tiny Gemma with every weight matrix rounded to the q4_0 grid."""
    import torch
    from gguf import GGMLQuantizationType, quants
    from transformers import AutoModelForCausalLM

    from mindwell.models.tiny import save_tiny_gemma

    try:
        llama_cpp_dir()
    except MindwellError as err:
        pytest.skip(f"llama.cpp's converter is not available: {err.message}")
    base = save_tiny_gemma(tmp_path_factory.mktemp("q4-base"))
    model = AutoModelForCausalLM.from_pretrained(base)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if weight.ndim == 2 and "embed" not in name:
                values = weight.numpy()
                blocks = quants.quantize(values, GGMLQuantizationType.Q4_0)
                weight.copy_(torch.from_numpy(quants.dequantize(
                    blocks, GGMLQuantizationType.Q4_0).reshape(values.shape)))
    model.save_pretrained(base)
    run = tmp_path_factory.mktemp("q4-run")
    train(load_recipe(ROOT / "configs" / "tiny-sft.yaml", [
        f"output_dir={run}", f"model={base}", "max_steps=30", "learning_rate=1e-4",
        "warmup_steps=0", "validation_fraction=0", "eval_steps=1000", "save_steps=1000",
    ]))
    out = tmp_path_factory.mktemp("q4-export")
    return export_run(run, out, ["f16", "q4_0"], name="tiny-q4-lost")


def test_a_quantized_export_that_lost_the_fine_tune_fails_with_the_remedy(
        lost_in_quantization):
    result = lost_in_quantization
    assert result.report is not None and not result.report.ok
    assert [check.name for check in result.report.failed()] == ["finetune"]
    check = next(c for c in result.report.checks if c.name == "finetune")
    rows = check.details["files"]
    assert check.details["prompts_that_differ"] >= 3  # the run did change the model
    assert rows["q4_0"]["kept"] < 0.5, rows
    assert rows["q4_0"]["agreement_with_base"] > rows["q4_0"]["agreement_with_trained"], rows
    assert rows["f16"]["kept"] > 0.8, rows  # f16 keeps the small update
    assert rows["lora on base"]["kept"] > 0.8, rows  # the remedy works: base + LoRA GGUF
    assert check.summary.startswith("LOST: q4_0 keeps")
    for remedy in ("LoRA GGUF on the base", "--quant q8_0", "unquantized base"):
        assert remedy in check.summary
    assert "(it keeps 100% here)" in check.summary  # the LoRA row, measured
    assert "These files keep it: f16, lora on base" in check.summary
    saved = json.loads((result.out_dir / "verify.json").read_text())
    assert saved["ok"] is False


def test_the_finetune_check_fails_warns_or_passes_by_the_share_kept():
    import numpy as np

    from mindwell.export.verify import FileBehaviour, Probe, check_finetune, finetune_kept

    trained_replies, base_replies = [[5, 6, 7, 1]], [[8, 9, 1]]
    probe = Probe(prompts=[[2, 3]], trained=trained_replies, base=base_replies)
    rng = np.random.default_rng(0)
    base = rng.normal(-3.0, 1.0, 400)
    change = rng.normal(0.0, 0.3, 400)  # what the fine-tune did to each token's log-prob
    trained = base + change

    def file(name, share, noise, replies):
        return FileBehaviour(name, base + share * change + rng.normal(0, noise, 400), replies)

    files = [file("f16", 1.0, 0.001, trained_replies),
             file("q6_k", 0.6, 0.05, trained_replies),
             file("q4_k_m", 0.05, 0.2, base_replies)]
    # Noise as large as the fine-tune itself barely moves the projection.
    assert abs(finetune_kept(trained, base, files[2].logprobs) - 0.05) < 0.05
    check = check_finetune(probe, trained, base, files)
    rows = check.details["files"]
    assert rows["f16"]["kept"] == pytest.approx(1.0, abs=0.01)
    assert rows["q6_k"]["kept"] == pytest.approx(0.6, abs=0.05)
    assert rows["q4_k_m"]["kept"] < 0.15
    assert not check.ok and check.summary.startswith("LOST: q4_k_m keeps")
    assert rows["q4_k_m"]["agreement_with_base"] == 1.0
    assert "These files keep it: f16." in check.summary
    # A q8_0 that kept little is not offered as the remedy.
    low_q8 = check_finetune(probe, trained, base, [*files, file("q8_0", 0.6, 0.01,
                                                               trained_replies)])
    assert "--quant q8_0" not in low_q8.summary and "q8_0 keeps only 60% here" in (
        low_q8.summary)
    assert "--quant q8_0" in check.summary
    weak = check_finetune(probe, trained, base, files[:2])
    assert weak.ok and weak.warn and weak.summary.startswith("WEAK: q6_k keeps")
    good = check_finetune(probe, trained, base, files[:1])
    assert good.ok and not good.warn
    # The fine-tune's direction does not matter, only how far a file moved along it.
    flipped = check_finetune(probe, base - change, base, [
        FileBehaviour("f16", base - change, trained_replies)])
    assert flipped.details["files"]["f16"]["kept"] == pytest.approx(1.0)
    tiny = check_finetune(probe, base + 0.001, base, files)
    assert tiny.ok and tiny.warn and "changed too little to measure" in tiny.summary


def test_python_quantization_matches_gguf_py_and_loads_in_llama_cpp(exported, tmp_path):
    import gguf
    import numpy as np

    from mindwell.export.llamacpp_tools import quantize_in_python

    source = exported[1].files["f16"]
    target = quantize_in_python(source, tmp_path / "tiny-q5_0.gguf", "q5_0")
    before = {t.name: t for t in gguf.GGUFReader(str(source)).tensors}
    after = {t.name: t for t in gguf.GGUFReader(str(target)).tensors}
    assert set(before) == set(after)
    kinds = {name: t.tensor_type.name for name, t in after.items()}
    assert kinds["blk.0.attn_q.weight"] == "Q5_0" and kinds["blk.1.ffn_down.weight"] == "Q5_0"
    assert kinds["token_embd.weight"] == "F16"  # kept, as llama-quantize keeps it higher
    assert kinds["blk.0.attn_norm.weight"] == "F32"
    q = after["blk.0.attn_q.weight"]
    values = np.asarray(before["blk.0.attn_q.weight"].data, dtype=np.float32)
    expected = gguf.quants.quantize(values, gguf.GGMLQuantizationType.Q5_0)
    assert np.array_equal(np.asarray(q.data), expected)
    backend = _backend(target)
    try:
        assert backend.greedy_tokens(backend.render([{"role": "user", "content": "hi"}]), 4)[0]
    finally:
        backend.close()


def test_export_prints_progress_lines_when_stdout_is_not_a_terminal(exported, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mindwell", "export", str(exported[0]), "--out",
         str(tmp_path / "out"), "--quant", "f16", "--no-verify", "--no-lora", "--name",
         "tiny-progress"], capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("[export] Merging") for line in lines), result.stdout
    started = [line for line in lines if line.startswith("[export] Converting to f16 GGUF")]
    assert len(started) == 2 and started[1].split(": done in ")[1].endswith(" s"), started
    assert lines.index(started[0]) < lines.index(started[1])  # a line before, one after


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


@pytest.mark.parametrize("architecture", ["gemma3", "llama"])
def test_lora_gguf_updates_are_read_back_in_the_models_layout(architecture, tmp_path):
    """The finetune check adds the LoRA GGUF's own tensors to the base's weights; they must
    equal PEFT's update for every layer, also for Llama, whose q and k rows llama.cpp's
    converter permutes."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    from mindwell.export.llamacpp_tools import convert_lora
    from mindwell.export.verify import lora_gguf_deltas
    from mindwell.models.tiny import save_tiny_gemma

    try:
        llama_cpp_dir()
    except MindwellError as err:
        pytest.skip(f"llama.cpp's converter is not available: {err.message}")
    base = tmp_path / "base"
    if architecture == "gemma3":
        save_tiny_gemma(base)
        model = AutoModelForCausalLM.from_pretrained(base)
    else:
        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(
            vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256))
        model.save_pretrained(base)
    torch.manual_seed(1)
    peft_model = get_peft_model(model, LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "down_proj"],
        init_lora_weights=False))  # random B as well, so every update is non-zero
    peft_model.save_pretrained(tmp_path / "adapter")
    (tmp_path / "adapter" / "adapter_config.json").write_text(
        (tmp_path / "adapter" / "adapter_config.json").read_text().replace(
            '"base_model_name_or_path": null', f'"base_model_name_or_path": "{base}"'))
    lora = convert_lora(tmp_path / "adapter", base, tmp_path / "lora.gguf")
    plain = AutoModelForCausalLM.from_pretrained(base)
    deltas = lora_gguf_deltas(lora, plain)
    expected = {}
    for name, module in peft_model.named_modules():
        if hasattr(module, "get_delta_weight") and "default" in getattr(module, "lora_A", {}):
            key = name.removeprefix("base_model.model.") + ".weight"
            expected[key] = module.get_delta_weight("default").detach()
    assert set(deltas) == set(expected) and len(expected) == 8
    for key, delta in expected.items():
        # The LoRA GGUF stores A and B in f16.
        torch.testing.assert_close(deltas[key], delta, atol=2e-3, rtol=2e-2)
        assert delta.abs().max() > 1e-2
    if architecture == "llama":  # the file's own q rows are permuted: undoing it matters
        import gguf
        import numpy as np

        tensors = {t.name: t for t in gguf.GGUFReader(str(lora)).tensors}
        a, b = (np.asarray(tensors[f"blk.0.attn_q.weight.lora_{x}"].data, dtype=np.float32)
                for x in "ab")
        raw = torch.from_numpy(b @ a * (8 / 4))
        assert not torch.allclose(raw, expected["model.layers.0.self_attn.q_proj.weight"],
                                  atol=2e-3, rtol=2e-2)
