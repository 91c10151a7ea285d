"""The safety gate used before generation, and the deterministic escalation reply."""

from __future__ import annotations

from dataclasses import dataclass

from mindwell.safety.risk import RiskAssessment, RiskAssessor


class SafetyGate:
    """Assesses one message in the context of the conversation so far.

    ``history`` is the conversation's earlier messages (dicts with role and content, or
    plain strings); only the person's own messages are used.
    """

    def __init__(self, assessor: RiskAssessor | None = None) -> None:
        self.assessor = assessor or RiskAssessor()

    def assess(self, text: str, history: list | None = None) -> RiskAssessment:
        earlier = [
            m if isinstance(m, str) else m["content"]
            for m in history or []
            if isinstance(m, str) or m.get("role") == "user"
        ]
        return self.assessor.assess(text, earlier)


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
