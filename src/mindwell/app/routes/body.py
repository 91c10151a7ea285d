"""Request bodies shared by more than one surface: the base class every body derives from,
and the chat message of the OpenAI- and Ollama-compatible routes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, model_validator

from mindwell.app.service import clean_text


def _cleaned(value):
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [_cleaned(item) for item in value]
    if isinstance(value, dict):
        return {key: _cleaned(item) for key, item in value.items()}
    return value


class Body(BaseModel):
    """Every request body: an unpaired surrogate ("\\ud800") in any string becomes U+FFFD
    before validation, so no text can fail later when it is stored or tokenized."""

    @model_validator(mode="before")
    @classmethod
    def _no_lone_surrogates(cls, data):
        return _cleaned(data)


class ContentPart(Body, extra="allow"):
    """One part of a message's content: text parts are read, others (images) ignored."""

    type: str
    text: str | None = None

    @model_validator(mode="after")
    def _text_part_has_text(self):
        if self.type == "text" and self.text is None:
            raise ValueError("a part of type 'text' needs a string 'text'")
        return self


class ChatMessage(Body):
    # developer is OpenAI's newer name for system; tool results carry no words of the person.
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = ""

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or "" for part in self.content if part.type == "text")
