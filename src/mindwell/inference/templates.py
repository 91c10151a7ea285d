"""Chat templates: one Jinja source per model family, rendered the way transformers does.

The embedded Gemma GGUF carries no template, and llama.cpp silently falls back to a
llama-2 format when a GGUF lacks one, which makes Gemma ramble. mindwell therefore renders
every prompt itself from a known template and sends raw text to the runtime. The same Jinja
strings are what `mindwell export` writes into GGUF metadata and Ollama Modelfiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mindwell.errors import MindwellError

Message = dict[str, str]

# Gemma 3's official template, text only: Gemma has no system role, so a system message is
# folded into the first user turn; the assistant role is called "model".
GEMMA_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if message['role'] == 'assistant' -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {{- message['content'] | trim }}
    {{- '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<start_of_turn>model\n' }}
{%- endif -%}
"""

# ChatML as SmolLM2 ships it, without SmolLM2's built-in default system prompt (mindwell
# always sends its own counselor prompt).
CHATML_TEMPLATE = """{%- for message in messages -%}
{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{ '<|im_start|>assistant\n' }}
{%- endif -%}
"""


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    source: str
    stop: tuple[str, ...]
    bos_token: str = ""
    eos_token: str = ""
    extra_stop: tuple[str, ...] = field(default=())

    def render(
        self, messages: list[Message], add_generation_prompt: bool = True, with_bos: bool = True
    ) -> str:
        """Render a conversation to the exact prompt string the model was trained on.

        ``with_bos=False`` leaves the BOS text out for runtimes that add the BOS token
        themselves (llama.cpp does), which avoids the doubled-BOS bug.
        """
        if not messages:
            raise MindwellError("Cannot render an empty conversation.", "Add a user message.")
        try:
            return _compile(self.source).render(
                messages=messages,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token if with_bos else "",
                eos_token=self.eos_token,
            )
        except TemplateError as err:
            raise MindwellError(
                f"The {self.name} chat template rejected the conversation: {err}",
                "Check the message roles (Gemma needs user and assistant turns to alternate, "
                "starting with the user).",
            ) from err

    @property
    def stop_strings(self) -> list[str]:
        return list(self.stop + self.extra_stop)


def _raise(message: str) -> None:
    raise TemplateError(message)


@cache
def _compile(source: str):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    return env.from_string(source)


GEMMA = ChatTemplate(
    "gemma", GEMMA_TEMPLATE, stop=("<end_of_turn>",), bos_token="<bos>", eos_token="<eos>",
    extra_stop=("<eos>",),
)
CHATML = ChatTemplate(
    "chatml", CHATML_TEMPLATE, stop=("<|im_end|>",), eos_token="<|im_end|>",
    extra_stop=("<|endoftext|>",),
)
BUILTIN: dict[str, ChatTemplate] = {"gemma": GEMMA, "chatml": CHATML}

# Which built-in template a model family uses when its files carry none.
ARCHITECTURE_TEMPLATES = {
    "gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "gemma3_text": "gemma",
    "qwen2": "chatml", "qwen3": "chatml",
}


def get_template(name: str) -> ChatTemplate:
    try:
        return BUILTIN[name]
    except KeyError:
        raise MindwellError(
            f"Unknown chat template '{name}'.", f"Known templates: {', '.join(BUILTIN)}."
        ) from None


def gguf_metadata(path: Path) -> dict[str, str]:
    """The few GGUF metadata fields mindwell needs, read without loading the weights."""
    from mindwell.models.gguf_header import array_string, read_metadata

    meta = read_metadata(Path(path))
    architecture = str(meta.get("general.architecture", ""))
    tokens = meta.get("tokenizer.ggml.tokens")

    def token(key: str) -> str:
        token_id = meta.get(key)
        return "" if token_id is None or tokens is None else array_string(path, tokens, token_id)

    return {
        "architecture": architecture,
        "chat_template": str(meta.get("tokenizer.chat_template", "")),
        "bos_token": token("tokenizer.ggml.bos_token_id"),
        "eos_token": token("tokenizer.ggml.eos_token_id"),
        "context_length": str(meta.get(f"{architecture}.context_length", "")),
    }


def template_from_source(source: str, bos: str, eos: str, name: str) -> ChatTemplate | None:
    """A model's own Jinja template, mapped to mindwell's copy when it is a known family.

    The known families carry the right end-of-turn stop tokens, which a generic template
    (whose only stop is EOS) would miss.
    """
    if not source:
        return None
    if "<start_of_turn>" in source:
        return GEMMA
    if "<|im_start|>" in source:
        return CHATML
    return ChatTemplate(name, source, stop=(eos,) if eos else (), bos_token=bos, eos_token=eos)


def template_for_gguf(path: Path, preferred: str | None = None) -> ChatTemplate:
    """The template a GGUF should be prompted with.

    Order: the registry's template for an embedded model, then a known family template when
    the GGUF's own template matches that family, then the GGUF's own Jinja template, then
    the family default for its architecture.
    """
    if preferred:
        return get_template(preferred)
    meta = gguf_metadata(path)
    own = template_from_source(
        meta["chat_template"], meta["bos_token"], meta["eos_token"], f"gguf:{path.name}"
    )
    if own:
        return own
    family = ARCHITECTURE_TEMPLATES.get(meta["architecture"])
    if family:
        return BUILTIN[family]
    raise MindwellError(
        f"{path.name} carries no chat template and its architecture "
        f"'{meta['architecture']}' has no known default.",
        "Pass --template gemma or --template chatml to say how to format prompts.",
    )
