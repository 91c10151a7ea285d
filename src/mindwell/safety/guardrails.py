"""Output guardrails: every generated reply is checked before a person sees it.

A reply that gives method, lethality or means information, states a diagnosis, names a
medication with a dose, or promises confidentiality the software cannot keep is replaced by
a safe reply, and the replacement is counted. Small models occasionally produce any of
these, whatever the system prompt says, so the check is not optional.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_DRUGS = (
    r"sertraline|zoloft|fluoxetine|prozac|escitalopram|lexapro|citalopram|paroxetine|"
    r"venlafaxine|bupropion|mirtazapine|trazodone|xanax|alprazolam|lorazepam|diazepam|"
    r"valium|clonazepam|zolpidem|ambien|quetiapine|lithium|melatonin|ibuprofen|"
    r"acetaminophen|paracetamol|tylenol|aspirin|benadryl|diphenhydramine"
)
_RULES: list[tuple[str, re.Pattern]] = [
    (name, re.compile(pattern, re.I))
    for name, pattern in [
        ("method information",
         r"\b(lethal|fatal|deadly)\s+(dose|amount|quantity|height|combination)"
         r"|\bhow\s+to\s+(kill|hang|overdose|suffocate|poison)\b"
         r"|\b(overdose|od)\s+on\b"
         r"|\b(enough|many)\s+(pills|tablets)\s+to\s+(die|kill|end)"
         r"|\b(jump(ing)?\s+(from|off)|hang(ing)?\s+yourself|slit|noose)\b"
         r"|\b\d+\s*(m|meters|metres|feet|ft|stories|storeys)\s+(high|tall|drop|fall)\b"
         r"|치사량|목을\s*매|뛰어내리"),
        ("diagnosis",
         r"\byou\s+(clearly\s+|probably\s+|definitely\s+)?(have|suffer from|are suffering from)"
         r"\s+(clinical\s+|major\s+)?(depression|bipolar|ptsd|ocd|adhd|schizophrenia|"
         r"borderline|an?\s+(anxiety|personality|eating|mood)\s+disorder)"
         r"|\byou\s+are\s+(bipolar|schizophrenic|depressed\s+clinically)"
         r"|\bi\s+diagnose\b|\bmy\s+diagnosis\b|당신은\s*\S*(우울증|조울증|공황장애)입니다"),
        ("medication dose",
         r"\b(" + _DRUGS + r")\b"
         r"[^.\n]{0,40}?\b\d+(\.\d+)?\s*(mg|milligrams?|g|grams?|mcg|pills?|tablets?)\b"
         r"|\b\d+(\.\d+)?\s*(mg|milligrams?)\s+of\s+\w+"),
        ("confidentiality promise",
         r"\b(i\s+(will|won't|will not)\s+(never\s+)?(tell|share|report)\s+(this\s+)?"
         r"(to\s+)?(anyone|nobody)|this\s+stays\s+between\s+us|(completely|totally|100%)\s+"
         r"(confidential|private|secret)|no\s+one\s+will\s+ever\s+(know|find out))"
         r"|비밀로\s*해\s*줄게|아무한테도\s*말\s*안"),
    ]
]

SAFE_REPLY = (
    "I want to be careful here, so I won't go into that. I'm an AI companion, not a "
    "therapist or doctor, and I can't give medical or safety-critical advice. What's weighing "
    "on you most right now? If you are thinking about harming yourself, please reach out to a "
    "crisis line or someone you trust."
)
SAFE_REPLY_KO = (
    "그 부분은 조심스러워서 자세히 말씀드리기 어려워요. 저는 치료사나 의사가 아닌 AI 동반자라서 "
    "의학적이거나 안전과 관련된 조언은 드릴 수 없어요. 지금 가장 마음을 무겁게 하는 건 무엇인가요? "
    "혹시 스스로를 해치고 싶은 생각이 든다면 109 같은 상담전화나 믿을 수 있는 사람에게 꼭 연락해 주세요."
)


@dataclass
class GuardrailResult:
    reply: str
    replaced: bool
    violations: list[str] = field(default_factory=list)


def violations(text: str) -> list[str]:
    return [name for name, rule in _RULES if rule.search(text)]


class OutputGuardrail:
    """Checks replies and counts replacements over its lifetime (one per session/server)."""

    def __init__(self) -> None:
        self.replacements = 0

    def check(self, reply: str, korean: bool = False) -> GuardrailResult:
        found = violations(reply)
        if not found:
            return GuardrailResult(reply, False)
        self.replacements += 1
        return GuardrailResult(SAFE_REPLY_KO if korean else SAFE_REPLY, True, found)


# Words that can begin a violation. Text after one is held back until its sentence ends and
# has been checked; all other text streams at once, so a normal reply loses no latency.
_HOLD_TRIGGERS = re.compile(
    r"\b(lethal|fatal|deadly|overdose|od on|dose|doses|how to|jump(ing)? (off|from)|"
    r"hang(ing)?|slit|noose|(enough|many|much) (pills|tablets|sleeping)|pills|tablets|"
    r"\d+\s*(mg|milligrams?|g|grams?|mcg|m|meters?|metres?|feet|ft|stories|storeys)|"
    r"you\s+(\w+\s+)?(have|suffer|are suffering)|you are (bipolar|schizophrenic)|"
    r"i (won't|will not|will never|won't ever) (tell|share|report)|this stays|"
    r"confidential|secret|no one will|diagnos\w*|" + _DRUGS + r")\b|치사|목을|뛰어|당신은|비밀|"
    r"아무한테",
    re.I,
)
_SENTENCE_END = re.compile(r"[.!?。\n]\s*$")


def guarded_stream(pieces, guardrail: OutputGuardrail, korean: bool = False,
                   hold_limit: int = 200):
    """Stream ``pieces``, holding back risky sentences until checked.

    If the reply so far breaks a rule, generation is stopped and the safe reply follows
    what was already shown (which had passed the check). The final text, as shown, is the
    generator's return value (``StopIteration.value``).
    """
    shown, held = "", ""
    try:
        for piece in pieces:
            held += piece
            if violations(shown + held):
                guardrail.replacements += 1
                safe = SAFE_REPLY_KO if korean else SAFE_REPLY
                tail = ("\n\n" if shown.strip() else "") + safe
                yield tail
                return shown + tail
            window = shown[-40:] + held
            if _HOLD_TRIGGERS.search(window) and not _SENTENCE_END.search(held) and (
                    len(held) < hold_limit):
                continue
            yield held
            shown, held = shown + held, ""
        if held:
            yield held
            shown += held
        return shown
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()  # stops generation early when a violation cut the reply
