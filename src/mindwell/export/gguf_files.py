"""Writing what llama.cpp and Ollama need to format prompts by themselves.

The converter copies the chat template it finds beside the weights; this pass makes the rest
explicit in the GGUF (the end-of-turn token, a readable name) and writes the Ollama
Modelfile, whose Go template must reproduce the Jinja template the model was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mindwell.errors import MindwellError
from mindwell.inference.base import SamplingParams
from mindwell.inference.templates import ChatTemplate


def rewrite_metadata(path: Path, updates: dict[str, object], remove: tuple[str, ...] = (),
                     target: Path | None = None) -> Path:
    """Copy a GGUF with some metadata keys set or removed (in place unless ``target``)."""
    import gguf
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

    reader = gguf.GGUFReader(str(path))
    architecture = reader.fields["general.architecture"].contents()
    out = target or path.with_name(path.name + ".partial")
    writer = gguf.GGUFWriter(str(out), arch=architecture, endianess=reader.endianess)
    alignment = reader.fields.get("general.alignment")
    if alignment is not None:
        writer.data_alignment = alignment.contents()
    details = {}
    for key, value in updates.items():
        kind = (gguf.GGUFValueType.STRING if isinstance(value, str) else
                gguf.GGUFValueType.BOOL if isinstance(value, bool) else
                gguf.GGUFValueType.UINT32)
        details[key] = MetadataDetails(kind, value)
    copy_with_new_metadata(reader, writer, details, list(remove))
    del reader  # release the memory map before replacing the file
    if target is None:
        out.replace(path)
        return path
    return out


def stamp(path: Path, template: ChatTemplate, stop_id: int, name: str) -> None:
    """Chat template, end-of-turn token and name, so runtimes need no extra configuration."""
    rewrite_metadata(path, {
        "tokenizer.chat_template": template.source,
        "tokenizer.ggml.eot_token_id": int(stop_id),
        "general.name": name,
    })


# Ollama templates are Go templates. These reproduce mindwell's Jinja templates exactly,
# including Gemma's folding of the system prompt into the first user turn. No BOS: Ollama
# adds it from the GGUF's add_bos_token.
GO_TEMPLATES = {
    "gemma": (
        '{{- $system := "" }}{{- range .Messages }}{{ if eq .Role "system" }}'
        "{{ $system = .Content }}{{ end }}{{ end }}\n"
        "{{- $first := true }}\n"
        "{{- range .Messages }}\n"
        '{{- if eq .Role "user" }}<start_of_turn>user\n'
        "{{ if and $first $system }}{{ $system }}\n\n{{ end }}{{ .Content }}<end_of_turn>\n"
        "{{ $first = false }}\n"
        '{{- else if eq .Role "assistant" }}<start_of_turn>model\n'
        "{{ .Content }}<end_of_turn>\n"
        "{{ end }}\n"
        "{{- end }}<start_of_turn>model\n"
    ),
    "chatml": (
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
        "{{ .Content }}<|im_end|>\n"
        "{{ end }}<|im_start|>assistant\n"
    ),
}


@dataclass
class Modelfile:
    text: str
    template: str
    stops: list[str]


def build_modelfile(gguf_name: str, template: ChatTemplate, system_prompt: str,
                    context: int = 4096, name: str = "mindwell-counselor") -> Modelfile:
    """The Modelfile for ``gguf_name``; its comment creates the model under ``name`` (the
    name the export registered)."""
    go_template = GO_TEMPLATES.get(template.name)
    if go_template is None:
        raise MindwellError(
            f"mindwell has no Ollama template for the '{template.name}' chat format.",
            "Export a Gemma or ChatML model, or write the Modelfile TEMPLATE by hand.",
        )
    sampling = SamplingParams()
    stops = template.stop_strings
    lines = [
        "# Ollama Modelfile written by `mindwell export`.",
        f"# Create and run:  ollama create {name} -f Modelfile",
        f"#                  ollama run {name}",
        f"FROM ./{gguf_name}",
        "",
        f'TEMPLATE """{go_template}"""',
        "",
        f'SYSTEM """{system_prompt}"""',
        "",
        "# mindwell's chat defaults: calm, varied, and a repeat penalty small models need.",
        f"PARAMETER temperature {sampling.temperature}",
        f"PARAMETER top_p {sampling.top_p}",
        f"PARAMETER top_k {sampling.top_k}",
        f"PARAMETER repeat_penalty {sampling.repeat_penalty}",
        f"PARAMETER num_ctx {context}",
        *[f'PARAMETER stop "{stop}"' for stop in stops],
        "",
    ]
    return Modelfile("\n".join(lines), go_template, stops)
