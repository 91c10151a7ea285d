"""A multi-turn counselor conversation, independent of how it is shown.

Every user message goes through ``ChatSession.ask``: it is cleaned, checked by the safety
gate *before* any generation, and only then sent to the model with as much history as the
context holds (oldest turns dropped first).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from mindwell.chat.prompts import COUNSELOR_SYSTEM_PROMPT
from mindwell.errors import MindwellError
from mindwell.inference.base import Backend, Message, SamplingParams
from mindwell.safety import RiskAssessment, SafetyGate, crisis_reply

MAX_MESSAGE_CHARS = 4000  # ~1000 tokens: longer pastes crowd out the conversation
HANGUL = re.compile(r"[\uac00-\ud7a3]")
# Stands in for a crisis message in later prompts: the model keeps the context without
# the raw words (which small models may echo or elaborate on).
WITHHELD_CRISIS_MESSAGE = "(I shared that I am going through a crisis and thoughts of harm.)"


@dataclass
class Turn:
    """One exchange. Iterate ``pieces`` to stream the reply; history updates when done."""

    user_text: str
    risk: RiskAssessment
    pieces: Iterator[str]
    notices: list[str] = field(default_factory=list)
    escalated: bool = False


class ChatSession:
    def __init__(
        self,
        backend: Backend,
        system_prompt: str = COUNSELOR_SYSTEM_PROMPT,
        safety: SafetyGate | None = None,
        sampling: SamplingParams | None = None,
        locale: str | None = None,
        max_message_chars: int = MAX_MESSAGE_CHARS,
    ) -> None:
        self.backend = backend
        self.system_prompt = system_prompt
        self.safety = safety or SafetyGate()
        self.sampling = sampling or SamplingParams()
        self.locale = locale
        self.max_message_chars = max_message_chars
        self.history: list[Message] = []  # user/assistant turns, without the system prompt
        self.dropped_turns = 0

    def reset(self) -> None:
        self.history.clear()
        self.dropped_turns = 0

    def ask(self, text: str) -> Turn | None:
        """Start a reply to ``text``; None when the message is empty."""
        text = text.strip()
        if not text:
            return None
        notices = []
        if len(text) > self.max_message_chars:
            notices.append(
                f"Your message was {len(text)} characters; only the first "
                f"{self.max_message_chars} were used."
            )
            text = text[: self.max_message_chars]

        # The one place every user message is checked before generation.
        risk = self.safety.assess(text, self.history)
        if risk.escalate:
            reply = crisis_reply(self.locale, korean=bool(HANGUL.search(text)))
            self.history += [
                {"role": "user", "content": WITHHELD_CRISIS_MESSAGE},
                {"role": "assistant", "content": reply},
            ]
            return Turn(text, risk, (piece for piece in [reply]), notices, escalated=True)

        messages = self._fit([*self.history, {"role": "user", "content": text}], notices)
        return Turn(text, risk, self._stream_and_remember(messages), notices)

    def _stream_and_remember(self, messages: list[Message]) -> Iterator[str]:
        reply: list[str] = []
        try:
            for piece in self.backend.generate(
                [self._system(), *messages], stream=True, **vars(self.sampling)
            ):
                reply.append(piece)
                yield piece
        finally:
            # Even a reply cut short (Ctrl-C) stays in history, so the next turn's prompt
            # shares the cached prefix and the conversation reads as it happened.
            self.history = [*messages, {"role": "assistant", "content": "".join(reply).strip()}]

    def _system(self) -> Message:
        return {"role": "system", "content": self.system_prompt}

    def _fit(self, messages: list[Message], notices: list[str]) -> list[Message]:
        """Drop the oldest user/assistant pairs until the prompt and the reply fit."""
        budget = self.backend.context_length - self.sampling.max_tokens
        dropped = 0
        while len(messages) > 1 and not self.backend.fits([self._system(), *messages], budget):
            messages = messages[2:]
            dropped += 1
        if dropped:
            self.dropped_turns += dropped
            notices.append(f"Dropped the {dropped} oldest exchange(s) to fit the model's context.")
        last = messages[-1]
        while not self.backend.fits([self._system(), last], budget) and len(last["content"]) > 1:
            # A single message longer than the context: keep its beginning.
            last = {**last, "content": last["content"][: len(last["content"]) * 3 // 4]}
            messages = [last]
            if not any("shortened" in n for n in notices):
                notices.append("Your message was shortened to fit the model's context.")
        if not self.backend.fits([self._system(), last], budget):
            raise MindwellError(
                f"The system prompt alone does not fit in the model's context of "
                f"{self.backend.context_length} tokens with {self.sampling.max_tokens} tokens "
                "left for the reply.",
                "Raise --ctx-size, lower --max-tokens or shorten --system-prompt.",
            )
        return messages
