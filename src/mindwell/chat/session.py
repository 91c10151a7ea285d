"""A multi-turn counselor conversation, independent of how it is shown.

Every user message goes through ``ChatSession.ask``: it is cleaned, checked by the safety
gate *before* any generation, and only then sent to the model with as much history as the
context holds (oldest turns dropped first).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from mindwell.chat.prompts import AI_DISCLOSURE, COUNSELOR_SYSTEM_PROMPT
from mindwell.errors import MindwellError
from mindwell.inference.base import Backend, Message, SamplingParams
from mindwell.safety import RiskAssessment, SafetyGate, crisis_reply, detect_language
from mindwell.safety.crisis import (
    ANSWERS_NO,
    ANSWERS_YES,
    DECLINE_DOSE,
    SAFE_AGAIN,
    answers_safe,
    check_in_question,
    crisis_mode_reply,
    says_safe,
)
from mindwell.safety.guardrails import OutputGuardrail, guarded_stream
from mindwell.safety.risk import CONTEXT_MESSAGES

MAX_MESSAGE_CHARS = 4000  # ~1000 tokens: longer pastes crowd out the conversation
DISCLOSURE_INTERVAL_S = 3 * 60 * 60  # the AI disclosure is repeated every 3 hours
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
    generated: bool = True  # False: a fixed reply (crisis, safety plan, declined amount)


class ChatSession:
    def __init__(
        self,
        backend: Backend,
        system_prompt: str = COUNSELOR_SYSTEM_PROMPT,
        safety: SafetyGate | None = None,
        sampling: SamplingParams | None = None,
        locale: str | None = None,
        max_message_chars: int = MAX_MESSAGE_CHARS,
        separate_entries: bool = False,
        message_frame: str = "{text}",
    ) -> None:
        """``separate_entries``: the earlier messages (``said``) were written on other
        occasions (diary entries), so the gate reads them only as a reason for attention;
        ``message_frame``: how the person's message is put to the model (the diary asks
        for a short note on the entry)."""
        self.backend = backend
        self.system_prompt = system_prompt
        self.safety = safety or SafetyGate()
        self.sampling = sampling or SamplingParams()
        self.locale = locale
        # The person's chosen language for the app ("ko": fixed replies such as the crisis
        # reply are in Korean whatever the message's language); None: the message decides.
        self.language: str | None = None
        self.max_message_chars = max_message_chars
        self.separate_entries = separate_entries
        self.message_frame = message_frame
        self.history: list[Message] = []  # user/assistant turns, without the system prompt
        # What the person wrote, as written: the safety gate reads these, never the
        # placeholder that stands in for a crisis message in the model's prompt.
        self.said: list[str] = []
        # Optional per-turn context (the webcam's face summary), added to the user message.
        self.context: Callable[[], str] | None = None
        self.dropped_turns = 0
        self.guardrail = OutputGuardrail()
        self.crisis_mode = False
        self.crisis_step = 0
        # The last reply asked directly about safety (a check-in): a yes leads into the
        # protocol, a clear no continues the conversation.
        self.check_in_pending = False
        self.calm_turns = 0  # messages left that read an ended crisis as attention only
        # Risk events for the session log: when, level and reasons, never the message text.
        self.events: list[dict] = []
        self.clock: Callable[[], float] = time.time
        self.disclosed_at = self.clock()  # front ends show AI_DISCLOSURE when a chat starts

    def to_state(self) -> dict:
        """What a stored conversation needs to go on where it was (JSON-ready)."""
        return {"history": self.history, "crisis_mode": self.crisis_mode,
                "crisis_step": self.crisis_step, "disclosed_at": self.disclosed_at,
                "check_in_pending": self.check_in_pending, "calm_turns": self.calm_turns}

    def from_state(self, state: dict, started_at: float | None = None) -> None:
        """Go on from ``to_state``'s dict (``started_at``: when the chat began, the
        disclosure's time for a state saved before any reply)."""
        self.history = list(state.get("history", []))
        self.crisis_mode = bool(state.get("crisis_mode", False))
        self.crisis_step = int(state.get("crisis_step", 0))
        self.check_in_pending = bool(state.get("check_in_pending", False))
        self.calm_turns = int(state.get("calm_turns", 0))
        self.disclosed_at = state.get("disclosed_at", started_at or self.disclosed_at)

    def reset(self) -> None:
        self.history.clear()
        self.said.clear()
        self.dropped_turns = 0
        self.crisis_mode = False
        self.crisis_step = 0
        self.check_in_pending = False

    def ask(self, text: str, decline: bool = False, reply: bool = True) -> Turn | None:
        """Start a reply to ``text``; None when the message is empty. ``decline``: the
        caller found a request for method information or amounts elsewhere in what it was
        sent (a client's injected turns), so nothing is generated. ``reply=False``: only
        the gate's decision and what it says regardless (the crisis reply, a declined
        amount, the check-in question); nothing is generated (a diary entry saved without
        a note)."""
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

        now = self.clock()
        if now - self.disclosed_at >= DISCLOSURE_INTERVAL_S:
            notices.append(AI_DISCLOSURE)
            self.disclosed_at = now
        korean = self.language == "ko" or detect_language(text) == "ko"

        # The one place every user message is checked before generation.
        risk = self.safety.assess(text, self.said,
                                  separate_entries=self.separate_entries or self.calm_turns > 0)
        self.calm_turns = max(0, self.calm_turns - 1)
        self.said = [*self.said[-11:], text]
        lang = "ko" if korean else "en"
        answered_check_in, self.check_in_pending = self.check_in_pending, False
        if risk.escalate and (self.crisis_mode or answered_check_in) and answers_safe(text):
            # A plain answer to the safety question ("I'm safe. I won't hurt myself."): the
            # gate reads "hurt myself" in it, but it says what the question asked to hear.
            risk.action, risk.escalate, risk.level = "normal", False, "none"
            risk.reasons.append("answered the safety question: safe")
        if not risk.escalate and answered_check_in and not self.crisis_mode and (
                ANSWERS_YES.search(text) and not ANSWERS_NO.search(text)):
            risk.action, risk.escalate, risk.level = "protocol", True, "high"
            risk.reasons.append("answered yes when asked about thoughts of suicide")
        if risk.escalate:
            self.events.append({"time": now, "type": "escalation", "level": risk.level,
                                "reasons": list(risk.reasons)})
        if risk.escalate and not self.crisis_mode:
            self.crisis_mode, self.crisis_step = True, 0
            return self._fixed_turn(text, risk, notices, crisis_reply(
                self.locale, korean=korean, categories=risk.categories))
        if self.crisis_mode:
            # Already in crisis mode: the safety plan goes on step by step (the gate reads
            # the conversation, so it keeps finding the crisis that started it).
            if (says_safe(text) or answers_safe(text)) and not risk.escalate:
                self.crisis_mode = False
                # For the next messages the crisis only raises the gate's attention (as
                # between diary entries): read together with it, "what should I cook?" would
                # go straight back into crisis mode. "jk lol" still gets a check-in.
                self.calm_turns = CONTEXT_MESSAGES
                self.events.append({"time": now, "type": "crisis_mode_ended"})
                return self._fixed_turn(text, risk, notices, SAFE_AGAIN[lang], withhold=False)
            step = crisis_mode_reply(text, self.crisis_step, self.locale, korean)
            self.crisis_step += 1
            return self._fixed_turn(text, risk, notices, step)
        closing = ""
        if risk.check_in:
            self.events.append({"time": now, "type": "check_in", "level": risk.level,
                                "reasons": list(risk.reasons)})
            self.check_in_pending = True
            closing = check_in_question(self.locale, korean)
        if risk.decline or decline:
            # A dose question that also reads as ambiguous risk keeps its check-in question:
            # the decline alone would leave the risk unasked.
            declined = DECLINE_DOSE[lang] + (f"\n\n{closing}" if closing else "")
            return self._fixed_turn(text, risk, notices, declined, withhold=False)
        if not reply:
            return Turn(text, risk, iter([closing] if closing else []), notices,
                        generated=False)

        framed = self.message_frame.format(text=text)
        content = framed
        extra = self.context() if self.context else ""
        if extra:  # e.g. the webcam summary; it travels with this message only
            content = f"{framed}\n\n({extra})"
        messages = self._fit([*self.history, {"role": "user", "content": content}], notices)
        suffix = content[len(framed):]
        return Turn(text, risk, self._stream_and_remember(messages, korean, suffix, closing),
                    notices)

    def _fixed_turn(self, text: str, risk: RiskAssessment, notices: list[str], reply: str,
                    withhold: bool = True) -> Turn:
        """A reply that is not generated. In crisis the person's words are withheld from
        later prompts."""
        self.history += [
            {"role": "user", "content": WITHHELD_CRISIS_MESSAGE if withhold else text},
            {"role": "assistant", "content": reply},
        ]
        return Turn(text, risk, (piece for piece in [reply]), notices,
                    escalated=risk.escalate or self.crisis_mode, generated=False)

    def _stream_and_remember(self, messages: list[Message], korean: bool,
                             context_suffix: str = "", closing: str = "") -> Iterator[str]:
        """``closing``: fixed text shown after the generated reply (a check-in question)."""
        shown: list[str] = []
        try:
            pieces = self.backend.generate(
                [self._system(), *messages], stream=True, **vars(self.sampling)
            )
            # Every generated reply passes the output guardrails before it is shown.
            for piece in guarded_stream(pieces, self.guardrail, korean=korean):
                shown.append(piece)
                yield piece
            if closing:
                closing = ("\n\n" if "".join(shown).strip() else "") + closing
                shown.append(closing)
                yield closing
        finally:
            # Even a reply cut short (Ctrl-C) stays in history, so the next turn's prompt
            # shares the cached prefix and the conversation reads as it happened.
            # The per-turn context (webcam summary, recalled memories) is left out of the
            # history: it was for this reply only, and a memory the person later erases
            # must not live on inside the conversation.
            asked = messages[-1]["content"]
            if context_suffix and asked.endswith(context_suffix):
                asked = asked[: -len(context_suffix)]
            self.history = [*messages[:-1], {"role": "user", "content": asked},
                            {"role": "assistant", "content": "".join(shown).strip()}]

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
