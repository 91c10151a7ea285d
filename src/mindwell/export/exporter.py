"""`mindwell export`: a training run to GGUF files, a LoRA GGUF and an Ollama Modelfile, verified.

Steps: merge the adapter and write a converter-ready checkpoint (prepare.py); convert to f16
(and q8_0) with llama.cpp's converter; stamp the chat template and end-of-turn token; make
k-quants with llama-quantize; convert the adapter alone for llama.cpp's ``--lora``; write the
Modelfile; run the round-trip checks (verify.py), including whether every file still carries
the fine-tune compared with the untuned base, and write ``verify.json``. A classifier run
exports its merged weights for the analysis code instead.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from mindwell.chat.prompts import COUNSELOR_SYSTEM_PROMPT
from mindwell.errors import MindwellError
from mindwell.export import llamacpp_tools as tools
from mindwell.export.gguf_files import build_modelfile, stamp
from mindwell.export.prepare import PreparedRun, prepare_run
from mindwell.export.progress import step
from mindwell.export.verify import (
    FINETUNE_TOKENS,
    HELDOUT_TEXT,
    Check,
    FileBehaviour,
    Probe,
    VerifyReport,
    check_bos,
    check_chat_template,
    check_finetune,
    check_generation,
    check_perplexity,
    check_stop_tokens,
    check_tokenizer,
    greedy_replies,
    load_gguf_weights,
    load_lora_on_base,
    perplexity,
    reply_logprobs,
)

DEFAULT_QUANTS = ["f16", "q8_0", "q4_k_m"]


@dataclass
class ExportResult:
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)  # quant type -> GGUF
    lora: Path | None = None
    modelfile: Path | None = None
    report: VerifyReport | None = None
    seconds: float = 0.0


def _check_disk(out_dir: Path, parameters: int, quants: list[str]) -> None:
    bytes_per = {"f32": 4, "f16": 2, "bf16": 2, "q8_0": 1.07}
    # merged fp32 + f16 reference + each type + a temporary f16 base for the LoRA check
    need = parameters * (4 + 2 + 2 + sum(bytes_per.get(q, 0.7) for q in quants)) * 1.1
    free = shutil.disk_usage(out_dir).free
    if free < need:
        raise MindwellError(
            f"Not enough disk space in {out_dir}: the export needs about {need / 1e9:.1f} GB "
            f"(merged weights, f16 and {', '.join(quants)}), {free / 1e9:.1f} GB is free.",
            "Free some space, export fewer types (--quant q4_k_m) or choose another --out.",
        )


def _parameter_count(merged_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    for path in merged_dir.glob("*.safetensors"):
        with safe_open(str(path), "np") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                total += math.prod(handle.get_slice(key).get_shape())
    return total


def export_run(run_dir: Path, out_dir: Path, quants: list[str] | None = None,
               verify: bool = True, lora: bool = True, name: str | None = None,
               max_tokens: int = 256) -> ExportResult:
    started = time.time()
    quants = tools.check_types(quants or DEFAULT_QUANTS)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with step(f"Merging {Path(run_dir).name} into its base and writing a checkpoint"):
        prepared = prepare_run(Path(run_dir), out_dir)
    if prepared.task == "classify":
        return export_classifier(prepared, out_dir, started)
    name = name or prepared.name
    _check_disk(out_dir, _parameter_count(prepared.merged_dir), quants)
    tools.llama_cpp_dir()  # fetch once, before the long steps

    result = ExportResult(out_dir)
    f16 = out_dir / f"{name}-f16.gguf"
    tools.convert_checkpoint(prepared.merged_dir, f16, "f16")
    tokenizer = prepared.tokenizer
    stop_id = tokenizer.convert_tokens_to_ids(prepared.template.stop[0])
    stamp(f16, prepared.template, stop_id, name)
    result.files["f16"] = f16  # the reference for verification; kept only when asked for
    for qtype in quants:
        if qtype == "f16":
            continue
        target = out_dir / f"{name}-{qtype}.gguf"
        if qtype in tools.CONVERTER_TYPES:
            tools.convert_checkpoint(prepared.merged_dir, target, qtype)
            stamp(target, prepared.template, stop_id, name)
        else:
            tools.quantize(f16, target, qtype)  # metadata is copied from the stamped f16
        result.files[qtype] = target
    if lora and prepared.adapter_dir is not None and prepared.base_dir is not None:
        result.lora = tools.convert_lora(prepared.adapter_dir, prepared.base_dir,
                                         out_dir / f"{name}-lora-f16.gguf")

    chat_file = result.files[_smallest(quants)]
    modelfile = build_modelfile(chat_file.name, prepared.template, COUNSELOR_SYSTEM_PROMPT,
                                name=name)
    result.modelfile = out_dir / "Modelfile"
    result.modelfile.write_text(modelfile.text)

    if verify:
        result.report = verify_files(prepared, tokenizer, result.files, modelfile, max_tokens,
                                     lora=result.lora, work_dir=out_dir)
        (out_dir / "verify.json").write_text(json.dumps(result.report.to_dict(), indent=2,
                                                        ensure_ascii=False))
    if "f16" not in quants:
        f16.unlink(missing_ok=True)
        result.files.pop("f16")
    shutil.rmtree(prepared.merged_dir, ignore_errors=True)
    _register(name, chat_file)
    result.seconds = time.time() - started
    return result


def _smallest(quants: list[str]) -> str:
    order = ["q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_0", "q4_k_s", "q4_k_m", "q4_1",
             "q5_0", "q5_k_s", "q5_k_m", "q5_1", "q6_k", "q8_0", "f16", "bf16", "f32"]
    return min(quants, key=order.index)


def verify_files(prepared: PreparedRun, tokenizer, files: dict[str, Path], modelfile,
                 max_tokens: int = 256, lora: Path | None = None,
                 work_dir: Path | None = None) -> VerifyReport:
    """Every round-trip check against the f16 file; the LoRA GGUF on its base against the
    merged file; whether each file (and the LoRA on its base) kept the fine-tune, against
    the trained model and the untuned base; perplexity over every file."""
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM

    from mindwell.inference.llamacpp import LlamaCppBackend

    with step("Loading the trained model in PyTorch"):
        model = AutoModelForCausalLM.from_pretrained(
            str(prepared.merged_dir), dtype=torch.float32, attn_implementation="eager"
        ).eval()
    with step(f"Checking {files['f16'].name} against it: tokenizer, chat template, BOS, stop "
              "tokens, greedy replies"):
        backend = LlamaCppBackend(files["f16"], template=prepared.template, n_ctx=2048,
                                  jinja=True, cache_prompt=False)
        try:
            checks = [
                check_tokenizer(backend, tokenizer),
                check_chat_template(backend, tokenizer, prepared.template),
                check_bos(backend, tokenizer, modelfile.template),
                check_stop_tokens(files["f16"], tokenizer, prepared.template, modelfile.stops),
                check_generation(backend, model, tokenizer, prepared.template, max_tokens),
            ]
        finally:
            backend.close()
    with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
        base_gguf = None
        if lora is not None:
            base_gguf = base_gguf_for_lora(prepared, Path(scratch))
            with step(f"Checking {lora.name} on {base_gguf.name} against the merged file"):
                checks.append(verify_lora(prepared, files["f16"], lora, base_gguf))
        finetune, measured = measure_files(prepared, model, tokenizer, files, lora, base_gguf)
    checks.append(finetune)
    with step("Held-out perplexity of every file"):
        checks.append(check_perplexity(model, tokenizer, measured=measured))
    return VerifyReport(checks)


def load_base_model(prepared: PreparedRun):
    """The untuned base in PyTorch (fp32), or None with the reason when it cannot be had."""
    import torch
    from transformers import AutoModelForCausalLM

    from mindwell.export.prepare import run_base

    location = str(prepared.base_dir) if prepared.base_dir is not None else run_base(
        prepared.run_dir)
    if location is None:
        return None, "the run does not name its base model"
    try:
        model = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32,
                                                     attn_implementation="eager")
    except (OSError, ValueError) as err:
        return None, f"the base {location} could not be loaded ({str(err)[:200]})"
    return model.eval(), ""


def llama_replies(path: Path, template, lora: Path | None = None) -> list[list[int]]:
    """llama.cpp's greedy replies (token ids) to the generation prompts."""
    from mindwell.export.samples import GENERATION_PROMPTS
    from mindwell.inference.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(path, template=template, n_ctx=1024, cache_prompt=False,
                              lora=lora)
    try:
        return [backend.greedy_tokens(backend.render([{"role": "user", "content": prompt}]),
                                      FINETUNE_TOKENS)[0] for prompt in GENERATION_PROMPTS]
    finally:
        backend.close()


def measure_files(prepared: PreparedRun, model, tokenizer, files: dict[str, Path],
                  lora: Path | None, base_gguf: Path | None) -> tuple[Check, dict[str, float]]:
    """(the finetune check, held-out perplexity per file): each file is loaded once, with
    its weights exactly as stored, and scored on the trained model's and the base's replies;
    llama.cpp gives its own greedy replies."""
    with step("Greedy replies of the trained model and of the untuned base"):
        prompts, trained = greedy_replies(model, tokenizer, prepared.template)
        base_model, why = load_base_model(prepared)
        probe = base_logprobs = trained_logprobs = None
        if base_model is not None:
            probe = Probe(prompts, trained,
                          greedy_replies(base_model, tokenizer, prepared.template)[1])
            base_logprobs = reply_logprobs(base_model, probe)
            trained_logprobs = reply_logprobs(model, probe)
            del base_model
    measured, behaviours = {}, []
    targets = [(qtype, path, None) for qtype, path in files.items()]
    if lora is not None and base_gguf is not None:
        targets.append(("lora on base", base_gguf, lora))
    for name, path, adapter in targets:
        shown = f"{adapter.name} on {path.name}" if adapter else path.name
        with step(f"Scoring {shown} against the trained model and the base"):
            weights = (load_lora_on_base(path, adapter, model.config) if adapter else
                       load_gguf_weights(path, model.config))
            if adapter is None:
                measured[name] = perplexity(weights, tokenizer, HELDOUT_TEXT)
            logprobs = reply_logprobs(weights, probe) if probe else None
            del weights
            behaviours.append(FileBehaviour(name, logprobs,
                                            llama_replies(path, prepared.template, adapter)))
    if probe is None:
        return Check("finetune", True, f"not checked: {why}, so nothing to compare the files "
                     "with", {}, warn=True), measured
    return check_finetune(probe, trained_logprobs, base_logprobs, behaviours), measured


def base_gguf_for_lora(prepared: PreparedRun, scratch: Path) -> Path:
    """The base GGUF the LoRA GGUF is applied to: the base's own file when it ships as a
    GGUF (what a user runs with --lora), else an f16 conversion of its checkpoint."""
    from mindwell.export.prepare import write_sentencepiece_files

    if prepared.base is not None and prepared.base.format == "gguf" and prepared.base.path:
        return Path(prepared.base.path)
    base_copy = scratch / "base"
    base_copy.mkdir()
    for item in Path(prepared.base_dir).iterdir():
        (base_copy / item.name).symlink_to(item.resolve())
    if not (base_copy / "tokenizer.model").exists():
        write_sentencepiece_files(base_copy, [], prepared.base)
    return tools.convert_checkpoint(base_copy, scratch / "base-f16.gguf", "f16")


def verify_lora(prepared: PreparedRun, merged_f16: Path, lora: Path, base_gguf: Path):
    """Base + LoRA GGUF decodes like the merged f16 file (llama.cpp both)."""
    from mindwell.export.verify import check_lora
    from mindwell.inference.llamacpp import LlamaCppBackend

    merged = LlamaCppBackend(merged_f16, template=prepared.template, n_ctx=1024,
                             cache_prompt=False)
    adapted = LlamaCppBackend(base_gguf, template=prepared.template, n_ctx=1024,
                              cache_prompt=False, lora=lora)
    try:
        return check_lora(merged, adapted)
    finally:
        merged.close()
        adapted.close()


def _register(name: str, path: Path) -> None:
    from mindwell.models.registry import register_export

    register_export(name, path)


# --- classifiers ------------------------------------------------------------------------
def export_classifier(prepared: PreparedRun, out_dir: Path, started: float) -> ExportResult:
    """Merged weights for a LoRA classifier; the numpy head for an embedding-head run."""
    from mindwell.analysis.evaluate import export_classifier_files

    files = export_classifier_files(prepared.run_dir, out_dir / "classifier")
    result = ExportResult(out_dir, files=files)
    result.seconds = time.time() - started
    return result
