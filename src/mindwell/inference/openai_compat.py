"""Any OpenAI-compatible server (llama.cpp server, vLLM, Ollama) by URL.

The server applies its own chat template, so messages go over as they are. Streaming uses
server-sent events, one ``data: {json}`` line per piece, ending with ``data: [DONE]``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx

from mindwell.errors import MindwellError
from mindwell.inference.base import Backend, Message, SamplingParams


def _chat_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if not base.endswith("/v1"):
        base += "/v1"
    return base + "/chat/completions"


class OpenAICompatBackend(Backend):
    name = "openai"

    def __init__(
        self,
        url: str,
        model: str | None = None,
        api_key: str | None = None,
        context_length: int = 4096,
        timeout: float = 600.0,
    ) -> None:
        super().__init__()
        self.url = _chat_url(url)
        self.model = model or "default"
        self.context_length = context_length
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=timeout)

    def _body(self, messages: list[Message], params: SamplingParams) -> dict:
        body = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            # Not in OpenAI's schema but honoured by llama.cpp, vLLM and Ollama.
            "top_k": params.top_k,
            "repeat_penalty": params.repeat_penalty,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        return body

    def _stream(self, messages: list[Message], params: SamplingParams) -> Iterator[str]:
        stats = self.last_stats
        stats.finish_reason = None
        try:
            with self._client.stream("POST", self.url, json=self._body(messages, params)) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise MindwellError(
                        f"The server at {self.url} answered {resp.status_code}: "
                        f"{resp.text[:300]}",
                        "Check the URL, the model name and the API key.",
                    )
                for line in resp.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if usage := chunk.get("usage"):
                        stats.prompt_tokens = usage.get("prompt_tokens", 0)
                        stats.completion_tokens = usage.get("completion_tokens", 0)
                        details = usage.get("prompt_tokens_details") or {}
                        stats.cached_tokens = details.get("cached_tokens", 0)
                    for choice in chunk.get("choices", []):
                        if choice.get("finish_reason"):
                            stats.finish_reason = choice["finish_reason"]
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            yield piece
        except httpx.ConnectError as err:
            raise MindwellError(
                f"Cannot reach an OpenAI-compatible server at {self.url}.",
                "Start the server (llama-server, vllm serve, ollama serve) or fix --url.",
            ) from err
        except httpx.TimeoutException as err:
            raise MindwellError(f"The server at {self.url} timed out.") from err

    def count_tokens(self, messages: list[Message]) -> int:
        # The server owns the tokenizer, so estimate on the long side: ~3.5 ASCII characters
        # a token, and a token for every other character (Korean, emoji). Trimming too much
        # history is safer than overflowing the server's context.
        text = "".join(m["content"] for m in messages)
        ascii_chars = sum(ch.isascii() for ch in text)
        return int(ascii_chars / 3.5) + (len(text) - ascii_chars) + 8 * len(messages)

    def close(self) -> None:
        self._client.close()
