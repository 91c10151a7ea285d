"""Crisis detection (first line) and the deterministic escalation reply."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

RiskLevel = Literal["none", "low", "medium", "high", "imminent"]

# Each pattern names why it fired; the reasons travel with the assessment into logs.
# Idioms ("this homework is killing me", "배고파 죽겠다") deliberately do not match: they
# lack a first-person wish to die or to hurt oneself.
_HIGH_RISK_PATTERNS: list[tuple[str, re.Pattern]] = [
    (reason, re.compile(pattern, re.I))
    for reason, pattern in [
        ("states a wish to die",
         r"\b(i\s*(really\s+|just\s+)?(want|wanna|wish)\s+(to\s+)?(die|be dead|not\s+exist))"),
        ("talks about killing themself",
         r"\b(kill(ing)?\s+my\s*self|end(ing)?\s+(my|it)\s+(life|all)|take\s+my\s+(own\s+)?life)"),
        ("talks about suicide", r"\b(suicid(e|al)|commit\s+suicide)\b(?!\s+prevention)"),
        ("does not want to live",
         r"\b(don'?t|do not|no longer)\s+want\s+to\s+(live|be alive|wake up|be here)"),
        ("talks about self-harm",
         r"\b(hurt(ing)?|harm(ing)?|cut(ting)?)\s+my\s*self\b|\bself[-\s]?harm"),
        ("asks about a lethal method",
         r"how\s+(many|much)\s+\w*\s*(pills|tablets|sleeping pills|mg)\b.*\b(die|kill|lethal|"
         r"overdose|take|would it take)"),
        ("asks about a lethal method", r"\b(lethal|fatal)\s+(dose|amount)"),
        ("states a wish to die (Korean)", r"죽고\s*싶|살고\s*싶지\s*않|사라지고\s*싶"),
        ("talks about suicide (Korean)", r"자살|목숨을\s*끊|극단적\s*선택"),
        ("talks about self-harm (Korean)", r"자해"),
    ]
]
# Words that turn a match into talk about others, prevention or fiction.
_CONTEXT_EXEMPTIONS = re.compile(
    r"\b(prevention|hotline|awareness|my friend|a friend|novel|movie|film|character|"
    r"news|article|documentary)\b|예방|친구가|소설|영화|뉴스",
    re.I,
)


@dataclass
class RiskAssessment:
    level: RiskLevel = "none"
    escalate: bool = False
    reasons: list[str] = field(default_factory=list)


class SafetyGate:
    """Assesses one message in the context of the conversation so far."""

    def assess(self, text: str, history: list[dict] | None = None) -> RiskAssessment:
        reasons = sorted({reason for reason, rx in _HIGH_RISK_PATTERNS if rx.search(text)})
        if not reasons:
            return RiskAssessment()
        if _CONTEXT_EXEMPTIONS.search(text):
            # About someone else, prevention or fiction: noted, not escalated.
            return RiskAssessment("low", False, [*reasons, "context suggests it is not about "
                                                 "the writer"])
        return RiskAssessment("high", True, reasons)


@dataclass(frozen=True)
class Helpline:
    region: str
    name: str
    contact: str


HELPLINES: dict[str, list[Helpline]] = {
    "US": [Helpline("United States", "988 Suicide & Crisis Lifeline", "call or text 988")],
    "KR": [Helpline("South Korea", "자살예방상담전화", "109")],
    "GB": [Helpline("UK and Ireland", "Samaritans", "116 123")],
    "IE": [Helpline("UK and Ireland", "Samaritans", "116 123")],
}
INTERNATIONAL = Helpline("Elsewhere", "Find A Helpline directory", "findahelpline.com")


def helplines_for(locale: str | None) -> list[Helpline]:
    region = (locale or "").upper().replace("-", "_").split("_")[-1]
    if region in HELPLINES:
        return [*HELPLINES[region], INTERNATIONAL]
    # Unknown locale: show the main lines and the directory rather than nothing.
    return [*HELPLINES["US"], *HELPLINES["GB"], *HELPLINES["KR"], INTERNATIONAL]


def crisis_reply(locale: str | None = None, korean: bool = False) -> str:
    """The fixed reply given instead of generation when a message escalates."""
    lines = "\n".join(f"  - {h.region}: {h.name}, {h.contact}" for h in helplines_for(locale))
    if korean:
        return (
            "이야기해 주셔서 고마워요. 지금 많이 힘드신 것 같아요. 혼자 견디지 않으셔도 돼요.\n"
            "지금 바로 이야기할 수 있는 곳이 있어요:\n"
            f"{lines}\n"
            "위험한 상황이라면 112나 119에 연락해 주세요.\n"
            "지금 안전한 곳에 계신가요? 원하시면 함께 안전 계획을 하나씩 세워 볼 수 있어요."
        )
    return (
        "Thank you for telling me. It sounds like you are in a lot of pain right now, and you "
        "don't have to carry this alone.\n"
        "You can talk to someone right now:\n"
        f"{lines}\n"
        "If you are in immediate danger, please call your local emergency number.\n"
        "Are you safe right now? If you like, we can make a safety plan together, one small "
        "step at a time, or try a short grounding exercise."
    )
