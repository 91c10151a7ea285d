"""llama.cpp backend through xllamacpp, the default on CPU.

xllamacpp ships prebuilt wheels (llama-cpp-python compiles for about 7 minutes here) and
decodes as fast; docs/llamacpp-bindings.md has the measurements. It
embeds llama.cpp's own server: requests go in as dicts, streamed pieces come back through a
callback, and returning True from the callback cancels generation. The server keeps the KV
cache of the previous prompt (``cache_prompt``), so a growing conversation only processes
its new tokens each turn.

xllamacpp also opens llama.cpp's HTTP port on 127.0.0.1. mindwell never uses it for
generation but locks it with a random API key so no other local process can drive the model.
"""

from __future__ import annotations

import os
import queue
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from mindwell.errors import MindwellError
from mindwell.inference.base import Backend, Message, SamplingParams
from mindwell.inference.templates import ChatTemplate, gguf_metadata, template_for_gguf
from mindwell.models.registry import check_gguf

_DONE = object()


def default_threads() -> int:
    """Threads for decoding one token at a time.

    The embedded models are so small that thread synchronisation dominates each token: on
    the 2-core CI machine 1 thread decoded 95 tokens/s and 2 threads 50-64
    (docs/benchmarks.md). Half the logical cores (roughly the physical ones) is the default.
    """
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def default_batch_threads() -> int:
    """Threads for processing a prompt, which parallelises well: every logical core."""
    return max(1, min(16, os.cpu_count() or 1))


class LlamaCppBackend(Backend):
    name = "llamacpp"

    def __init__(
        self,
        model_path: Path,
        template: ChatTemplate | str | None = None,
        n_ctx: int = 4096,
        threads: int | None = None,
        batch_threads: int | None = None,
        cache_prompt: bool = True,
        jinja: bool = False,
        lora: Path | None = None,
    ) -> None:
        super().__init__()
        import xllamacpp

        check_gguf(model_path)
        self.model_path = Path(model_path)
        self.template = (
            template
            if isinstance(template, ChatTemplate)
            else template_for_gguf(self.model_path, template)
        )
        meta = gguf_metadata(self.model_path)
        trained_ctx = int(meta["context_length"] or n_ctx)
        self.context_length = min(n_ctx, trained_ctx)
        self.cache_prompt = cache_prompt
        self._api_key = secrets.token_urlsafe(24)

        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.n_ctx = self.context_length
        params.n_parallel = 1  # one conversation: one slot whose cache is always ours
        params.cpuparams.n_threads = threads or default_threads()
        params.cpuparams_batch.n_threads = batch_threads or default_batch_threads()
        params.verbosity = -1
        params.api_keys = [self._api_key]
        # Gemma 3 uses sliding-window attention; without a full-size SWA cache llama.cpp
        # cannot reuse a cached prefix and re-processes the whole prompt every turn.
        params.swa_full = True
        # The GGUF's own Jinja template, for checking exported files (mindwell renders
        # prompts itself for chat).
        params.use_jinja = jinja
        if lora is not None:  # a LoRA GGUF applied on top of this (base) model
            params.lora_adapters = [xllamacpp.CommonAdapterLoraInfo(str(lora), 1.0)]
        try:
            self._server = xllamacpp.Server(params)
        except Exception as err:  # the binding raises bare RuntimeErrors on load failure
            raise MindwellError(
                f"llama.cpp could not load {self.model_path}: {err}",
                "The file may be corrupt or from an architecture this llama.cpp build does not "
                "know. Run `mindwell models verify` for embedded models, or re-export it.",
            ) from err
        self._address = self._server.listening_address
        self._wait_until_serving()

    def _wait_until_serving(self, timeout: float = 60.0) -> None:
        """Return once llama.cpp's server loop answers.

        The binding starts that loop on its own thread; destroying the server before the
        loop runs deadlocks the destructor (seen as `chat --once` hanging after a crisis
        reply, which never needs the model), so a backend is only handed out once it serves.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self._address}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise MindwellError(
                    f"llama.cpp loaded {self.model_path} but its server did not start.",
                    "Try again; if it keeps happening, run `mindwell models verify`.",
                )
            time.sleep(0.02)

    # -- generation -------------------------------------------------------------------
    def request(self, prompt: str, params: SamplingParams, stream: bool = True) -> dict:
        """The llama.cpp completion request for a raw prompt (benchmarks reuse it)."""
        body = {
            "prompt": prompt,
            "n_predict": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "top_k": params.top_k,
            "repeat_penalty": params.repeat_penalty,
            "stop": self.template.stop_strings,
            "cache_prompt": self.cache_prompt,
            "stream": stream,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        return body

    def render(self, messages: list[Message]) -> str:
        # llama.cpp adds the BOS token itself when the model wants one.
        return self.template.render(messages, add_generation_prompt=True, with_bos=False)

    def _stream(self, messages: list[Message], params: SamplingParams) -> Iterator[str]:
        return self.stream_prompt(self.render(messages), params)

    def stream_prompt(self, prompt: str, params: SamplingParams) -> Iterator[str]:
        pieces: queue.Queue = queue.Queue()
        cancelled = threading.Event()
        final: dict = {}

        errors: list = []

        def on_chunk(chunk) -> bool:
            if "error" in chunk:
                errors.append(chunk["error"])
                return True
            choice = chunk["choices"][0]
            if choice.get("text"):
                pieces.put(choice["text"])
            if choice.get("finish_reason"):
                final.update(chunk, finish_reason=choice["finish_reason"])
            return cancelled.is_set()

        def run() -> None:
            try:
                result = self._server.handle_completions(
                    self.request(prompt, params), on_chunk
                )
                if isinstance(result, dict) and "error" in result:
                    errors.append(result["error"])
            except Exception as err:  # surfaced to the consumer below
                errors.append(err)
            finally:
                pieces.put(_DONE)

        worker = threading.Thread(target=run, name="llamacpp-generate", daemon=True)
        worker.start()
        try:
            while (piece := pieces.get()) is not _DONE:
                yield piece
        finally:
            # A consumer that stops early (Ctrl-C, a closed HTTP stream) cancels generation
            # so the slot is free for the next turn.
            cancelled.set()
            worker.join()
        if errors:
            raise MindwellError(f"llama.cpp failed to generate: {errors[0]}")
        self._record(final)

    def _record(self, final: dict) -> None:
        usage = final.get("usage", {})
        timings = final.get("timings", {})
        stats = self.last_stats
        stats.prompt_tokens = usage.get("prompt_tokens", 0)
        stats.cached_tokens = timings.get("cache_n", 0)
        stats.completion_tokens = usage.get("completion_tokens", 0)
        stats.finish_reason = final.get("finish_reason")
        stats.extra = {"timings": timings}

    # -- tokens -----------------------------------------------------------------------
    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        body = {"content": text, "add_special": add_special, "parse_special": True}
        return self._post("/tokenize", body)["tokens"]

    def _post(self, route: str, body: dict) -> dict:
        response = httpx.post(
            f"{self._address}{route}", json=body,
            headers={"Authorization": f"Bearer {self._api_key}"}, timeout=60,
        )
        response.raise_for_status()
        return response.json()

    def apply_gguf_template(self, messages: list[Message]) -> str:
        """The prompt llama.cpp itself builds from the GGUF's chat template (needs jinja=True)."""
        return self._post("/apply-template", {"messages": messages})["prompt"]

    def greedy_tokens(self, prompt: str, max_tokens: int) -> tuple[list[int], str]:
        """(generated token ids, how it ended) for greedy decoding with no stop strings, so
        only the GGUF's own end-of-generation tokens end the reply ("eos"); the final
        end-of-generation token is included, as transformers includes it."""
        body = {
            "prompt": prompt, "n_predict": max_tokens, "temperature": 0.0, "top_k": 1,
            "repeat_penalty": 1.0, "stop": [], "cache_prompt": False, "stream": False,
            "return_tokens": True,
        }
        # The native /completion route returns the exact token ids (the OpenAI-style
        # logprobs merge byte tokens that do not form whole characters).
        result = self._post("/completion", body)
        return list(result["tokens"]), str(result.get("stop_type") or "")

    def count_tokens(self, messages: list[Message]) -> int:
        return len(self.tokenize(self.render(messages)))

    def close(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            self._server = None
            del server  # the binding stops llama.cpp's loop in its destructor
